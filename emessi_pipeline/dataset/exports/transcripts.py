"""Readable per-recording transcripts (Markdown, Word) and subtitles (SRT, WebVTT) with speaker ids
and roles (names only with *with_names*, see ``lines``); Markdown and Word can show each coder's
codes beside the turns (*coders*)."""

from __future__ import annotations

from pathlib import Path

from ..common import clock, output_folder, resolve_recording
from .codes import turn_codes
from .docx import write_docx
from .elan import write_eaf
from .lines import lines


def markdown(con, recording: str, with_names: bool = False, coders: list[str] | None = None) -> str:
    rec, items = lines(con, recording, with_names)
    codes = turn_codes(con, rec.recording_id, coders or [])
    meta = con.execute("SELECT session_date, duration_s FROM recordings WHERE recording_id = ?", [rec.recording_id]).fetchone()
    out = [f"# {rec.name}", ""]
    facts = [("group", rec.group_id), ("session", rec.session_no), ("date", meta[0]),
             ("duration", clock(meta[1] or 0)[:-4]), ("recording id", rec.recording_id)]  # fmt: skip
    out += [f"- {k}: {v}" for k, v in facts if v is not None] + ["", "| speaker | id | role |", "|---|---|---|"]
    seen = {}
    for item in items:
        seen.setdefault(item.speaker, item)
    out += [f"| {s.speaker} | {s.participant_id or s.speaker_label} | {s.role} |" for s in seen.values()]
    out.append("")
    for item in items:
        out.append(f"**[{clock(item.start_s)[:-4]}] {item.speaker_long}:** {item.text}")
        given = codes.get(item.observation_id, {})
        out += [f"> *{coder}: {given[coder]}*" for coder in coders or [] if coder in given]
        out.append("")
    return "\n".join(out)


def srt(con, recording: str, with_names: bool = False) -> str:
    _, items = lines(con, recording, with_names)
    cues = [f"{i}\n{clock(x.start_s, ',')} --> {clock(x.end_s, ',')}\n{x.speaker}: {x.text}\n" for i, x in enumerate(items, 1)]
    return "\n".join(cues)


def webvtt(con, recording: str, with_names: bool = False) -> str:
    _, items = lines(con, recording, with_names)
    cues = [
        f"{x.observation_id}\n{clock(x.start_s)} --> {clock(x.end_s)}\n<v {_vtt_escape(x.speaker)}>{_vtt_escape(x.text)}\n"
        for x in items
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "→")


FORMATS = {"md": markdown, "srt": srt, "vtt": webvtt}


def write_transcript(con, recording: str, fmt: str, out_dir: Path, with_names: bool = False,
                     coders: list[str] | None = None) -> Path:
    """*coders*: show their codes beside the turns (md and docx)."""
    if fmt == "eaf":
        return write_eaf(con, recording, out_dir, with_names)
    rec = resolve_recording(con, recording)
    output_folder(out_dir, "transcripts")
    target = out_dir / f"{rec.name}.{fmt}"
    if fmt == "docx":
        return write_docx(con, recording, target, with_names, coders)
    if fmt == "md":
        target.write_text(markdown(con, recording, with_names, coders), encoding="utf-8")
        return target
    target.write_text(FORMATS[fmt](con, recording, with_names), encoding="utf-8")
    return target
