"""Loading one recording into the dataset, and the bookkeeping of runs and failures.

Loading is one transaction per recording, so a recording is either fully there or not at all.
Nothing is ever deleted by a load: re-processing a recording with other parameters adds a new
observation set and marks it current; the old set, and anything coded on it, stays.

What else a load must do (carry human work to the new set, flag the set for review) registers
itself here as a load hook, so this module knows none of the modules built on top of it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from ..stages.records import Alignment, Diarization, MediaInfo, Observations, RecordingMeta, Transcript
from .common import arrow_column, index_column, insert_columns, kept_word_columns, word_column
from .common import now as utc_now
from .connection import transaction


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


LoadHook = Callable[[duckdb.DuckDBPyConnection, LoadedRecording, str | None, str], None]
_LOAD_HOOKS: list[LoadHook] = []


def register_load_hook(hook: LoadHook) -> None:
    """Call *hook(con, item, previous_set_id, run_id)* inside every load transaction, after the
    new set became current, in registration order. A hook that raises rolls the load back.

    *previous_set_id* is the set the work comes from: the recording's own previous set, or that
    of the recording it replaces; when there are both, the hooks run once for each."""
    if hook not in _LOAD_HOOKS:  # importing the package twice (reload) must not run it twice
        _LOAD_HOOKS.append(hook)


def load_recording(con: duckdb.DuckDBPyConnection, item: LoadedRecording, run_id: str) -> bool:
    """Load one recording's observation set; returns False when that set was already there
    (and the recording replaced none: a file changed back is news even with a known set).

    New content at a path that held another recording replaces that recording (see
    ``_replace_at_path``): the load hooks then carry its work over as from a previous set.
    """
    now = utc_now()
    set_id = item.observations.set_id
    here = str(item.path.resolve())
    kept = (item.alignment.words, item.observations.observations, item.transcript.segments,
            item.diarization.turns, item.diarization.exclusive_turns)
    with transaction(con), kept_word_columns(*kept):
        # What the load needs to know, in one statement: every statement costs about a
        # millisecond of DuckDB overhead, and a load is otherwise a few bulk inserts. A row per
        # table that has one (each looks a key up) rather than scalar subqueries: DuckDB plans
        # those as joins, 5 ms against 2 here.
        found = dict(con.execute(
            "SELECT 'recording', current_set_id FROM recordings WHERE recording_id = $rid "
            "UNION ALL SELECT 'set', NULL FROM observation_sets WHERE set_id = $set "
            "UNION ALL SELECT 'path', recording_id FROM recording_files WHERE path = $path",
            {"rid": item.recording_id, "set": set_id, "path": here},
        ).fetchall())
        known, previous, exists = "recording" in found, found.get("recording"), "set" in found
        path_known, path_owner = "path" in found, found.get("path")
        replaced_set = _replace_at_path(con, item, now) if path_owner not in (None, item.recording_id) else None
        _upsert_recording(con, item, now, known, set_id)
        if not path_known:
            con.execute("INSERT INTO recording_files VALUES (?, ?, ?)", [here, item.recording_id, now])
        else:
            con.execute("UPDATE recording_files SET recording_id = ?, last_seen_at = ? WHERE path = ?",
                        [item.recording_id, now, here])  # fmt: skip
        if not exists:
            _insert_set(con, item, run_id, now)
        old_sets = [s for s in (previous, replaced_set) if s and s != set_id]
        for old_set in dict.fromkeys(old_sets) or [None]:
            for hook in _LOAD_HOOKS:
                hook(con, item, old_set, run_id)
    return not exists or replaced_set is not None


def _replace_at_path(con, item: LoadedRecording, now: dt.datetime) -> str | None:
    """When the file at *item*'s path last held another recording, that recording is replaced
    by this one: it gets ``replaced_by`` (the current views leave it out) and keeps every row, so
    the file's earlier version stays queryable. Returns its current set, to carry work from.

    A file changed back to content it had before takes its place again (the recording that
    replaced it is replaced in turn). A recording whose last known path is elsewhere was moved
    or copied, not changed, and is left alone.
    """
    here = item.path.resolve()
    row = con.execute(
        "SELECT r.recording_id, r.path, r.current_set_id, r.replaced_by FROM recording_files f "
        "JOIN recordings r USING (recording_id) WHERE f.path = ? AND r.recording_id <> ?",
        [str(here), item.recording_id],
    ).fetchone()
    if row is None or row[3] is not None or Path(row[1]).resolve() != here:
        return None
    before, _, before_set, _ = row
    con.execute("UPDATE recordings SET replaced_by = ?, replaced_at = ? WHERE recording_id = ?",
                [item.recording_id, now, before])  # fmt: skip
    con.execute("UPDATE recordings SET replaced_by = NULL, replaced_at = NULL WHERE recording_id = ? AND replaced_by = ?",
                [item.recording_id, before])  # fmt: skip
    return before_set


def _upsert_recording(con, item: LoadedRecording, now: dt.datetime, known: bool, set_id: str) -> None:
    """Insert the recording, or update the one there, and make *set_id* its current set.

    An INSERT … ON CONFLICT or INSERT OR REPLACE costs DuckDB 5–15 ms more than a plain INSERT or
    UPDATE (measured on 2.0.1), and the load knows already whether the row is there."""
    m, meta = item.media, item.meta
    if not known:
        con.execute(
            """INSERT INTO recordings (recording_id, name, path, content_sha256, size_bytes,
                   duration_s, container, audio_codec, source_sample_rate, source_channels,
                   audio_streams, video_streams, audio_stream, group_id, session_no, session_date,
                   expected_speakers, language, first_loaded_at, current_set_id, last_loaded_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                item.recording_id, item.name, str(item.path), item.sha256, item.path.stat().st_size,
                m.duration, m.container, m.codec, m.sample_rate, m.channels, m.audio_streams,
                m.video_streams, m.stream_index, meta.group, meta.session, meta.date, meta.speakers,
                item.transcript.language, now, set_id, now,
            ],
        )  # fmt: skip
        return
    # Metadata missing now but known before is kept; the content's own facts (hash, size,
    # streams) and the first load's time stay as they were.
    con.execute(
        """UPDATE recordings SET name = ?, path = ?, duration_s = ?,
               group_id = coalesce(?, group_id), session_no = coalesce(?, session_no),
               session_date = coalesce(?, session_date), expected_speakers = coalesce(?, expected_speakers),
               language = ?, current_set_id = ?, last_loaded_at = ?
           WHERE recording_id = ?""",
        [item.name, str(item.path), m.duration, meta.group, meta.session, meta.date, meta.speakers,
         item.transcript.language, set_id, now, item.recording_id],
    )  # fmt: skip


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
    ids, firsts, ends = (word_column(observations, f) for f in ("observation_id", "word_start", "word_end"))
    for oid, first, end in zip(ids, firsts, ends):
        word_owner[first:end] = [oid] * (end - first)
    loops = word_column(words, "loop")
    if any(loops):
        in_loop = [any(loops[first:end]) for first, end in zip(firsts, ends)]
    else:  # the usual set: no word in a loop, so no observation either
        in_loop = [False] * len(observations)
    labels = word_column(observations, "speaker")
    word_counts = word_column(observations, "word_count")
    starts, ends_s = word_column(observations, "start"), word_column(observations, "end")
    insert_columns(con, "observations", set_id, rid, {
        "observation_id": arrow_column(ids, pa.string()),
        "seq": arrow_column(word_column(observations, "seq"), pa.int32()),
        "speaker_label": arrow_column(labels, pa.string()),
        "start_s": arrow_column(starts, pa.float64()),
        "end_s": arrow_column(ends_s, pa.float64()),
        "duration_s": arrow_column([round(end - start, 3) for start, end in zip(starts, ends_s)], pa.float64()),
        "text": arrow_column(word_column(observations, "text"), pa.string()),
        "word_count": arrow_column(word_counts, pa.int32()),
        "mean_word_prob": arrow_column(word_column(observations, "mean_word_probability"), pa.float64()),
        "overlap": arrow_column(word_column(observations, "overlap"), pa.bool_()),
        "repetition_loop": arrow_column(in_loop, pa.bool_()),
    })  # fmt: skip
    insert_columns(con, "words", set_id, rid, {
        "word_index": index_column(len(words)),
        "observation_id": arrow_column(word_owner, pa.string()),
        "start_s": arrow_column(word_column(words, "start"), pa.float64()),
        "end_s": arrow_column(word_column(words, "end"), pa.float64()),
        "text": arrow_column(list(map(str.strip, word_column(words, "text"))), pa.string()),
        "probability": arrow_column(word_column(words, "probability"), pa.float64()),
        "speaker_label": arrow_column(word_column(words, "speaker"), pa.string()),
        "overlap": arrow_column(word_column(words, "overlap"), pa.bool_()),
        "in_gap": arrow_column(word_column(words, "in_gap"), pa.bool_()),
        "repetition_loop": arrow_column(loops, pa.bool_()),
        "asr_segment": arrow_column(word_column(words, "segment_index"), pa.int32()),
    })  # fmt: skip
    insert_columns(con, "asr_segments", set_id, rid, {
        "segment_index": index_column(len(segments)),
        "start_s": arrow_column(word_column(segments, "start"), pa.float64()),
        "end_s": arrow_column(word_column(segments, "end"), pa.float64()),
        "text": arrow_column(word_column(segments, "text"), pa.string()),
        "avg_logprob": arrow_column(word_column(segments, "avg_logprob"), pa.float64()),
        "no_speech_prob": arrow_column(word_column(segments, "no_speech_prob"), pa.float64()),
        "repetition_loop": arrow_column(word_column(segments, "repetition_loop"), pa.bool_()),
    })  # fmt: skip
    regular, exclusive = item.diarization.turns, item.diarization.exclusive_turns
    insert_columns(con, "speaker_turns", set_id, rid, {
        "kind": arrow_column(["regular"] * len(regular) + ["exclusive"] * len(exclusive), pa.string()),
        "start_s": arrow_column(word_column(regular, "start") + word_column(exclusive, "start"), pa.float64()),
        "end_s": arrow_column(word_column(regular, "end") + word_column(exclusive, "end"), pa.float64()),
        "speaker_label": arrow_column(word_column(regular, "speaker") + word_column(exclusive, "speaker"), pa.string()),
    })  # fmt: skip
    _insert_speakers(con, item, set_id, labels, word_counts)


