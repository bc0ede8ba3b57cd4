"""The idle core on the 2-hour meeting: one Whisper decoder (as before) against a second decoder
that takes blocks once diarisation is done, alternating, each run in an empty workspace.

"before" is the default profile with `asr.blocks_from_seed: false` (one generator through the
blocks, one decoder: the code path and cache keys of before 1 December 2026); "after" is the
default profile (without the memory watcher since the tenth round of BENCHMARKS.md); "watcher"
is the default with `release_memory_growth_mb: 256` (freed memory also handed back as it piles
up, the ninth round); run it with `--only watcher`. Per run: wall, the stage times, CPU seconds
(user + system, and system alone), minor page faults and peak RSS of the child (wait4). Prints
the medians, the ratio of the median walls, and whether every run of "after" and "watcher"
stayed under the memory target; writes every run as JSON as it ends.

    .venv/bin/python benchmarks/idle_core.py --runs 3 --out /tmp/emessi-bench
    .venv/bin/python benchmarks/idle_core.py --runs 1 --only after   # memory and wall of main alone
    .venv/bin/python benchmarks/idle_core.py --runs 1 --only watcher   # the same with the memory watcher
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from recordings import build  # noqa: E402

MEMORY_TARGET_GB = 2.5  # GB here: /usr/bin/time's kbytes / 10^6, as everywhere in BENCHMARKS.md


def profile_file(out: Path, variant: str) -> Path:
    """The default profile as *variant* ("before", "after", "watcher"), written for the run."""
    data = yaml.safe_load((HERE.parent / "configs" / "default.yaml").read_text())
    data["asr"]["blocks_from_seed"] = variant != "before"
    if variant == "watcher":
        data["release_memory_growth_mb"] = 256
    path = out / f"profile-{variant}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(recording: Path, out: Path, variant: str) -> dict:
    work, folder, db = out / f"idle-{variant}-work", out / f"idle-{variant}-input", out / f"idle-{variant}.duckdb"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    for path in out.glob(f"idle-{variant}.duckdb*"):
        path.unlink()
    folder.mkdir(parents=True)
    (folder / recording.name).symlink_to(recording)
    cmd = [sys.executable, "-m", "emessi_pipeline", "ingest", str(folder), "--db", str(db), "-w", str(work),
           "-p", str(profile_file(out, variant)), "--settle-seconds", "0", "--json"]  # fmt: skip
    started = time.monotonic()
    with open(os.devnull, "w") as quiet:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=quiet, text=True, cwd=HERE.parent)
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{variant}: emessi ingest failed with {os.waitstatus_to_exitcode(status)}")
    data = json.loads(stdout)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "system": usage.ru_stime,
            "minor_faults": usage.ru_minflt, "rss_gb": usage.ru_maxrss / 1e6,
            "transcribe": data["stage_seconds"]["transcribe"], "diarize": data["stage_seconds"]["diarize"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["before", "after", "watcher"], help="run one variant alone")
    parser.add_argument("--out", type=Path, default=Path("/tmp/emessi-bench"))
    args = parser.parse_args()
    recording = build(args.out / "recordings")["2h"]
    variants = [args.only] if args.only else ["before", "after"]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for i in range(args.runs):
        for variant in variants:  # alternating, so drift in the machine's speed hits both alike
            runs[variant].append(run(recording, args.out, variant))
            r = runs[variant][-1]
            print(f"run {i + 1} {variant}: {r['wall']:.0f} s, peak {r['rss_gb']:.2f} GB, CPU {r['cpu']:.0f} s "
                  f"(system {r['system']:.0f}), {r['minor_faults'] / 1e6:.1f} M faults", file=sys.stderr, flush=True)  # fmt: skip
            (args.out / "idle-core.json").write_text(json.dumps(runs, indent=1))  # each run kept if stopped
    print(f"\n{recording.name}, count estimated, median of {args.runs} run(s) a side\n")
    print("| | wall s | diarise s | transcribe s | CPU s | system s | minor faults | peak RSS GB (highest) | walls |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    med = {}
    for variant, rows in runs.items():
        med[variant] = statistics.median(r["wall"] for r in rows)
        print(f"| {variant} | {med[variant]:,.0f} | {statistics.median(r['diarize'] for r in rows):,.0f} | "
              f"{statistics.median(r['transcribe'] for r in rows):,.0f} | {statistics.median(r['cpu'] for r in rows):,.0f} | "
              f"{statistics.median(r['system'] for r in rows):,.0f} | {statistics.median(r['minor_faults'] for r in rows):,.0f} | "
              f"{statistics.median(r['rss_gb'] for r in rows):.2f} ({max(r['rss_gb'] for r in rows):.2f}) | "
              f"{', '.join(format(r['wall'], ',.0f') for r in rows)} |")  # fmt: skip
    if len(med) == 2:
        print(f"\nafter ÷ before (median walls): {med['after'] / med['before']:.2f} (target ≤ 0.85)")
    for variant in ("after", "watcher"):
        if variant in runs:
            under = sum(r["rss_gb"] <= MEMORY_TARGET_GB for r in runs[variant])
            print(f"{variant}: peak RSS ≤ {MEMORY_TARGET_GB} GB in {under} of {len(runs[variant])} runs")


if __name__ == "__main__":
    main()
