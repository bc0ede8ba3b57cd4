"""Same input, same settings, same versions → the same dataset, table by table.

Whisper samples when a window decodes badly, and which windows do depends on the processor
(CTranslate2's kernels differ between CPU types: the Finnish demo loops at temperature 0 on some
and not on others). So the compared runs decode at the first fallback temperature alone: every
window samples on every processor, and the test holds on none by luck. The second run has another
history before the compared recording (its model has already sampled on another file), as a
nightly batch or a shard would."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb
import pytest

from emessi_pipeline import Ingestor, load_profile
from emessi_pipeline.runs import ModelCache
from emessi_pipeline.stages.records import Transcript

from .conftest import ffmpeg, shared

# Columns that say when or in which run something happened, not what the data is.
VOLATILE = {"run_id", "last_seen_at", "first_loaded_at", "last_loaded_at", "created_at", "started_at", "finished_at"}


def every_table(db: Path) -> dict[str, list]:
    """Every row of every table, sorted, without the run bookkeeping and its times."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                                            "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()]  # fmt: skip
        out = {}
        for table in tables:
            if table in ("runs", "schema_info"):
                continue
            columns = [c for (c, kind) in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table]).fetchall() if c not in VOLATILE and not kind.startswith("TIMESTAMP")]  # fmt: skip
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = con.execute(f'SELECT {quoted} FROM "{table}"').fetchall()
            out[table] = sorted(map(repr, rows))
        return out
    finally:
        con.close()


def sampling_profile():
    """The default profile, decoding at its first fallback temperature alone: every window samples."""
    profile = load_profile("default")
    first_fallback = min(t for t in profile.asr.temperature if t > 0)
    return profile.model_copy(update={"asr": profile.asr.model_copy(update={"temperature": (first_fallback,)})})


def _ingest(folder: Path, root: Path, warm_up: Path | None = None) -> Path:
    ingestor = Ingestor(sampling_profile(), workspace=root / "work", database_path=root / "db.duckdb",
                        model_cache=ModelCache())  # fmt: skip
    if warm_up is not None:  # another file first, on the same models, into another database
        other = Ingestor(ingestor.profile, workspace=root / "warm-work", database_path=root / "warm.duckdb",
                         model_cache=ingestor.model_cache)  # fmt: skip
        assert not other.run(warm_up).failed
    summary = ingestor.run(folder)
    assert not summary.failed and {r.status for r in summary.results} == {"done"}
    return root / "db.duckdb"


@pytest.mark.slow
def test_two_ingests_in_fresh_workspaces_give_the_same_tables(demo_dir, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    source = demo_dir / "recordings" / "G1_S3_vertaismentorointi.mp4"
    shutil.copy(source, folder / source.name)
    os.utime(folder / source.name, (time.time() - 60, time.time() - 60))
    warm_up = tmp_path / "warm-up"
    warm_up.mkdir()
    # A short warm-up: the first 2.5 s of jfk ("And so my fellow..."), decoded as Finnish.
    ffmpeg("-i", str(shared("faster_whisper_testdata", "jfk.flac")), "-t", "2.5", str(warm_up / "jfk.wav"))
    os.utime(warm_up / "jfk.wav", (time.time() - 60, time.time() - 60))

    first = _ingest(folder, tmp_path / "a")
    second = _ingest(folder, tmp_path / "b", warm_up=warm_up)

    # Every segment was sampled, in both the warm-up and the compared recordings.
    for work in (tmp_path / "a" / "work", tmp_path / "b" / "work", tmp_path / "b" / "warm-work"):
        transcripts = [Transcript.model_validate_json(p.read_bytes())
                       for p in work.rglob("*.json") if p.parent.name == "transcribe"]  # fmt: skip
        segments = [s for t in transcripts for s in t.segments]
        assert segments and all(s.temperature > 0 for s in segments), work

    a, b = every_table(first), every_table(second)
    assert a.keys() == b.keys() and a["observations"] and a["words"]
    for table in a:
        assert a[table] == b[table], f"{table} differs between two runs of the same input"

    # The run records what it ran on, so a difference on another machine can be told apart.
    con = duckdb.connect(str(first), read_only=True)
    try:
        (environment,) = con.execute("SELECT environment FROM runs").fetchone()
    finally:
        con.close()
    assert '"ctranslate2"' in environment and '"cpu"' in environment and '"model"' in environment
