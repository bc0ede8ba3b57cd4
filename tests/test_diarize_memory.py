"""The diarisation's reconstruction, held in float32 (stages/diarize.lean_diarization_class),
against pyannote's own: the same discrete diarisation bit for bit, on segmentations shaped like a
real run's (overlapping chunks, inactive local speakers, more speakers than a chunk holds)."""

from __future__ import annotations

import numpy as np
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.core import SlidingWindow, SlidingWindowFeature

from emessi_pipeline.stages.diarize import lean_diarization_class


def test_the_float32_reconstruction_gives_pyannotes_diarization_bit_for_bit():
    rng = np.random.default_rng(3)
    chunks, frames, local, clusters = 400, 293, 3, 6
    segmentations = SlidingWindowFeature(rng.random((chunks, frames, local), dtype=np.float32),
                                         SlidingWindow(start=0.0, duration=5.0, step=0.5))  # fmt: skip
    hard = rng.integers(0, clusters, size=(chunks, local))
    hard[rng.random((chunks, local)) < 0.2] = -2  # inactive local speakers
    hard[:, 1] = np.where(rng.random(chunks) < 0.1, hard[:, 0], hard[:, 1])  # two local speakers, one cluster
    step = 5.0 / frames
    total = int((chunks * 0.5 + 5.0) / step)
    count = SlidingWindowFeature(rng.integers(0, 3, size=(total, 1)).astype(np.int8),
                                 SlidingWindow(start=0.0, duration=step, step=step))  # fmt: skip
    pipeline = lean_diarization_class().__new__(lean_diarization_class())  # reconstruct reads no state

    theirs = SpeakerDiarization.reconstruct(pipeline, segmentations, hard, count)
    ours = pipeline.reconstruct(segmentations, hard, count)

    assert theirs.data.sum() > 0
    assert ours.data.dtype == theirs.data.dtype
    assert np.array_equal(ours.data, theirs.data)
    window = lambda w: (w.start, w.duration, w.step)  # noqa: E731
    assert window(ours.sliding_window) == window(theirs.sliding_window)


def test_binarizing_in_pieces_of_chunks_gives_pyannotes_arrays_bit_for_bit(monkeypatch):
    from pyannote.audio.pipelines import speaker_diarization
    from pyannote.audio.utils.signal import binarize

    from emessi_pipeline.stages import diarize
    from emessi_pipeline.stages.diarize import binarize_in_chunks

    monkeypatch.setattr(diarize, "BINARIZE_CHUNKS", 100)  # the same code in a tenth of the time
    rng = np.random.default_rng(5)
    chunks = 2 * diarize.BINARIZE_CHUNKS + 45  # a short last piece
    scores = rng.random((chunks, 293, 3), dtype=np.float32)
    scores[rng.random(scores.shape) < 0.05] = 0.5  # exactly at the threshold: the state carries over
    scores[:7, :40] = 0.5  # rows that start undecided
    scores[rng.random(scores.shape) < 0.01] = np.nan
    segmentations = SlidingWindowFeature(scores, SlidingWindow(start=0.0, duration=5.0, step=0.5))
    for onset, state in ((0.5, False), (0.5, None), (0.3, True)):
        theirs = binarize(segmentations, onset=onset, initial_state=state)
        ours = binarize_in_chunks(segmentations, onset=onset, initial_state=state)
        assert ours.data.dtype == theirs.data.dtype and ours.data.shape == theirs.data.shape
        assert np.array_equal(ours.data, theirs.data), (onset, state)
        assert ours.sliding_window is segmentations.sliding_window
    assert 0.2 < theirs.data.mean() < 0.9
    lean_diarization_class()
    assert speaker_diarization.binarize is binarize_in_chunks
