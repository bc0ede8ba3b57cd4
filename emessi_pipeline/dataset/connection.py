"""The research dataset in DuckDB: recordings, speakers, observations, words.

Loading is one transaction per recording, so a recording is either fully there or not at all.
Nothing is ever deleted by a load: re-processing a recording with other parameters adds a new
observation set and marks it current; the old set, and anything coded on it, stays.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from . import review
from .carry import carry_over
from .schema import SCHEMA as DATASET_SCHEMA
from ..runs.manifest import RecordingMeta
from ..stages.records import Alignment, Diarization, MediaInfo, Observations, Transcript

SCHEMA_VERSION = "3"  # 2: coded-dataset tables and views, failure signatures; 3: review flags

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP,
    tool_version VARCHAR, profile VARCHAR, config JSON, models JSON, status VARCHAR, summary JSON);
CREATE TABLE IF NOT EXISTS recordings (
    recording_id VARCHAR PRIMARY KEY, name VARCHAR, path VARCHAR, content_sha256 VARCHAR,
    size_bytes BIGINT, duration_s DOUBLE, container VARCHAR, audio_codec VARCHAR,
    source_sample_rate INTEGER, source_channels INTEGER, audio_streams INTEGER,
    video_streams INTEGER, audio_stream INTEGER, group_id VARCHAR, session_no INTEGER,
    session_date DATE, expected_speakers INTEGER, language VARCHAR, current_set_id VARCHAR,
    first_loaded_at TIMESTAMP, last_loaded_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS recording_files (
    path VARCHAR PRIMARY KEY, recording_id VARCHAR, last_seen_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS observation_sets (
    set_id VARCHAR PRIMARY KEY, recording_id VARCHAR, run_id VARCHAR, created_at TIMESTAMP,
    asr_model VARCHAR, diarization_model VARCHAR, params JSON, speaker_count INTEGER,
    speakers_requested INTEGER, observation_count INTEGER, word_count INTEGER,
    dropped_loop_words INTEGER);
CREATE TABLE IF NOT EXISTS speakers (
    set_id VARCHAR, recording_id VARCHAR, speaker_label VARCHAR, talk_time_s DOUBLE,
    observation_count INTEGER, word_count INTEGER, PRIMARY KEY (set_id, speaker_label));
CREATE TABLE IF NOT EXISTS observations (
    observation_id VARCHAR PRIMARY KEY, set_id VARCHAR, recording_id VARCHAR, seq INTEGER,
    speaker_label VARCHAR, start_s DOUBLE, end_s DOUBLE, duration_s DOUBLE, text VARCHAR,
    word_count INTEGER, mean_word_prob DOUBLE, overlap BOOLEAN, repetition_loop BOOLEAN);
-- words has no primary key: a set's words are written once, in one statement, guarded by the set's
-- key; an index over a million words would cost a third of the load time and serve no query.
CREATE TABLE IF NOT EXISTS words (
    set_id VARCHAR, word_index INTEGER, recording_id VARCHAR, observation_id VARCHAR,
    start_s DOUBLE, end_s DOUBLE, text VARCHAR, probability DOUBLE, speaker_label VARCHAR,
    overlap BOOLEAN, in_gap BOOLEAN, repetition_loop BOOLEAN, asr_segment INTEGER);
CREATE TABLE IF NOT EXISTS asr_segments (
    set_id VARCHAR, segment_index INTEGER, recording_id VARCHAR, start_s DOUBLE, end_s DOUBLE,
    text VARCHAR, avg_logprob DOUBLE, no_speech_prob DOUBLE, repetition_loop BOOLEAN,
    PRIMARY KEY (set_id, segment_index));
CREATE TABLE IF NOT EXISTS speaker_turns (
    set_id VARCHAR, recording_id VARCHAR, kind VARCHAR, start_s DOUBLE, end_s DOUBLE,
    speaker_label VARCHAR);
CREATE TABLE IF NOT EXISTS failures (
    run_id VARCHAR, failed_at TIMESTAMP, path VARCHAR, recording_id VARCHAR, stage VARCHAR,
    message VARCHAR, file_signature VARCHAR, resolved BOOLEAN DEFAULT false);
-- Columns added after the first schema; a database made before gains them on its next write.
ALTER TABLE failures ADD COLUMN IF NOT EXISTS file_signature VARCHAR;
ALTER TABLE failures ADD COLUMN IF NOT EXISTS resolved BOOLEAN DEFAULT false;
ALTER TABLE words ADD COLUMN IF NOT EXISTS asr_segment INTEGER;
CREATE OR REPLACE VIEW current_observations AS
    SELECT o.*, r.name AS recording_name, r.group_id, r.session_no
    FROM observations o JOIN recordings r
      ON o.recording_id = r.recording_id AND o.set_id = r.current_set_id;
CREATE OR REPLACE VIEW current_words AS
    SELECT w.* FROM words w JOIN recordings r
      ON w.recording_id = r.recording_id AND w.set_id = r.current_set_id;
CREATE OR REPLACE VIEW current_speakers AS
    SELECT s.* FROM speakers s JOIN recordings r
      ON s.recording_id = r.recording_id AND s.set_id = r.current_set_id;
"""


