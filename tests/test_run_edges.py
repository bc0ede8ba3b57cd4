"""Edges of long-running use, through the command line: an interrupt while the background
diarisation runs, environment faults that must not mark recordings failed, and a database that
researchers can use while a nightly ingest runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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


def _db_rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_full_disk_stops_the_run_and_the_recording_is_loaded_once_there_is_room(tmp_path):
    """The workspace on a small real filesystem (tmpfs): the run stops (exit 3, one line) at the
    good recording without marking it failed; a bad file in the same run is still marked failed;
    once the filesystem has room, the next run loads the good one and skips the bad one."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "a rikki.mp4").write_text("minutes of the meeting, not a video\n")
    _aged(recordings / "a rikki.mp4")
    _aged(copy_to(shared("faster_whisper_testdata", "jfk.flac"), recordings, "kokous.flac"))
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    db = tmp_path / "db.duckdb"
    args = ["ingest", str(recordings), "--db", str(db), "-w", str(small / "work"), "--language", "en", "--json"]
    try:
        full = _emessi(*args, timeout=300)
        assert full.returncode == Exit.NOTHING_DONE, full.stderr[-2000:]
        assert "Traceback" not in full.stderr
        (line,) = [ln for ln in full.stderr.splitlines() if ln.startswith("error:")]
        assert "kokous.flac" in line and "not enough free space" in line and "not marked failed" in line
        failures = _db_rows(db, "SELECT path, stage FROM failures")
        assert [(Path(p).name, s) for p, s in failures] == [("a rikki.mp4", "extract")]
        assert _db_rows(db, "SELECT status FROM runs") == [("stopped",)]

        subprocess.run(["mount", "-o", "remount,size=600m", str(small)], check=True)
        roomy = _emessi(*args, timeout=600)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert roomy.returncode == Exit.OK, roomy.stderr[-2000:]
    statuses = {Path(r["path"]).name: r["status"] for r in json.loads(roomy.stdout)["results"]}
    assert statuses == {"a rikki.mp4": "skipped", "kokous.flac": "done"}
    assert _db_rows(db, "SELECT name FROM recordings") == [("kokous",)]
    assert _db_rows(db, "SELECT count(*) FROM failures WHERE NOT resolved") == [(1,)]


HOLD = "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\nprint('open', flush=True)\ntime.sleep(600)\n"


def test_a_database_held_by_another_program_names_the_holder_and_exits_3(tmp_path):
    db = tmp_path / "held.duckdb"
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert _holds(holder.pid, db) and not _holds(os.getpid(), db)  # what the pause below relies on
        commands = {
            "query": ["--db-wait", "0.5", "query", "SELECT 1", "--db", str(db)],
            "participants add": ["participants", "add", "G1-P01", "--group", "G1", "--db", str(db)],
            "ingest": ["ingest", str(tmp_path), "--db", str(db), "-w", str(tmp_path / "w"), "--db-wait", "0.5"],
        }
        for name, args in commands.items():
            env = {"EMESSI_DB_WAIT": "0.5"} if name == "participants add" else None
            done = _emessi(*args, env=env)
            assert done.returncode == Exit.NOTHING_DONE, (name, done.stderr[-2000:])
            assert "Traceback" not in done.stderr, name
            (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
            assert f"held by pid {holder.pid} (" in line and "time.sleep(600)" in line and "waited 0.5 s" in line, line
    finally:
        holder.kill()
        holder.wait()


def _holds(pid: int, path: Path) -> bool:
    """Whether process *pid* has the database file or its write-ahead log open (the run's own
    ``.emessi-lock`` beside them stays open all run long and keeps only other runs out)."""
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed while we look
            targets.add(os.readlink(fd))
    path = path.resolve()
    return bool(targets & {str(path), f"{path}.wal"})


@contextlib.contextmanager
def _paused_between_loads(process: subprocess.Popen, db: Path) -> Iterator[None]:
    """Stops the run (SIGSTOP) at a moment it holds no connection to the database, and lets it
    go on afterwards: whatever runs inside the block runs while the ingest is mid-run, by
    construction rather than by racing its models."""
    deadline = time.monotonic() + 600
    while True:
        assert time.monotonic() < deadline, "the run never let go of the database"
        assert process.poll() is None, f"the run ended early: {process.stderr.read()[-2000:]}"
        if not _holds(process.pid, db):
            process.send_signal(signal.SIGSTOP)
            if not _holds(process.pid, db):  # it may have opened it between the look and the stop
                break
            process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files from /proc")
def test_researchers_query_and_edit_the_dataset_while_an_ingest_runs(tmp_path):
    """Between two recordings' loads the database is free: a query sees the first recording and
    a participant is added while the run computes the second; the run then loads the second."""
    recordings = tmp_path / "recordings"
    _aged(copy_to(shared("faster_whisper_testdata", "jfk.flac"), recordings, "1 jfk.flac"))
    _aged(copy_to(shared("pyannote_sample", "sample.wav"), recordings, "2 sample.wav"))
    db, work = tmp_path / "db.duckdb", tmp_path / "work"
    process = subprocess.Popen(
        [sys.executable, "-m", "emessi_pipeline", "ingest", str(recordings), "--db", str(db), "-w", str(work),
         "--language", "en", "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        # The second recording's audio is extracted only after the first one's load has committed.
        _wait_until(lambda: len(list((work / "artifacts" / "extract").glob("*.wav"))) >= 2, process,
                    "the second recording's audio")  # fmt: skip
        with _paused_between_loads(process, db):
            query = _emessi("query", "SELECT name FROM recordings", "--db", str(db), "--format", "csv")
            assert query.returncode == Exit.OK, query.stderr[-2000:]
            assert query.stdout.splitlines() == ["name", "1 jfk"]
            added = _emessi("participants", "add", "G1-P01", "--group", "G1", "--db", str(db))
            assert added.returncode == Exit.OK, added.stderr[-2000:]
            assert process.poll() is None  # stopped, not finished: the run is still mid-way
        stdout, stderr = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()
    assert process.returncode == Exit.OK, stderr[-2000:]
    assert [r["status"] for r in json.loads(stdout)["results"]] == ["done", "done"]
    assert _db_rows(db, "SELECT name FROM recordings ORDER BY 1") == [("1 jfk",), ("2 sample",)]
    assert _db_rows(db, "SELECT participant_id FROM participants") == [("G1-P01",)]
