"""Who spoke when: pyannote.audio's SpeakerDiarization over the offline or hub models."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import models
from .config import DiarizationConfig
from .records import Diarization, SpeakerTurn

StepHook = Callable[[str, int | None, int | None], None]  # step, completed, total


@dataclass(frozen=True)
class SpeakerCount:
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


def _estimating_kmeans(count_threshold: float):
    """KMeans that estimates the number of clusters itself when it is not given.

    pyannote's own agglomerative clustering without a count fell apart on meeting audio with
    the offline embeddings, and silhouette or eigengap estimates over-counted on the shared
    clips. Average-linkage clustering cut at a cosine distance gave the count exactly on 6 of
    12 clips (mean error 0.7 speakers); that count, kept within [min, max], then goes to KMeans
    just as a known count would.
    """
    from pyannote.audio.pipelines.clustering import KMeansClustering
    from sklearn.cluster import AgglomerativeClustering

    class EstimatingKMeans(KMeansClustering):
        expects_num_clusters = False

        def cluster(self, embeddings, min_clusters=None, max_clusters=None, num_clusters=None):
            if num_clusters is None:
                num_clusters = self.estimate(embeddings, min_clusters or 1, max_clusters or len(embeddings))
            return super().cluster(embeddings, num_clusters=num_clusters)

        @staticmethod
        def estimate(embeddings: np.ndarray, lower: int, upper: int) -> int:
            if len(embeddings) < 2:
                return max(1, min(lower, len(embeddings)))
            unit = embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)
            found = AgglomerativeClustering(
                n_clusters=None, distance_threshold=count_threshold, metric="cosine", linkage="average"
            ).fit(unit).n_clusters_
            return int(min(max(found, lower), upper, len(embeddings)))

    return EstimatingKMeans


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


def _offline_pipeline(config: DiarizationConfig):
    from pyannote.audio import Model
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization

    from .embedding import ResemblyzerEmbedding

    # The v2 checkpoint is migrated in memory on every load; the hint to rewrite the installed
    # file is noise to a researcher.
    logging.getLogger("lightning.pytorch.utilities.migration.utils").setLevel(logging.WARNING)
    seg_dir = models.resolve_shipped(config.segmentation)
    emb_dir = models.resolve_shipped(config.embedding)
    segmentation = Model.from_pretrained(str(seg_dir / "pytorch_model.bin"))
    embedding = ResemblyzerEmbedding(emb_dir / "pretrained.pt")
    # SpeakerDiarization always loads a PLDA, which only VBx clustering uses and which would
    # otherwise be fetched from the hub; an empty one is never touched by KMeans.
    pipeline = SpeakerDiarization(
        segmentation=segmentation,
        segmentation_step=config.segmentation_step,
        embedding=embedding,
        embedding_exclude_overlap=config.embedding_exclude_overlap,
        plda=PLDA.__new__(PLDA),
        clustering="KMeansClustering",
        embedding_batch_size=config.batch_size,
        segmentation_batch_size=config.batch_size,
    )
    pipeline.clustering = _estimating_kmeans(config.count_threshold)(metric="cosine")
    pipeline._expects_num_speakers = False
    pipeline.instantiate(
        {
            "segmentation": {
                "threshold": config.segmentation_threshold,
                "min_duration_off": config.min_duration_off,
            },
            "clustering": {},
        }
    )
    return pipeline, pipeline_identity(config)


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
