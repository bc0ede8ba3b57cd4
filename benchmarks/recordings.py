"""Benchmark recordings built from shipped material, so anyone can rebuild the same files.

* ``meeting-10min``: a 10-minute Finnish meeting voiced by espeak-ng: the demo script's turns
  cycled in a fixed shuffled order over six voices (speaker changes every few seconds, as in a
  lively group), written as WAV with an RTTM timeline.
* ``meeting-2h``: the 10-minute meeting twelve times over (2 hours), for memory.

    .venv/bin/python benchmarks/recordings.py --out /tmp/emessi-bench/recordings
"""

from __future__ import annotations

import argparse
import random
import subprocess
from pathlib import Path

from emessi_pipeline.runs.demo import load_script, synthesize

VOICES = {
    "leader": {"voice": "fi+m3", "pitch": 35, "speed": 150},
    "facilitator": {"voice": "fi+f3", "pitch": 70, "speed": 160},
    "aino": {"voice": "fi+f5", "pitch": 90, "speed": 145},
    "mikko": {"voice": "fi+m1", "pitch": 20, "speed": 140},
    "liisa": {"voice": "fi+f2", "pitch": 55, "speed": 170},
    "pekka": {"voice": "fi+m5", "pitch": 45, "speed": 130},
}


def meeting_script(minutes: float, seed: int = 5) -> dict:
    """About *minutes* of turns: every demo sentence, each time by a different speaker."""
    sentences = [text for _, text in load_script()["turns"]]
    rng = random.Random(seed)
    names = list(VOICES)
    turns, seconds, previous = [], 0.0, None
    while seconds < minutes * 60:
        text = rng.choice(sentences)
        speaker = rng.choice([n for n in names if n != previous])
        turns.append([speaker, text])
        previous = speaker
        seconds += len(text) / 14 + 0.6  # espeak-ng reads about 14 characters a second here
    return {"speakers": VOICES, "turns": turns}


def build(out: Path, minutes: float = 10.0, hours_long: float = 2.0) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    ten = out / "meeting-10min.wav"
    if not ten.is_file():
        wav, _ = synthesize(meeting_script(minutes), out, name="meeting-10min")
        trimmed = out / ".meeting-10min.wav"
        # exactly the requested length at 16 kHz, as extraction would give it
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-t", str(minutes * 60),
                        "-ar", "16000", "-ac", "1", str(trimmed)], check=True)  # fmt: skip
        trimmed.replace(ten)
    long = out / "meeting-2h.wav"
    if not long.is_file():
        loops = int(round(hours_long * 60 / minutes))
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1),
                        "-i", str(ten), "-c", "copy", str(long)], check=True)  # fmt: skip
    return {"10min": ten, "2h": long}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/emessi-bench/recordings"))
    for name, path in build(parser.parse_args().out).items():
        print(name, path)


if __name__ == "__main__":
    main()
