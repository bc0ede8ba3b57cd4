"""The review list: which observations a person should check first, and why.

Each rule is a pure function over one observation set's records (observations, aligned words,
Whisper segments, overlap-aware diarisation turns) and the profile's `review` thresholds; it
returns `Flag`s. The flags of a set are machine output: stored in `review_flags` when the set is
loaded (inside the load transaction), recomputed when the thresholds or the rules change, and
computed on demand for sets loaded before this module existed. Human work is never touched.

Reasons, in the order a reviewer should take them (the rules and their defaults are explained
in docs/coding.md, "Review list"):

1. repetition_loop: words of the observation are a Whisper repetition loop (the ASR guard).
2. low_confidence: the transcription is doubtful (word probabilities, segment log-probability).
3. short_between_same: a very short observation between two of one other speaker.
4. mid_sentence_change: the previous speaker stopped mid-sentence just before this one started.
5. minor_speaker: the label has very little talk (a quiet participant, or a split of another).
6. overlap: another label talks during the observation (overlap-aware diarisation).
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..config import ReviewConfig
from ..stages.records import AlignedWord, Observation, Segment, SpeakerTurn
from .common import DatasetError, arrow_column, insert_columns, new_id, now, resolve_observation, word_column
from .connection import transaction

if TYPE_CHECKING:
    from .load import LoadedRecording

REASONS = (
    "repetition_loop", "low_confidence", "short_between_same", "mid_sentence_change",
    "minor_speaker", "overlap",
)  # fmt: skip
PRIORITY = {reason: rank for rank, reason in enumerate(REASONS, 1)}
# Bump when a rule changes meaning: stored flags of an older version are recomputed on demand.
RULES_VERSION = 1


@dataclass(frozen=True)
class Flag:
    observation_id: str
    reason: str
    value: float | None  # per reason: see docs/coding.md
    detail: str


@dataclass(frozen=True)
class SetRecords:
    """What the rules read of one observation set."""

    observations: Sequence[Observation]
    words: Sequence[AlignedWord]
    segments: Sequence[Segment]
    turns: Sequence[SpeakerTurn]  # overlap-aware diarisation


# ------------------------------------------------------------------ rules (pure)


def review(records: SetRecords, config: ReviewConfig) -> list[Flag]:
    """Every flag of one set, in observation then priority order."""
    observations = records.observations
    seqs = word_column(observations, "seq")
    if any(a > b for a, b in zip(seqs, seqs[1:])):
        observations = sorted(observations, key=lambda o: o.seq)
    # else the load's own tuple, already in order: its columns are read once for every rule
    flags = [
        *repetition_loop(observations, records.words),
        *low_confidence(observations, records.words, records.segments, config),
        *short_between_same(observations, config),
        *mid_sentence_change(observations, records.words, config),
        *minor_speaker(observations, config),
        *overlap(observations, records.turns, config),
    ]
    seq = dict(zip(word_column(observations, "observation_id"), word_column(observations, "seq")))
    return sorted(flags, key=lambda f: (seq[f.observation_id], PRIORITY[f.reason]))


def _words(o: Observation, words: Sequence[AlignedWord]) -> Sequence[AlignedWord]:
    return words[o.word_start : o.word_end]


def repetition_loop(observations: Iterable[Observation], words: Sequence[AlignedWord]) -> list[Flag]:
    """Words the ASR guard marked as a repetition loop (value: how many)."""
    flags = []
    loops = word_column(words, "loop")  # a column once: most observations have no loop at all
    if not any(loops):  # and most sets none
        return flags
    for o in observations:
        if not any(loops[o.word_start : o.word_end]):
            continue
        loop = [w for w in _words(o, words) if w.loop]
        text = "".join(w.text for w in loop).strip()
        flags.append(Flag(o.observation_id, "repetition_loop", len(loop),
                          f"{_n(len(loop), 'word')} in a repetition loop (cut to one copy or flagged by the "
                          f"ASR guard): {_clip(text)!r}; listen to what was said"))  # fmt: skip
    return flags


def low_confidence(observations: Iterable[Observation], words: Sequence[AlignedWord],
                   segments: Sequence[Segment], config: ReviewConfig) -> list[Flag]:  # fmt: skip
    """Mean word probability low, many doubtful words, or Whisper's segment log-probability low.

    Value: the mean word probability."""
    import numpy as np

    flags = []
    # Per-word columns once, then slices per observation: the same sums in the same order as
    # summing each observation's words, without touching every word object three times.
    probability = word_column(words, "probability")
    segment_logprobs = word_column(segments, "avg_logprob")
    last = len(segment_logprobs)
    indices = word_column(words, "segment_index")
    floor = config.word_prob_floor
    count = len(probability)
    if not isinstance(observations, Sequence):
        observations = list(observations)
    screen = _Screen(observations, count)
    # A None probability (only a record built without validation has one) becomes NaN here, and
    # NaN always goes to the loop.
    probabilities_ = np.array(probability, dtype=np.float64)
    # Doubtful words before each word index: a count per observation is a difference (integers,
    # exact), for the observations whose word range is a plain one (slices decide the rest).
    below = np.concatenate(([0], np.cumsum(probabilities_ < floor)))
    look = screen.past(probabilities_, config.min_mean_word_prob) | (screen.share(below) >= config.max_low_word_share)
    segment_of = np.array(indices)
    # The usual set: every word in a segment, so no None to leave out of an observation's mean.
    every_logprob = (segment_of.dtype.kind in "iu" and count > 0 and segment_of.min() >= 0
                     and segment_of.max() < last and None not in segment_logprobs)  # fmt: skip
    if every_logprob:
        look |= screen.past(np.array(segment_logprobs, dtype=np.float64)[segment_of], config.min_avg_logprob)
    else:
        segment_logprob = [segment_logprobs[i] if 0 <= i < last else None for i in indices]
        known = np.array([lp is not None for lp in segment_logprob], dtype=bool)
        values = np.array([0.0 if lp is None else lp for lp in segment_logprob], dtype=np.float64)
        look |= screen.past(values, config.min_avg_logprob, known)
    for i in screen.to_check(look):
        o = observations[i]
        first, end = o.word_start, o.word_end
        probabilities = probability[first:end]
        if not probabilities:
            continue
        mean = sum(probabilities) / len(probabilities)
        if 0 <= first <= end <= count:
            doubtful_count = int(below[end] - below[first])
        else:
            doubtful_count = sum(p < floor for p in probabilities)
        share = doubtful_count / len(probabilities)
        if every_logprob:
            logprobs = [segment_logprobs[j] for j in indices[first:end]]
        else:
            logprobs = [lp for lp in segment_logprob[first:end] if lp is not None]
        logprob = sum(logprobs) / len(logprobs) if logprobs else None
        why = []
        if mean < config.min_mean_word_prob:
            why.append(f"mean word probability {mean:.2f} < {config.min_mean_word_prob:g}")
        if share >= config.max_low_word_share:
            why.append(f"{doubtful_count} of {len(probabilities)} words below {floor:g}")
        if logprob is not None and logprob < config.min_avg_logprob:
            why.append(f"Whisper avg log-probability {logprob:.2f} < {config.min_avg_logprob:g}")
        if why:
            doubtful = [w for w in _words(o, words) if w.probability < floor]
            worst = sorted(doubtful, key=lambda w: w.probability)[:5]
            listed = ", ".join(f"{w.text.strip()!r} {w.probability:.2f}" for w in worst)
            flags.append(Flag(o.observation_id, "low_confidence", round(mean, 4),
                              "; ".join(why) + (f"; doubtful: {listed}" if listed else "")))  # fmt: skip
    return flags


class _Screen:
    """Which observations low_confidence must look at one by one: those whose means, taken with
    numpy, are within a rounding error's reach of a threshold or past it.

    The loop over a set's thousand observations was a third of its review: most observations are
    far from every threshold, and numpy tells those apart at once. The flags themselves (and every
    close call) still come from the loop's own sums, so they are what it always gave. NaN, an
    infinity or a word range that is not a plain slice always goes to the loop."""

    def __init__(self, observations: Sequence[Observation], count: int):
        import numpy as np

        first = np.array(word_column(observations, "word_start"), dtype=np.int64)
        end = np.array(word_column(observations, "word_end"), dtype=np.int64)
        self.plain = (0 <= first) & (first <= end) & (end <= count)
        self.filled = self.plain & (first < end)
        self.first, self.end = np.where(self.filled, first, 0), np.where(self.filled, end, 0)
        # [first, end) pairs for add.reduceat (every other sum is between two observations).
        self.pairs = np.column_stack((self.first, self.end)).ravel()
        self.size = np.maximum(self.end - self.first, 1)

    def _sums(self, values):
        import numpy as np

        padded = np.append(values, values.dtype.type(0))  # an end at the last word is an index
        return np.add.reduceat(padded, self.pairs)[::2] if len(self.pairs) else padded[:0]

    def past(self, values, threshold: float, known=None):
        """Where the mean of *values* (those *known*) may be below *threshold*: numpy's sum of n
        values and Python's left-to-right one differ by less than n·2⁻⁵² times the sum of their
        magnitudes, so the means by less than 2⁻⁵² times it; the margin is 10⁻⁹ times it."""
        import numpy as np

        total, magnitude = self._sums(values), self._sums(np.abs(values))
        size = self.size if known is None else self._sums(known.astype(np.int64))
        with np.errstate(invalid="ignore", divide="ignore"):
            clear = total / size >= threshold + 1e-9 * (1 + magnitude)
        return ~clear if known is None else ~clear & (size > 0)

    def share(self, below):
        """The share of doubtful words (exact: a difference of counts over a count)."""
        return (below[self.end] - below[self.first]) / self.size

    def to_check(self, look) -> list[int]:
        import numpy as np

        return np.flatnonzero(~self.plain | (self.filled & look)).tolist()


def short_between_same(observations: Sequence[Observation], config: ReviewConfig) -> list[Flag]:
    """At most `short_turn_max_s` long, with the observations before and after it both of one
    other speaker: often a diarisation slip inside that speaker's turn (value: seconds)."""
    flags = []
    speaker, start, end = (word_column(observations, f) for f in ("speaker", "start", "end"))
    for i in range(1, len(speaker) - 1):
        if speaker[i - 1] == speaker[i + 1] != speaker[i] and end[i] - start[i] <= config.short_turn_max_s:
            before, o, duration = observations[i - 1], observations[i], end[i] - start[i]
            flags.append(Flag(o.observation_id, "short_between_same", round(duration, 3),
                              f"{duration:.2f} s of {o.speaker} between two observations of {before.speaker}: "
                              f"a short reply, or {before.speaker}'s words given to another label"))  # fmt: skip
    return flags


