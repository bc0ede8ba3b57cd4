"""Beyond one process: shards of a batch as separate processes, the merge, the CUDA check, and
the blocks long recordings are transcribed in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emessi_pipeline.cli import Exit
from emessi_pipeline.runs.shard import Shard
from emessi_pipeline.stages.transcribe import block_bounds

from .conftest import REPO, copy_to, shared, stable_tables


def _emessi(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emessi_pipeline", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_shards_are_a_deterministic_partition():
    source = Path("/archive")
    paths = [source / f"G{g}" / f"S{s}.mp4" for g in range(1, 8) for s in range(1, 9)]
    shards = [Shard.parse(f"{i}/4") for i in range(1, 5)]
    parts = [shard.select(paths, source) for shard in shards]
    assert sorted(p for part in parts for p in part) == sorted(paths)  # each file in exactly one shard
    assert all(parts), "56 files over 4 shards left one empty"
    # A file added later moves no other file, and listing order does not matter.
    more = [*reversed(paths), source / "G9" / "S1.mp4"]
    assert [set(s.select(more, source)) - {source / "G9" / "S1.mp4"} for s in shards] == [set(p) for p in parts]
    for bad in ("0/4", "5/4", "3", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            Shard.parse(bad)


def test_transcription_blocks_cover_the_audio_and_cut_in_pauses():
    rate = 16_000
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, rate * 100).astype(np.float32)
    pauses = [37, 71]  # one quiet second inside each search window
    for second in pauses:
        audio[second * rate : (second + 1) * rate] = 0
    bounds = block_bounds(audio, rate, max_seconds=40, search_seconds=10)
    assert bounds[0][0] == 0 and bounds[-1][1] == audio.size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(end - start <= 40 * rate for start, end in bounds)
    cuts = [end / rate for _, end in bounds[:-1]]
    assert [int(c) for c in cuts] == pauses
    assert block_bounds(audio[: rate * 30], rate, 40) == [(0, rate * 30)]
    # blocks shorter than the 30-s search window are searched whole, still cut in the pauses
    short = block_bounds(audio[: rate * 50], rate, max_seconds=20)
    assert all(end - start <= 20 * rate for start, end in short) and short[-1][1] == rate * 50
    assert 37 in [int(end / rate) for _, end in short[:-1]]


@pytest.mark.slow
def test_shards_as_separate_processes_give_the_same_database_as_one_run(batch_recordings, batch_reference, tmp_path):
    recordings = batch_recordings  # batch_reference: one ordinary run over them, models one after the other
    common = ["--language", "en", "--json"]

    # Two shards at once on a shared workspace (overlapping models), then the merge.
    work = tmp_path / "w3"
    shards = [
        subprocess.Popen([sys.executable, "-m", "emessi_pipeline", "ingest", str(recordings), "-w", str(work),
                          "--db", str(tmp_path / "never.duckdb"), "--shard", f"{i}/2", *common],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for i in (1, 2)
    ]
    outputs = [(p.communicate(timeout=900), p.returncode) for p in shards]
    done = []
    for (stdout, stderr), code in outputs:
        assert code in (Exit.OK, Exit.NOTHING_TO_DO), stderr[-2000:]
        done += [r["path"] for r in json.loads(stdout)["results"]]
    assert sorted(done) == sorted(str(p) for p in recordings.iterdir())  # each file once
    assert not (tmp_path / "never.duckdb").exists()  # shards never write the database
    assert len(list((work / "shards").glob("shard-*-of-2.json"))) == 2

    merged = _emessi("load", str(recordings), "--db", str(tmp_path / "merged.duckdb"), "-w", str(work),
                     "--cached-only", *common)  # fmt: skip
    assert merged.returncode == Exit.OK, merged.stderr[-2000:]
    summary = json.loads(merged.stdout)
    assert summary["stage_seconds"].keys() <= {"align", "segment", "load"}  # no model ran
    assert stable_tables(tmp_path / "merged.duckdb") == batch_reference


def test_cached_only_names_what_is_missing(tmp_path):
    recordings = tmp_path / "recordings"
    path = copy_to(shared("faster_whisper_testdata", "jfk.flac"), recordings)
    os.utime(path, (time.time() - 60, time.time() - 60))
    result = _emessi("load", str(recordings), "--db", str(tmp_path / "db.duckdb"), "-w", str(tmp_path / "w"),
                     "--cached-only", "--json")  # fmt: skip
    assert result.returncode == Exit.NOTHING_DONE
    failed = json.loads(result.stdout)["results"][0]
    assert failed["status"] == "failed" and "no cached extract result" in failed["message"]
    assert "jfk.flac" in failed["message"]


def test_device_cuda_without_cuda_fails_before_any_work(tmp_path):
    """This machine has no GPU and a CPU build of torch: the run must stop at once and say why."""
    recordings = copy_to(shared("faster_whisper_testdata", "jfk.flac"), tmp_path / "recordings").parent
    for args in (["--device", "cuda"], ["--profile", "workstation"]):
        result = _emessi("ingest", str(recordings), "--db", str(tmp_path / "db.duckdb"), "-w", str(tmp_path / "w"),
                         *args, timeout=120)  # fmt: skip
        assert result.returncode == Exit.NOTHING_DONE, result.stderr[-2000:]
        message = " ".join(result.stderr.split())
        assert "CUDA" in message and "libcublas.so.12" in message and "CPU-only build" in message
        assert "--device cpu" in message
        assert not (tmp_path / "w").exists() and not (tmp_path / "db.duckdb").exists()
