"""A recording held as int16 PCM (half the memory of float32) gives the words and the turns that
the float32 samples give, bit for bit: each consumer converts only the part it works on."""

from __future__ import annotations

import numpy as np
import pytest

from emessi_pipeline import load_profile
from emessi_pipeline.stages import audio
from emessi_pipeline.stages.diarize import Diarizer, SpeakerCount
from emessi_pipeline.stages.transcribe import block_bounds

from .conftest import shared


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    """Two real clips back to back (about a minute, several voices), extracted as the ingest does,
    read as PCM and as float32."""
    folder = tmp_path_factory.mktemp("pcm")
    pcm, floats = [], []
    for name in ("trn07.wav", "dev01.wav"):
        source = shared("ami", name)
        wav = folder / name
        audio.extract(source, wav, 0, 16_000, audio.probe(source))
        pcm.append(audio.read_pcm(wav)[0])
        floats.append(audio.read_wav(wav)[0])
    return np.concatenate(pcm), np.concatenate(floats)


def test_pcm_samples_convert_to_read_wavs_float32_exactly(meeting):
    pcm, floats = meeting
    assert pcm.dtype == np.int16 and floats.dtype == np.float32
    converted = audio.as_float(pcm)
    assert converted.dtype == np.float32 and np.array_equal(converted, floats)
    assert np.abs(floats).max() > 0.05  # real speech, not silence that any scaling would keep
    assert audio.as_float(floats) is floats


def test_diarisation_of_pcm_equals_float32(meeting, model_cache):
    pcm, floats = (samples[: 30 * 16_000] for samples in meeting)  # the first clip: half the time
    config = load_profile("default").diarization
    # the ingest's own key: the models load once for the whole suite
    diarizer = model_cache.get(("diarization", config.fingerprint(), False), lambda: Diarizer(config))
    from_floats = diarizer(floats, 16_000, "m", SpeakerCount())
    from_pcm = diarizer(pcm, 16_000, "m", SpeakerCount())
    assert len(from_floats.speakers) >= 2
    assert from_pcm == from_floats


def test_transcription_blocks_of_pcm_are_cut_where_float32_ones_are(meeting):
    """The decoder is given as_float of each block (exact, above), so equal cuts mean equal
    input to Whisper; every ingest test transcribes through the PCM path besides."""
    pcm, floats = meeting
    for seconds in (36.0, 45.0):
        cuts = block_bounds(pcm, 16_000, seconds)
        assert len(cuts) == 2 and cuts == block_bounds(floats, 16_000, seconds)