_CLOSERS = "\"'»”’)]"


def ends_sentence(text: str) -> bool:
    """True when *text* ends with . ! or ? (after closing quotes); an ellipsis is no end: Whisper
    writes '...' or '…' where speech breaks off."""
    text = text.rstrip().rstrip(_CLOSERS)
    if text.endswith("...") or text.endswith("…"):
        return False
    return text.endswith((".", "!", "?"))


def mid_sentence_change(observations: Sequence[Observation], words: Sequence[AlignedWord],
                        config: ReviewConfig) -> list[Flag]:  # fmt: skip
    """Another speaker's observation ends without a sentence end, and this one starts within
    `sentence_max_gap_s` of it: the boundary or the speaker may be wrong, or one speaker
    completed or cut off the other's sentence (value: the gap in seconds)."""
    flags = []
    speaker, start, end, text, word_start, word_end = (
        word_column(observations, f) for f in ("speaker", "start", "end", "text", "word_start", "word_end"))
    segment = word_column(words, "segment_index")
    for i in range(1, len(speaker)):
        gap = start[i] - end[i - 1]
        if speaker[i - 1] == speaker[i] or gap > config.sentence_max_gap_s or ends_sentence(text[i - 1]):
            continue
        before, o = observations[i - 1], observations[i]
        tail = " ".join(text[i - 1].split()[-3:])
        split = ""
        if 0 < word_end[i - 1] <= len(segment) and word_start[i] < len(segment):
            if segment[word_end[i - 1] - 1] == segment[word_start[i]]:
                split = "; one Whisper segment is split between the two"
        flags.append(Flag(o.observation_id, "mid_sentence_change", round(max(gap, 0.0), 3),
                          f"{before.speaker} ends '…{tail}' without a sentence end and {o.speaker} "
                          f"starts {max(gap, 0.0):.2f} s later{split}"))  # fmt: skip
    return flags


