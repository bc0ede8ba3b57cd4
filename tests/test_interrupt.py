"""Real kills (SIGKILL, SIGTERM, SIGINT) at several points of a batch, then a rerun: the database
must equal an uninterrupted run's, with no duplicate, half-loaded or missing recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from emessi_pipeline.cli import Exit

from .conftest import REPO, copy_to, shared

pytestmark = pytest.mark.slow


def _stable(db: Path) -> dict:
    """Everything a researcher would see, without times and run ids."""
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


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kill") / "recordings"
    for parts in (("picovoice_falcon_test", "test.wav"), ("faster_whisper_testdata", "jfk.flac"),
                  ("pyannote_sample", "sample.wav")):  # fmt: skip
        path = copy_to(shared(*parts), folder)
        os.utime(path, (time.time() - 60, time.time() - 60))
    return folder


def _command(recordings: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "emessi_pipeline", "ingest", str(recordings), "--db", str(run / "db.duckdb"),
            "-w", str(run / "work"), "--language", "en", "--json"]  # fmt: skip


@pytest.fixture(scope="module")
def reference(recordings, tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("reference")
    done = subprocess.run(_command(recordings, run), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == Exit.OK, done.stderr[-2000:]
    return _stable(run / "db.duckdb")


def _wait_for(run: Path, stage: str, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    folder = run / "work" / "artifacts" / stage
    while time.monotonic() < deadline:
        if len(list(folder.glob("*.json"))) >= count:
            return
        assert process.poll() is None, "the run ended before the kill point"
        time.sleep(0.02)
    raise AssertionError(f"no {stage} artifact within {timeout} s")


@pytest.mark.parametrize(
    "sig,stage,count",
    [
        (signal.SIGKILL, "transcribe", 1),  # mid-batch, between models
        (signal.SIGKILL, "segment", 2),  # right before the second load transaction
        (signal.SIGTERM, "diarize", 2),  # as a scheduler stops a job
        (signal.SIGINT, "transcribe", 3),  # Ctrl-C during the last recording
    ],
    ids=["kill-after-transcribe", "kill-at-load", "term-mid-run", "int-last-file"],
)
def test_killed_run_resumes_to_the_same_database(recordings, reference, tmp_path, sig, stage, count):
    process = subprocess.Popen(_command(recordings, tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for(tmp_path, stage, count, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == Exit.INTERRUPTED, stderr[-2000:]
        assert "interrupted" in stderr and "will resume" in stderr
    resumed = subprocess.run(_command(recordings, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert resumed.returncode in (Exit.OK, Exit.NOTHING_TO_DO), resumed.stderr[-2000:]
    assert _stable(tmp_path / "db.duckdb") == reference
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    statuses = [s for (s,) in con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()]
    con.close()
    assert statuses[-1] == "complete" and "running" not in statuses
