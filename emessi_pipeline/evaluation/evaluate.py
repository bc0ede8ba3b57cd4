"""Scoring the dataset against references: a recording's hypothesis read from the database, the
references that apply to it, and every metric they allow (:mod:`.metrics`), per recording and
pooled. `emessi eval` (cli/evaluate.py) is a thin layer over :func:`evaluate_recording` and
:func:`evaluate_database`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import closing, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .metrics import (BoundaryScore, DiarizationScore, Regions, Score, SpeakerWordScore, TextScore, in_regions, score_boundaries,
                      score_diarization, score_speaker_words, score_text)  # fmt: skip
from .normalize import normalize_text
from .references import Reference, ReferenceFileError, Span, UEM_SUFFIX, match_references, read_reference, read_uem


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
    def overall(self) -> dict[str, Score | None]:
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
    spans = [s for s in reference.spans if s.text is not None and in_regions(_mid(s), regions)]
    return _tagged_tokens(((s.text, s.speaker) for s in spans), language)


def _hypothesis_tokens(hypothesis: Hypothesis, regions: Regions | None, language: str | None):
    """Words in the scored regions, normalised one observation's run at a time (so that "10 000"
    split over two words still reads as one number)."""
    runs: list[tuple[list[str], str]] = []
    last = None
    for word in hypothesis.words:
        if not in_regions(_mid(word), regions):
            last = None
            continue
        if word.observation != last:
            runs.append(([], word.speaker))
            last = word.observation
        runs[-1][0].append(word.text.strip())
    return _tagged_tokens(((" ".join(words), speaker) for words, speaker in runs), language)

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


def _connection(con_or_path):
    """An open connection as given (left open), or one opened read-only and closed on exit."""
    if isinstance(con_or_path, (str, Path)):
        from ..dataset.connection import open_reader

        return closing(open_reader(Path(con_or_path)))
    return nullcontext(con_or_path)


def evaluate_recording(con_or_db, recording: str, references: Iterable[Path | Reference],
                       options: EvalOptions = EvalOptions()) -> RecordingEvaluation:  # fmt: skip
    """Score one recording (name, id or id prefix) against reference files; every file applies."""
    from ..dataset.common import resolve_recording

    files, options = _with_uem_files(list(references), options)
    refs = _references(files)
    with _connection(con_or_db) as con:
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
    with _connection(con_or_db) as con:
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
