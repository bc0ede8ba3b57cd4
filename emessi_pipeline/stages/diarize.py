"""Who spoke when: pyannote.audio's SpeakerDiarization over the offline or hub models."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import models
from .audio import PCM_SCALE, as_float
from ..config import DiarizationConfig
from .records import Diarization, SpeakerTurn

StepHook = Callable[[str, int | None, int | None], None]  # step, completed, total


@dataclass(frozen=True)
class SpeakerCount:
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


COUNT_METHODS = ("ahc", "eigengap", "silhouette")
CLUSTER_METHODS = ("kmeans-tree", "kmeans", "ahc-kmeans", "spectral")


def estimate_count(unit: np.ndarray, lower: int, upper: int, method: str = "ahc", threshold: float = 0.25,
                   min_share: float = 0.0, min_size: int = 12, max_embeddings: int = 4000) -> int:  # fmt: skip
    """How many speakers a set of unit-length embeddings holds, kept within [lower, upper].

    ``ahc``: average-linkage clustering on cosine distance, cut at *threshold*; only clusters
    holding at least *min_share* of the embeddings, or at least *min_size* of them, count (in a
    long meeting, overlapped or noisy chunks make small clusters of their own, which are no one
    new; *min_size* caps what the share asks, as pyannote's own clustering counts clusters of 12
    embeddings, so that in a long meeting a participant with a few seconds of speech still counts).
    Average linkage needs every pairwise distance, twice over in scipy: 2.5 GB for the 18,000
    embeddings of a two-hour meeting. Beyond *max_embeddings* it therefore counts on every k-th
    embedding (in time order, so each voice keeps its share), a cluster of the sample standing
    for k times as many.
    ``eigengap``: largest gap between consecutive eigenvalues of the normalised Laplacian of
    the cosine-affinity matrix (each row pruned to its nearest neighbours), as in spectral
    clustering of speaker embeddings. ``silhouette``: the KMeans k with the best cosine
    silhouette; one speaker when no k reaches *threshold*.
    """
    n = len(unit)
    upper = max(1, min(upper, n))
    lower = max(1, min(lower, upper))
    if n < 2 or upper == 1:
        return lower
    if method == "ahc":
        from scipy.cluster.hierarchy import fcluster, linkage

        sample, stride = _every_kth(unit, max_embeddings)
        labels = fcluster(linkage(sample, method="average", metric="cosine"), threshold, "distance")
        sizes = np.bincount(labels) * stride
        found = max(1, int(np.sum(sizes >= max(1.0, min(min_size, min_share * n)))))
    elif method == "eigengap":
        eigenvalues = np.linalg.eigvalsh(_laplacian(_pruned_affinity(unit)))
        gaps = np.diff(eigenvalues[: upper + 1])
        found = int(np.argmax(gaps[lower - 1 :])) + lower if len(gaps) >= lower else lower
    elif method == "silhouette":
        from sklearn.metrics import silhouette_score

        best, found = threshold, 1
        for k in range(max(2, lower), min(upper, n - 1) + 1):
            labels = _kmeans(unit, k)
            score = silhouette_score(unit, labels, metric="cosine")
            if score > best:
                best, found = score, k
    else:
        raise ValueError(f"unknown count method {method!r} (known: {', '.join(COUNT_METHODS)})")
    return int(min(max(found, lower), upper))


def _pruned_affinity(unit: np.ndarray, keep: float = 0.3) -> np.ndarray:
    affinity = np.clip(unit @ unit.T, 0.0, 1.0)
    n = len(affinity)
    neighbours = max(2, int(round(keep * n)))
    pruned = np.zeros_like(affinity)
    order = np.argsort(-affinity, axis=1)[:, :neighbours]
    rows = np.arange(n)[:, None]
    pruned[rows, order] = affinity[rows, order]
    return (pruned + pruned.T) / 2


def _laplacian(affinity: np.ndarray) -> np.ndarray:
    degree = affinity.sum(axis=1)
    inv = 1.0 / np.sqrt(np.maximum(degree, 1e-10))
    return np.eye(len(affinity)) - inv[:, None] * affinity * inv[None, :]


def _kmeans(unit: np.ndarray, k: int, init: np.ndarray | None = None) -> np.ndarray:
    from sklearn.cluster import KMeans

    if init is None:
        return KMeans(n_clusters=k, n_init=3, random_state=42).fit_predict(unit)
    return KMeans(n_clusters=k, init=init, n_init=1, random_state=42).fit_predict(unit)


def cluster_embeddings(unit: np.ndarray, k: int, method: str = "kmeans-tree", min_size: int = 12,
                       max_embeddings: int = 4000) -> np.ndarray:  # fmt: skip
    """Labels 0..k-1 for unit-length embeddings.

    ``kmeans-tree``: KMeans from the centroids of the k largest clusters of the average-linkage
    tree, at the highest cut where k clusters hold at least *min_size* embeddings each (the tree
    sampled to *max_embeddings*, as :func:`estimate_count` does), and KMeans from k-means++
    starts as ``kmeans``: whichever partition has the higher cosine silhouette (on the same
    sample). In a long meeting, random starts settle on splitting a voice with many embeddings
    and joining two with few, which fits KMeans's objective better than the true split, so
    inertia cannot choose (docs/accuracy.md, "Clustering with the count known"); the tree keeps
    small voices apart but sometimes starts from two parts of one voice. When no cut has k such
    clusters (short recordings), the k-means++ partition.
    ``kmeans``: KMeans from three k-means++ starts. ``ahc-kmeans``: the tree cut into k clusters,
    whatever their size, refined by KMeans from their centroids. ``spectral``: spectral
    clustering on the pruned cosine affinity.
    """
    if len(unit) <= k:
        return np.arange(len(unit))
    if k == 1:
        return np.zeros(len(unit), dtype=int)
    if method == "kmeans-tree":
        random_start = _kmeans(unit, k)
        start = _tree_start(unit, k, min_size, max_embeddings)
        if start is None:
            return random_start
        tree_start = _kmeans(unit, k, init=start)
        sample, stride = _every_kth(unit, max_embeddings)
        fit = [_silhouette(sample, labels[::stride]) for labels in (tree_start, random_start)]
        return tree_start if fit[0] >= fit[1] else random_start
    if method == "kmeans":
        return _kmeans(unit, k)
    if method == "ahc-kmeans":
        from scipy.cluster.hierarchy import fcluster, linkage

        labels = fcluster(linkage(unit, method="average", metric="cosine"), k, "maxclust") - 1
        centroids = np.stack([unit[labels == c].mean(axis=0) for c in np.unique(labels)])
        if len(centroids) < k:
            return _kmeans(unit, k)
        return _kmeans(unit, k, init=centroids)
    if method == "spectral":
        eigenvalues, vectors = np.linalg.eigh(_laplacian(_pruned_affinity(unit)))
        spectral = vectors[:, :k]
        spectral /= np.maximum(np.linalg.norm(spectral, axis=1, keepdims=True), 1e-10)
        return _kmeans(spectral, k)
    raise ValueError(f"unknown clustering method {method!r} (known: {', '.join(CLUSTER_METHODS)})")


def _every_kth(unit: np.ndarray, max_embeddings: int) -> tuple[np.ndarray, int]:
    """At most *max_embeddings* of *unit*, every k-th in time order, and k."""
    stride = -(-len(unit) // max_embeddings)
    return unit[::stride], stride


def _silhouette(unit: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    if not 1 < len(set(labels)) < len(labels):
        return -1.0
    return float(silhouette_score(unit, labels, metric="cosine"))


def _tree_start(unit: np.ndarray, k: int, min_size: int, max_embeddings: int) -> np.ndarray | None:
    """Centroids of the k largest clusters at the highest average-linkage cut where k clusters
    hold at least *min_size* embeddings each, or None when no cut has k such clusters."""
    from scipy.cluster.hierarchy import fcluster, linkage

    sample, stride = _every_kth(unit, max_embeddings)
    if len(sample) < 2:
        return None
    tree = linkage(sample, method="average", metric="cosine")
    for clusters in range(k, len(sample) + 1):
        labels = fcluster(tree, clusters, "maxclust")
        sizes = np.bincount(labels) * stride
        large = [c for c in np.argsort(-sizes, kind="stable") if c > 0 and sizes[c] >= min_size]
        if len(large) >= k:
            return np.stack([sample[labels == c].mean(axis=0) for c in large[:k]])
        if sizes.max() < min_size:
            break  # finer cuts only shrink the clusters
    return None


def offline_clustering(config: DiarizationConfig):
    """pyannote clustering step for the offline embeddings, estimating the count when none is given.

    pyannote's own agglomerative clustering without a count fell apart on meeting audio with
    the offline embeddings; the count is instead estimated (:func:`estimate_count`, with the
    config's ``count_*`` settings) and the embeddings clustered into exactly that many speakers
    (:func:`cluster_embeddings`), just as with a known count. Embeddings of local speakers with
    less than ``min_active_ratio`` of a chunk of speech on their own are left out of clustering and
    only assigned afterwards.
    """
    from pyannote.audio.pipelines.clustering import KMeansClustering

    class OfflineClustering(KMeansClustering):
        expects_num_clusters = False

        def __init__(self):
            super().__init__(metric="cosine")
            self.constrained_assignment = config.constrained_assignment

        def filter_embeddings(self, embeddings, segmentations=None, min_active_ratio=0.2):
            return super().filter_embeddings(embeddings, segmentations, min_active_ratio=config.min_active_ratio)

        def cluster(self, embeddings, min_clusters=None, max_clusters=None, num_clusters=None):
            unit = embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)
            if num_clusters is None:
                num_clusters = estimate_count(
                    unit, min_clusters or 1, max_clusters or len(unit), config.count_method,
                    config.count_threshold, config.count_min_share, config.count_min_size,
                    config.count_max_embeddings,
                )
            return cluster_embeddings(unit, num_clusters, config.clustering, config.count_min_size,
                                      config.count_max_embeddings)  # fmt: skip

    return OfflineClustering()


class Diarizer:
    """A loaded diarisation pipeline; load once per batch and call per recording."""

    def __init__(self, config: DiarizationConfig, allow_downloads: bool = False, token=None):
        import torch

        torch.set_num_threads(config.threads)
        self.config = config
        if config.pipeline:
            self.pipeline, self.identity = _hub_pipeline(config.pipeline, allow_downloads, token)
        else:
            self.pipeline, self.identity = _offline_pipeline(config)
        device = _torch_device(config.device)
        self.pipeline.to(device)

    def __call__(
        self, waveform: np.ndarray, sample_rate: int, uri: str, count: SpeakerCount,
        hook: StepHook | None = None,
    ) -> Diarization:  # fmt: skip
        import torch

        if waveform.size < sample_rate // 10:
            return Diarization(speakers=(), turns=(), exclusive_turns=())
        if waveform.dtype == np.int16 and not isinstance(self.pipeline, lean_diarization_class()):
            waveform = as_float(waveform)  # a hub pipeline takes float32 only
        file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": sample_rate, "uri": uri}
        kwargs = {k: v for k, v in vars(count).items() if v is not None}
        if kwargs.get("num_speakers") is not None:
            kwargs.pop("min_speakers", None)
            kwargs.pop("max_speakers", None)
        output = self.pipeline(file, hook=_pyannote_hook(hook), **kwargs)
        turns = _turns(output.speaker_diarization)
        exclusive = _turns(output.exclusive_speaker_diarization)
        return Diarization(
            speakers=tuple(sorted(output.speaker_diarization.labels())),
            turns=turns,
            exclusive_turns=exclusive,
            num_speakers_requested=count.num_speakers,
        )


def _turns(annotation) -> tuple[SpeakerTurn, ...]:
    turns = [
        SpeakerTurn(start=round(seg.start, 3), end=round(seg.end, 3), speaker=label)
        for seg, _, label in annotation.itertracks(yield_label=True)
    ]
    return tuple(sorted(turns, key=lambda t: (t.start, t.end, t.speaker)))


def _pyannote_hook(hook: StepHook | None):
    if hook is None:
        return None

    def call(step_name, step_artifact, file=None, total=None, completed=None):
        hook(step_name, completed, total)

    return call


def _torch_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def pcm_to_float(samples):
    """A torch tensor of int16 PCM as float32 in [-1, 1], exactly as audio.as_float; float
    passes through."""
    import torch

    if samples.dtype == torch.int16:
        return samples.to(torch.float32).mul_(PCM_SCALE)
    return samples


BINARIZE_CHUNKS = 1000


def binarize_in_chunks(scores, onset: float = 0.5, offset: float | None = None, initial_state=None):
    """pyannote's ``binarize``, over (chunks, frames, speakers) segmentations 1,000 chunks at a
    time. Each (chunk, speaker) row is thresholded on its own, so the result is the library's
    bit for bit; but the library gathers every row's frame indices as Python tuples first: for
    two hours (43,200 rows × 293 frames) 0.8 GB for a few seconds, which, when it met a
    Whisper block's own peak, was the difference between a run under 2.5 GB and one over."""
    from pyannote.audio.utils.signal import binarize
    from pyannote.core import SlidingWindowFeature

    rows_alike = initial_state is None or isinstance(initial_state, bool)
    if not (isinstance(scores, SlidingWindowFeature) and scores.data.ndim == 3 and rows_alike):
        return binarize(scores, onset=onset, offset=offset, initial_state=initial_state)
    data = None
    for c in range(0, len(scores.data), BINARIZE_CHUNKS):
        part = SlidingWindowFeature(scores.data[c : c + BINARIZE_CHUNKS], scores.sliding_window)
        done = binarize(part, onset=onset, offset=offset, initial_state=initial_state).data
        if data is None:
            data = np.empty(scores.data.shape, dtype=done.dtype)
        data[c : c + len(done)] = done
    if data is None:  # no chunks at all
        return binarize(scores, onset=onset, offset=offset, initial_state=initial_state)
    return SlidingWindowFeature(data, scores.sliding_window)


@functools.cache  # built on first use: importing pyannote costs seconds a command without diarisation saves
def lean_diarization_class():
    from pyannote.audio import Audio, Inference
    from pyannote.audio.pipelines import SpeakerDiarization, speaker_diarization
    from pyannote.core import SlidingWindowFeature

    # The pipeline's apply calls the module's binarize and offers no hook; the replacement
    # gives the same arrays (tests/test_diarize_memory.py), so every pipeline of the module,
    # a hub one too, may use it.
    speaker_diarization.binarize = binarize_in_chunks

    class PcmInference(Inference):
        """Segmentation over a recording held as int16 PCM: each batch of chunks is converted
        to float32 as the model takes it, instead of the whole recording at once."""

        def infer(self, chunks):
            return super().infer(pcm_to_float(chunks))

    class PcmAudio(Audio):
        """The embedding step's crops of an int16 recording, converted to float32."""

        def crop(self, file, segment, mode="raise"):
            waveform, sample_rate = super().crop(file, segment, mode=mode)
            return pcm_to_float(waveform), sample_rate

    class LeanDiarization(SpeakerDiarization):
        """pyannote's pipeline over a recording held as int16 PCM (see ``PcmInference``,
        ``PcmAudio``; a float32 recording passes through unchanged), with its `reconstruct`
        holding the clustered segmentation in the segmentation's own dtype (float32) instead
        of float64, built once instead of as ``nan * zeros``: for two hours (14,400 chunks ×
        293 frames × 6 speakers) 100 MB at the end of diarisation instead of 200 MB held and
        400 MB at once while it is built.

        The values are the segmentation's own, so float32 holds them exactly, and pyannote's
        aggregation multiplies each chunk by an integer mask first, which makes it float64 as
        before: the turns are bit for bit the same (tests/test_diarize_memory.py)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # pyannote builds both inside its __init__; their classes only add the conversion.
            self._segmentation.__class__ = PcmInference
            if hasattr(self, "_audio"):
                self._audio.__class__ = PcmAudio

        def reconstruct(self, segmentations, hard_clusters, count):
            num_chunks, num_frames, _ = segmentations.data.shape
            num_clusters = np.max(hard_clusters) + 1
            clustered = np.full((num_chunks, num_frames, num_clusters), np.nan, dtype=segmentations.data.dtype)
            for c, (cluster, (_, segmentation)) in enumerate(zip(hard_clusters, segmentations)):
                for k in np.unique(cluster):
                    if k == -2:
                        continue
                    clustered[c, :, k] = np.max(segmentation[:, cluster == k], axis=1)
            return self.to_diarization(SlidingWindowFeature(clustered, segmentations.sliding_window), count)

    return LeanDiarization


def _offline_pipeline(config: DiarizationConfig):
    from pyannote.audio import Model
    from pyannote.audio.core.plda import PLDA

    # The v2 checkpoint is migrated in memory on every load; the hint to rewrite the installed
    # file is noise to a researcher.
    logging.getLogger("lightning.pytorch.utilities.migration.utils").setLevel(logging.WARNING)
    seg_dir = models.resolve_shipped(config.segmentation)
    segmentation = Model.from_pretrained(str(seg_dir / "pytorch_model.bin"))
    embedding = _offline_embedding(config)
    # SpeakerDiarization always loads a PLDA, which only VBx clustering uses and which would
    # otherwise be fetched from the hub; an empty one is never touched by KMeans.
    pipeline = lean_diarization_class()(
        segmentation=segmentation,
        segmentation_step=config.segmentation_step,
        embedding=embedding,
        embedding_exclude_overlap=config.embedding_exclude_overlap,
        plda=PLDA.__new__(PLDA),
        clustering="KMeansClustering",
        embedding_batch_size=config.batch_size,
        segmentation_batch_size=config.batch_size,
    )
    pipeline.clustering = offline_clustering(config)
    pipeline._expects_num_speakers = False
    segmentation_params = {"min_duration_off": config.min_duration_off}
    # A powerset model (segmentation-3.0) decides who speaks itself: it has no threshold.
    if not segmentation.specifications.powerset:
        segmentation_params["threshold"] = config.segmentation_threshold
    pipeline.instantiate({"segmentation": segmentation_params, "clustering": {}})
    return pipeline, pipeline_identity(config)


EMBEDDING_KINDS = ("resemblyzer-ge2e", "campplus")


def _offline_embedding(config: DiarizationConfig):
    if config.embedding not in EMBEDDING_KINDS:
        raise models.MissingModelError(
            f"diarization.embedding '{config.embedding}' is not a speaker embedding model "
            f"(known: {', '.join(EMBEDDING_KINDS)})"
        )
    emb_dir = models.resolve_shipped(config.embedding)
    if config.embedding == "campplus":
        from .campplus import CampplusEmbedding

        return CampplusEmbedding(emb_dir / "campplus_cn_en_common.pt")
    from .embedding import ResemblyzerEmbedding

    return ResemblyzerEmbedding(
        emb_dir / "pretrained.pt",
        partial_frames=round(config.embedding_partial_s * 100),  # 10 ms mel frames
        partial_step=round(config.embedding_partial_step_s * 100),
    )


def pipeline_identity(config: DiarizationConfig) -> str:
    """Which models a diarisation config names, without loading them (for cache keys)."""
    if config.pipeline:
        path = Path(config.pipeline).expanduser()
        return models.path_identity(path) if path.is_dir() else config.pipeline
    for name in (config.segmentation, config.embedding):
        models.resolve_shipped(name)
    return "+".join(models.SHIPPED_MODELS[n].identity for n in (config.segmentation, config.embedding))


def _hub_pipeline(name: str, allow_downloads: bool, token):
    from pyannote.audio import Pipeline

    path = Path(name).expanduser()
    local = path.is_dir()
    try:
        pipeline = Pipeline.from_pretrained(str(path) if local else name, token=token)
    except Exception as error:  # noqa: BLE001 - pyannote raises many kinds here
        pipeline, error_text = None, f"{type(error).__name__}: {error}"
    else:
        error_text = "pyannote returned no pipeline"
    if pipeline is None:
        hint = (
            "download it once with allow_downloads and a Hugging Face token (HF_TOKEN) after "
            "accepting its conditions on the hub, or copy the pipeline folder to this machine "
            "and name its path in the profile's diarization.pipeline"
        )
        if not allow_downloads and not local:
            hint = "downloads are off; " + hint
        raise models.MissingModelError(f"diarisation pipeline '{name}' could not be loaded ({error_text}); {hint}")
    return pipeline, pipeline_identity(DiarizationConfig(pipeline=name))
