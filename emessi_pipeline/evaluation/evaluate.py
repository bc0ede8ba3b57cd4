"""Scoring against references: word and character error rate, diarisation error rate and its
parts, Jaccard error rate, speaker-attributed word error (cpWER), and turn-boundary precision and
recall. The definitions are in docs/eval.md; `emessi eval` (cli_eval.py) is a thin layer over
:func:`evaluate_recording` and :func:`evaluate_database`.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..stages.records import SpeakerTurn
from .references import Reference, ReferenceFileError, Span, match_references, read_reference, read_uem, UEM_SUFFIX

_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)

_ONES = ("nolla", "yksi", "kaksi", "kolme", "neljä", "viisi", "kuusi", "seitsemän", "kahdeksan", "yhdeksän")
FINNISH_NUMBER_LIMIT = 1_000_000  # 0 … 999 999 are written out; larger numbers stay digits


def finnish_number(n: int) -> str:
    """A cardinal number 0 … 999 999 in Finnish words, written as one word as Finnish spells it.

    >>> finnish_number(1990)
    'tuhatyhdeksänsataayhdeksänkymmentä'
    """
    if not 0 <= n < FINNISH_NUMBER_LIMIT:
        raise ValueError(f"{n} is outside 0 … {FINNISH_NUMBER_LIMIT - 1}")
    if n < 10:
        return _ONES[n]
    if n == 10:
        return "kymmenen"
    if n < 20:
        return _ONES[n - 10] + "toista"
    if n < 100:
        tens, rest = divmod(n, 10)
        return _ONES[tens] + "kymmentä" + (_ONES[rest] if rest else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return ("sata" if hundreds == 1 else _ONES[hundreds] + "sataa") + (finnish_number(rest) if rest else "")
    thousands, rest = divmod(n, 1000)
    return ("tuhat" if thousands == 1 else finnish_number(thousands) + "tuhatta") + (finnish_number(rest) if rest else "")


_GROUPED = re.compile(r"(?<![\d,.])\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d,])")
_PERCENT = re.compile(r"(\d)\s*%")
_DECIMAL = re.compile(r"(\d+),(\d+)")
_DIGITS = re.compile(r"\d+")


def _spell(match: re.Match) -> str:
    n = int(match.group(0))
    return f" {finnish_number(n)} " if n < FINNISH_NUMBER_LIMIT else f" {match.group(0)} "


def _finnish_numbers(text: str) -> str:
    text = _GROUPED.sub(lambda m: re.sub(r"\s", "", m.group(0)), text)  # 10 000 → 10000
    text = _PERCENT.sub(r"\1 prosenttia", text)
    text = _DECIMAL.sub(r"\1 pilkku \2", text)  # 3,5 → kolme pilkku viisi
    return _DIGITS.sub(_spell, text)


def _language(language: str | None) -> str | None:
    return language.lower().replace("_", "-").split("-")[0] if language else None


def normalize_text(text: str, language: str | None = None) -> str:
    """Lower case, no punctuation, single spaces; keeps Finnish letters (ä, ö, å) as they are.

    With ``language='fi'`` numbers are also written out in Finnish words ("20" → "kaksikymmentä",
    "10 000" → "kymmenentuhatta", "3,5" → "kolme pilkku viisi", "5 %" → "viisi prosenttia"), so a
    reference in words and a hypothesis in digits match. Other languages keep digits.
    """
    text = unicodedata.normalize("NFC", text).lower()
    if _language(language) == "fi":
        text = _finnish_numbers(text)
    text = text.replace("-", " ")
    return " ".join(_NON_WORD.sub(" ", text).split())


def word_error_rate(reference: str, hypothesis: str, language: str | None = None) -> float:
    import jiwer

    ref, hyp = normalize_text(reference, language), normalize_text(hypothesis, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


def character_error_rate(reference: str, hypothesis: str, language: str | None = None) -> float:
    import jiwer

    ref, hyp = normalize_text(reference, language), normalize_text(hypothesis, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.cer(ref, hyp))


def read_rttm(path: Path) -> list[SpeakerTurn]:
    turns = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append(SpeakerTurn(start=start, end=start + duration, speaker=fields[7]))
    return turns


def _annotation(turns: Iterable[SpeakerTurn], uri: str = "file"):
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri=uri)
    for i, turn in enumerate(turns):
        if turn.end > turn.start:
            annotation[Segment(turn.start, turn.end), i] = turn.speaker
    return annotation


def diarization_error_rate(
    reference: Iterable[SpeakerTurn],
    hypothesis: Iterable[SpeakerTurn],
    collar: float = 0.0,
    skip_overlap: bool = False,
    window: tuple[float, float] | None = None,
) -> dict[str, float]:
    """DER and its parts (pyannote.metrics), optionally scored only inside *window*."""
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    ref, hyp = _annotation(reference), _annotation(hypothesis)
    uem = Timeline([Segment(*window)]) if window else None
    detail = metric(ref, hyp, uem=uem, detailed=True)
    total = detail["total"] or 1.0
    return {
        "der": float(detail["diarization error rate"]),
        "missed": detail["missed detection"] / total,
        "false_alarm": detail["false alarm"] / total,
        "confusion": detail["confusion"] / total,
        "total_reference_s": float(detail["total"]),
    }


# --- scoring a recording against references -------------------------------------------------

Regions = Sequence[tuple[float, float]]  # scored stretches of a recording, in seconds


@dataclass(frozen=True)
class EvalOptions:
    """How to score. ``window`` and ``uem`` (regions per recording name) limit every metric to
    those stretches; ``language`` None means each recording's own (Whisper's) language."""

    collar: float = 0.0
    skip_overlap: bool = False
    window: tuple[float, float] | None = None
    uem: dict[str, list[tuple[float, float]]] | None = None
    tolerance: float = 0.5
    language: str | None = None

    def regions(self, recording: str, only_recording: bool = False) -> list[tuple[float, float]] | None:
        if self.window is not None:
            return [self.window]
        if self.uem:
            if recording in self.uem:
                return list(self.uem[recording])
            if only_recording:  # one recording scored: every line of the UEM is its
                return [r for regions in self.uem.values() for r in regions]
        return None


@dataclass(frozen=True)
class HypothesisWord:
    start: float
    end: float
    text: str
    speaker: str
    observation: int  # seq of the observation the word belongs to


@dataclass(frozen=True)
class Hypothesis:
    """What the pipeline produced for one recording: words (in time order, each with its
    speaker and observation), the observations, and the overlap-aware diarisation turns."""

    words: tuple[HypothesisWord, ...]
    observations: tuple[Span, ...]
    turns: tuple[Span, ...]
    language: str | None = None


def _rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


class _Score:
    """Raw counts that add up over recordings; rates are properties computed from them."""

    rates: tuple[str, ...] = ()

    @classmethod
    def total(cls, scores: Iterable):
        scores = [s for s in scores if s is not None]
        if not scores:
            return None
        summed = {f.name: sum(getattr(s, f.name) for s in scores) for f in fields(cls) if f.name not in cls._fixed()}
        return cls(**summed, **{name: getattr(scores[0], name) for name in cls._fixed()})

    @classmethod
    def _fixed(cls) -> tuple[str, ...]:
        return ()

    def to_dict(self) -> dict:
        data = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        for name in self.rates:
            value = getattr(self, name)
            data[name] = None if value is None else round(value, 6)
        return data


@dataclass(frozen=True)
class TextScore(_Score):
    """Word and character errors of the whole hypothesis text against the reference text."""

    reference_words: int
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    reference_chars: int
    char_errors: int
    rates = ("wer", "cer")

    @property
    def wer(self) -> float | None:
        return _rate(self.substitutions + self.deletions + self.insertions, self.reference_words)

    @property
    def cer(self) -> float | None:
        return _rate(self.char_errors, self.reference_chars)


@dataclass(frozen=True)
class DiarizationScore(_Score):
    """Seconds of reference speech and of each error (pyannote.metrics), and the Jaccard error's
    parts: the number of reference speakers and the sum of their per-speaker Jaccard errors."""

    total_s: float
    missed_s: float
    false_alarm_s: float
    confusion_s: float
    reference_speakers: int
    speaker_jaccard_error: float
    rates = ("der", "missed", "false_alarm", "confusion", "jer")

    @property
    def der(self) -> float | None:
        return _rate(self.missed_s + self.false_alarm_s + self.confusion_s, self.total_s)

    @property
    def missed(self) -> float | None:
        return _rate(self.missed_s, self.total_s)

    @property
    def false_alarm(self) -> float | None:
        return _rate(self.false_alarm_s, self.total_s)

    @property
    def confusion(self) -> float | None:
        return _rate(self.confusion_s, self.total_s)

    @property
    def jer(self) -> float | None:
        return _rate(self.speaker_jaccard_error, self.reference_speakers)


@dataclass(frozen=True)
class SpeakerWordScore(_Score):
    """Speaker-attributed word errors.

    ``errors``: the cpWER errors — each reference speaker's words against the words of the one
    hypothesis speaker mapped to them, the mapping chosen to make the total least (unmapped
    speakers' words count as deletions or insertions). ``correct_words``: reference words the
    speaker-blind alignment of the whole text finds recognised; ``wrong_speaker_words``: those of
    them given to a speaker not mapped to the reference speaker who said them.
    """

    reference_words: int
    errors: int
    correct_words: int
    wrong_speaker_words: int
    rates = ("cpwer", "wrong_speaker_share")

    @property
    def cpwer(self) -> float | None:
        return _rate(self.errors, self.reference_words)

    @property
    def wrong_speaker_share(self) -> float | None:
        return _rate(self.wrong_speaker_words, self.correct_words)


@dataclass(frozen=True)
class BoundaryScore(_Score):
    """Speaker-change points matched one to one within ``tolerance`` seconds."""

    reference: int
    hypothesis: int
    matched: int
    tolerance: float
    rates = ("precision", "recall", "f1")

    @classmethod
    def _fixed(cls) -> tuple[str, ...]:
        return ("tolerance",)

    @property
    def precision(self) -> float | None:
        return _rate(self.matched, self.hypothesis)

    @property
    def recall(self) -> float | None:
        return _rate(self.matched, self.reference)

    @property
    def f1(self) -> float | None:
        return _rate(2 * self.matched, self.reference + self.hypothesis)


@dataclass(frozen=True)
class RecordingEvaluation:
    recording: str
    recording_id: str | None
    language: str | None
    timeline_reference: str | None  # the file the speaker timeline came from
    text_reference: str | None  # the file the reference text came from
    regions: list[tuple[float, float]] | None  # scored stretches (None: the whole recording)
    text: TextScore | None = None
    diarization: DiarizationScore | None = None
    speaker_words: SpeakerWordScore | None = None
    boundaries: BoundaryScore | None = None
    speaker_mapping: dict[str, str | None] = field(default_factory=dict)  # hypothesis → reference
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in ("recording", "recording_id", "language", "timeline_reference", "text_reference")}
        data["regions"] = [list(r) for r in self.regions] if self.regions else None
        for name in ("text", "diarization", "speaker_words", "boundaries"):
            score = getattr(self, name)
            data[name] = score.to_dict() if score else None
        data["speaker_mapping"] = dict(self.speaker_mapping)
        data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True)
class Evaluation:
    recordings: tuple[RecordingEvaluation, ...]
    options: EvalOptions
    unmatched_references: tuple[str, ...] = ()  # files whose name matches no recording
    without_reference: tuple[str, ...] = ()  # recordings that no reference file names

    @property
    def overall(self) -> dict[str, _Score | None]:
        """Every score pooled over recordings: summed counts and seconds, then the rates."""
        return {
            "text": TextScore.total(r.text for r in self.recordings),
            "diarization": DiarizationScore.total(r.diarization for r in self.recordings),
            "speaker_words": SpeakerWordScore.total(r.speaker_words for r in self.recordings),
            "boundaries": BoundaryScore.total(r.boundaries for r in self.recordings),
        }

    def to_dict(self) -> dict:
        options = asdict(self.options)
        options["window"] = list(self.options.window) if self.options.window else None
        return {
            "options": options,
            "recordings": [r.to_dict() for r in self.recordings],
            "overall": {k: (v.to_dict() if v else None) for k, v in self.overall.items()},
            "unmatched_references": list(self.unmatched_references),
            "recordings_without_reference": list(self.without_reference),
        }


def _inside(time: float, regions: Regions | None) -> bool:
    return regions is None or any(a <= time <= b for a, b in regions)


def _mid(span) -> float:
    return (span.start + span.end) / 2


def _tagged_tokens(pieces: Iterable[tuple[str, str | None]], language: str | None) -> tuple[list[str], list[str | None]]:
    tokens, speakers = [], []
    for text, speaker in pieces:
        words = normalize_text(text, language).split()
        tokens += words
        speakers += [speaker] * len(words)
    return tokens, speakers


def _reference_tokens(reference: Reference, regions: Regions | None, language: str | None):
    spans = [s for s in reference.spans if s.text is not None and _inside(_mid(s), regions)]
    return _tagged_tokens(((s.text, s.speaker) for s in spans), language)


def _hypothesis_tokens(hypothesis: Hypothesis, regions: Regions | None, language: str | None):
    """Words in the scored regions, normalised one observation's run at a time (so that "10 000"
    split over two words still reads as one number)."""
    runs: list[tuple[list[str], str]] = []
    last = None
    for word in hypothesis.words:
        if not _inside(_mid(word), regions):
            last = None
            continue
        if word.observation != last:
            runs.append(([], word.speaker))
            last = word.observation
        runs[-1][0].append(word.text.strip())
    return _tagged_tokens(((" ".join(words), speaker) for words, speaker in runs), language)


def _align(ref: list[str], hyp: list[str]):
    """jiwer's word alignment of two token lists (either may be empty)."""
    import jiwer

    if not ref and not hyp:
        return None
    return jiwer.process_words(" ".join(ref) or "", " ".join(hyp) or "")


