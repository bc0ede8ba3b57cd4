"""From speaker-attributed words to utterance observations (the units researchers code)."""

from __future__ import annotations

import hashlib

from ..config import SegmentConfig
from .records import AlignedWord, Alignment, Observation, Observations


def observation_set_id(recording_id: str, upstream_key: str) -> str:
    """Names one run's observations of a recording; the same inputs give the same id."""
    return hashlib.sha256(f"{recording_id}:{upstream_key}".encode()).hexdigest()[:12]


def observation_id(recording_id: str, set_id: str, seq: int) -> str:
    return f"{recording_id[:12]}-{set_id[:8]}-{seq:05d}"


def segment(alignment: Alignment, config: SegmentConfig, recording_id: str, set_id: str) -> Observations:
    """A maximal run of one speaker's words, split where that speaker pauses > ``max_pause``."""
    runs: list[tuple[int, int]] = []
    words = alignment.words
    start = 0
    for i in range(1, len(words) + 1):
        if i == len(words) or _breaks(words[i - 1], words[i], config.max_pause):
            runs.append((start, i))
            start = i
    observations = tuple(
        _observation(words, a, b, seq, recording_id, set_id) for seq, (a, b) in enumerate(runs, 1)
    )
    return Observations(set_id=set_id, observations=observations)


def _breaks(previous: AlignedWord, word: AlignedWord, max_pause: float) -> bool:
    return word.speaker != previous.speaker or word.start - previous.end > max_pause


def _observation(words, a: int, b: int, seq: int, recording_id: str, set_id: str) -> Observation:
    run = words[a:b]
    probabilities = [w.probability for w in run]
    return Observation(
        observation_id=observation_id(recording_id, set_id, seq),
        seq=seq,
        speaker=run[0].speaker,
        start=round(run[0].start, 3),
        end=round(max(w.end for w in run), 3),
        text="".join(w.text for w in run).strip(),
        word_count=len(run),
        mean_word_probability=sum(probabilities) / len(probabilities) if probabilities else None,
        overlap=any(w.overlap for w in run),
        word_start=a,
        word_end=b,
    )
