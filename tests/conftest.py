"""Shared fixtures: real models, loaded once per test session, and the shared recordings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from emessi_pipeline import Ingestor, load_profile
from emessi_pipeline.config import CONFIG_DIR
from emessi_pipeline.runs.demo import build_demo
from emessi_pipeline.runs import ModelCache

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):  # CI always has ../shared: a miss there is a broken setup
            pytest.fail(f"shared test data missing: {path}")
        pytest.skip(f"shared test data missing: {path}")
    return path


@pytest.fixture(scope="session")
def model_cache() -> ModelCache:
    return ModelCache()


@pytest.fixture(scope="session")
def make_ingestor(model_cache, tmp_path_factory):
    """Ingestor factory sharing loaded models; each call gets its own workspace unless given."""

    def make(workspace: Path | None = None, db: Path | None = None, overrides: dict | None = None, **kwargs):
        root = tmp_path_factory.mktemp("ingest")
        return Ingestor(
            load_profile("default", overrides),
            workspace=workspace or root / "work",
            database_path=db or root / "test.duckdb",
            model_cache=model_cache,
            **kwargs,
        )

    return make


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo meeting: a Finnish 4-voice video with its reference timeline and text."""
    return build_demo(tmp_path_factory.mktemp("demo")).parent


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def copy_to(src: Path, folder: Path, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or src.name)
    shutil.copy(src, target)
    return target


def stable_tables(db: Path) -> dict:
    """Everything a researcher would see of a batch's database, without times and run ids."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            "recordings": con.execute(
                "SELECT recording_id, name, current_set_id, duration_s FROM recordings ORDER BY 1").fetchall(),
            "sets": con.execute(
                "SELECT set_id, recording_id, observation_count, word_count FROM observation_sets ORDER BY 1").fetchall(),
            "observations": con.execute(
                "SELECT observation_id, seq, speaker_label, start_s, end_s, text FROM observations ORDER BY 1").fetchall(),
            "words": con.execute("SELECT set_id, count(*) FROM words GROUP BY 1 ORDER BY 1").fetchall(),
            "turns": con.execute("SELECT set_id, kind, count(*) FROM speaker_turns GROUP BY 1, 2 ORDER BY 1, 2").fetchall(),
        }
    finally:
        con.close()


@pytest.fixture(scope="session")
def batch_recordings(tmp_path_factory) -> Path:
    """Three short English recordings: the batch the kill-and-resume and shard tests run."""
    folder = tmp_path_factory.mktemp("batch") / "recordings"
    for parts in (("picovoice_falcon_test", "test.wav"), ("faster_whisper_testdata", "jfk.flac"),
                  ("pyannote_sample", "sample.wav")):  # fmt: skip
        path = copy_to(shared(*parts), folder)
        os.utime(path, (time.time() - 60, time.time() - 60))
    return folder


@pytest.fixture(scope="session")
def batch_reference(batch_recordings, tmp_path_factory) -> dict:
    """One uninterrupted run over the batch in a process of its own, transcription and
    diarisation one after the other: what an interrupted, resumed or sharded run (which overlap
    the two) must give, table by table."""
    run = tmp_path_factory.mktemp("batch-reference")
    sequential = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text()) | {"overlap_models": False}
    (run / "sequential.yaml").write_text(yaml.safe_dump(sequential))
    done = subprocess.run(
        [sys.executable, "-m", "emessi_pipeline", "ingest", str(batch_recordings), "--db", str(run / "db.duckdb"),
         "-w", str(run / "work"), "--profile", str(run / "sequential.yaml"), "--language", "en", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return stable_tables(run / "db.duckdb")
