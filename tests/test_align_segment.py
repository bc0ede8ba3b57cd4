"""Word-to-speaker assignment, observation segmentation and the repetition guard."""

from __future__ import annotations

from emessi_pipeline.stages.align import UNKNOWN_SPEAKER, align, overlap_regions
from emessi_pipeline.config import AlignConfig, SegmentConfig
from emessi_pipeline.stages.records import Diarization, Segment, SpeakerTurn, Transcript, Word
from emessi_pipeline.stages.segment import segment
from emessi_pipeline.stages.transcribe import find_loops, guard_repetitions


def _transcript(*words: tuple[float, float, str]) -> Transcript:
    ws = tuple(Word(start=s, end=e, text=f" {t}", probability=0.9) for s, e, t in words)
    seg = Segment(start=ws[0].start, end=ws[-1].end, text="", avg_logprob=-0.2, no_speech_prob=0.01, words=ws)
    return Transcript(language="fi", language_probability=1.0, duration=20.0, segments=(seg,))


def _diarization(turns, exclusive=None) -> Diarization:
    turns = tuple(SpeakerTurn(start=s, end=e, speaker=k) for s, e, k in turns)
    excl = turns if exclusive is None else tuple(SpeakerTurn(start=s, end=e, speaker=k) for s, e, k in exclusive)
    return Diarization(speakers=tuple(sorted({t.speaker for t in turns})), turns=turns, exclusive_turns=excl)


def test_word_goes_to_the_turn_it_overlaps_most():
    transcript = _transcript((0.0, 1.0, "a"), (1.8, 2.6, "b"), (5.0, 5.5, "c"))
    diarization = _diarization([(0.0, 2.0, "A"), (2.0, 4.0, "B"), (4.0, 6.0, "A")])
    words = align(transcript, diarization, AlignConfig()).words
    assert [w.speaker for w in words] == ["A", "B", "A"]  # b: 0.2 s with A, 0.6 s with B
    assert not any(w.in_gap for w in words)


def test_word_in_a_gap_goes_to_the_nearest_turn_and_is_marked():
    transcript = _transcript((2.1, 2.3, "a"), (3.7, 3.9, "b"))
    diarization = _diarization([(0.0, 2.0, "A"), (4.0, 6.0, "B")])
    words = align(transcript, diarization, AlignConfig()).words
    assert [(w.speaker, w.in_gap) for w in words] == [("A", True), ("B", True)]


def test_words_in_overlapped_speech_are_flagged():
    transcript = _transcript((0.5, 1.0, "solo"), (2.2, 2.8, "both"))
    regular = [(0.0, 3.0, "A"), (2.0, 4.0, "B")]
    exclusive = [(0.0, 2.5, "A"), (2.5, 4.0, "B")]
    words = align(transcript, _diarization(regular, exclusive), AlignConfig()).words
    assert [w.overlap for w in words] == [False, True]
    assert overlap_regions(_diarization(regular).turns) == [(2.0, 3.0)]


def test_no_diarisation_still_gives_every_word_a_speaker():
    words = align(_transcript((0.0, 1.0, "a")), _diarization([]), AlignConfig()).words
    assert [w.speaker for w in words] == [UNKNOWN_SPEAKER]


def test_segment_splits_on_speaker_change_and_long_pause():
    transcript = _transcript(
        (0.0, 0.5, "yksi"), (0.6, 1.0, "kaksi"), (3.0, 3.4, "kolme"),  # A, pause 2.0 s
        (3.5, 4.0, "neljä"), (4.1, 4.5, "viisi"),  # B
        (4.6, 5.0, "kuusi"),  # A again
    )  # fmt: skip
    diarization = _diarization([(0.0, 3.45, "A"), (3.45, 4.55, "B"), (4.55, 6.0, "A")])
    alignment = align(transcript, diarization, AlignConfig())
    obs = segment(alignment, SegmentConfig(max_pause=1.5), "rec0123456789abc", "set000000000").observations
    assert [(o.speaker, o.text) for o in obs] == [
        ("A", "yksi kaksi"), ("A", "kolme"), ("B", "neljä viisi"), ("A", "kuusi"),
    ]  # fmt: skip
    assert [o.seq for o in obs] == [1, 2, 3, 4]
    assert len({o.observation_id for o in obs}) == 4
    assert sum(o.word_count for o in obs) == len(alignment.words)
    merged = segment(alignment, SegmentConfig(max_pause=3.0), "rec0123456789abc", "set000000000").observations
    assert [o.text for o in merged] == ["yksi kaksi kolme", "neljä viisi", "kuusi"]


def test_loops_of_ngrams_are_found_but_short_backchannels_are_not():
    assert find_loops("a b 20 20 20 20 20 20 c".split(), 5, 4) == [(2, 8, 1)]
    assert find_loops(("x y z " * 6).split() + ["end"], 5, 4) == [(0, 18, 3)]
    assert find_loops("joo joo joo joo".split(), 5, 4) == []


def test_repetition_guard_drops_the_loop_but_keeps_one_copy_flagged():
    texts = ["Kello", "on"] + ["kaksikymmentä"] * 8 + ["nyt"]
    words = tuple(Word(start=i, end=i + 0.5, text=f" {t}", probability=0.5) for i, t in enumerate(texts))
    seg = Segment(start=0, end=11, text="".join(w.text for w in words), avg_logprob=-1, no_speech_prob=0, words=words)
    (dropped,), count = guard_repetitions([seg], 5, 4, drop=True)
    assert count == 7
    assert dropped.text == "Kello on kaksikymmentä nyt"
    assert dropped.repetition_loop and [w.loop for w in dropped.words] == [False, False, True, False]
    (flagged,), count = guard_repetitions([seg], 5, 4, drop=False)
    assert count == 0 and len(flagged.words) == len(texts) and sum(w.loop for w in flagged.words) == 8


def test_a_single_looping_token_is_cut_to_its_unit():
    words = (Word(start=0, end=3, text=" 20-20-20-20-20-20-20", probability=0.3),)
    seg = Segment(start=0, end=3, text="20-20-20-20-20-20-20", avg_logprob=-1, no_speech_prob=0, words=words)
    (out,), _ = guard_repetitions([seg], 5, 4, drop=True)
    assert out.text == "20" and out.words[0].loop
