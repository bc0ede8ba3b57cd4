"""Give every transcribed word exactly one speaker."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from ..config import AlignConfig
from .records import Alignment, AlignedWord, Diarization, SpeakerTurn, Transcript
from .transcribe import iter_words

UNKNOWN_SPEAKER = "UNKNOWN"


class _Intervals:
    """Sorted, non-overlapping intervals with fast overlap queries."""

    def __init__(self, spans: Sequence[tuple[float, float]]):
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]

    def candidates(self, start: float, end: float) -> range:
        first = bisect_right(self.ends, start)
        last = bisect_left(self.starts, end)
        return range(first, max(first, last))

    def covered(self, start: float, end: float) -> float:
        return sum(
            max(0.0, min(end, self.ends[i]) - max(start, self.starts[i]))
            for i in self.candidates(start, end)
        )

    def contains(self, point: float) -> bool:
        i = bisect_right(self.starts, point) - 1
        return i >= 0 and point < self.ends[i]


def overlap_regions(turns: Sequence[SpeakerTurn]) -> list[tuple[float, float]]:
    """Where two or more speakers talk at once, from the overlap-aware diarisation."""
    events = sorted([(t.start, 1) for t in turns] + [(t.end, -1) for t in turns])
    regions, active, opened = [], 0, None
    for time, delta in events:
        active += delta
        if active >= 2 and opened is None:
            opened = time
        elif active < 2 and opened is not None:
            if time > opened:
                regions.append((opened, time))
            opened = None
    return regions


def _nearest_turn(turns: Sequence[SpeakerTurn], starts: list[float], mid: float) -> SpeakerTurn:
    i = bisect_right(starts, mid)
    options = turns[max(0, i - 1) : i + 1]

    def distance(turn: SpeakerTurn) -> float:
        return max(turn.start - mid, mid - turn.end, 0.0)

    return min(options, key=distance)


def align(transcript: Transcript, diarization: Diarization, config: AlignConfig) -> Alignment:
    """Assign each word to the exclusive turn it overlaps most; in a gap, the nearest turn.

    A word is flagged as overlapped when at least ``overlap_min_fraction`` of it lies where the
    overlap-aware diarisation has two or more speakers.
    """
    exclusive = sorted(diarization.exclusive_turns, key=lambda t: t.start)
    turns = _Intervals([(t.start, t.end) for t in exclusive])
    overlaps = _Intervals(overlap_regions(diarization.turns))
    aligned = []
    for segment_index, word in iter_words(transcript):
        start, end = word.start, max(word.end, word.start)
        speaker, in_gap = _speaker_for(exclusive, turns, start, end)
        if end > start:
            overlapped = overlaps.covered(start, end) / (end - start) >= config.overlap_min_fraction
        else:
            overlapped = overlaps.contains(start)
        aligned.append(
            AlignedWord(
                start=start, end=end, text=word.text, probability=word.probability,
                speaker=speaker, overlap=overlapped, in_gap=in_gap, loop=word.loop,
                segment_index=segment_index,
            )  # fmt: skip
        )
    return Alignment(words=tuple(aligned))


def _speaker_for(exclusive, turns: _Intervals, start: float, end: float) -> tuple[str, bool]:
    if not exclusive:
        return UNKNOWN_SPEAKER, True
    best, best_overlap = None, 0.0
    for i in turns.candidates(start, end):
        overlap = min(end, turns.ends[i]) - max(start, turns.starts[i])
        if overlap > best_overlap:
            best, best_overlap = exclusive[i], overlap
    if best is not None:
        return best.speaker, False
    mid = (start + end) / 2
    if turns.contains(mid):
        return exclusive[bisect_right(turns.starts, mid) - 1].speaker, False
    return _nearest_turn(exclusive, turns.starts, mid).speaker, True
