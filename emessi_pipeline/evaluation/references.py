"""Reference timelines and transcripts for `emessi eval`, read from the formats researchers have.

Every reader returns a :class:`Reference`: its spans (who spoke when, and what, when known) in
time order. The format is chosen by the file's extension (:data:`FORMATS`):

- ``.rttm``: ``SPEAKER <file> <chan> <start> <duration> <NA> <NA> <speaker> <NA> <NA>`` (no text);
- ``.stm``: ``<file> <chan> <speaker> <start> <end> [<label>] <text>`` (``;;`` comments; segments
  whose text is ``ignore_time_segment_in_scoring`` are left out);
- ``.srt`` / ``.vtt``: cues with the speaker as ``<v Name>`` (WebVTT), ``Name: text`` or
  ``[Name] text``; a cue without a name continues the previous cue's speaker; lines of one cue
  with different speakers share the cue's time in proportion to their length;
- ``.csv`` / ``.tsv``: a header with ``start``, ``end``, ``speaker`` and optionally ``text``;
- ``.json``: a list of objects with ``start``, ``end``, ``speaker`` and optionally ``text`` (the
  demo's ``*.reference.json``), or an object holding such a list under ``segments`` or ``turns``.

Times are seconds, or ``[HH:]MM:SS[.,]mmm`` clock times. A ``.uem`` file (``<file> <chan>
<start> <end>``) names the regions to score and is read by :func:`read_uem`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..stages.records import SpeakerTurn


class ReferenceFileError(ValueError):
    """A reference file that cannot be read: unknown format, or a line that does not parse."""


@dataclass(frozen=True)
class Span:
    """A stretch of one speaker's speech, with its words when the source has them.

    ``speaker`` is ``None`` where the source names nobody (e.g. a subtitle cue before the first
    name); ``text`` is ``None`` where the source has no words (RTTM, CSV without a text column).
    """

    start: float
    end: float
    speaker: str | None
    text: str | None = None


@dataclass(frozen=True)
class Reference:
    path: Path
    format: str
    spans: tuple[Span, ...]

    @property
    def has_text(self) -> bool:
        return any(s.text is not None for s in self.spans)

    @property
    def has_speakers(self) -> bool:
        return bool(self.spans) and all(s.speaker for s in self.spans)

    @property
    def speakers(self) -> list[str]:
        return sorted({s.speaker for s in self.spans if s.speaker})


FORMATS = {".rttm": "rttm", ".stm": "stm", ".srt": "srt", ".vtt": "vtt", ".csv": "csv", ".tsv": "csv", ".json": "json"}
UEM_SUFFIX = ".uem"


def reference_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ReferenceFileError(
            f"{path}: unknown reference format {Path(path).suffix or '(no extension)'!r}; "
            f"use one of {', '.join(sorted(FORMATS))} (or {UEM_SUFFIX} for scoring regions)"
        )
    return fmt


def read_reference(path: Path) -> Reference:
    """Read *path* in the format its extension names; raises ReferenceFileError with file and line."""
    path = Path(path)
    fmt = reference_format(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ReferenceFileError(f"{path}: cannot read: {error}") from None
    spans = _READERS[fmt](text, path)
    for span in spans:
        if span.end < span.start:
            raise ReferenceFileError(f"{path}: a span ends ({span.end}) before it starts ({span.start})")
    return Reference(path, fmt, tuple(sorted(spans, key=lambda s: (s.start, s.end))))


def parse_time(value: str | float | int, where: str = "") -> float:
    """Seconds from ``12.5``, ``12,5``, ``01:02.5``, ``1:02:03,250``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().replace(",", ".")
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise ReferenceFileError(f"{where}not a time: {value!r}") from None
    if not 1 <= len(parts) <= 3:
        raise ReferenceFileError(f"{where}not a time: {value!r}")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def _rttm(text: str, path: Path) -> list[Span]:
    spans = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ReferenceFileError(f"{path}:{number}: an RTTM SPEAKER line needs 8 or more fields")
        start = parse_time(fields[3], f"{path}:{number}: ")
        spans.append(Span(start, start + parse_time(fields[4], f"{path}:{number}: "), fields[7]))
    return spans


def _stm(text: str, path: Path) -> list[Span]:
    spans = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";;"):
            continue
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            raise ReferenceFileError(f"{path}:{number}: an STM line needs <file> <channel> <speaker> <start> <end> [text]")
        where = f"{path}:{number}: "
        start, end = parse_time(fields[3], where), parse_time(fields[4], where)
        words = fields[5] if len(fields) > 5 else ""
        if words.startswith("<"):  # optional <o,f0,male> label
            words = words.split(">", 1)[1] if ">" in words else ""
        words = words.strip()
        if words.lower() == "ignore_time_segment_in_scoring" or fields[2].lower() == "inter_segment_gap":
            continue
        spans.append(Span(start, end, fields[2], words))
    return spans


_CUE_TIME = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_BRACKET_NAME = re.compile(r"^\s*[-–]?\s*\[([^\]]{1,60})\]\s*:?\s*(.*)$")
_COLON_NAME = re.compile(r"^\s*[-–]?\s*([^\s:,.!?\"][^:,.!?\"]{0,39}?)\s*:\s+(.*)$")


