"""Who spoke when from one audio track per participant, instead of from clustering.

A recording is *multitrack* when its folder says so (docs/multitrack.md):

- the Zoom layout: a meeting folder holding the mixed media (``zoom_0.mp4``, ``audio_only.m4a``)
  and a folder ``Audio Record/`` with one ``.m4a`` per participant (``audioMikkoVirtanen11234567890.m4a``:
  ``audio``, the display name without spaces, Zoom's numeric id);
- the generic layout: a folder ``NAME.tracks/`` with one audio file per participant, named after
  them, and optionally the mixed media ``NAME.mp4`` (or any media suffix) beside it.

The mixed media stays the recording (playback, exports, transcription); without one, the
recording is the ``NAME.tracks`` folder and its audio is the tracks mixed by ffmpeg (``amix``).
The track files themselves are never recordings of their own.

Each track's voice activity comes from Silero VAD (shipped with faster-whisper). A voice bleeding
faintly into another participant's microphone is active there too; a frame active on one track
is dropped when another active track is much louder at that moment (``tracks.crosstalk_db``,
measured in docs/multitrack.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from ..config import TracksConfig
from .audio import MEDIA_SUFFIXES, MediaError, find_recordings as find_media, stored_path
from .errors import RecordingError
from .records import Diarization, MediaInfo, SpeakerTurn

ZOOM_TRACK_FOLDER = "Audio Record"
TRACKS_SUFFIX = ".tracks"
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"}
# Zoom names a participant's file "audio" + display name (spaces dropped) + a numeric id.
_ZOOM_NAME = re.compile(r"^audio(?P<name>.+?)(?P<id>\d{6,})$")


class TrackError(RecordingError):
    """A track that cannot be used (unreadable, silent, of another length); the message names it."""


@dataclass(frozen=True)
class Track:
    path: Path
    label: str  # the participant's name as the file gives it


@dataclass(frozen=True)
class TrackLayout:
    """A multitrack recording: its mixed media (None: mix the tracks) and its tracks, sorted."""

    kind: str  # "zoom" or "tracks"
    mix: Path | None
    tracks: tuple[Track, ...]


def _media_files(folder: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [folder / n for n in names if not n.startswith(".") and Path(n).suffix.lower() in MEDIA_SUFFIXES
            and (folder / n).is_file()]  # fmt: skip


def track_label(path: Path, kind: str) -> str:
    stem = path.stem
    if kind == "zoom":
        match = _ZOOM_NAME.match(stem)
        if match:
            return match["name"]
    return stem


def zoom_mix(folder: Path) -> Path | None:
    """The one media file of a Zoom meeting folder that stands for the meeting: its video, else
    its audio (``audio_only.m4a`` is the same mix as ``zoom_0.mp4``), first by name."""
    media = _media_files(folder)
    videos = [p for p in media if p.suffix.lower() in VIDEO_SUFFIXES]
    return (videos or media or [None])[0]


def layout_for(path: Path) -> TrackLayout | None:
    """The tracks of the recording at *path* (a media file or a ``NAME.tracks`` folder), or None."""
    path = Path(path)
    if path.is_dir():
        found = _tracks(path, "tracks") if path.name.endswith(TRACKS_SUFFIX) else ()
        return TrackLayout("tracks", None, found) if found else None
    generic = path.parent / (path.stem + TRACKS_SUFFIX)
    zoom = path.parent / ZOOM_TRACK_FOLDER
    if generic.is_dir() and (found := _tracks(generic, "tracks")):
        return TrackLayout("tracks", path, found)
    if zoom.is_dir() and zoom_mix(path.parent) == path and (found := _tracks(zoom, "zoom")):
        return TrackLayout("zoom", path, found)
    return None  # an empty track folder beside it: an ordinary recording


def _tracks(folder: Path, kind: str) -> tuple[Track, ...]:
    return tuple(Track(p, track_label(p, kind)) for p in _media_files(folder))


def find_recordings(folder: Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    """:func:`audio.find_recordings`, with multitrack layouts taken as one recording each: track
    files are left out, a ``NAME.tracks`` folder without mixed media beside it is a recording,
    and a Zoom meeting folder with ``Audio Record/`` gives only its mix (:func:`zoom_mix`)."""
    folder = stored_path(folder)
    found = find_media(folder, skip)
    if folder.is_file():
        return found
    kept, track_folders = [], set()
    for path in found:
        parent = path.parent
        if parent.name.endswith(TRACKS_SUFFIX) or (parent.name == ZOOM_TRACK_FOLDER and zoom_mix(parent.parent)):
            track_folders.add(parent)
            continue  # an "Audio Record" folder with no meeting media around it holds recordings
        if (parent / ZOOM_TRACK_FOLDER).is_dir() and zoom_mix(parent) != path:
            continue  # another rendering of the same Zoom meeting
        kept.append(path)
    for tracks in track_folders:
        if tracks.name.endswith(TRACKS_SUFFIX) and not _generic_mix(tracks):
            kept.append(tracks)
    return sorted(kept)


def _generic_mix(tracks: Path) -> Path | None:
    stem = tracks.name[: -len(TRACKS_SUFFIX)]
    media = [p for p in _media_files(tracks.parent) if p.stem == stem]
    return media[0] if media else None


# --- audio --------------------------------------------------------------------------------------


def mix_tracks(tracks: tuple[Track, ...], out: Path, sample_rate: int = 16_000) -> MediaInfo:
    """Mix the tracks into one mono 16-bit WAV (ffmpeg ``amix``): the audio of a recording that
    came without mixed media. ``normalize=0`` sums them as a conference mix would."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    inputs = [ffmpeg.input(str(t.path)).audio for t in tracks]
    try:
        (
            ffmpeg.filter(inputs, "amix", inputs=len(inputs), duration="longest", normalize=0)
            .output(str(partial), ac=1, ar=sample_rate, acodec="pcm_s16le", format="wav")
            .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
            .overwrite_output()
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as error:
        partial.unlink(missing_ok=True)
        lines = [ln for ln in (error.stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
        reason = lines[-1] if lines else "ffmpeg failed"
        raise MediaError(f"{tracks[0].path.parent}: mixing the tracks failed ({reason})") from None
    os.replace(partial, out)
    frames = os.path.getsize(out) // 2
    return MediaInfo(path=str(tracks[0].path.parent), container="tracks", duration=frames / sample_rate,
                     audio_streams=len(tracks), video_streams=0, stream_index=0, codec="amix",
                     sample_rate=sample_rate, channels=1)  # fmt: skip


# --- voice activity ----------------------------------------------------------------------------

VAD_WINDOW = 512  # Silero's chunk at 16 kHz


def vad_identity() -> str:
    import faster_whisper

    return f"silero-vad@faster-whisper-{faster_whisper.__version__}"


def _speech_probabilities(samples: np.ndarray) -> np.ndarray:
    from faster_whisper.vad import get_vad_model

    padded = np.pad(samples, (0, VAD_WINDOW - samples.size % VAD_WINDOW))
    return np.asarray(get_vad_model()(padded)).reshape(-1)


def _frame_db(samples: np.ndarray, hop: int, frames: int) -> np.ndarray:
    padded = np.pad(samples[: frames * hop], (0, max(0, frames * hop - samples.size)))
    power = np.mean(np.square(padded.reshape(frames, hop), dtype=np.float64), axis=1)
    return 10 * np.log10(power + 1e-12)


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _close_gaps(active: np.ndarray, max_gap: int, min_run: int) -> np.ndarray:
    """Bridge pauses of up to *max_gap* frames within one track, then drop runs under *min_run*."""
    runs = _runs(active)
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] <= max_gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    out = np.zeros_like(active)
    for start, end in merged:
        if end - start >= min_run:
            out[start:end] = True
    return out


def check_tracks(tracks: dict[Track, np.ndarray], rate: int, duration: float, config: TracksConfig) -> None:
    """A track that is silent, or of another length than the recording, cannot give its speaker's
    turns (Zoom's older clients cut silences out of the tracks, which then no longer line up)."""
    for track, samples in tracks.items():
        length = samples.size / rate
        if abs(length - duration) > config.length_tolerance_s:
            raise TrackError(f"{track.path}: {length:.1f} s long, the recording {duration:.1f} s "
                             f"(tolerance {config.length_tolerance_s:g} s); the tracks do not line up")  # fmt: skip
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if 20 * np.log10(peak + 1e-12) < config.silent_dbfs:
            raise TrackError(f"{track.path}: silent (peak below {config.silent_dbfs:g} dBFS)")


def diarize_tracks(tracks: dict[str, np.ndarray], rate: int, config: TracksConfig) -> Diarization:
    """Turns per labelled track: Silero VAD, cross-talk removed, short pauses bridged.

    ``turns`` keep every overlap exactly as the tracks have it; ``exclusive_turns`` give each
    overlapped moment to the track loudest against its own speech level.
    """
    if rate != 16_000:
        raise ValueError(f"per-participant tracks need extract.sample_rate 16000 (Silero VAD), not {rate}")
    labels = sorted(tracks)
    hop = rate // 100  # 10 ms frames for the cross-talk test and the turn edges
    frames = max(len(s) for s in tracks.values()) // hop
    centres = (np.arange(frames) * hop + hop // 2) // VAD_WINDOW
    pad = round(config.pad_s * 100)
    level, voiced = {}, {}
    for label in labels:
        probs = _speech_probabilities(tracks[label])
        active = probs[np.minimum(centres, probs.size - 1)] >= config.vad_threshold
        if pad:
            # Silero decides per 32-ms window and a little late; widen, then let the levels trim.
            from scipy.ndimage import binary_dilation

            active = binary_dilation(active, np.ones(2 * pad + 1, bool))
        level[label], voiced[label] = _frame_db(tracks[label], hop, frames), active
    # Levels compared as each track's distance from its own loud speech (a high percentile of its
    # active frames, bleed being far below), so that microphones set louder or softer than others
    # do not count as cross-talk; raw levels when crosstalk_relative is off.
    ref = {label: np.percentile(level[label][voiced[label]], config.reference_percentile)
           if config.crosstalk_relative and voiced[label].any() else 0.0 for label in labels}  # fmt: skip
    own = {}
    for label in labels:
        keep = voiced[label].copy()
        for other in labels:
            if other != label:
                louder = (level[other] - ref[other]) - (level[label] - ref[label])
                keep &= ~(voiced[other] & (louder > config.crosstalk_db))
        if keep.any():
            # The widening never reaches into the track's own silence.
            keep &= level[label] > np.median(level[label][voiced[label]]) - config.floor_db
        own[label] = _close_gaps(keep, round(config.min_gap_s * 100), max(1, round(config.min_speech_s * 100)))
    turns = [SpeakerTurn(start=round(a / 100, 3), end=round(b / 100, 3), speaker=label)
             for label in labels for a, b in _runs(own[label])]  # fmt: skip
    stacked = np.stack([np.where(own[label], level[label] - ref[label], -np.inf) for label in labels])
    loudest = np.argmax(stacked, axis=0)
    anyone = np.isfinite(stacked.max(axis=0))
    exclusive = []
    for index, label in enumerate(labels):
        for a, b in _runs(anyone & (loudest == index)):
            exclusive.append(SpeakerTurn(start=round(a / 100, 3), end=round(b / 100, 3), speaker=label))
    order = lambda t: (t.start, t.end, t.speaker)  # noqa: E731
    # A participant who never spoke has no label, as clustering would have none for them.
    speakers = tuple(label for label in labels if own[label].any())
    return Diarization(speakers=speakers, turns=tuple(sorted(turns, key=order)),
                       exclusive_turns=tuple(sorted(exclusive, key=order)), source="tracks")  # fmt: skip
