"""Small typed records passed between stages and stored as JSON artifacts."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class RecordingMeta(BaseModel):
    """What is known of a recording before it is processed: its group, session, date and speaker
    count (from a manifest or the file name; every field may be missing)."""

    model_config = ConfigDict(extra="ignore")

    group: str | None = None
    session: int | None = Field(None, ge=0)
    date: dt.date | None = None
    speakers: int | None = Field(None, ge=1)
    min_speakers: int | None = Field(None, ge=1)
    max_speakers: int | None = Field(None, ge=1)
    # Per-participant tracks: a track's name (file name, stem or label) to the label it gets.
    tracks: dict[str, str] | None = None

    @field_validator("tracks", mode="before")
    @classmethod
    def _track_pairs(cls, value):
        """CSV cells say ``name=P01; other=P02``."""
        if isinstance(value, str) and value.strip():
            pairs = [p.split("=", 1) for p in value.split(";") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("tracks must read 'track=id; track=id'")
            return {a.strip(): b.strip() for a, b in pairs}
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_missing(cls, value):
        return None if isinstance(value, str) and not value.strip() else value


class MediaInfo(Record):
    path: str
    container: str
    duration: float
    audio_streams: int
    video_streams: int
    stream_index: int  # absolute index of the chosen audio stream
    codec: str
    sample_rate: int
    channels: int


class Word(Record):
    start: float
    end: float
    text: str
    probability: float
    loop: bool = False  # part of a repetition loop that was kept and flagged


class Segment(Record):
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...]
    repetition_loop: bool = False
    # Whisper's temperature for this window: above 0, it decoded badly at 0 and was re-sampled.
    temperature: float = 0.0


class Transcript(Record):
    language: str
    language_probability: float
    duration: float
    segments: tuple[Segment, ...]
    dropped_loop_words: int = 0


class SpeakerTurn(Record):
    start: float
    end: float
    speaker: str


class Diarization(Record):
    speakers: tuple[str, ...]
    turns: tuple[SpeakerTurn, ...]  # overlap-aware: turns of different speakers may overlap
    exclusive_turns: tuple[SpeakerTurn, ...]  # at most one speaker at any time
    num_speakers_requested: int | None = None
    source: str = "clustering"  # or "tracks": from per-participant tracks (stages/tracks.py)
    note: str | None = None  # why a multitrack recording was diarised by clustering instead


class AlignedWord(Record):
    start: float
    end: float
    text: str
    probability: float
    speaker: str
    overlap: bool
    in_gap: bool  # no exclusive turn covered it: the nearest turn's speaker was used
    loop: bool
    segment_index: int


class Alignment(Record):
    words: tuple[AlignedWord, ...]


class Observation(Record):
    observation_id: str
    seq: int
    speaker: str
    start: float
    end: float
    text: str
    word_count: int
    mean_word_probability: float | None
    overlap: bool
    word_start: int  # index of its first word in the alignment
    word_end: int  # one past its last word


class Observations(Record):
    set_id: str
    observations: tuple[Observation, ...]
