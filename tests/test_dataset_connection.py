"""The dataset's connections (a reader that fetches no extension, a writer closed after its block)
and the load transaction's hooks, on a small synthetic recording (no models needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

from emessi_pipeline.dataset import carry, load, review, withdrawal
from emessi_pipeline.dataset.connection import SCHEMA_VERSION, DatabaseBusyError, connect, open_reader, open_writer
from emessi_pipeline.dataset.speakers import write_assignment
from emessi_pipeline.stages.records import (AlignedWord, Alignment, Diarization, MediaInfo, Observation, Observations,
                                            RecordingMeta, Segment, SpeakerTurn, Transcript)  # fmt: skip


def recording(folder: Path, set_id: str) -> load.LoadedRecording:
    """Two speakers, two observations of two words each; *set_id* names the observation set."""
    path = folder / "meeting.wav"
    path.touch()
    spans = [("SPEAKER_00", 0.0), ("SPEAKER_01", 2.0)]
    words, observations = [], []
    for seq, (speaker, start) in enumerate(spans):
        first = len(words)
        words += [AlignedWord(start=start + i, end=start + i + 0.8, text=f" w{seq}{i}", probability=0.9, speaker=speaker,
                              overlap=False, in_gap=False, loop=False, segment_index=0) for i in range(2)]  # fmt: skip
        observations.append(Observation(observation_id=f"{set_id}-{seq}", seq=seq, speaker=speaker, start=start,
                                        end=start + 1.8, text=f"w{seq}0 w{seq}1", word_count=2,
                                        mean_word_probability=0.9, overlap=False, word_start=first,
                                        word_end=len(words)))  # fmt: skip
    turns = tuple(SpeakerTurn(start=start, end=start + 1.8, speaker=speaker) for speaker, start in spans)
    segment = Segment(start=0.0, end=3.8, text="w00 w01 w10 w11", avg_logprob=-0.2, no_speech_prob=0.0, words=())
    return load.LoadedRecording(
        recording_id="rec1", name=path.stem, path=path, sha256="0" * 64,
        media=MediaInfo(path=str(path), container="wav", duration=4.0, audio_streams=1, video_streams=0,
                        stream_index=0, codec="pcm_s16le", sample_rate=16000, channels=1),
        meta=RecordingMeta(group="G1", session=1),
        transcript=Transcript(language="fi", language_probability=1.0, duration=4.0, segments=(segment,)),
        diarization=Diarization(speakers=("SPEAKER_00", "SPEAKER_01"), turns=turns, exclusive_turns=turns),
        alignment=Alignment(words=tuple(words)),
        observations=Observations(set_id=set_id, observations=tuple(observations)),
        set_params={}, asr_model="test", diarization_model="test",
    )  # fmt: skip


def test_a_reader_reads_writes_nothing_and_loads_no_extension_by_itself(tmp_path):
    db = tmp_path / "d.duckdb"
    with open_writer(db) as con:
        load.start_run(con, "r1", "test", "test", {}, {})
    con = open_reader(db)
    try:
        settings = con.execute("SELECT current_setting('autoinstall_known_extensions'), "
                               "current_setting('autoload_known_extensions'), current_setting('enable_external_access'), "
                               "current_setting('lock_configuration')").fetchone()  # fmt: skip
        assert settings == (False, False, False, True)
        assert con.execute("SELECT run_id FROM runs").fetchall() == [("r1",)]
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM runs")
        out = tmp_path / "runs.csv"
        with pytest.raises(duckdb.PermissionException):  # exports write from Python, not COPY
            con.execute(f"COPY runs TO '{out}' (FORMAT csv, HEADER true)")
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
        assert not out.exists()
    finally:
        con.close()


def test_a_reader_and_a_writer_take_turns_in_one_process(tmp_path):
    db = tmp_path / "d.duckdb"
    with open_writer(db) as con:
        load.start_run(con, "r1", "test", "test", {}, {})
    first, second = open_reader(db), open_reader(db)  # readers share one configuration
    assert first.execute("SELECT count(*) FROM runs").fetchone() == second.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    with pytest.raises(DatabaseBusyError, match="already open in this program for reading"):
        with open_writer(db):
            pass
    first.close(), second.close()
    with open_writer(db) as con:  # and after the readers, the writer again
        load.start_run(con, "r2", "test", "test", {}, {})
        with pytest.raises(DatabaseBusyError, match="already open in this program for writing"):
            open_reader(db)
    reader = open_reader(db)
    assert reader.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    reader.close()


def test_a_writer_is_closed_on_leaving_its_block(tmp_path):
    db = tmp_path / "d.duckdb"
    with open_writer(db) as con:
        con.execute("SELECT 1")
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")
    with open_writer(db) as again:  # the file is free for the next writer
        assert again.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchone() == (SCHEMA_VERSION,)


def test_the_package_hooks_carry_over_then_review_flags_then_withdrawals_into_the_load():
    assert load._LOAD_HOOKS == [carry.on_load, review.on_load, withdrawal.on_load]


def test_a_load_flags_the_set_and_carries_work_to_the_next_set(tmp_path):
    con = connect(tmp_path / "d.duckdb")
    load.start_run(con, "r1", "test", "test", {}, {})
    assert load.load_recording(con, recording(tmp_path, "setA"), "r1")
    write_assignment(con, "rec1", "SPEAKER_00", None, "leader", "tester", None, set_id="setA")
    assert load.load_recording(con, recording(tmp_path, "setB"), "r1")
    assert con.execute("SELECT set_id FROM review_sets ORDER BY 1").fetchall() == [("setA",), ("setB",)]
    carried = con.execute("SELECT kind, outcome, new_target FROM carry_log WHERE new_set_id = 'setB'").fetchall()
    assert carried == [("assignment", "carried", "SPEAKER_00")]
    assert con.execute("SELECT role FROM speaker_assignments WHERE set_id = 'setB'").fetchall() == [("leader",)]
    con.close()


def test_a_hook_that_fails_rolls_the_whole_load_back(tmp_path, monkeypatch):
    def fail(con, item, previous_set_id, run_id):
        raise RuntimeError("hook failed")

    monkeypatch.setattr(load, "_LOAD_HOOKS", [*load._LOAD_HOOKS, fail])
    con = connect(tmp_path / "d.duckdb")
    with pytest.raises(RuntimeError, match="hook failed"):
        load.load_recording(con, recording(tmp_path, "setA"), "r1")
    for table in ("recordings", "observation_sets", "observations", "words", "review_sets"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    con.close()


def test_a_load_writes_every_field_of_the_records_as_they_are(tmp_path):
    """The bulk insert (Arrow columns) against the records row by row: values, NULLs, types."""
    item = recording(tmp_path, "setA")
    first = item.observations.observations[0].model_copy(update={"mean_word_probability": None, "text": " älä…  "})
    words = list(item.alignment.words)
    words[3] = words[3].model_copy(update={"loop": True, "overlap": True, "in_gap": True, "segment_index": -1})
    item = dataclasses.replace(
        item,
        observations=item.observations.model_copy(update={"observations": (first, *item.observations.observations[1:])}),
        alignment=Alignment(words=tuple(words)),
        diarization=item.diarization.model_copy(update={"speakers": ("SPEAKER_00", "SPEAKER_01", "SPEAKER_02")}),
    )  # fmt: skip
    con = connect(tmp_path / "d.duckdb")
    load.start_run(con, "r1", "test", "test", {}, {})
    load.load_recording(con, item, "r1")
    observations = item.observations.observations
    assert con.execute("SELECT * FROM observations ORDER BY seq").fetchall() == [
        (o.observation_id, "setA", "rec1", o.seq, o.speaker, o.start, o.end, round(o.end - o.start, 3), o.text,
         o.word_count, o.mean_word_probability, o.overlap, any(w.loop for w in words[o.word_start : o.word_end]))
        for o in observations
    ]  # fmt: skip
    owner = [o.observation_id for o in observations for _ in range(o.word_start, o.word_end)]
    assert con.execute("SELECT * FROM words ORDER BY word_index").fetchall() == [
        ("setA", i, "rec1", owner[i], w.start, w.end, w.text.strip(), w.probability, w.speaker, w.overlap, w.in_gap,
         w.loop, w.segment_index) for i, w in enumerate(words)
    ]  # fmt: skip
    segment = item.transcript.segments[0]
    assert con.execute("SELECT * FROM asr_segments").fetchall() == [
        ("setA", 0, "rec1", segment.start, segment.end, segment.text, segment.avg_logprob, segment.no_speech_prob,
         False)]  # fmt: skip
    turns = [(kind, t) for kind, ts in (("regular", item.diarization.turns), ("exclusive", item.diarization.exclusive_turns))
             for t in ts]  # fmt: skip
    assert con.execute("SELECT * FROM speaker_turns ORDER BY kind DESC, start_s").fetchall() == [
        ("setA", "rec1", kind, t.start, t.end, t.speaker) for kind, t in turns]
    assert con.execute("SELECT * FROM speakers ORDER BY speaker_label").fetchall() == [
        ("setA", "rec1", "SPEAKER_00", 1.8, 1, 2), ("setA", "rec1", "SPEAKER_01", 1.8, 1, 2),
        ("setA", "rec1", "SPEAKER_02", 0.0, 0, 0)]  # fmt: skip
    flags = review.review(review.SetRecords(observations, words, item.transcript.segments, item.diarization.turns),
                          review.config_for_run(con, "r1"))  # fmt: skip
    assert flags, "the edge cases should raise flags, so their columns are compared too"
    assert con.execute("SELECT observation_id, reason, priority, value, detail FROM review_flags").fetchall() == [
        (f.observation_id, f.reason, review.PRIORITY[f.reason], f.value, f.detail) for f in flags]
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'words'").fetchall())
    assert types["word_index"] == types["asr_segment"] == "INTEGER" and types["start_s"] == "DOUBLE"
    con.close()


def test_a_loads_word_columns_are_read_once_and_dropped_with_the_load():
    """Inside kept_word_columns the load and the review rules share one list per field of the
    words, equal to the fields read word by word; after the block nothing of the words is kept."""
    from emessi_pipeline.dataset import common

    words = tuple(AlignedWord(start=i * 0.5, end=i * 0.5 + 0.4, text=f" w{i}", probability=i / 7, speaker=f"S{i % 2}",
                              overlap=i == 1, in_gap=False, loop=i == 3, segment_index=i // 2 - 1) for i in range(6))  # fmt: skip
    fields = ("start", "end", "text", "probability", "speaker", "overlap", "in_gap", "loop", "segment_index")
    expected = {f: [getattr(w, f) for w in words] for f in fields}
    with common.kept_word_columns(words):
        shared = common.word_column(words, "probability")
        assert common.word_column(words, "probability") is shared
        assert {f: common.word_column(words, f) for f in fields} == expected
        # another tuple of the same words is not these words: read on its own
        assert common.word_column(words[:3], "loop") == expected["loop"][:3]
    assert common._KEPT_WORDS == {}
    assert common.word_column(words, "probability") == shared and common.word_column(words, "probability") is not shared
    # a list may change under the caller: never kept
    with common.kept_word_columns(list(words)):
        assert common._KEPT_WORDS == {}
    # a set's observations are kept beside its words, and dropped with them
    observations = tuple(Observation(observation_id=f"o{i}", seq=i, speaker="S0", start=i, end=i + 1, text="w",
                                     word_count=1, mean_word_probability=0.5, overlap=False, word_start=i,
                                     word_end=i + 1) for i in range(3))  # fmt: skip
    with common.kept_word_columns(words, observations, words):
        assert common.word_column(observations, "speaker") is common.word_column(observations, "speaker")
        assert common.word_column(observations, "word_end") == [1, 2, 3]
        assert common.word_column(words, "loop") is common.word_column(words, "loop")
    assert common._KEPT_WORDS == {}