def _line_speaker(line: str) -> tuple[str | None, str]:
    """(speaker, text) of one subtitle line: <v Name>, [Name], or Name: text (≤ 4 words)."""
    voice = _VOICE.search(line)
    if voice:
        return voice.group(1).strip(), _TAG.sub("", line).strip()
    line = _TAG.sub("", line).strip()
    for pattern in (_BRACKET_NAME, _COLON_NAME):
        match = pattern.match(line)
        if match and len(match.group(1).split()) <= 4 and not any(c.isdigit() for c in match.group(1)):
            return match.group(1).strip(), match.group(2).strip()
    return None, line


def _subtitles(text: str, path: Path) -> list[Span]:
    spans: list[Span] = []
    speaker: str | None = None
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line for line in block.split("\n") if line.strip()]
        timing = next((i for i, line in enumerate(lines) if _CUE_TIME.match(line)), None)
        if timing is None:
            continue  # WEBVTT header, NOTE, STYLE, REGION blocks
        match = _CUE_TIME.match(lines[timing])
        where = f"{path}: cue {lines[timing].strip()!r}: "
        start, end = parse_time(match.group(1), where), parse_time(match.group(2), where)
        parts: list[tuple[str | None, str]] = []
        for line in lines[timing + 1 :]:
            name, words = _line_speaker(line)
            speaker = name or speaker
            if parts and parts[-1][0] == speaker:
                parts[-1] = (speaker, f"{parts[-1][1]} {words}".strip())
            else:
                parts.append((speaker, words))
        total = sum(max(len(w), 1) for _, w in parts) or 1
        cursor = start
        for who, words in parts:
            share = (end - start) * max(len(words), 1) / total
            spans.append(Span(round(cursor, 3), round(cursor + share, 3), who, words))
            cursor += share
    return spans


def _rows(rows: Iterable[dict], path: Path) -> list[Span]:
    spans = []
    for number, row in enumerate(rows, 1):
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        missing = [k for k in ("start", "end", "speaker") if row.get(k) in (None, "")]
        if missing:
            raise ReferenceFileError(f"{path}: row {number}: missing {', '.join(missing)} (need start, end, speaker[, text])")
        where = f"{path}: row {number}: "
        text = row.get("text")
        spans.append(Span(parse_time(row["start"], where), parse_time(row["end"], where), str(row["speaker"]).strip(),
                          None if text is None else str(text)))  # fmt: skip
    return spans


def _csv(text: str, path: Path) -> list[Span]:
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first else ";" if first.count(";") > first.count(",") else ","
    return _rows(csv.DictReader(text.splitlines(), delimiter=delimiter), path)


def _json(text: str, path: Path) -> list[Span]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReferenceFileError(f"{path}: not JSON: {error}") from None
    if isinstance(data, dict):
        data = data.get("segments", data.get("turns"))
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ReferenceFileError(f"{path}: expected a list of objects with start, end, speaker[, text]")
    return _rows(data, path)


_READERS = {"rttm": _rttm, "stm": _stm, "srt": _subtitles, "vtt": _subtitles, "csv": _csv, "json": _json}


def read_rttm(path: Path) -> list[SpeakerTurn]:
    """The SPEAKER lines of an RTTM file as turns, in file order, read as :func:`read_reference`
    reads them (a bad line raises ReferenceFileError naming the file and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ReferenceFileError(f"{path}: cannot read: {error}") from None
    return [SpeakerTurn(start=s.start, end=s.end, speaker=s.speaker) for s in _rttm(text, path)]


def read_uem(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Scoring regions per file id: ``<file> <channel> <start> <end>`` lines (``;;`` comments)."""
    regions: dict[str, list[tuple[float, float]]] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        if len(fields) < 4:
            raise ReferenceFileError(f"{path}:{number}: a UEM line needs <file> <channel> <start> <end>")
        where = f"{path}:{number}: "
        regions.setdefault(fields[0], []).append((parse_time(fields[2], where), parse_time(fields[3], where)))
    return regions


def reference_key(path: Path) -> str:
    """The name a reference file is matched on: its name without the format extension."""
    return Path(path).name[: -len(Path(path).suffix)] if Path(path).suffix else Path(path).name


def match_references(names: Iterable[str], files: Iterable[Path]) -> tuple[dict[str, list[Path]], list[Path]]:
    """Reference files per recording name, and the files that match none.

    ``NAME.rttm`` and ``NAME.anything.rttm`` (e.g. the demo's ``NAME.reference.json``) belong to
    recording ``NAME``; where several names fit, the longest wins.
    """
    names = sorted(set(names), key=len, reverse=True)
    matched: dict[str, list[Path]] = {}
    unmatched = []
    for file in sorted(files):
        key = reference_key(file)
        name = next((n for n in names if key == n or key.startswith(n + ".")), None)
        if name is None:
            unmatched.append(file)
        else:
            matched.setdefault(name, []).append(file)
    return matched, unmatched


def reference_files(folder: Path) -> list[Path]:
    """Reference and UEM files in *folder* and below (files of other types are ignored)."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and (p.suffix.lower() in FORMATS or p.suffix.lower() == UEM_SUFFIX))  # fmt: skip