def minor_speaker(observations: Sequence[Observation], config: ReviewConfig) -> list[Flag]:
    """Every observation of a label with less than `minor_speaker_max_share` of the talk time
    (observation seconds) or under `minor_speaker_max_s` seconds, when there are two or more
    labels (value: the label's share)."""
    talk: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    speakers, starts, ends = (word_column(observations, f) for f in ("speaker", "start", "end"))
    for speaker, start, end in zip(speakers, starts, ends):
        talk[speaker] += end - start
        count[speaker] += 1
    total = sum(talk.values())
    if len(talk) < 2 or total <= 0:
        return []
    minor = {s for s, t in talk.items() if t / total < config.minor_speaker_max_share or t < config.minor_speaker_max_s}
    return [
        Flag(o.observation_id, "minor_speaker", round(talk[o.speaker] / total, 4),
             f"{o.speaker} talks {talk[o.speaker]:.1f} s ({talk[o.speaker] / total:.1%} of the talk) in "
             f"{_n(count[o.speaker], 'observation')}: a quiet participant, or a split of another speaker")
        for o, speaker in zip(observations, speakers) if speaker in minor
    ]  # fmt: skip


class _Union:
    """Sorted, merged intervals; how much of [start, end) they cover. *starts* and *ends* (numpy
    float arrays) must come sorted by start, then end (the overlap rule sorts a set's turns once
    for all its unions).

    Merged with numpy rather than interval by interval in Python (a set's dozen unions of about
    a thousand turns each were a tenth of its load): a span that starts after every span before it
    has ended opens an interval, which ends at the latest end of its spans. Only comparisons and
    maxima, so the bounds are the turns' own floats, as the one-by-one merge gives them."""

    def __init__(self, starts, ends):
        import numpy as np

        kept = ~(ends <= starts)  # an empty or reversed span covers nothing
        starts, ends = starts[kept], ends[kept]
        if not len(starts):
            self.starts, self.ends = [], []
            return
        reach = np.maximum.accumulate(ends)
        opens = np.flatnonzero(np.concatenate(([True], ~(starts[1:] <= reach[:-1]))))
        self.starts = starts[opens].tolist()  # Python floats: what covered() returns must be one
        self.ends = np.maximum.reduceat(ends, opens).tolist()

    def covered(self, start: float, end: float) -> float:
        first, last = bisect_right(self.ends, start), bisect_left(self.starts, end)
        if last - first == 1:  # the usual case, as sum() of one value would give it (0 + value)
            return 0 + max(0.0, min(end, self.ends[first]) - max(start, self.starts[first]))
        return sum(max(0.0, min(end, self.ends[i]) - max(start, self.starts[i])) for i in range(first, last))


