"""emessi against the reference script, side by side, on the same recording and machine.

For each run: wall time, real-time factor (wall / audio duration), per-stage times, peak RSS
(the child's own, from wait4), and emessi/reference. Every emessi run starts from an empty
workspace and database, so nothing is cached. Prints a Markdown table of medians and writes
all runs as JSON.

    .venv/bin/python benchmarks/speed.py --recording 10min --runs 3 --out /tmp/emessi-bench
    .venv/bin/python benchmarks/speed.py --recording 2h --runs 1 --out /tmp/emessi-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from recordings import build  # noqa: E402


def measured(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MB) and stdout of one child process."""
    started = time.monotonic()
    with open(os.devnull, "w") as quiet:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=quiet, text=True, cwd=HERE.parent)
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise RuntimeError(f"{cmd[:4]} failed with {os.waitstatus_to_exitcode(status)}")
    return time.monotonic() - started, usage.ru_maxrss // 1024, stdout


def run_reference(recording: Path, out: Path, speakers: int, library_threads: bool) -> dict:
    cmd = [sys.executable, str(HERE / "reference.py"), str(recording), str(out / "reference.json"),
           "--num-speakers", str(speakers)] + (["--library-threads"] if library_threads else [])  # fmt: skip
    wall, rss, stdout = measured(cmd)
    data = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": wall, "rss_mb": rss, "stages": data["stage_seconds"], "duration": data["duration_s"]}


def run_emessi(recording: Path, out: Path, speakers: int) -> dict:
    work, db = out / "emessi-work", out / "emessi.duckdb"
    shutil.rmtree(work, ignore_errors=True)
    for path in out.glob("emessi.duckdb*"):
        path.unlink()
    folder = out / "emessi-input"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / recording.name).symlink_to(recording)
    cmd = [sys.executable, "-m", "emessi_pipeline", "ingest", str(folder), "--db", str(db), "-w", str(work),
           "--num-speakers", str(speakers), "--settle-seconds", "0", "--json"]  # fmt: skip
    wall, rss, stdout = measured(cmd)
    data = json.loads(stdout)
    return {"wall": wall, "rss_mb": rss, "stages": data["stage_seconds"], "duration": data["audio_seconds"],
            "model_wall": data["model_wall_seconds"], "own": wall - data["model_wall_seconds"],
            "inner_wall": data["wall_seconds"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", choices=["10min", "2h"], default="10min")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/emessi-bench"))
    parser.add_argument("--skip-library-defaults", action="store_true")
    args = parser.parse_args()
    recording = build(args.out / "recordings")[args.recording]
    variants = {"reference (same threads)": lambda: run_reference(recording, args.out, args.speakers, False)}
    if not args.skip_library_defaults:
        variants["reference (library threads)"] = lambda: run_reference(recording, args.out, args.speakers, True)
    variants["emessi ingest"] = lambda: run_emessi(recording, args.out, args.speakers)
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for i in range(args.runs):
        for name, run in variants.items():  # interleaved, so drift hits every variant alike
            runs[name].append(run())
            print(f"run {i + 1} {name}: {runs[name][-1]['wall']:.1f} s", file=sys.stderr, flush=True)
    report(runs, args, recording)


def report(runs: dict[str, list[dict]], args, recording: Path) -> None:
    med = lambda rows, f: statistics.median(f(r) for r in rows)  # noqa: E731
    base = med(runs["reference (same threads)"], lambda r: r["wall"])
    print(f"\n{recording.name}: {runs['emessi ingest'][0]['duration']:.0f} s of audio, median of {args.runs} runs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")  # fmt: skip
    print("| | wall s | RTF | transcribe s | diarize s | startup s | own work s | peak RSS MB | ÷ reference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in runs.items():
        wall = med(rows, lambda r: r["wall"])
        duration = rows[0]["duration"]
        # startup: interpreter and imports (emessi: before its run starts; the reference: not split)
        startup = med(rows, lambda r: r["wall"] - r["inner_wall"]) if "inner_wall" in rows[0] else None
        own = med(rows, lambda r: r["inner_wall"] - r["model_wall"] if "inner_wall" in r
                  else r["wall"] - r["stages"]["transcribe"] - r["stages"]["diarize"])  # fmt: skip
        print(f"| {name} | {wall:.1f} | {wall / duration:.3f} | {med(rows, lambda r: r['stages']['transcribe']):.1f} | "
              f"{med(rows, lambda r: r['stages']['diarize']):.1f} | {'' if startup is None else f'{startup:.1f}'} | "
              f"{own:.1f} ({own / wall:.1%}) | "
              f"{med(rows, lambda r: r['rss_mb']):.0f} | {wall / base:.2f} |")  # fmt: skip
    (args.out / f"speed-{args.recording}.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
