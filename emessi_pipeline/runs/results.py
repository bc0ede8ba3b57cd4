"""What a run reports: one result per recording, the batch's summary, and the progress hooks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class RecordingResult:
    path: str
    status: str  # "done", "unchanged", "failed", "skipped" (failed before, unchanged) or "deferred"
    recording_id: str | None = None
    change: str | None = None  # "new", "changed" (new content at a known path) or None
    stage: str | None = None  # where it failed
    message: str | None = None
    note: str | None = None  # done, with a caveat (per-participant tracks not used, and why)
    duration_s: float = 0.0
    speakers: int = 0
    observations: int = 0
    words: int = 0
    computed: list[str] = field(default_factory=list)  # stages that ran (not cached)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    model_wall_s: float = 0.0  # wall time of transcription and diarisation together (they overlap)
    auto_assigned: int = 0  # labels assigned from voiceprints at load (profile voiceprints.apply_at_ingest)


@dataclass
class IngestSummary:
    run_id: str
    database: str | None
    workspace: str
    results: list[RecordingResult]
    wall_seconds: float
    models: dict[str, str]
    files_seen: int = 0

    @property
    def failed(self) -> list[RecordingResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def audio_seconds(self) -> float:
        return sum(r.duration_s for r in self.results if r.status in ("done", "unchanged"))

    @property
    def processed_seconds(self) -> float:
        return sum(r.duration_s for r in self.results if r.status == "done")

    def to_dict(self) -> dict:
        audio_s = self.audio_seconds
        stage_totals: dict[str, float] = {}
        for r in self.results:
            for stage, seconds in r.stage_seconds.items():
                stage_totals[stage] = round(stage_totals.get(stage, 0.0) + seconds, 3)
        model_wall = sum(r.model_wall_s for r in self.results)
        own = max(self.wall_seconds - model_wall, 0.0)
        count = lambda **kv: sum(all(getattr(r, k) == v for k, v in kv.items()) for r in self.results)  # noqa: E731
        return {
            "run_id": self.run_id,
            "database": self.database,
            "workspace": self.workspace,
            "files_seen": self.files_seen,
            "recordings": len(self.results),
            "new": count(change="new"),
            "changed": count(change="changed"),
            "done": count(status="done"),
            "unchanged": count(status="unchanged"),
            "failed": len(self.failed),
            "skipped": count(status="skipped"),
            "deferred": count(status="deferred"),
            "audio_seconds": round(audio_s, 3),
            "audio_hours": round(audio_s / 3600, 4),
            "speakers": sum(r.speakers for r in self.results),
            "observations": sum(r.observations for r in self.results),
            "words": sum(r.words for r in self.results),
            "wall_seconds": round(self.wall_seconds, 3),
            "processed_audio_seconds": round(self.processed_seconds, 3),
            "real_time_factor": round(self.wall_seconds / self.processed_seconds, 4) if self.processed_seconds else None,
            "stage_seconds": stage_totals,
            "model_wall_seconds": round(model_wall, 3),
            # everything but the models: discovery, hashing, extraction, alignment, loading, bookkeeping
            "own_seconds": round(own, 3),
            "own_share": round(own / self.wall_seconds, 4) if self.wall_seconds and model_wall else None,
            "models": self.models,
            "results": [asdict(r) for r in self.results],
        }


class Reporter:
    """Progress callbacks; the CLI draws them with rich, the API default stays silent."""

    def start(self, total: int) -> None: ...
    def file_started(self, path: Path) -> None: ...
    def stage(self, path: Path, stage: str, completed: float | None = None, total: float | None = None) -> None: ...
    def file_finished(self, result: RecordingResult) -> None: ...
