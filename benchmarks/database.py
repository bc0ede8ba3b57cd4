"""Database scale: bulk loading, and the group-dynamics views over a large archive.

Builds synthetic observation sets shaped like real ones (a few speakers taking turns, ten words
an observation, overlaps here and there) and loads them through `load.load_recording`, the
path `emessi ingest` uses. Then, with 1,000 recordings filed in groups and sessions, speakers
assigned to participants with roles, and every observation coded, times each view.

    .venv/bin/python benchmarks/database.py --out /tmp/emessi-bench/db [--runs 3] [--load-only | --floor-only]

The floor: the rows the 100 loads wrote, read back as Arrow tables and written again by DuckDB
alone (one transaction per recording, nothing else), which no change to the load can go below.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import shutil
import statistics
import time
from pathlib import Path

from emessi_pipeline.dataset import load
from emessi_pipeline.dataset.connection import connect
from emessi_pipeline.stages.records import AlignedWord, Alignment, Diarization, MediaInfo, Observation, Observations, RecordingMeta, Segment, SpeakerTurn, Transcript  # fmt: skip

VIEWS = ["turns", "talk_per_speaker", "talk_per_participant", "talk_per_role", "group_talk_per_participant",
         "group_talk_per_role", "leadership_share", "turn_transitions", "response_latency", "overlap_events",
         "overlaps_per_speaker", "participation_balance", "group_participation_balance", "codes_by_role",
         "codes_by_session"]  # fmt: skip


def synthetic(index: int, observations: int, words_each: int, speakers: int, folder: Path) -> load.LoadedRecording:
    """One recording's records, built without validation (pydantic's model_construct) for speed."""
    rng = random.Random(index)
    rid = f"{index:016x}"
    set_id = f"{index:08x}"
    path = folder / f"rec{index:05d}.wav"
    path.touch()
    labels = [f"SPEAKER_{k:02d}" for k in range(speakers)]
    words, observations_, segments, turns = [], [], [], []
    t, speaker = 0.0, labels[0]
    for seq in range(observations):
        speaker = rng.choice([s for s in labels if s != speaker]) if rng.random() < 0.7 else speaker
        first = len(words)
        start = t
        for _ in range(words_each):
            words.append(AlignedWord.model_construct(start=round(t, 3), end=round(t + 0.3, 3), text=" sana",
                                                     probability=0.9, speaker=speaker, overlap=False, in_gap=False,
                                                     loop=False, segment_index=seq))  # fmt: skip
            t += 0.35
        observations_.append(Observation.model_construct(
            observation_id=f"{rid[:12]}-{set_id}-{seq:05d}", seq=seq, speaker=speaker, start=round(start, 3),
            end=round(t, 3), text="sana " * words_each, word_count=words_each, mean_word_probability=0.9,
            overlap=seq % 9 == 0, word_start=first, word_end=len(words)))  # fmt: skip
        segments.append(Segment.model_construct(start=start, end=t, text="sana", avg_logprob=-0.3,
                                                no_speech_prob=0.01, words=(), repetition_loop=False))  # fmt: skip
        turns.append(SpeakerTurn.model_construct(start=round(start, 3), end=round(t + (0.5 if seq % 9 == 0 else 0), 3),
                                                 speaker=speaker))  # fmt: skip
        t += rng.uniform(0.2, 1.5)
    media = MediaInfo.model_construct(path=str(path), container="wav", duration=t, audio_streams=1, video_streams=0,
                                      stream_index=0, codec="pcm_s16le", sample_rate=16000, channels=1)  # fmt: skip
    group = f"G{index % 35 + 1}"
    return load.LoadedRecording(
        recording_id=rid, name=path.stem, path=path, sha256=rid * 4, media=media,
        meta=RecordingMeta(group=group, session=index // 35 + 1),
        transcript=Transcript.model_construct(language="fi", language_probability=1.0, duration=t,
                                              segments=tuple(segments), dropped_loop_words=0),
        diarization=Diarization.model_construct(speakers=tuple(labels), turns=tuple(turns),
                                                exclusive_turns=tuple(turns), num_speakers_requested=None),
        alignment=Alignment.model_construct(words=tuple(words)),
        observations=Observations.model_construct(set_id=set_id, observations=tuple(observations_)),
        set_params={}, asr_model="bench", diarization_model="bench",
    )  # fmt: skip


def cpu_seconds() -> float:
    """This process's CPU time, DuckDB's threads included: on a shared machine wall time is
    mostly waiting for a core, so the CPU time is the steadier comparison."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_all(db: Path, items: list[load.LoadedRecording], cpu: list[float] | None = None) -> float:
    """Seconds to load *items* into a new database (appending the CPU seconds to *cpu*)."""
    con = connect(db)
    load.start_run(con, "bench", "bench", "bench", {}, {})
    started, cpu_started = time.monotonic(), cpu_seconds()
    for item in items:
        load.load_recording(con, item, "bench")
    seconds = time.monotonic() - started
    if cpu is not None:
        cpu.append(cpu_seconds() - cpu_started)
    con.close()
    return seconds


# The tables a load writes rows to (each row names its recording).
LOADED_TABLES = ("recordings", "recording_files", "observation_sets", "observations", "words", "asr_segments",
                 "speaker_turns", "speakers", "review_flags", "review_sets")  # fmt: skip


