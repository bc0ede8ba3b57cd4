"""Transcription's memory: the log-Mel spectrogram computed 30 s at a time is the library's, bit
for bit, so the lean path changes no word."""

from __future__ import annotations

import numpy as np
from faster_whisper.audio import decode_audio

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