def overlap(observations: Sequence[Observation], turns: Sequence[SpeakerTurn], config: ReviewConfig) -> list[Flag]:
    """Another label talks for at least `overlap_min_s` during the observation, in the
    overlap-aware diarisation (value: those seconds)."""
    import numpy as np

    # Sorted by (start, end, label) once, as sorting the turns' tuples would: any speaker's turns,
    # or all but one speaker's, taken from it in order are what sorting them would give.
    labels = word_column(turns, "speaker")
    speakers = set(labels)
    starts = np.array(word_column(turns, "start"), dtype=np.float64)
    ends = np.array(word_column(turns, "end"), dtype=np.float64)
    labels = np.array(labels, dtype=str)
    order = np.lexsort((labels, ends, starts))
    starts, ends, labels = starts[order], ends[order], labels[order]
    own: dict[str, _Union] = {}
    others: dict[str, _Union] = {}
    flags = []
    for i, seconds in _overlapped(observations, starts, ends, labels, others, config.overlap_min_s):
        o = observations[i]
        for s in speakers.difference(own):
            own[s] = _Union(starts[labels == s], ends[labels == s])
        who = sorted(((own[s].covered(o.start, o.end), s) for s in speakers if s != o.speaker), reverse=True)
        listed = ", ".join(f"{s} {t:.2f} s" for t, s in who if t > 0)
        flags.append(Flag(o.observation_id, "overlap", round(seconds, 3),
                          f"{seconds:.2f} s of it overlaps other speakers ({listed}): words may be "
                          f"missing, mixed or given to the wrong speaker"))  # fmt: skip
    return flags