def duckdb_floor(loaded: Path, db: Path, cpu: list[float] | None = None) -> float:
    """Seconds DuckDB alone takes to write what the loads wrote into *loaded*: each recording's
    rows of every table, read back as Arrow tables beforehand, inserted into a new database of
    the same schema in one transaction per recording, with no look-up and no Python work. What
    no change to the load's Python can go below on this machine."""
    source = connect(loaded)
    recordings = [r[0] for r in source.execute("SELECT recording_id FROM recordings ORDER BY 1").fetchall()]
    rows = [{t: source.sql(f"SELECT * FROM {t} WHERE recording_id = $rid", params={"rid": rid}).to_arrow_table()
             for t in LOADED_TABLES} for rid in recordings]  # fmt: skip
    source.close()
    con = connect(db)
    started, cpu_started = time.monotonic(), cpu_seconds()
    for parts in rows:
        con.execute("BEGIN TRANSACTION")
        for table, emessi_rows in parts.items():  # noqa: B007 (found by name: a replacement scan)
            if len(emessi_rows):
                con.execute(f"INSERT INTO {table} SELECT * FROM emessi_rows")
        con.execute("COMMIT")
    seconds = time.monotonic() - started
    if cpu is not None:
        cpu.append(cpu_seconds() - cpu_started)
    con.close()
    return seconds


def code_everything(db: Path) -> None:
    """Participants with roles for every speaker label, and one topic code per observation."""
    con = connect(db)
    now = dt.datetime.now()
    con.execute("""INSERT INTO participants SELECT DISTINCT group_id || '-' || s.speaker_label, group_id,
                   'P ' || s.speaker_label, NULL, ? FROM speakers s JOIN recordings r USING (recording_id)""", [now])
    con.execute("""INSERT INTO speaker_assignments
                   SELECT s.set_id || s.speaker_label, s.recording_id, s.set_id, s.speaker_label,
                          r.group_id || '-' || s.speaker_label,
                          CASE s.speaker_label WHEN 'SPEAKER_00' THEN 'leader' WHEN 'SPEAKER_01' THEN 'facilitator'
                               ELSE 'participant' END, 'bench', ?, NULL, NULL
                   FROM speakers s JOIN recordings r USING (recording_id)""", [now])  # fmt: skip
    con.execute("""INSERT INTO codings SELECT observation_id || '-t', observation_id, 'coder1', 'topic',
                   ['working_time', 'managing_work', 'work_frame'][1 + seq % 3], 1, 'bench', ?, NULL, NULL
                   FROM observations""", [now])  # fmt: skip
    con.close()


def time_views(db: Path, repeats: int = 3) -> dict[str, float]:
    con = connect(db, read_only=True)
    times = {}
    for view in VIEWS:
        runs = []
        for _ in range(repeats):
            started = time.monotonic()
            con.execute(f"SELECT * FROM {view}").df()
            runs.append(time.monotonic() - started)
        times[view] = statistics.median(runs)
    con.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/emessi-bench/db"))
    parser.add_argument("--runs", type=int, default=3, help="loads of each set, each into a new database (median)")
    parser.add_argument("--load-only", action="store_true", help="time the loads, not the views")
    parser.add_argument("--floor-only", action="store_true",
                        help="only the 100 recordings: the load, and DuckDB alone writing its rows")  # fmt: skip
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "files").mkdir(parents=True)

    # 1. Bulk load: 100 recordings × 1,000 observations × 10 words = 100k observations, 1M words.
    items = [synthetic(i, 1000, 10, 6, args.out / "files") for i in range(100)]
    cpu: list[float] = []
    runs = [load_all(args.out / f"load{k}.duckdb", items, cpu) for k in range(args.runs)]
    print(f"load: 100 recordings, 100,000 observations, 1,000,000 words in {statistics.median(runs):.2f} s "
          f"(median of {args.runs}: {', '.join(f'{s:.2f}' for s in runs)}; CPU s {', '.join(f'{s:.2f}' for s in cpu)}; "
          f"load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    del items
    cpu = []
    floor = [duckdb_floor(args.out / "load0.duckdb", args.out / f"floor{k}.duckdb", cpu) for k in range(args.runs)]
    print(f"floor: the same rows by DuckDB alone (prebuilt Arrow tables, a transaction per recording) in "
          f"{statistics.median(floor):.2f} s (median of {args.runs}: {', '.join(f'{s:.2f}' for s in floor)}; "
          f"CPU s {', '.join(f'{s:.2f}' for s in cpu)})")  # fmt: skip
    if args.floor_only:
        return

    # 2. An archive of 1,000 recordings (100 observations, 1,000 words each), coded.
    items = [synthetic(i, 100, 10, 6, args.out / "files") for i in range(1000)]
    cpu = []
    runs = [load_all(args.out / f"archive{k}.duckdb", items, cpu) for k in range(args.runs)]
    print(f"load: 1,000 recordings, 100,000 observations, 1,000,000 words in {statistics.median(runs):.2f} s "
          f"(median of {args.runs}: {', '.join(f'{s:.2f}' for s in runs)}; CPU s {', '.join(f'{s:.2f}' for s in cpu)})")  # fmt: skip
    if args.load_only:
        return
    code_everything(args.out / "archive0.duckdb")
    print("\n| view (1,000 recordings, coded) | seconds |\n|---|---:|")
    for view, s in time_views(args.out / "archive0.duckdb").items():
        print(f"| {view} | {s:.3f} |")


if __name__ == "__main__":
    main()