def _word_errors(ref: list[str], hyp: list[str]) -> int:
    if not ref or not hyp:
        return len(ref) + len(hyp)
    out = _align(ref, hyp)
    return out.substitutions + out.deletions + out.insertions


def score_text(ref_tokens: list[str], hyp_tokens: list[str]) -> TextScore:
    import jiwer

    out = _align(ref_tokens, hyp_tokens)
    ref_text, hyp_text = " ".join(ref_tokens), " ".join(hyp_tokens)
    if ref_text and hyp_text:
        chars = jiwer.process_characters(ref_text, hyp_text)
        char_errors = chars.substitutions + chars.deletions + chars.insertions
    else:
        char_errors = len(ref_text) + len(hyp_text)
    if out is None:
        return TextScore(0, 0, 0, 0, 0, 0, 0)
    return TextScore(len(ref_tokens), out.hits, out.substitutions, out.deletions, out.insertions, len(ref_text), char_errors)


def score_speaker_words(ref_tokens: list[str], ref_speakers: list[str | None], hyp_tokens: list[str],
                        hyp_speakers: list[str]) -> tuple[SpeakerWordScore, dict[str, str | None]]:  # fmt: skip
    """cpWER with the optimal speaker mapping, and the share of recognised words whose speaker
    is wrong under that mapping. Returns the score and the mapping (hypothesis → reference)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    refs = sorted({s for s in ref_speakers if s is not None})
    hyps = sorted(set(hyp_speakers))
    by_ref = {r: [t for t, s in zip(ref_tokens, ref_speakers) if s == r] for r in refs}
    by_hyp = {h: [t for t, s in zip(hyp_tokens, hyp_speakers) if s == h] for h in hyps}
    # Pairing reference i with hypothesis j saves len(ref_i) + len(hyp_j) - errors(i, j) >= 0
    # against leaving both unpaired; the mapping maximises the saving (Hungarian algorithm).
    cost = np.zeros((len(refs), len(hyps)))
    for i, r in enumerate(refs):
        for j, h in enumerate(hyps):
            cost[i, j] = _word_errors(by_ref[r], by_hyp[h]) - len(by_ref[r]) - len(by_hyp[h])
    rows, cols = linear_sum_assignment(cost) if cost.size else ((), ())
    mapping: dict[str, str | None] = {h: None for h in hyps}
    for i, j in zip(rows, cols):
        mapping[hyps[j]] = refs[i]
    errors = len(ref_tokens) + len(hyp_tokens) + int(sum(cost[i, j] for i, j in zip(rows, cols)))
    correct = wrong = 0
    out = _align(ref_tokens, hyp_tokens)
    for chunk in out.alignments[0] if out is not None else ():
        if chunk.type != "equal":
            continue
        for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
            correct += 1
            said_by = ref_speakers[chunk.ref_start_idx + k]
            given_to = mapping.get(hyp_speakers[chunk.hyp_start_idx + k])
            wrong += said_by is None or given_to != said_by
    return SpeakerWordScore(len(ref_tokens), errors, correct, wrong), mapping


def score_diarization(reference: Iterable[Span], hypothesis: Iterable[Span], collar: float = 0.0,
                      skip_overlap: bool = False, regions: Regions | None = None) -> DiarizationScore:  # fmt: skip
    """DER's parts and JER's parts (pyannote.metrics) inside *regions* (None: pyannote's default,
    the extent of reference and hypothesis together)."""
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    ref = _annotation(SpeakerTurn(start=s.start, end=s.end, speaker=s.speaker) for s in reference)
    hyp = _annotation(SpeakerTurn(start=s.start, end=s.end, speaker=s.speaker) for s in hypothesis)
    uem = Timeline([Segment(a, b) for a, b in regions if b > a]).support() if regions else None
    with warnings.catch_warnings():  # "uem was approximated by ... extents": the documented default
        warnings.filterwarnings("ignore", message=".*'uem' was approximated", category=UserWarning)
        der = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)(ref, hyp, uem=uem, detailed=True)
        jer = JaccardErrorRate(collar=collar, skip_overlap=skip_overlap)(ref, hyp, uem=uem, detailed=True)
    return DiarizationScore(
        total_s=float(der["total"]), missed_s=float(der["missed detection"]), false_alarm_s=float(der["false alarm"]),
        confusion_s=float(der["confusion"]), reference_speakers=int(jer["speaker count"]),
        speaker_jaccard_error=float(jer["speaker error"]),
    )  # fmt: skip


def speaker_changes(spans: Iterable[Span]) -> list[float]:
    """Times where a new turn starts with a different speaker.

    Spans are taken in start order; consecutive spans of one speaker form one turn; a span that
    ends inside the current turn of another speaker (a backchannel within it) does not take the
    turn; a span that starts inside it and goes on past its end does, at its start.
    """
    changes: list[float] = []
    speaker, end = None, float("-inf")
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.speaker == speaker:
            end = max(end, span.end)
        elif speaker is not None and span.end <= end:
            continue
        else:
            if speaker is not None:
                changes.append(span.start)
            speaker, end = span.speaker, span.end
    return changes


def match_boundaries(reference: Sequence[float], hypothesis: Sequence[float], tolerance: float) -> int:
    """Most one-to-one pairs with |r - h| <= tolerance (a sweep over both sorted lists)."""
    ref, hyp = sorted(reference), sorted(hypothesis)
    i = j = matched = 0
    while i < len(ref) and j < len(hyp):
        if abs(ref[i] - hyp[j]) <= tolerance:
            matched, i, j = matched + 1, i + 1, j + 1
        elif ref[i] < hyp[j]:
            i += 1
        else:
            j += 1
    return matched


def score_boundaries(reference: Iterable[Span], hypothesis: Iterable[Span], tolerance: float = 0.5,
                     regions: Regions | None = None) -> BoundaryScore:  # fmt: skip
    ref = [t for t in speaker_changes(reference) if _inside(t, regions)]
    hyp = [t for t in speaker_changes(hypothesis) if _inside(t, regions)]
    return BoundaryScore(len(ref), len(hyp), match_boundaries(ref, hyp, tolerance), tolerance)


_TIMELINE_PREFERENCE = ("rttm", "stm", "json", "csv", "vtt", "srt")
_TEXT_PREFERENCE = ("stm", "json", "csv", "vtt", "srt")


def pick_references(references: Sequence[Reference]) -> tuple[Reference | None, Reference | None]:
    """(timeline, text): the speaker timeline from an RTTM when there is one, else from the first
    reference with speakers; the text from the first reference with text (STM, JSON, CSV, VTT, SRT)."""
    def first(preference, usable):
        ranked = sorted((r for r in references if usable(r)), key=lambda r: (preference.index(r.format), str(r.path)))
        return ranked[0] if ranked else None

    return (first(_TIMELINE_PREFERENCE, lambda r: r.has_speakers),
            first(_TEXT_PREFERENCE, lambda r: r.format in _TEXT_PREFERENCE and r.has_text))  # fmt: skip


def score(recording: str, references: Sequence[Reference], hypothesis: Hypothesis, options: EvalOptions = EvalOptions(),
          recording_id: str | None = None, regions: Regions | None = None) -> RecordingEvaluation:  # fmt: skip
    """Every metric the references allow for one recording's hypothesis."""
    timeline, text_ref = pick_references(references)
    language = options.language or hypothesis.language
    notes = []
    if timeline is None:
        notes.append("no reference names a speaker for every segment: no diarisation or boundary scores")
    if text_ref is None:
        notes.append("no reference has text: no word error scores")
    result = dict(text=None, diarization=None, speaker_words=None, boundaries=None, speaker_mapping={})
    if text_ref is not None:
        ref_tokens, ref_speakers = _reference_tokens(text_ref, regions, language)
        hyp_tokens, hyp_speakers = _hypothesis_tokens(hypothesis, regions, language)
        result["text"] = score_text(ref_tokens, hyp_tokens)
        if text_ref.has_speakers:
            result["speaker_words"], result["speaker_mapping"] = score_speaker_words(ref_tokens, ref_speakers, hyp_tokens, hyp_speakers)
        else:
            notes.append(f"{text_ref.path.name} names no speaker for some text: no speaker-attributed word error")
    if timeline is not None:
        result["diarization"] = score_diarization(timeline.spans, hypothesis.turns, options.collar, options.skip_overlap, regions)
        result["boundaries"] = score_boundaries(timeline.spans, hypothesis.observations, options.tolerance, regions)
    return RecordingEvaluation(
        recording=recording, recording_id=recording_id, language=language,
        timeline_reference=str(timeline.path) if timeline else None,
        text_reference=str(text_ref.path) if text_ref else None,
        regions=list(regions) if regions else None, notes=tuple(notes), **result,
    )  # fmt: skip


