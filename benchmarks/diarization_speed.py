"""Diarisation CPU time per model pair, back to back on the same audio (ratios, not seconds).

Each pair diarises the same excerpt with the count given, one torch thread, after one warm-up
run on 10 s; CPU seconds (process time) are reported, which a busy machine inflates less than
wall time, and each pair's time as a ratio to the first pair's.

    nice -n 19 .venv/bin/python benchmarks/diarization_speed.py /tmp/emessi-sim/sim06.wav --seconds 120 \\
        --pair pyannote-segmentation-v2+resemblyzer-ge2e --pair pyannote-segmentation-v2+campplus
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emessi_pipeline.config import load_profile  # noqa: E402
from emessi_pipeline.stages import audio  # noqa: E402
from emessi_pipeline.stages.diarize import Diarizer, SpeakerCount  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wav", type=Path, help="16 kHz mono 16-bit WAV")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--pair", action="append", required=True, help="segmentation+embedding (repeatable)")
    args = parser.parse_args()
    wave = audio.read_wav(args.wav)[0][: int(args.seconds * 16_000)]
    base = load_profile("default").diarization
    first = None
    for pair in args.pair:
        segmentation, embedding = pair.split("+")
        diarizer = Diarizer(base.model_copy(update={"segmentation": segmentation, "embedding": embedding, "threads": 1}))
        diarizer(wave[: 10 * 16_000], 16_000, "warm-up", SpeakerCount(num_speakers=2))
        cpu, wall = time.process_time(), time.time()
        diarizer(wave, 16_000, "speed", SpeakerCount(num_speakers=args.speakers))
        cpu, wall = time.process_time() - cpu, time.time() - wall
        first = first or cpu
        print(f"{pair}: {cpu:.1f} CPU s, {wall:.1f} wall s for {len(wave) / 16_000:.0f} s of audio "
              f"(CPU per audio s {cpu / (len(wave) / 16_000):.3f}; ratio to the first pair {cpu / first:.2f})", flush=True)


if __name__ == "__main__":
    main()
