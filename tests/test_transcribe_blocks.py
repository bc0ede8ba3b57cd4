"""Transcription's memory: the log-Mel spectrogram computed 30 s at a time is the library's, bit
for bit, so the lean path changes no word."""

from __future__ import annotations

import os

import numpy as np
from faster_whisper.audio import decode_audio
from faster_whisper.utils import get_assets_path

from emessi_pipeline.stages.transcribe import SAMPLE_RATE, lean_features

from .conftest import shared


def test_the_spectrogram_computed_30_s_at_a_time_is_the_librarys_bit_for_bit():
    from faster_whisper.feature_extractor import FeatureExtractor

    clips = [decode_audio(str(shared("ami", name)), SAMPLE_RATE) for name in ("trn07.wav", "dev01.wav")]
    ten_minutes = np.tile(np.concatenate(clips), 10)  # a whole default block
    library, lean = FeatureExtractor(feature_size=80), lean_features(FeatureExtractor(feature_size=80))
    # 3,000 frames are 30 s: lengths that leave one frame over, half a piece, or less than one piece
    for seconds in (600.0, 90.0, 45.3, 2.1):
        audio = ten_minutes[: int(seconds * SAMPLE_RATE)]
        assert np.array_equal(lean(audio, chunk_length=30), library(audio, chunk_length=30)), seconds


def test_voice_activity_in_pieces_of_1000_windows_is_the_librarys_bit_for_bit():
    from faster_whisper.vad import SileroVADModel, VadOptions, get_speech_timestamps, get_vad_model

    from emessi_pipeline.stages.transcribe import _VadInPieces, lean_vad

    clips = [decode_audio(str(shared("ami", name)), SAMPLE_RATE) for name in ("trn07.wav", "dev01.wav")]
    ten_minutes = np.tile(np.concatenate(clips), 10)[: 600 * SAMPLE_RATE]  # a whole default block
    path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")  # the file get_vad_model loads
    library, lean = SileroVADModel(path), lean_vad(SileroVADModel(path))
    assert isinstance(lean.session, _VadInPieces) and not isinstance(lean_vad(lean).session.session, _VadInPieces)
    # 18,750 windows: a full library batch of 10,000 and a short one, which 1,000 does not divide
    for seconds in (600.0, 333.3, 2.1):
        audio = ten_minutes[: int(seconds * SAMPLE_RATE)]
        padded = np.pad(audio, (0, 512 - audio.size % 512))
        assert np.array_equal(lean(padded.copy()), library(padded.copy())), seconds

    # What transcription takes from it: the speech timestamps from the library's cached model
    options = VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160)  # faster-whisper's defaults
    cached = get_vad_model()
    if isinstance(cached.session, _VadInPieces):  # an earlier test in this process loaded a Whisper
        cached.session = cached.session.session
    plain = get_speech_timestamps(ten_minutes, options)
    lean_vad()
    assert isinstance(cached.session, _VadInPieces)
    assert len(plain) > 20 and get_speech_timestamps(ten_minutes, options) == plain
