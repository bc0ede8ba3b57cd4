"""Same input, same settings, same versions → the same dataset, table by table.

Whisper's temperature fallback samples; the recordings here are chosen so that it does (the
Finnish demo, whose loop at temperature 0 is re-decoded at 0.2, and, before it in the second
run only, English speech decoded as Finnish), so the second run has another history before the
compared recording (its model has already sampled on another file), as a nightly batch or a
shard would."""

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


def _ingest(folder: Path, root: Path, warm_up: Path | None = None) -> Path:
    ingestor = Ingestor(load_profile("default"), workspace=root / "work", database_path=root / "db.duckdb",
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
    # The first 2.5 s of jfk ("And so my fellow...") decoded as Finnish fails every temperature
    # below 1.0 as the whole clip does, so it samples, at a fifth of the whole clip's decoding CPU.
    ffmpeg("-i", str(shared("faster_whisper_testdata", "jfk.flac")), "-t", "2.5", str(warm_up / "jfk.wav"))
    os.utime(warm_up / "jfk.wav", (time.time() - 60, time.time() - 60))

    first = _ingest(folder, tmp_path / "a")
    second = _ingest(folder, tmp_path / "b", warm_up=warm_up)

    # The fallback really sampled, in both the warm-up and the compared recordings.
    transcripts = [Transcript.model_validate_json(p.read_bytes())
                   for p in (tmp_path / "a" / "work").rglob("*.json") if p.parent.name == "transcribe"]  # fmt: skip
    assert transcripts and any(s.temperature > 0 for t in transcripts for s in t.segments)
    warm = [Transcript.model_validate_json(p.read_bytes())
            for p in (tmp_path / "b" / "warm-work").rglob("*.json") if p.parent.name == "transcribe"]  # fmt: skip
    assert any(s.temperature > 0 for t in warm for s in t.segments)

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
