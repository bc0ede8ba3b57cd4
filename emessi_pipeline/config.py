"""Profiles: every setting that changes results, validated, and recorded with each run.

A profile is a YAML file (``configs/default.yaml`` and friends) holding the hyper-parameters;
code holds none of them. Each stage hashes only its own section, so changing, say, the
segmentation gap re-runs segmentation and loading but not the models.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _config_dir() -> Path:
    """configs/ at the top of a checkout, or its copy inside an installed wheel (pyproject.toml
    maps it there, since nothing outside the package gets installed)."""
    package = Path(__file__).resolve().parent
    shipped = package / "configs"
    return shipped if shipped.is_dir() else package.parent / "configs"


CONFIG_DIR = _config_dir()
PROFILE_NAMES = ("default", "workstation", "nightly")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def fingerprint(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()


class ExtractConfig(Section):
    sample_rate: int = 16_000
    audio_stream: int = Field(0, ge=0, description="index among the file's audio streams")


class AsrConfig(Section):
    model: str = "whisper-base"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(1, ge=0)
    language: str | None = "fi"  # None: let Whisper detect it
    beam_size: int = Field(5, ge=1)
    # Whisper re-decodes a window that looks wrong at rising temperatures (faster-whisper's
    # default list); above 0 it samples, from a generator seeded with `seed` for every recording
    # (stages/transcribe.Whisper), so a re-run gives the same words. Temperature 0 alone would
    # repeat too, but loses whole windows to repetition loops (docs/accuracy.md).
    temperature: tuple[float, ...] = Field((0.0, 0.2, 0.4, 0.6, 0.8, 1.0), min_length=1)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    vad_filter: bool = True
    condition_on_previous_text: bool = False
    batch_size: int = Field(0, ge=0, description="0: sequential; >0: BatchedInferencePipeline")
    block_minutes: float = Field(10.0, gt=0, description="longer audio is transcribed in blocks cut at quiet moments")
    # Every block decodes from the seed, so its words depend on its own audio and the settings
    # alone, and a second decoder can take blocks once diarisation beside Whisper frees its core
    # (stages/transcribe.transcribe). False: one generator runs on through a recording's blocks
    # and one decoder does them all, as before 1 December 2026; datasets made then keep their
    # cache keys with it (runs/chain.ADDED_LATER).
    blocks_from_seed: bool = True
    repetition_min_repeats: int = Field(5, ge=2, description="an n-gram repeated this often is a loop")
    repetition_max_ngram: int = Field(4, ge=1)
    repetition_action: Literal["drop", "flag"] = "drop"


class DiarizationConfig(Section):
    pipeline: str | None = None  # a pyannote pipeline name or folder; None: the offline models
    segmentation: str = "pyannote-segmentation-v2"
    embedding: str = "resemblyzer-ge2e"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int = Field(2, ge=1)
    # While Whisper runs beside it: torch's threads busy-wait for each other, so one fewer than
    # the cores Whisper leaves free (10-min meeting on 2 cores: 83.5 s with 1, 93.3 s with 2).
    threads_beside_asr: int = Field(1, ge=1)
    segmentation_threshold: float = Field(0.5, gt=0, lt=1)
    min_duration_off: float = Field(0.0, ge=0)
    segmentation_step: float = Field(0.1, gt=0, le=1)
    embedding_exclude_overlap: bool = True
    # Resemblyzer embeds a local speaker's speech in partials of this length and step, averaged.
    embedding_partial_s: float = Field(1.6, ge=0.2, le=5.0)
    embedding_partial_step_s: float = Field(0.8, gt=0, le=5.0)
    # A local speaker with less than this share of a chunk on their own is assigned, not clustered.
    min_active_ratio: float = Field(0.2, ge=0, lt=1)
    # kmeans-tree: KMeans from the average-linkage tree's large clusters or from k-means++ starts,
    # whichever partition has the higher silhouette (docs/accuracy.md)
    clustering: Literal["kmeans-tree", "kmeans", "ahc-kmeans", "spectral"] = "kmeans-tree"
    constrained_assignment: bool = False  # two local speakers of one chunk never share a cluster
    batch_size: int = Field(32, ge=1)
    num_speakers: int | None = Field(None, ge=1)
    min_speakers: int = Field(1, ge=1)
    max_speakers: int = Field(11, ge=1)
    # Defaults here are the tuned values of docs/accuracy.md (profiles that omit them get them).
    # Estimating the count when none is given: ahc = average-linkage cut at count_threshold
    # (cosine distance); eigengap = spectral eigengap; silhouette = best KMeans silhouette
    # (one speaker below count_threshold).
    count_method: Literal["ahc", "eigengap", "silhouette"] = "ahc"
    count_threshold: float = Field(0.28, gt=0, lt=2)
    # ahc: a cluster with fewer than this share of the embeddings is not counted as a speaker,
    # nor, in long recordings, one with fewer than count_min_size embeddings: the share alone
    # would ask more speech of a participant the longer the meeting runs.
    count_min_share: float = Field(0.01, ge=0, lt=0.5)
    count_min_size: int = Field(12, ge=1)
    # ahc: longer meetings are counted on every k-th embedding (memory grows with the square).
    count_max_embeddings: int = Field(4000, ge=100)

    @model_validator(mode="after")
    def _bounds(self) -> "DiarizationConfig":
        if self.embedding_partial_step_s > self.embedding_partial_s:
            raise ValueError("embedding_partial_step_s must not exceed embedding_partial_s")
        if self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers must not exceed max_speakers")
        return self


class AlignConfig(Section):
    # A word counts as overlapped when at least this share of it has two or more speakers.
    overlap_min_fraction: float = Field(0.5, gt=0, le=1)


class SegmentConfig(Section):
    max_pause: float = Field(1.5, gt=0, description="a longer pause by the same speaker splits")


class TracksConfig(Section):
    """Voice activity from per-participant tracks (stages/tracks.py; docs/multitrack.md)."""

    vad_threshold: float = Field(0.35, gt=0, lt=1, description="Silero speech probability")
    pad_s: float = Field(0.2, ge=0, le=1, description="Silero's windows widened by this, then trimmed by level")
    # A frame active on one track is dropped when another active track is louder by more than this
    # (each track's level taken from its own loud speech, reference_percentile of its active frames).
    crosstalk_db: float = Field(10.0, gt=0)
    crosstalk_relative: bool = True  # false: raw levels (microphone gains then count as cross-talk)
    reference_percentile: float = Field(90.0, gt=0, le=100)
    floor_db: float = Field(30.0, gt=0, description="below the track's median speech level: not speech")
    min_gap_s: float = Field(0.3, ge=0, description="a shorter pause within one track is bridged")
    min_speech_s: float = Field(0.1, ge=0)
    length_tolerance_s: float = Field(1.0, ge=0, description="a track longer or shorter than this is not used")
    silent_dbfs: float = Field(-60.0, le=0, description="a track whose peak stays below this is silent")


class ReviewConfig(Section):
    """Thresholds of the review list (`emessi review`): which observations a person checks first.

    They change only the `review_flags` of a set, never a cached stage artifact or a set id.
    Defaults and their reasons are in docs/coding.md ("Review list").
    """

    # low_confidence: any of the three.
    min_mean_word_prob: float = Field(0.55, ge=0, le=1, description="mean word probability below this")
    word_prob_floor: float = Field(0.5, ge=0, le=1, description="a word below this probability is doubtful")
    max_low_word_share: float = Field(0.4, gt=0, le=1, description="share of doubtful words at or above this")
    min_avg_logprob: float = Field(-1.0, le=0, description="its Whisper segments' mean log-probability below this")
    # overlap: seconds of the observation during which another label talks (overlap-aware turns).
    overlap_min_s: float = Field(0.3, ge=0)
    # short_between_same: at most this long, between two observations of one other speaker.
    short_turn_max_s: float = Field(1.5, gt=0)
    # mid_sentence_change: the previous speaker's text has no sentence end and this one starts within.
    sentence_max_gap_s: float = Field(1.0, ge=0)
    # minor_speaker: a label with less than this share of the talk time, or fewer seconds.
    minor_speaker_max_share: float = Field(0.03, ge=0, lt=1)
    minor_speaker_max_s: float = Field(5.0, ge=0)


class VoiceprintConfig(Section):
    """Voiceprints (`emessi speakers suggest`): who each label of a new session most likely is.

    They change no cached stage artifact or set id; the embedder's identity is kept with every
    print, since prints of different embedders cannot be compared. Thresholds: docs/accuracy.md.
    """

    # A shipped embedding model (stages/embedding.speaker_embedder); another embedder is swapped in here.
    embedding: str = "resemblyzer-ge2e"
    # Clean stretches: observations without overlap, at least this long, with Whisper this sure.
    min_stretch_s: float = Field(1.5, gt=0)
    min_word_prob: float = Field(0.5, ge=0, le=1)
    # At most this much of a label's speech is embedded (the longest clean stretches first), so an
    # assignment in the workbench takes seconds, not minutes, on a long meeting.
    max_speech_s: float = Field(120.0, gt=0)
    # Robust average: stretches least like the mean are left out (this share, with 5 or more).
    trim_share: float = Field(0.2, ge=0, lt=1)
    # Below this cosine a label is "unknown"; a second label this close to the same person's
    # best label (score within split_margin) is reported as one person split in two.
    threshold: float = Field(0.75, ge=-1, le=1)
    split_margin: float = Field(0.05, ge=0, le=2)
    # At ingest, record suggestions at or above apply_min_score as `auto` assignments (off by default).
    apply_at_ingest: bool = False
    apply_min_score: float = Field(0.80, ge=-1, le=1)


class MetadataConfig(Section):
    # Named groups group, session, date, speakers are read from the file name.
    filename_pattern: str | None = None

    @field_validator("filename_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            import re

            re.compile(value)
        return value


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    description: str = ""
    allow_downloads: bool = False
    hf_token_env: str = "HF_TOKEN"
    # Transcribe and diarise a recording at the same time (speed only; results are the same).
    overlap_models: bool = True
    # While the models run, hand freed memory back to the system whenever the process has grown
    # by this many MB since the last hand-back; 0 never (memory only; results are the same).
    release_memory_growth_mb: float = Field(default=0, ge=0)
    extract: ExtractConfig = ExtractConfig()
    asr: AsrConfig = AsrConfig()
    diarization: DiarizationConfig = DiarizationConfig()
    align: AlignConfig = AlignConfig()
    segment: SegmentConfig = SegmentConfig()
    tracks: TracksConfig = TracksConfig()
    review: ReviewConfig = ReviewConfig()
    voiceprints: VoiceprintConfig = VoiceprintConfig()
    metadata: MetadataConfig = MetadataConfig()


def load_profile(name_or_path: str | Path = "default", overrides: dict | None = None) -> Profile:
    """Read a profile by name (from ``configs/``) or path, then apply dotted overrides.

    >>> load_profile("default", {"segment.max_pause": 2.0}).segment.max_pause
    2.0
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such profile (known: {', '.join(PROFILE_NAMES)})")
    data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return Profile.model_validate(data)
