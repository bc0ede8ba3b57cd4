"""Real kills (SIGKILL, SIGTERM, SIGINT) at several points of a batch, each run resumed by the
next: the database must equal an uninterrupted run's, with no duplicate, half-loaded or missing
recording, and after each stop it holds only whole recordings."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from emessi_pipeline.cli import Exit

from .conftest import REPO, stable_tables

pytestmark = pytest.mark.slow

# Each stop lands later in the same batch than the one before, so one batch is interrupted the
# four ways a run really stops (a resumed run being stopped again, as happens at night), and
# the models run once over it rather than once for each way.
STOPS = [
    (signal.SIGKILL, "transcribe", 1),  # mid-batch, between models
    (signal.SIGTERM, "diarize", 2),  # as a scheduler stops a job
    (signal.SIGINT, "extract", 3),  # Ctrl-C while the last recording is transcribed
    (signal.SIGKILL, "segment", 3),  # right before (or inside) the last load transaction
]


def _command(recordings: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "emessi_pipeline", "ingest", str(recordings), "--db", str(run / "db.duckdb"),
            "-w", str(run / "work"), "--language", "en", "--json"]  # fmt: skip


def _artifacts(run: Path, stage: str) -> int:
    return len(list((run / "work" / "artifacts" / stage).glob("*.json")))


def _wait_for(run: Path, stage: str, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _artifacts(run, stage) >= count:
            return
        assert process.poll() is None, f"the run ended before {stage} {count}"
        time.sleep(0.02)
    raise AssertionError(f"no {stage} artifact {count} within {timeout} s")


def _only_whole_recordings(db: Path, reference: dict) -> None:
    """What an interrupted run left is a part of the reference, whole recording by whole recording."""
    if not db.exists():
        return
    now = stable_tables(db)
    sets = {s for s, *_ in now["sets"]}
    assert set(now["recordings"]) <= set(reference["recordings"])
    assert now["sets"] == [row for row in reference["sets"] if row[0] in sets]
    assert now["words"] == [row for row in reference["words"] if row[0] in sets]
    assert now["turns"] == [row for row in reference["turns"] if row[0] in sets]
    assert len(now["observations"]) == sum(count for s, _, count, _ in reference["sets"] if s in sets)
    assert set(now["observations"]) <= set(reference["observations"])


def test_a_batch_stopped_four_ways_resumes_to_the_same_database(batch_recordings, batch_reference, tmp_path):
    for sig, stage, count in STOPS:
        assert _artifacts(tmp_path, stage) < count, f"the run before went past {stage} {count}"
        process = subprocess.Popen(_command(batch_recordings, tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        _wait_for(tmp_path, stage, count, process)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=120)
        if sig == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:
            assert process.returncode == Exit.INTERRUPTED, (sig, stage, stderr[-2000:])
            assert "interrupted" in stderr and "will resume" in stderr
        _only_whole_recordings(tmp_path / "db.duckdb", batch_reference)

    resumed = subprocess.run(_command(batch_recordings, tmp_path), cwd=REPO, capture_output=True, text=True,
                             timeout=900)  # fmt: skip
    assert resumed.returncode in (Exit.OK, Exit.NOTHING_TO_DO), resumed.stderr[-2000:]
    assert stable_tables(tmp_path / "db.duckdb") == batch_reference
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    statuses = [s for (s,) in con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()]
    con.close()
    assert statuses[-1] == "complete" and "running" not in statuses
    assert statuses.count("killed") == 2 and statuses.count("interrupted") == 2, statuses
