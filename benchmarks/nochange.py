"""How long a nightly run takes when nothing changed, over N recordings.

Makes N distinct short recordings (3 s cuts of the pyannote sample, each at its own offset and
gain, so each has its own content hash), ingests them once, then times the no-change rerun:
the `emessi ingest` command as a cron job would start it, and the ingest call inside it.

    .venv/bin/python benchmarks/nochange.py --count 100 --out /tmp/nochange
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pyannote_sample" / "sample.wav"


def make_recordings(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        out = folder / f"rec{i:03d}.wav"
        if out.exists():
            continue
        offset = (i * 0.27) % 26
        gain = 0.5 + (i % 10) / 20
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-ss", f"{offset:.2f}", "-t", "3",
                        "-i", str(SAMPLE), "-af", f"volume={gain}", str(out)], check=True)  # fmt: skip
        old = time.time() - 3600
        os.utime(out, (old, old))


def ingest(folder: Path, out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "emessi_pipeline", "ingest", str(folder), "--db", str(out / "bench.duckdb"),
           "-w", str(out / "work"), "--language", "en", "--num-speakers", "2", "--json"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode not in (0, 4):
        raise SystemExit(done.stderr[-2000:])
    return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("/tmp/emessi-nochange"))
    args = parser.parse_args()
    recordings = args.out / "recordings"
    make_recordings(recordings, args.count)
    first_wall, first = ingest(recordings, args.out)
    runs = [ingest(recordings, args.out) for _ in range(3)]
    walls = sorted(w for w, _ in runs)
    inner = sorted(s["wall_seconds"] for _, s in runs)
    report = {
        "recordings": args.count,
        "first_run_seconds": round(first_wall, 1),
        "first_run_done": first["done"],
        "nochange_command_seconds_median": round(walls[1], 2),
        "nochange_ingest_seconds_median": round(inner[1], 2),
        "nochange_statuses": sorted({r["status"] for r in runs[-1][1]["results"]}),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