# --- the database side ----------------------------------------------------------------------


def load_hypothesis(con, recording_id: str) -> Hypothesis:
    """A recording's current words, observations and overlap-aware diarisation turns."""
    words = con.execute(
        "SELECT w.start_s, w.end_s, w.text, w.speaker_label, o.seq FROM current_words w "
        "JOIN observations o USING (observation_id) WHERE w.recording_id = ? ORDER BY w.word_index",
        [recording_id],
    ).fetchall()
    observations = con.execute(
        "SELECT start_s, end_s, speaker_label, text FROM current_observations WHERE recording_id = ? ORDER BY seq",
        [recording_id],
    ).fetchall()
    turns = con.execute(
        "SELECT t.start_s, t.end_s, t.speaker_label FROM speaker_turns t JOIN recordings r "
        "ON t.set_id = r.current_set_id AND t.recording_id = r.recording_id "
        "WHERE r.recording_id = ? AND t.kind = 'regular' ORDER BY t.start_s",
        [recording_id],
    ).fetchall()
    language = con.execute("SELECT language FROM recordings WHERE recording_id = ?", [recording_id]).fetchone()
    return Hypothesis(
        words=tuple(HypothesisWord(a, b, t, s, q) for a, b, t, s, q in words),
        observations=tuple(Span(a, b, s, t) for a, b, s, t in observations),
        turns=tuple(Span(a, b, s) for a, b, s in turns),
        language=language[0] if language else None,
    )


