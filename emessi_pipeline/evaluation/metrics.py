"""The metrics, each on known inputs: word and character error rate (jiwer), diarisation error
rate and its parts and Jaccard error rate (pyannote.metrics), speaker-attributed word error
(cpWER), and turn-boundary precision and recall; and the score records that add up over
recordings. The definitions are in docs/eval.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

from ..stages.records import SpeakerTurn
from .normalize import normalize_text
from .references import Span

Regions = Sequence[tuple[float, float]]  # scored stretches of a recording, in seconds


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


def annotation(turns: Iterable[SpeakerTurn], uri: str = "file"):
    """The turns as a pyannote.core Annotation (one track per turn; empty turns left out)."""
    from pyannote.core import Annotation, Segment

    result = Annotation(uri=uri)
    for i, turn in enumerate(turns):
        if turn.end > turn.start:
            result[Segment(turn.start, turn.end), i] = turn.speaker
    return result


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
    ref, hyp = annotation(reference), annotation(hypothesis)
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


def _rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


class Score:
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
class TextScore(Score):
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
class DiarizationScore(Score):
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
class SpeakerWordScore(Score):
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
class BoundaryScore(Score):
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


def in_regions(time: float, regions: Regions | None) -> bool:
    return regions is None or any(a <= time <= b for a, b in regions)


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

    ref = annotation(SpeakerTurn(start=s.start, end=s.end, speaker=s.speaker) for s in reference)
    hyp = annotation(SpeakerTurn(start=s.start, end=s.end, speaker=s.speaker) for s in hypothesis)
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
    ref = [t for t in speaker_changes(reference) if in_regions(t, regions)]
    hyp = [t for t in speaker_changes(hypothesis) if in_regions(t, regions)]
    return BoundaryScore(len(ref), len(hyp), match_boundaries(ref, hyp, tolerance), tolerance)
