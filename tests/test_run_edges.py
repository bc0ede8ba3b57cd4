"""Edges of long-running use, through the command line: an interrupt while the background
diarisation runs, environment faults that must not mark recordings failed, and a database that
researchers can use while a nightly ingest runs."""

from __future__ import annotations

import json
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

# Runs the CLI, then names the emessi stage threads still executing once it has returned: one
# left running would be shut down under native (torch) code. Read from the interpreter's frames,
# not threading.enumerate(): a Ctrl-C that interrupts Thread.join() marks a running thread as
# stopped (CPython 3.11). A thread that is winding down gets a few seconds to be gone; one that
# was never stopped runs for minutes.
WITH_THREADS = (
    "import sys, threading, time\nfrom emessi_pipeline.cli import app\n"
    "try:\n    app(sys.argv[1:])\nexcept SystemExit as done:\n    code = done.code\n"
    "def stage_threads():\n"
    "    found = []\n"
    "    for ident, frame in sys._current_frames().items():\n"
    "        while frame is not None and ident != threading.main_thread().ident:\n"
    "            if frame.f_code.co_filename.endswith('parallel.py'):\n"
    "                found.append(ident)\n                break\n"
    "            frame = frame.f_back\n"
    "    return found\n"
    "deadline = time.monotonic() + 5\n"
    "while stage_threads() and time.monotonic() < deadline:\n    time.sleep(0.1)\n"
    "print('THREADS', len(stage_threads()), file=sys.stderr)\nsys.exit(code)\n"
)


def _aged(path: Path) -> Path:
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def _emessi(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emessi_pipeline", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})  # fmt: skip


def _wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert process.poll() is None, f"the run ended before {what}: {process.stderr.read()[-2000:]}"
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def _slow_diarisation_profile(folder: Path) -> Path:
    """The default profile with a ten times finer segmentation step and single-chunk batches:
    diarisation then takes several times as long as transcription, so the run spends a long,
    observable while waiting for it after the transcript is written."""
    text = (REPO / "configs" / "default.yaml").read_text()
    for old, new in (("name: default", "name: slow-diarisation"), ("segmentation_step: 0.1", "segmentation_step: 0.01"),
                     ("  batch_size: 32", "  batch_size: 1")):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    path = folder / "slow-diarisation.yaml"
    path.write_text(text)
    return path


def test_ctrl_c_while_waiting_for_diarisation_stops_its_thread_and_exits_130(tmp_path):
    recordings = tmp_path / "recordings"
    _aged(copy_to(shared("pyannote_sample", "sample.wav"), recordings))
    work = tmp_path / "work"
    args = ["ingest", str(recordings), "--db", str(tmp_path / "db.duckdb"), "-w", str(work), "--language", "en",
            "--profile", str(_slow_diarisation_profile(tmp_path)), "--json"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", WITH_THREADS, *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    artifacts = work / "artifacts"
    _wait_until(lambda: any((artifacts / "transcribe").glob("*.json")), process, "the transcript")
    assert not any((artifacts / "diarize").glob("*.json")), "diarisation finished before transcription"
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=120)
    waited = time.monotonic() - sent
    assert process.returncode == Exit.INTERRUPTED, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    threads = stderr.split("THREADS", 1)[1].split()[0]
    assert threads == "0", f"{threads} stage thread(s) still running after the command returned"
    # The interrupt reached the waiting main thread, not a diarisation that had just finished.
    assert not any((artifacts / "diarize").glob("*.json"))
    assert waited < 60, f"{waited:.0f} s from Ctrl-C to exit"
