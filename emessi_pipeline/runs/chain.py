"""One recording's way through the stages: extract → transcribe → diarize → align → segment.

Each stage method takes the artifacts it needs and returns the one it produces, read from the
workspace when its key is there and computed (and saved) otherwise. The keys come from settings
and model identities alone, so they are known before any artifact is read. Loading into the
database is the Ingestor's part.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import Profile
from ..stages import audio, tracks
from ..stages.align import align
from ..stages.diarize import Diarizer, SpeakerCount
from ..stages.errors import RecordingError
from ..stages.models import MissingModelError
from ..stages.records import Alignment, Diarization, MediaInfo, Observations, Transcript
from ..stages.segment import observation_set_id, segment
from ..stages.transcribe import transcribe
from . import memory
from .manifest import RecordingMeta
from .parallel import Background
from .results import RecordingResult, Reporter
from .workspace import ContentIndex, Workspace, stage_key

STAGES = ("extract", "transcribe", "diarize", "align", "segment", "load")
# Bump a stage's version when its code changes what it produces: its cache then misses.
STAGE_VERSIONS = {"extract": 1, "transcribe": 1, "diarize": 1, "align": 1, "segment": 1, "tracks": 1}
# Settings that change speed, not results, stay out of the cache keys.
SPEED_ONLY = {"asr": {"cpu_threads", "device"}, "diarization": {"threads", "threads_beside_asr", "batch_size", "device"}}
# Settings added later, with the value that gives what came before them: at that value they stay
# out of the keys, so that the caches and observation sets made before them still match.
ADDED_LATER = {"asr": {"blocks_from_seed": False}}

# What a stage raises about its input: a failure of that recording, not of the run. Anything
# else is the machine's, the settings' or the code's fault and stops the run (RunStopped).
INPUT_ERRORS = (RecordingError,)
# OSErrors that say the machine is short of something; the run stops and says so plainly.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOMEM, errno.EIO}


class StageError(RuntimeError):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage

    @classmethod
    def from_input(cls, stage: str, error: Exception, path: Path) -> "StageError":
        """A bad input's error as the recording's failure at *stage*, on one line naming the file."""
        text = " ".join(str(error).split()) or type(error).__name__
        return cls(stage, text if str(path) in text else f"{path}: {text}")


class RunStopped(RuntimeError):
    """The run cannot go on, and the recording it was at is not to blame: nothing is marked
    failed, and the next run tries that recording again."""

    def __init__(self, stage: str, path: Path | None, cause: str):
        where = f" at {path} ({stage})" if path is not None else ""
        super().__init__(f"run stopped{where}: {cause}; the recording is not marked failed, "
                         f"the next run tries it again")  # fmt: skip
        self.stage, self.path, self.cause = stage, path, cause

    @classmethod
    def from_error(cls, stage: str, error: BaseException, path: Path | None) -> "RunStopped":
        return cls(stage, path, describe_fault(error))


def describe_fault(error: BaseException) -> str:
    """One line for an error that is not the recording's: what ran short, or where the bug is."""
    if isinstance(error, MemoryError):
        return "out of memory (MemoryError); free memory or process fewer things at once"
    if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or os.strerror(error.errno)}{where}"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text} (a bad setting or a bug; EMESSI_DEBUG=1 shows the traceback)"


class Host(Protocol):
    """What a chain asks of the batch that runs it (the Ingestor): settings, cache, models."""

    profile: Profile
    workspace: Workspace
    reporter: Reporter

    def asr(self): ...
    def asr_identity(self) -> str: ...
    def diarizer(self) -> Diarizer: ...
    def diarization_identity(self) -> str: ...
    def speaker_count(self, meta: RecordingMeta) -> SpeakerCount: ...
    def check_free_space(self, path: Path, duration: float) -> None: ...


def recording_sha(index: ContentIndex, path: Path) -> tuple[str, tracks.TrackLayout | None, tuple[str, ...]]:
    """The recording's content hash, its tracks (None: not multitrack) and each track's hash.

    A multitrack recording's hash covers its mix and every track with its file name (the name
    is the speaker's label): changing, adding or renaming a track is a change of the recording.
    """
    layout = tracks.layout_for(path)
    if layout is None:
        return index.sha256(path), None, ()
    shas = tuple(index.sha256(t.path) for t in layout.tracks)
    parts = {"mix": index.sha256(layout.mix) if layout.mix else None,
             "tracks": [[t.path.name, sha] for t, sha in zip(layout.tracks, shas)]}  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(), layout, shas


