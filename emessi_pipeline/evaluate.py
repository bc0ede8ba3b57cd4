"""Scoring against references: word error rate and diarisation error rate."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from .records import SpeakerTurn

_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, single spaces; keeps Finnish letters (ä, ö, å) as they are."""
    text = unicodedata.normalize("NFC", text).lower()
    text = text.replace("-", " ")
    return " ".join(_NON_WORD.sub(" ", text).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


def character_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
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