def _references(items: Iterable[Path | Reference]) -> list[Reference]:
    return [item if isinstance(item, Reference) else read_reference(item) for item in items]


def _with_uem_files(items: list, options: EvalOptions) -> tuple[list, EvalOptions]:
    """Reference items without the UEM files among them, and options whose ``uem`` they give
    (unless the options already give a window or a UEM)."""
    is_uem = [not isinstance(p, Reference) and Path(p).suffix.lower() == UEM_SUFFIX for p in items]
    uem_files = [p for p, u in zip(items, is_uem) if u]
    if uem_files and options.window is None and options.uem is None:
        regions: dict[str, list[tuple[float, float]]] = {}
        for uem in uem_files:
            for name, spans in read_uem(uem).items():
                regions.setdefault(name, []).extend(spans)
        options = replace(options, uem=regions)
    return [p for p, u in zip(items, is_uem) if not u], options


class _Connection:
    """An open connection as given, or one opened (read-only) and closed here."""

    def __init__(self, con_or_path):
        self.given = not isinstance(con_or_path, (str, Path))
        self.con_or_path = con_or_path

    def __enter__(self):
        from ..dataset.connection import connect

        self.con = self.con_or_path if self.given else connect(Path(self.con_or_path), read_only=True)
        return self.con

    def __exit__(self, *exc):
        if not self.given:
            self.con.close()