def settings(profile: Profile, name: str) -> dict:
    """A profile section as it enters the cache keys and the observation set's parameters."""
    data = getattr(profile, name).model_dump(mode="json")
    for key in SPEED_ONLY.get(name, ()):
        data.pop(key, None)
    for key, off in ADDED_LATER.get(name, {}).items():
        if data.get(key) == off:
            data.pop(key)
    return data


class Chain:
    """One recording's artifacts, each computed (or read from the cache) once."""

    def __init__(self, host: Host, path: Path, sha: str, meta: RecordingMeta, result: RecordingResult | None = None,
                 layout: tracks.TrackLayout | None = None, track_shas: tuple[str, ...] = ()):  # fmt: skip
        self.host, self.path, self.sha, self.meta = host, path, sha, meta
        self.layout, self.track_shas = layout, track_shas
        self.result = result or RecordingResult(path=str(path), status="")
        self.recording_id = sha[:16]
        self.ws, self.profile = host.workspace, host.profile
        self.count = host.speaker_count(meta)
        self.keys = self._stage_keys()
        self.set_id = observation_set_id(self.recording_id, self.keys["segment"])
        self.wav = self.ws.path("extract", self.keys["extract"], ".wav")
        self._audio: np.ndarray | None = None  # the WAV's int16 samples, read on first need

    def _stage_keys(self) -> dict[str, str]:
        """Every stage's cache key, from settings and model identities alone (no artifact read)."""
        profile, host, keys = self.profile, self.host, {}
        keys["extract"] = stage_key(self.sha, profile.extract.model_dump(mode="json"), STAGE_VERSIONS["extract"])
        keys["transcribe"] = stage_key(keys["extract"], settings(profile, "asr"), host.asr_identity(),
                                       STAGE_VERSIONS["transcribe"])  # fmt: skip
        keys["diarize"] = stage_key(keys["extract"], settings(profile, "diarization"), asdict(self.count),
                                    host.diarization_identity(), STAGE_VERSIONS["diarize"])  # fmt: skip
        if self.layout is not None:
            # One key whichever way it ends: from the tracks, or by clustering when they fail.
            named = [[t.path.name, sha] for t, sha in zip(self.layout.tracks, self.track_shas)]
            keys["diarize"] = stage_key(keys["diarize"], named, self.meta.tracks, settings(profile, "tracks"),
                                        tracks.vad_identity(), STAGE_VERSIONS["tracks"])  # fmt: skip
            # Each track's WAV: listed with the stage keys, so that `clean` and a withdrawal
            # (dataset/withdrawal.py, runs/forget.py) find a participant's own audio too.
            extract = profile.extract.model_dump(mode="json")
            for number, sha in enumerate(self.track_shas):
                keys[f"track{number}"] = stage_key(sha, extract, STAGE_VERSIONS["extract"])
        keys["align"] = stage_key(keys["transcribe"], keys["diarize"], settings(profile, "align"), STAGE_VERSIONS["align"])
        keys["segment"] = stage_key(keys["align"], settings(profile, "segment"), STAGE_VERSIONS["segment"])
        return keys

    def _timed(self, stage: str, compute: Callable[[], object]):
        started = time.monotonic()
        value = compute()
        self.result.stage_seconds[stage] = round(time.monotonic() - started, 3)
        self.result.computed.append(stage)
        return value

    def _report(self, stage: str, completed=None, total=None) -> None:
        self.host.reporter.stage(self.path, stage, completed, total)

    def audio(self) -> np.ndarray:
        if not self.wav.is_file():
            self._extract_wav()
        if self._audio is None:
            self._audio, _ = audio.read_pcm(self.wav)
        return self._audio

    def cached(self, stage: str) -> bool:
        """The stage's artifact exists (for extract: the media info; the WAV may be cleaned)."""
        return self.ws.path(stage, self.keys[stage]).is_file()

    def models_needed(self, until: str) -> bool:
        stages = [s for s in ("transcribe", "diarize") if STAGES.index(s) <= STAGES.index(until)]
        return until == "extract" or any(not self.cached(s) for s in stages)

    def extract(self, need_wav: bool = True) -> MediaInfo:
        """Media info always; the WAV only when a model still has to hear it (``clean`` drops WAVs)."""
        media = self.ws.load("extract", self.keys["extract"], MediaInfo)
        if media is None or (need_wav and not self.wav.is_file()):
            media = self._extract_wav()
        self.result.duration_s = round(media.duration, 3)
        return media.model_copy(update={"path": str(self.path)})

    def _extract_wav(self) -> MediaInfo:
        cfg, key = self.profile.extract, self.keys["extract"]
        self._report("extract")
        if self.layout is not None and self.layout.mix is None:
            info = audio.probe(self.layout.tracks[0].path)
            self.host.check_free_space(self.path, info.duration)
            media = self._timed("extract", lambda: tracks.mix_tracks(self.layout.tracks, self.wav, cfg.sample_rate))
            self.ws.save("extract", key, media)
            return media
        info = audio.probe(self.path, cfg.audio_stream)
        self.host.check_free_space(self.path, info.duration)
        media = self._timed("extract", lambda: audio.extract(self.path, self.wav, cfg.audio_stream, cfg.sample_rate, info))
        self.ws.save("extract", key, media)
        return media

    def run_models(self, media: MediaInfo, with_diarization: bool) -> tuple[Transcript, Diarization | None]:
        """Transcribe, and diarise at the same time when both must run and the profile allows it.

        The diarisation is None when *with_diarization* is false.
        """
        started = time.monotonic()
        # Activity from tracks takes seconds: beside Whisper it would only load the clustering models.
        both = (with_diarization and not self.cached("transcribe") and not self.cached("diarize")
                and self.layout is None)  # fmt: skip
        with memory.ReleasingFreedMemory(self.profile.release_memory_growth_mb):
            if both and self.profile.overlap_models:
                transcript, diarization = self._overlapped(media)
            elif self.layout is not None and with_diarization:
                # The tracks first: a bad one found after minutes of Whisper would waste them.
                diarization = self.diarize()
                transcript = self.transcribe(media, spare_core=self._cores_for_two_decoders())
            else:
                transcript = self.transcribe(media, spare_core=self._cores_for_two_decoders())
                diarization = self.diarize() if with_diarization else None
        if self.result.computed:
            self.result.model_wall_s = round(time.monotonic() - started, 3)
        return transcript, diarization

    def _cores_for_two_decoders(self) -> threading.Event | None:
        """Set when Whisper runs alone on a machine with cores for a second decoder from the start."""
        threads = self.profile.asr.cpu_threads
        if threads == 0 or len(os.sched_getaffinity(0)) < 2 * threads:
            return None  # 0: CTranslate2 takes every core already
        free = threading.Event()
        free.set()
        return free

    def _overlapped(self, media: MediaInfo) -> tuple[Transcript, Diarization]:
        self.audio()  # read once, before both stages share it
        transcribed, diarised = threading.Event(), threading.Event()
        background = Background(lambda check: self._diarize_beside_asr(check, transcribed, diarised), "diarize").start()
        try:
            transcript = self.transcribe(media, spare_core=diarised)
        except BaseException:
            background.cancel()
            raise
        transcribed.set()
        try:
            diarization = background.result()
        except INPUT_ERRORS as error:
            raise StageError.from_input("diarize", error, self.path) from None
        except (StageError, MissingModelError, RunStopped, KeyboardInterrupt):
            raise
        except Exception as error:
            raise RunStopped.from_error("diarize", error, self.path) from error
        return transcript, diarization

    def _diarize_beside_asr(self, cancel_check: Callable[[], None], transcribed: threading.Event,
                            diarised: threading.Event) -> Diarization:  # fmt: skip
        """*diarised* is set when this thread is done (whatever the outcome): its core is free for
        a second decoder (asr.blocks_from_seed)."""
        import torch

        cfg = self.profile.diarization
        self.host.diarizer()  # loading it sets its own thread count
        torch.set_num_threads(cfg.threads_beside_asr)

        def check() -> None:
            cancel_check()
            # Once transcription is done its cores are free: take them at the next progress step.
            # torch's thread count is per calling thread, so only this thread can raise its own.
            # The turns do not depend on the thread count: tests/test_scale.py compares a run that
            # diarises on two threads with shards that start on one.
            if transcribed.is_set() and torch.get_num_threads() != cfg.threads:
                torch.set_num_threads(cfg.threads)

        try:
            return self.diarize(check)
        finally:
            torch.set_num_threads(cfg.threads)
            diarised.set()

    def transcribe(self, media: MediaInfo, spare_core: threading.Event | None = None) -> Transcript:
        key = self.keys["transcribe"]
        transcript = self.ws.load("transcribe", key, Transcript)
        if transcript is None:
            duration = media.duration or None
            self._report("transcribe", 0, duration)

            def run():
                return transcribe(self.host.asr(), self.audio(), self.profile.asr,
                                  progress=lambda done: self._report("transcribe", done, duration),
                                  before_block=memory.release_freed_memory, spare_core=spare_core)  # fmt: skip

            transcript = self._timed("transcribe", run)
            self.ws.save("transcribe", key, transcript)
        self.result.words = sum(len(s.words) for s in transcript.segments)
        return transcript

    def diarize(self, cancel_check: Callable[[], None] = lambda: None) -> Diarization:
        """*cancel_check* raises once the run stops, when this runs in a background thread."""
        key = self.keys["diarize"]
        diarization = self.ws.load("diarize", key, Diarization)
        if diarization is None:
            self._report("diarize")

            def run():
                def hook(step, done, total):
                    cancel_check()
                    self._report(f"diarize: {step}", done, total)
                rate = self.profile.extract.sample_rate
                return self.host.diarizer()(self.audio(), rate, self.recording_id, self.count, hook)

            diarization = self._timed("diarize", self._from_tracks if self.layout is not None else run)
            if diarization is None:  # the tracks could not be used: cluster the mix
                diarization = self._timed("diarize", run).model_copy(update={"note": self._track_note})
            self.ws.save("diarize", key, diarization)
        self.result.speakers = len(diarization.speakers)
        if diarization.note:
            self.result.note = diarization.note
        return diarization

    def _from_tracks(self) -> Diarization | None:
        """Turns from the per-participant tracks; None (and ``_track_note`` says why) when a
        track cannot be used and the recording has mixed media to cluster instead."""
        rate = self.profile.extract.sample_rate
        self._report("diarize: tracks")
        duration = self.audio().size / rate
        names = self.meta.tracks or {}
        try:
            samples: dict[tracks.Track, np.ndarray] = {}
            for number, track in enumerate(self.layout.tracks):
                wav = self.ws.path("extract", self.keys[f"track{number}"], ".wav")
                if not wav.is_file():
                    audio.extract(track.path, wav, 0, rate)
                samples[track] = audio.read_wav(wav)[0]
            tracks.check_tracks(samples, rate, duration, self.profile.tracks)
            labelled: dict[str, np.ndarray] = {}
            for track, data in samples.items():
                label = names.get(track.path.name) or names.get(track.path.stem) or names.get(track.label) or track.label
                if label in labelled:
                    raise tracks.TrackError(f"{track.path}: a second track labelled {label!r}")
                labelled[label] = data
        except RecordingError as error:
            if self.layout.mix is None:  # nothing to cluster instead: the recording fails alone
                raise StageError.from_input("diarize", error, self.path) from None
            self._track_note = f"{' '.join(str(error).split())}; diarised by clustering the mix instead"
            return None
        return tracks.diarize_tracks(labelled, rate, self.profile.tracks)

    def align(self, transcript: Transcript, diarization: Diarization) -> Alignment:
        key = self.keys["align"]
        alignment = self.ws.load("align", key, Alignment)
        if alignment is None:
            alignment = self._timed("align", lambda: align(transcript, diarization, self.profile.align))
            self.ws.save("align", key, alignment)
        return alignment

    def segment(self, alignment: Alignment) -> Observations:
        key = self.keys["segment"]
        observations = self.ws.load("segment", key, Observations)
        if observations is None:
            observations = self._timed(
                "segment", lambda: segment(alignment, self.profile.segment, self.recording_id, self.set_id)
            )
            self.ws.save("segment", key, observations)
        self.result.observations = len(observations.observations)
        return observations

    def set_params(self) -> dict:
        return {
            "stage_keys": self.keys,
            "speaker_count": asdict(self.count),
            **{name: settings(self.profile, name) for name in ("extract", "asr", "diarization", "align", "segment")},
            # Kept with the set: whether its turns came from the tracks, and if not, why not.
            **({"tracks": settings(self.profile, "tracks") | {"files": [t.path.name for t in self.layout.tracks],
                                                              "used": self.result.note is None,
                                                              "note": self.result.note}}
               if self.layout is not None else {}),
        }
