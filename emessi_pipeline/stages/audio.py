"""Probe media files and extract their audio as 16 kHz mono PCM WAV (ffmpeg-python over ffmpeg)."""

from __future__ import annotations

import errno
import os
import wave
from pathlib import Path

import ffmpeg
import numpy as np

from .errors import RecordingError
from .records import MediaInfo

MEDIA_SUFFIXES = {
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v",
    ".m4a", ".mp3", ".wav", ".flac", ".ogg", ".opus", ".aac", ".wma",
}  # fmt: skip


class MediaError(RecordingError):
    """A media file that cannot be used; the message names the file and the cause."""


# ffmpeg reports a system error with its strerror text; these are about the machine it writes
# on, not the file it reads, so they must not mark the recording failed.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOMEM)


def _ffmpeg_reason(error: ffmpeg.Error) -> str:
    lines = [ln.strip() for ln in (error.stderr or b"").decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else "ffmpeg failed"


def probe(path: Path, audio_stream: int = 0) -> MediaInfo:
    """Read container, duration and the chosen audio stream's format."""
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as error:
        raise MediaError(f"{path}: ffmpeg cannot read it ({_ffmpeg_reason(error)})") from None
    streams = info.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [s for s in streams if s.get("codec_type") == "video"]
    if not audio:
        raise MediaError(f"{path}: no audio stream")
    if audio_stream >= len(audio):
        raise MediaError(
            f"{path}: audio stream {audio_stream} requested, the file has {len(audio)}"
        )
    chosen = audio[audio_stream]
    duration = float(info.get("format", {}).get("duration") or chosen.get("duration") or 0.0)
    return MediaInfo(
        path=str(path),
        container=info.get("format", {}).get("format_name", ""),
        duration=duration,
        audio_streams=len(audio),
        video_streams=len(video),
        stream_index=int(chosen["index"]),
        codec=chosen.get("codec_name", ""),
        sample_rate=int(chosen.get("sample_rate") or 0),
        channels=int(chosen.get("channels") or 0),
    )


def extract(path: Path, out: Path, audio_stream: int = 0, sample_rate: int = 16_000,
            info: MediaInfo | None = None) -> MediaInfo:  # fmt: skip
    """Write the chosen audio stream as mono 16-bit PCM WAV at *sample_rate*.

    The WAV is written next to *out* and renamed into place, so a killed run never leaves a
    truncated file that looks finished.
    """
    info = info or probe(path, audio_stream)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    try:
        (
            ffmpeg.input(str(path))
            .output(
                str(partial),
                map=f"0:a:{audio_stream}",
                ac=1,
                ar=sample_rate,
                acodec="pcm_s16le",
                format="wav",
                vn=None,
            )
            .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
            .overwrite_output()
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as error:
        partial.unlink(missing_ok=True)
        said = (error.stderr or b"").decode(errors="replace")
        for code in _WRITE_ERRNOS:
            if os.strerror(code) in said:
                raise OSError(code, os.strerror(code), str(out)) from None
        raise MediaError(f"{path}: audio extraction failed ({_ffmpeg_reason(error)})") from None
    os.replace(partial, out)
    return info


# A recording is held as its 16-bit samples, half the memory of float32 (230 MB instead of
# 460 MB for two hours); each consumer converts only the part it works on. int16 / 32768 is
# exact in float32, so a converted part equals read_wav's samples bit for bit.
PCM_SCALE = 1 / 32768.0


def read_pcm(path: Path, block_frames: int = 1 << 20) -> tuple[np.ndarray, int]:
    """The samples of a mono 16-bit PCM WAV written by :func:`extract`, as int16 (see
    :func:`as_float` for the values models take)."""
    return _read_samples(path, np.int16, block_frames)


def as_float(samples: np.ndarray) -> np.ndarray:
    """*samples* as float32 in [-1, 1]: int16 PCM converted, float32 passed through."""
    if samples.dtype == np.int16:
        return np.multiply(samples, np.float32(PCM_SCALE), dtype=np.float32)
    return samples


def read_wav(path: Path, block_frames: int = 1 << 20) -> tuple[np.ndarray, int]:
    """Read a mono 16-bit PCM WAV written by :func:`extract` as float32 in [-1, 1]."""
    return _read_samples(path, np.float32, block_frames)


def _read_samples(path: Path, dtype, block_frames: int) -> tuple[np.ndarray, int]:
    # Block by block into one preallocated array: a 2-hour recording is 460 MB as float32, and
    # converting it in one go would briefly hold the bytes and two copies besides.
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise MediaError(f"{path}: expected mono 16-bit PCM WAV")
        rate, total = handle.getframerate(), handle.getnframes()
        samples = np.empty(total, dtype=dtype)
        done = 0
        while done < total:
            block = np.frombuffer(handle.readframes(block_frames), dtype="<i2")
            if block.size == 0:
                break
            target = samples[done : done + block.size]
            if dtype == np.int16:
                target[:] = block
            else:
                np.multiply(block, PCM_SCALE, out=target, casting="unsafe")
            done += block.size
    return samples[:done], rate


def read_wav_span(path: Path, start_s: float, end_s: float) -> np.ndarray:
    """Seconds *start_s* to *end_s* of a mono 16-bit PCM WAV written by :func:`extract`, as
    float32 in [-1, 1], read without loading the rest of the file."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise MediaError(f"{path}: expected mono 16-bit PCM WAV")
        rate, total = handle.getframerate(), handle.getnframes()
        first = min(max(int(round(start_s * rate)), 0), total)
        last = min(max(int(round(end_s * rate)), first), total)
        handle.setpos(first)
        block = np.frombuffer(handle.readframes(last - first), dtype="<i2")
    return block.astype(np.float32) / 32768.0


# A folder holding this file is emessi's own output (a workspace, listening samples, exports):
# its audio is not a recording. The name is shared by the writers (runs, dataset) and this reader.
OUTPUT_MARKER = ".emessi-output"
_MARKER_TEXT = ("This folder holds emessi-pipeline's own output ({kind}). `emessi ingest` skips any folder "
                "holding this file, so its audio is never taken for recordings.\n")  # fmt: skip


def mark_as_output(folder: Path, kind: str) -> None:
    """Say in *folder* that it is emessi's output, so listing recordings skips it."""
    marker = Path(folder) / OUTPUT_MARKER
    if not marker.exists():
        marker.write_text(_MARKER_TEXT.format(kind=kind))


def is_output_folder(folder: Path) -> bool:
    """Marked by :func:`mark_as_output`, or a workspace an earlier version wrote (no marker, but its
    content index or its artifacts beside the run lock)."""
    folder = Path(folder)
    return ((folder / OUTPUT_MARKER).is_file() or (folder / "content-index.json").is_file()
            or ((folder / "artifacts").is_dir() and (folder / ".lock").is_file()))  # fmt: skip


def stored_path(path: Path) -> Path:
    """The path a recording is known by: absolute, with '..' and symlinked folders resolved, so
    `./x` and `/data/x` are one file. A file's own symlink is kept: in git-annex or DataLad the
    target is a content hash, not a name a researcher would recognise."""
    path = Path(path)
    return path.resolve() if path.is_dir() else path.parent.resolve() / path.name


def find_recordings(folder: Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Media files under *folder* (recursively), in a stable order.

    Skipped: hidden files and folders, emessi's own output folders below *folder* (see
    :func:`is_output_folder`) and the paths in *skip* (this run's workspace and database),
    wherever they are. Paths are given as :func:`stored_path` makes them.
    """
    folder = stored_path(folder)
    if folder.is_file():
        return [folder]
    skipped = {stored_path(p) for p in skip}
    found = []
    # os.walk does not follow symlinked folders, as rglob did not before it.
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and here / d not in skipped
                   and not is_output_folder(here / d)]  # fmt: skip
        for name in files:
            path = here / name
            if (not name.startswith(".") and Path(name).suffix.lower() in MEDIA_SUFFIXES and path not in skipped
                    and path.is_file()):  # fmt: skip
                found.append(path)
    return sorted(found)