def evaluate_recording(con_or_db, recording: str, references: Iterable[Path | Reference],
                       options: EvalOptions = EvalOptions()) -> RecordingEvaluation:  # fmt: skip
    """Score one recording (name, id or id prefix) against reference files; every file applies."""
    from ..dataset.common import resolve_recording

    files, options = _with_uem_files(list(references), options)
    refs = _references(files)
    with _Connection(con_or_db) as con:
        found = resolve_recording(con, recording)
        if not found.set_id:
            raise ReferenceFileError(f"recording {found.name!r} has no loaded observations")
        hypothesis = load_hypothesis(con, found.recording_id)
    return score(found.name, refs, hypothesis, options, found.recording_id, options.regions(found.name, only_recording=True))


def evaluate_database(con_or_db, references: Iterable[Path], recordings: Sequence[str] | None = None,
                      options: EvalOptions = EvalOptions()) -> Evaluation:  # fmt: skip
    """Score every recording (or those named) that a reference file names: ``NAME.ext`` or
    ``NAME.anything.ext`` belongs to the recording whose name (file stem) is ``NAME``. UEM files
    among *references* give the scored regions of the recordings they name (unless the options
    give a window or a UEM)."""
    from ..dataset.common import all_recordings, resolve_recording

    files, options = _with_uem_files([Path(p) for p in references], options)
    with _Connection(con_or_db) as con:
        chosen = [resolve_recording(con, r) for r in recordings] if recordings else all_recordings(con)
        names = {r.name for r in chosen}
        matched, unmatched = match_references(names, files)
        if recordings:  # references of recordings not asked for are not "unmatched"
            others, _ = match_references({r.name for r in all_recordings(con)} - names, unmatched)
            unmatched = [p for p in unmatched if not any(p in v for v in others.values())]
        results, without = [], []
        for rec in chosen:
            if rec.name not in matched or not rec.set_id:
                without.append(rec.name)
                continue
            refs = _references(matched[rec.name])
            results.append(score(rec.name, refs, load_hypothesis(con, rec.recording_id), options, rec.recording_id,
                                 options.regions(rec.name)))  # fmt: skip
    return Evaluation(tuple(results), options, tuple(str(p) for p in unmatched), tuple(without))