def _insert_speakers(con, item: LoadedRecording, set_id: str, speaker_of: list[str], word_counts: list[int]) -> None:
    """*speaker_of* and *word_counts*: the labels and word counts of the set's observations (the
    columns _insert_set took)."""
    talk: dict[str, float] = {}
    exclusive = item.diarization.exclusive_turns
    for speaker, start, end in zip(*(word_column(exclusive, f) for f in ("speaker", "start", "end"))):
        talk[speaker] = talk.get(speaker, 0) + (end - start)
    observations = Counter(speaker_of)
    words: dict[str, int] = {}
    for label, count in zip(speaker_of, word_counts):
        words[label] = words.get(label, 0) + count
    labels = sorted(set(item.diarization.speakers) | set(observations))
    insert_columns(con, "speakers", set_id, item.recording_id, {
        "speaker_label": arrow_column(labels, pa.string()),
        "talk_time_s": arrow_column([round(talk.get(s, 0), 3) for s in labels], pa.float64()),
        "observation_count": arrow_column([observations.get(s, 0) for s in labels], pa.int32()),
        "word_count": arrow_column([words.get(s, 0) for s in labels], pa.int32()),
    })  # fmt: skip


def record_failure(con, run_id: str, path: Path, recording_id: str | None, stage: str, message: str,
                   signature: str = "") -> None:  # fmt: skip
    con.execute(
        "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, false)",
        [run_id, utc_now(), str(path), recording_id, stage, message, signature],
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
    """'new' for content never loaded, 'changed' for new content at a path seen before (or a
    file changed back to content it had before, which was replaced since)."""
    row = con.execute("SELECT replaced_by FROM recordings WHERE recording_id = ?", [recording_id]).fetchone()
    before = con.execute("SELECT recording_id FROM recording_files WHERE path = ?", [str(path.resolve())]).fetchone()
    if row:
        return "changed" if row[0] is not None and before and before[0] != recording_id else None
    return "changed" if before else "new"


def loaded_set(con, recording_id: str) -> str | None:
    """The observation set the database holds as current for this content (None: not loaded, or
    replaced by another file at its path): what was done, whatever settings a run has today."""
    row = con.execute(
        "SELECT current_set_id FROM recordings WHERE recording_id = ? AND replaced_by IS NULL", [recording_id]
    ).fetchone()
    return row[0] if row else None


def is_current(con, recording_id: str, set_id: str, path: Path, meta: RecordingMeta) -> bool:
    """True when loading would change nothing: same set current, same path, same metadata."""
    row = con.execute(
        "SELECT current_set_id, path, group_id, session_no, session_date, expected_speakers, replaced_by "
        "FROM recordings WHERE recording_id = ?",
        [recording_id],
    ).fetchone()
    if row is None or row[0] != set_id or row[1] != str(path) or row[6] is not None:
        return False  # a replaced recording back at its path takes its place again
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


def start_run(con, run_id: str, tool_version: str, profile: str, config: dict, models: dict,
              environment: dict | None = None) -> None:  # fmt: skip
    # The caller holds the run lock, so a run still marked running was killed (SIGKILL, power).
    con.execute("UPDATE runs SET status = 'killed' WHERE status = 'running'")
    con.execute(
        "INSERT INTO runs (run_id, started_at, tool_version, profile, config, models, status, environment) "
        "VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
        [run_id, utc_now(), tool_version, profile, json.dumps(config), json.dumps(models),
         json.dumps(environment or {})],
    )


def finish_run(con, run_id: str, status: str, summary: dict) -> None:
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE run_id = ?",
        [utc_now(), status, json.dumps(summary), run_id],
    )