def _overlapped(observations: Sequence[Observation], starts, ends, labels, others: dict, least: float):
    """(index, seconds) of each observation that other labels cover for at least *least* seconds
    (and more than none), in order; *others* keeps each label's union of the other labels' turns.

    An observation within one interval of the union (the usual case) is measured for all of a
    label's observations at once with numpy: the same comparisons, minimum, maximum and one
    subtraction of the same floats as `_Union.covered`, so the same seconds; the rest (several
    intervals, or a NaN anywhere) are measured one by one by covered() itself."""
    import numpy as np

    size = len(observations)
    speaker = word_column(observations, "speaker")
    start = np.array(word_column(observations, "start"), dtype=np.float64)
    end = np.array(word_column(observations, "end"), dtype=np.float64)
    seconds = np.zeros(size)
    one_by_one = np.zeros(size, dtype=bool)
    where: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(speaker):
        where[label].append(i)
    for label, at in where.items():
        if label not in others:
            theirs = labels != label
            others[label] = _Union(starts[theirs], ends[theirs])
        union = others[label]
        at = np.array(at)
        a, b = start[at], end[at]
        u_starts, u_ends = np.array(union.starts, dtype=np.float64), np.array(union.ends, dtype=np.float64)
        first, last = np.searchsorted(u_ends, a, "right"), np.searchsorted(u_starts, b, "left")
        single = last - first == 1
        k = np.where(single, first, 0)
        if len(u_starts):
            value = np.maximum(0.0, np.minimum(b, u_ends[k]) - np.maximum(a, u_starts[k]))
            seconds[at] = np.where(single, value, 0.0)
        unsure = (last - first > 1) | np.isnan(a) | np.isnan(b)
        if np.isnan(u_starts).any() or np.isnan(u_ends).any():
            unsure[:] = True
        one_by_one[at] = unsure
    found = []
    for i in np.flatnonzero((seconds > 0) | one_by_one).tolist():
        o = observations[i]
        value = others[o.speaker].covered(o.start, o.end) if one_by_one[i] else seconds[i].item()
        if value > 0 and value >= least:
            found.append((i, value))
    return found


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _clip(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


# ------------------------------------------------------------------ the database


def read_set(con, set_id: str) -> SetRecords:
    """A loaded set's records, rebuilt from the tables (for sets loaded before the flags existed)."""
    word_rows = con.execute(
        "SELECT word_index, start_s, end_s, text, probability, speaker_label, overlap, in_gap, "
        "repetition_loop, asr_segment, observation_id FROM words WHERE set_id = ? ORDER BY word_index",
        [set_id],
    ).fetchall()
    words, span = [], {}
    for i, (_, start, end, text, prob, speaker, over, gap, loop, segment, oid) in enumerate(word_rows):
        words.append(AlignedWord(start=start, end=end, text=text, probability=prob if prob is not None else 0.0,
                                 speaker=speaker, overlap=bool(over), in_gap=bool(gap), loop=bool(loop),
                                 segment_index=segment if segment is not None else -1))  # fmt: skip
        first, _ = span.get(oid, (i, i))
        span[oid] = (first, i + 1)
    observations = tuple(
        Observation(observation_id=oid, seq=seq, speaker=speaker, start=start, end=end, text=text or "",
                    word_count=n or 0, mean_word_probability=mean, overlap=bool(over),
                    word_start=span.get(oid, (0, 0))[0], word_end=span.get(oid, (0, 0))[1])
        for oid, seq, speaker, start, end, text, n, mean, over in con.execute(
            "SELECT observation_id, seq, speaker_label, start_s, end_s, text, word_count, mean_word_prob, "
            "overlap FROM observations WHERE set_id = ? ORDER BY seq", [set_id]).fetchall()
    )  # fmt: skip
    segments = tuple(
        Segment(start=s, end=e, text=t or "", avg_logprob=lp if lp is not None else 0.0,
                no_speech_prob=ns if ns is not None else 0.0, words=(), repetition_loop=bool(loop))
        for s, e, t, lp, ns, loop in con.execute(
            "SELECT start_s, end_s, text, avg_logprob, no_speech_prob, repetition_loop FROM asr_segments "
            "WHERE set_id = ? ORDER BY segment_index", [set_id]).fetchall()
    )  # fmt: skip
    turns = tuple(
        SpeakerTurn(start=s, end=e, speaker=label)
        for s, e, label in con.execute(
            "SELECT start_s, end_s, speaker_label FROM speaker_turns WHERE set_id = ? AND kind = 'regular' "
            "ORDER BY start_s", [set_id]).fetchall()
    )  # fmt: skip
    return SetRecords(observations, tuple(words), segments, turns)


def config_for_set(con, set_id: str) -> ReviewConfig:
    """The `review` thresholds of the run that loaded the set."""
    row = con.execute("SELECT run_id FROM observation_sets WHERE set_id = ?", [set_id]).fetchone()
    return config_for_run(con, row[0] if row else None)


def config_for_run(con, run_id: str | None) -> ReviewConfig:
    """The `review` thresholds of a run's profile (defaults when it had none: an older version)."""
    row = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return _config(row[0] if row else None)


def _config(run_config: str | None) -> ReviewConfig:
    """The `review` thresholds in a run's stored config (JSON text; None: no run)."""
    section = (json.loads(run_config) or {}).get("review") if run_config else None
    if not isinstance(section, dict):
        return ReviewConfig()
    return ReviewConfig(**{k: v for k, v in section.items() if k in ReviewConfig.model_fields})


def _params(config: ReviewConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)


def is_current(con, set_id: str, config: ReviewConfig) -> bool:
    return _made_by(_stored(con, set_id), config)


def _stored(con, set_id: str) -> tuple | None:
    """The set's review_sets row as _made_by reads it (None: never flagged)."""
    return con.execute("SELECT rules_version, params FROM review_sets WHERE set_id = ?", [set_id]).fetchone()


def _made_by(stored: tuple | None, config: ReviewConfig) -> bool:
    """Whether stored flags (their review_sets row's rules_version and params) are these rules' with *config*."""
    return bool(stored) and stored[0] == RULES_VERSION and json.loads(stored[1]) == json.loads(_params(config))


def store_flags(con, set_id: str, config: ReviewConfig | None = None, force: bool = False,
                records: SetRecords | None = None) -> int | None:  # fmt: skip
    """Compute and store one set's flags (the caller holds the transaction); None when the
    stored ones were made by these rules with these thresholds already, else how many.

    *records*: the set as it is being loaded; without them the set is read back from the tables.
    """
    config = config or config_for_set(con, set_id)
    stored = _stored(con, set_id)
    if not force and _made_by(stored, config):
        return None
    recording = con.execute("SELECT recording_id FROM observation_sets WHERE set_id = ?", [set_id]).fetchone()
    if recording is None:
        raise ValueError(f"no observation set {set_id!r}")
    return _write(con, set_id, recording[0], review(records or read_set(con, set_id), config), config, stored is not None)


def _write(con, set_id: str, recording_id: str, flags: list[Flag], config: ReviewConfig, replace: bool) -> int:
    """Store a set's flags and its review_sets row. *replace*: the set has a review_sets row, and so
    maybe flags, to replace; a set without one has no flags (both are written, and deleted, together),
    which spares a new set's load a DELETE over the whole table and an INSERT OR REPLACE."""
    if replace:
        con.execute("DELETE FROM review_flags WHERE set_id = ?", [set_id])
    if flags:
        import pyarrow as pa

        insert_columns(con, "review_flags", set_id, recording_id, {
            "observation_id": arrow_column([f.observation_id for f in flags], pa.string()),
            "reason": arrow_column([f.reason for f in flags], pa.string()),
            "priority": arrow_column([PRIORITY[f.reason] for f in flags], pa.int32()),
            "value": arrow_column([f.value for f in flags], pa.float64()),
            "detail": arrow_column([f.detail for f in flags], pa.string()),
        })  # fmt: skip
    con.execute(
        f"INSERT {'OR REPLACE ' if replace else ''}INTO review_sets VALUES (?, ?, ?, ?, ?, ?)",
        [set_id, recording_id, now(), RULES_VERSION, _params(config), len(flags)],
    )
    return len(flags)


def on_load(con, item: LoadedRecording, previous_set_id: str | None, run_id: str) -> None:
    """Load hook: flag the set being loaded, from its records as loaded, with the run's thresholds."""
    set_id = item.observations.set_id
    # What store_flags reads in three statements, in one (the set is there: the load wrote it or
    # found it): a row per table, as a subquery and a join cost DuckDB half as much again.
    found = {kind: row for kind, *row in con.execute(
        "SELECT 'set', recording_id, NULL::INTEGER, NULL FROM observation_sets WHERE set_id = $set "
        "UNION ALL SELECT 'flags', NULL, rules_version, params::VARCHAR FROM review_sets WHERE set_id = $set "
        "UNION ALL SELECT 'run', config::VARCHAR, NULL, NULL FROM runs WHERE run_id = $run",
        {"set": set_id, "run": run_id},
    ).fetchall()}  # fmt: skip
    recording_id = found["set"][0]
    config = _config(found["run"][0] if "run" in found else None)
    stored = tuple(found["flags"][1:]) if "flags" in found else None
    if _made_by(stored, config):
        return
    records = SetRecords(item.observations.observations, item.alignment.words,
                         item.transcript.segments, item.diarization.turns)  # fmt: skip
    _write(con, set_id, recording_id, review(records, config), config, stored is not None)


def stale_sets(con, config: ReviewConfig | None = None, recording_id: str | None = None) -> list[str]:
    """Current sets whose flags are missing or were made by other rules (or, with *config*,
    other thresholds)."""
    rows = con.execute(
        "SELECT r.current_set_id, s.rules_version, s.params FROM recordings r "
        "LEFT JOIN review_sets s ON s.set_id = r.current_set_id "
        "WHERE r.current_set_id IS NOT NULL AND (? IS NULL OR r.recording_id = ?) ORDER BY 1",
        [recording_id, recording_id],
    ).fetchall()
    wanted = json.loads(_params(config)) if config else None
    return [
        set_id for set_id, version, params in rows
        if version != RULES_VERSION or (wanted is not None and json.loads(params) != wanted)
    ]  # fmt: skip


def fill_stale(con, config: ReviewConfig | None = None, recording_id: str | None = None) -> int:
    """Flag the current sets that need it, each in its own transaction; returns how many sets.

    Without *config* each set uses the thresholds of the run that loaded it."""
    done = 0
    for set_id in stale_sets(con, config, recording_id):
        with transaction(con):
            store_flags(con, set_id, config, force=True)
        done += 1
    return done


# ------------------------------------------------------------------ the list


@dataclass
class ReviewItem:
    """One observation to check, with every reason it was flagged for."""

    recording: str
    recording_id: str
    observation_id: str
    seq: int
    start_s: float
    end_s: float
    speaker_label: str
    speaker: str
    role: str
    text: str
    priority: int
    reasons: list[dict] = field(default_factory=list)  # {reason, value, detail}
    resolution: dict | None = None  # {outcome, note, resolved_by, resolved_at}, once a person resolved it

    def to_dict(self) -> dict:
        return asdict(self)


def review_list(con, recording_id: str | None = None, reasons: Sequence[str] | None = None,
                limit: int | None = None, resolved: bool = False) -> list[ReviewItem]:  # fmt: skip
    """Flagged current observations, most urgent first: by the highest-priority reason, then
    the number of reasons, then recording and time. *reasons* keeps only those reasons.
    Observations a person resolved are left out unless *resolved* (then they carry it)."""
    unknown = [r for r in reasons or () if r not in PRIORITY]
    if unknown:
        raise DatasetError(f"unknown reason {', '.join(unknown)} (known: {', '.join(REASONS)})")
    rows = con.execute(
        "SELECT recording_name, recording_id, observation_id, seq, start_s, end_s, speaker_label, speaker, "
        "role, text, reason, priority, value, detail FROM current_review "
        "WHERE (? IS NULL OR recording_id = ?) ORDER BY recording_name, seq, priority",
        [recording_id, recording_id],
    ).fetchall()
    items: dict[str, ReviewItem] = {}
    for name, rid, oid, seq, start, end, label, speaker, role, text, reason, priority, value, detail in rows:
        if reasons and reason not in reasons:
            continue
        item = items.get(oid)
        if item is None:
            item = items[oid] = ReviewItem(name, rid, oid, seq, start, end, label, speaker, role, text, priority)
        item.priority = min(item.priority, priority)
        item.reasons.append({"reason": reason, "value": value, "detail": detail})
    for oid, outcome, note, by, at in _resolutions(con, list(items)):
        items[oid].resolution = {"outcome": outcome, "note": note, "resolved_by": by, "resolved_at": str(at)}
    kept = [i for i in items.values() if resolved or i.resolution is None]
    ordered = sorted(kept, key=lambda i: (i.priority, -len(i.reasons), i.recording, i.start_s))
    return ordered[:limit] if limit else ordered


# ------------------------------------------------------------------ resolutions

OUTCOMES = ("kept", "corrected", "reassigned")
REOPENED = "reopened"


def _resolutions(con, observation_ids: list[str]) -> list[tuple]:
    """The resolution in force per observation (the latest row, unless it reopened the item)."""
    if not observation_ids or not con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_name = 'review_resolutions'"
    ).fetchone():  # a reader never migrates: a schema-4 database has none yet
        return []
    return con.execute(
        """SELECT observation_id, outcome, note, resolved_by, resolved_at FROM review_resolutions
           WHERE list_contains(?, observation_id)
           QUALIFY row_number() OVER (PARTITION BY observation_id ORDER BY resolved_at DESC, resolution_id DESC) = 1
               AND outcome <> ?""",
        [observation_ids, REOPENED],
    ).fetchall()


def resolve(con, observation: str, outcome: str, note: str | None = None, resolved_by: str | None = None) -> tuple:
    """Record a person's verdict on a flagged observation (or, with outcome `reopened`, put it
    back on the list); an earlier verdict stays in `review_resolutions`. Returns the observation
    (id, recording name, seq, set)."""
    if outcome not in (*OUTCOMES, REOPENED):
        raise DatasetError(f"--as {outcome}: use one of {', '.join(OUTCOMES)}")
    found = resolve_observation(con, observation)
    obs, name, seq, set_id = found
    if not con.execute("SELECT 1 FROM current_review WHERE observation_id = ?", [obs]).fetchone():
        raise DatasetError(f"{name} #{seq} ({obs}) is not on the review list: it has no flags")
    current = _resolutions(con, [obs])
    if outcome == REOPENED and not current:
        raise DatasetError(f"{name} #{seq} ({obs}) is not resolved: nothing to reopen")
    recording_id = con.execute("SELECT recording_id FROM observations WHERE observation_id = ?", [obs]).fetchone()[0]
    with transaction(con):
        con.execute("INSERT INTO review_resolutions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [new_id(), obs, recording_id, set_id, outcome, note, resolved_by, now()])  # fmt: skip
    return found
