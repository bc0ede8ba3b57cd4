"""A scripted Finnish meeting voiced by espeak-ng, muxed into a video: the demo and a test fixture.

Synthetic speech shows that the chain works end to end on Finnish with several voices and a
known truth; it says little about accuracy on real meeting audio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

RATE = 22_050  # espeak-ng's output rate


@dataclass(frozen=True)
class ReferenceTurn:
    speaker: str
    start: float
    end: float
    text: str


def load_script(path: Path | None = None) -> dict:
    text = path.read_text() if path else resources.files("emessi_pipeline").joinpath("data/demo_meeting.yaml").read_text()
    return yaml.safe_load(text)


def _speak(text: str, voice: dict, out: Path) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng)")
    subprocess.run(
        ["espeak-ng", "-v", voice["voice"], "-p", str(voice["pitch"]), "-s", str(voice["speed"]), "-w", str(out), text],
        check=True,
        capture_output=True,
    )
    with wave.open(str(out), "rb") as handle:
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    return _trim(samples)


def _trim(samples: np.ndarray, threshold: int = 200) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples[:0]


def synthesize(script: dict, folder: Path, name: str = "meeting", gap: float = 0.6,
               lead_in: float = 1.0) -> tuple[Path, list[ReferenceTurn]]:  # fmt: skip
    """Voice the script's turns one after another; write WAV, RTTM and a reference JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    pieces, turns = [np.zeros(int(lead_in * RATE), dtype="<i2")], []
    cursor = lead_in
    tmp = folder / f".{name}.turn.wav"
    for speaker, text in script["turns"]:
        clip = _speak(text, script["speakers"][speaker], tmp)
        turns.append(ReferenceTurn(speaker, round(cursor, 3), round(cursor + len(clip) / RATE, 3), text))
        pieces += [clip, np.zeros(int(gap * RATE), dtype="<i2")]
        cursor += len(clip) / RATE + gap
    tmp.unlink(missing_ok=True)
    wav = folder / f"{name}.wav"
    with wave.open(str(wav), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(np.concatenate(pieces).tobytes())
    write_references(folder, name, turns)
    return wav, turns


def write_references(folder: Path, name: str, turns: list[ReferenceTurn]) -> None:
    rttm = "".join(
        f"SPEAKER {name} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in turns
    )
    (folder / f"{name}.rttm").write_text(rttm)
    (folder / f"{name}.reference.json").write_text(
        json.dumps([t.__dict__ for t in turns], ensure_ascii=False, indent=1)
    )


def mux_video(wav: Path, out: Path) -> Path:
    """Put the audio under a generated test-pattern video track, as a meeting recording would be."""
    import ffmpeg

    video = ffmpeg.input("testsrc=size=320x240:rate=5", f="lavfi")
    sound = ffmpeg.input(str(wav))
    (
        ffmpeg.output(video, sound, str(out), shortest=None, vcodec="libx264", preset="ultrafast",
                      pix_fmt="yuv420p", acodec="aac", audio_bitrate="96k")  # fmt: skip
        .global_args("-nostdin", "-loglevel", "error")
        .overwrite_output()
        .run(capture_stdout=True, capture_stderr=True)
    )
    return out


def build_demo(folder: Path) -> Path:
    """Write ``folder/recordings/`` with the demo video, its manifest, and references beside it."""
    script = load_script()
    recordings = folder / "recordings"
    references = folder / "references"
    video = recordings / "G1_S3_vertaismentorointi.mp4"
    if video.is_file():
        return recordings
    wav, turns = synthesize(script, references, name="G1_S3_vertaismentorointi")
    recordings.mkdir(parents=True, exist_ok=True)
    mux_video(wav, video)
    (recordings / "manifest.csv").write_text(
        "file,group,session,date,speakers\n"
        f"{video.name},{script['group']},{script['session']},{script['date']},{len(script['speakers'])}\n"
    )
    return recordings