class DatabaseBusyError(RuntimeError):
    """Another program holds the DuckDB file open for writing."""


def connect(path: Path, read_only: bool = False, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open the dataset, creating the schema on first write; wait up to *wait* s for a lock.

    A read-only open of a database made by an older version first brings its schema up to date
    (when no other program holds it), so queries and views work on old files too.
    """
    if read_only and not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such database (run `emessi ingest` first)")
    con = _open(path, read_only, wait)
    if read_only and _schema_version(con) != SCHEMA_VERSION:
        con.close()
        try:
            _open(path, False, 0.0).close()
        except DatabaseBusyError:
            pass  # a writer holds it: read what is there
        con = _open(path, True, wait)
    return con


def _schema_version(con) -> str | None:
    try:
        row = con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(
                    f"{path}: the database is open in another program (DuckDB allows one "
                    f"writer); close it, or pass --wait SECONDS to retry"
                ) from None
            time.sleep(0.5)
    if not read_only:
        before = _schema_version(con)
        con.execute(SCHEMA)
        if DATASET_SCHEMA.strip():
            con.execute(DATASET_SCHEMA)
        con.execute(review.SCHEMA)
        if before != SCHEMA_VERSION:  # made by an older version: flag its sets for review now
            review.fill_stale(con)
        con.execute("INSERT OR REPLACE INTO schema_info VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@dataclass(frozen=True)
class LoadedRecording:
    recording_id: str
    name: str
    path: Path
    sha256: str
    media: MediaInfo
    meta: RecordingMeta
    transcript: Transcript
    diarization: Diarization
    alignment: Alignment
    observations: Observations
    set_params: dict
    asr_model: str
    diarization_model: str


def load_recording(con: duckdb.DuckDBPyConnection, item: LoadedRecording, run_id: str) -> bool:
    """Load one recording's observation set; returns False when that set was already there."""
    now = dt.datetime.now()
    set_id = item.observations.set_id
    with transaction(con):
        previous = con.execute(
            "SELECT current_set_id FROM recordings WHERE recording_id = ?", [item.recording_id]
        ).fetchone()
        _upsert_recording(con, item, now)
        exists = con.execute("SELECT 1 FROM observation_sets WHERE set_id = ?", [set_id]).fetchone()
        if not exists:
            _insert_set(con, item, run_id, now)
        con.execute(
            "UPDATE recordings SET current_set_id = ?, last_loaded_at = ? WHERE recording_id = ?",
            [set_id, now, item.recording_id],
        )
        old_set = previous[0] if previous else None
        if old_set != set_id:
            carry_over(con, item.recording_id, old_set, set_id)
        records = review.SetRecords(item.observations.observations, item.alignment.words,
                                    item.transcript.segments, item.diarization.turns)  # fmt: skip
        review.store_flags(con, set_id, review.config_for_run(con, run_id), records=records)
    return not exists


def _upsert_recording(con, item: LoadedRecording, now: dt.datetime) -> None:
    m, meta = item.media, item.meta
    values = [
        item.recording_id, item.name, str(item.path), item.sha256, item.path.stat().st_size,
        m.duration, m.container, m.codec, m.sample_rate, m.channels, m.audio_streams,
        m.video_streams, m.stream_index, meta.group, meta.session, meta.date, meta.speakers,
        item.transcript.language, now,
    ]  # fmt: skip
    con.execute(
        """INSERT INTO recordings (recording_id, name, path, content_sha256, size_bytes,
               duration_s, container, audio_codec, source_sample_rate, source_channels,
               audio_streams, video_streams, audio_stream, group_id, session_no, session_date,
               expected_speakers, language, first_loaded_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (recording_id) DO UPDATE SET
               name = excluded.name, path = excluded.path, duration_s = excluded.duration_s,
               group_id = coalesce(excluded.group_id, recordings.group_id),
               session_no = coalesce(excluded.session_no, recordings.session_no),
               session_date = coalesce(excluded.session_date, recordings.session_date),
               expected_speakers = coalesce(excluded.expected_speakers, recordings.expected_speakers),
               language = excluded.language""",
        values,
    )
    con.execute(
        "INSERT OR REPLACE INTO recording_files VALUES (?, ?, ?)",
        [str(item.path.resolve()), item.recording_id, now],
    )


def _insert_set(con, item: LoadedRecording, run_id: str, now: dt.datetime) -> None:
    set_id, rid = item.observations.set_id, item.recording_id
    observations = item.observations.observations
    words = item.alignment.words
    segments = item.transcript.segments
    con.execute(
        "INSERT INTO observation_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            set_id, rid, run_id, now, item.asr_model, item.diarization_model,
            json.dumps(item.set_params, sort_keys=True), len(item.diarization.speakers),
            item.diarization.num_speakers_requested, len(observations), len(words),
            item.transcript.dropped_loop_words,
        ],  # fmt: skip
    )
    word_owner = [""] * len(words)
    for o in observations:
        word_owner[o.word_start : o.word_end] = [o.observation_id] * (o.word_end - o.word_start)
    frames = {
        "observations": pd.DataFrame(
            {
                "observation_id": [o.observation_id for o in observations],
                "set_id": set_id,
                "recording_id": rid,
                "seq": [o.seq for o in observations],
                "speaker_label": [o.speaker for o in observations],
                "start_s": [o.start for o in observations],
                "end_s": [o.end for o in observations],
                "duration_s": [round(o.end - o.start, 3) for o in observations],
                "text": [o.text for o in observations],
                "word_count": [o.word_count for o in observations],
                "mean_word_prob": [o.mean_word_probability for o in observations],
                "overlap": [o.overlap for o in observations],
                "repetition_loop": [any(w.loop for w in words[o.word_start : o.word_end]) for o in observations],
            }
        ),
        "words": _words_frame(set_id, rid, words, word_owner),
        "asr_segments": pd.DataFrame(
            {
                "set_id": set_id,
                "segment_index": range(len(segments)),
                "recording_id": rid,
                "start_s": [g.start for g in segments],
                "end_s": [g.end for g in segments],
                "text": [g.text for g in segments],
                "avg_logprob": [g.avg_logprob for g in segments],
                "no_speech_prob": [g.no_speech_prob for g in segments],
                "repetition_loop": [g.repetition_loop for g in segments],
            }
        ),
        "speaker_turns": pd.DataFrame(
            [(set_id, rid, "regular", t.start, t.end, t.speaker) for t in item.diarization.turns]
            + [(set_id, rid, "exclusive", t.start, t.end, t.speaker) for t in item.diarization.exclusive_turns],
            columns=["set_id", "recording_id", "kind", "start_s", "end_s", "speaker_label"],
        ),
    }
    for table, frame in frames.items():
        if len(frame):
            con.register("frame", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
            con.unregister("frame")
    _insert_speakers(con, item, set_id)


def _words_frame(set_id: str, rid: str, words, owners: list[str]) -> pd.DataFrame:
    """One pass over the words (a 2-hour meeting has tens of thousands)."""
    columns = ["start_s", "end_s", "text", "probability", "speaker_label", "overlap", "in_gap", "repetition_loop",
               "asr_segment"]  # fmt: skip
    rows = [(w.start, w.end, w.text.strip(), w.probability, w.speaker, w.overlap, w.in_gap, w.loop, w.segment_index)
            for w in words]  # fmt: skip
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    frame.insert(0, "set_id", set_id)
    frame.insert(1, "word_index", range(len(words)))
    frame.insert(2, "recording_id", rid)
    frame.insert(3, "observation_id", owners)
    return frame


def _insert_speakers(con, item: LoadedRecording, set_id: str) -> None:
    labels = set(item.diarization.speakers) | {o.speaker for o in item.observations.observations}
    rows = []
    for label in sorted(labels):
        talk = sum(t.end - t.start for t in item.diarization.exclusive_turns if t.speaker == label)
        mine = [o for o in item.observations.observations if o.speaker == label]
        rows.append((set_id, item.recording_id, label, round(talk, 3), len(mine), sum(o.word_count for o in mine)))
    if rows:
        con.executemany("INSERT INTO speakers VALUES (?, ?, ?, ?, ?, ?)", rows)


def record_failure(con, run_id: str, path: Path, recording_id: str | None, stage: str, message: str,
                   signature: str = "") -> None:  # fmt: skip
    con.execute(
        "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, false)",
        [run_id, dt.datetime.now(), str(path), recording_id, stage, message, signature],
    )


def unresolved_failure(con, path: Path, signature: str) -> tuple[str, str] | None:
    """The stage and message of this file's last failure, if the file has not changed since."""
    return con.execute(
        "SELECT stage, message FROM failures WHERE path = ? AND file_signature = ? AND NOT resolved "
        "ORDER BY failed_at DESC LIMIT 1",
        [str(path), signature],
    ).fetchone()


def resolve_failures(con, path: Path) -> None:
    con.execute("UPDATE failures SET resolved = true WHERE path = ? AND NOT resolved", [str(path)])


def change_kind(con, path: Path, recording_id: str) -> str | None:
    """'new' for content never loaded, 'changed' for new content at a path seen before."""
    if con.execute("SELECT 1 FROM recordings WHERE recording_id = ?", [recording_id]).fetchone():
        return None
    before = con.execute("SELECT recording_id FROM recording_files WHERE path = ?", [str(path.resolve())]).fetchone()
    return "changed" if before else "new"


def is_current(con, recording_id: str, set_id: str, path: Path, meta: RecordingMeta) -> bool:
    """True when loading would change nothing: same set current, same path, same metadata."""
    row = con.execute(
        "SELECT current_set_id, path, group_id, session_no, session_date, expected_speakers "
        "FROM recordings WHERE recording_id = ?",
        [recording_id],
    ).fetchone()
    if row is None or row[0] != set_id or row[1] != str(path):
        return False
    stored = RecordingMeta(group=row[2], session=row[3], date=row[4], speakers=row[5])
    incoming = (meta.group, meta.session, meta.date, meta.speakers)
    # Metadata missing now but known before is kept (see _upsert_recording), so it is no change.
    return all(new is None or new == old for new, old in zip(incoming, (stored.group, stored.session, stored.date, stored.speakers)))


def set_counts(con, set_id: str) -> tuple[float, int, int, int]:
    return con.execute(
        "SELECT r.duration_s, s.speaker_count, s.observation_count, s.word_count "
        "FROM observation_sets s JOIN recordings r USING (recording_id) WHERE s.set_id = ?",
        [set_id],
    ).fetchone()


def start_run(con, run_id: str, tool_version: str, profile: str, config: dict, models: dict) -> None:
    # The caller holds the run lock, so a run still marked running was killed (SIGKILL, power).
    con.execute("UPDATE runs SET status = 'killed' WHERE status = 'running'")
    con.execute(
        "INSERT INTO runs (run_id, started_at, tool_version, profile, config, models, status) "
        "VALUES (?, ?, ?, ?, ?, ?, 'running')",
        [run_id, dt.datetime.now(), tool_version, profile, json.dumps(config), json.dumps(models)],
    )


def finish_run(con, run_id: str, status: str, summary: dict) -> None:
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE run_id = ?",
        [dt.datetime.now(), status, json.dumps(summary), run_id],
    )
