"""The ingest chain: extract → transcribe → diarize → align → segment → load.

Each stage is a function from cached input artifacts to a cached output artifact; models are
loaded once per batch and only when some recording actually needs them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from ..version import __version__
from ..stages import audio
from ..dataset import connection as database
from . import devices, memory, privacy
from ..stages.align import align
from ..config import Profile
from ..stages.diarize import Diarizer, SpeakerCount, pipeline_identity
from .interrupts import protected
from .lock import RunLock
from .parallel import Background
from .shard import Shard
from .manifest import RecordingMeta, find_manifest, metadata_for, read_manifest
from ..stages.models import MissingModelError
from ..stages.records import Alignment, Diarization, MediaInfo, Observations, Transcript
from ..stages.segment import observation_set_id, segment
from ..stages.transcribe import load_model, transcribe
from .workspace import ContentIndex, Workspace, atomic_write_bytes, stage_key

STAGES = ("extract", "transcribe", "diarize", "align", "segment", "load")
# Bump a stage's version when its code changes what it produces: its cache then misses.
STAGE_VERSIONS = {"extract": 1, "transcribe": 1, "diarize": 1, "align": 1, "segment": 1}
MIN_FREE_BYTES = 200_000_000  # headroom beyond the WAV itself, for artifacts and the database
# Settings that change speed, not results, stay out of the cache keys.
SPEED_ONLY = {"asr": {"cpu_threads", "device"}, "diarization": {"threads", "threads_beside_asr", "batch_size", "device"}}


# What a bad or unusual input raises inside a stage: a failure of that recording, not of the run.
INPUT_ERRORS = (audio.MediaError, ValueError, RuntimeError, OSError)


class StageError(RuntimeError):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True)
class Limits:
    """Bounds on one run's work, so a nightly job ends in time; unchanged files cost nothing."""

    max_files: int | None = None
    max_hours: float | None = None


class _Budget:
    def __init__(self, limits: Limits):
        self.limits, self.files, self.seconds = limits, 0, 0.0

    def spend(self, result: "RecordingResult") -> None:
        if result.status in ("done", "failed"):
            self.files += 1
            self.seconds += result.duration_s

    def exhausted(self) -> bool:
        return bool(self.reason())

    def reason(self) -> str:
        if self.limits.max_files is not None and self.files >= self.limits.max_files:
            return f"--max-files {self.limits.max_files} reached; next run continues"
        if self.limits.max_hours is not None and self.seconds >= self.limits.max_hours * 3600:
            return f"--max-hours {self.limits.max_hours:g} reached; next run continues"
        return ""


def _db_lock_path(database_path: Path) -> Path:
    return Path(str(database_path) + ".emessi-lock")


def _signature(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _check_settled(path: Path, settle_seconds: float) -> None:
    """A file written in the last moments may still be growing (a copy or a recording in progress)."""
    try:
        before = path.stat()
    except OSError:
        return  # the read that follows reports it
    if settle_seconds <= 0 or time.time() - before.st_mtime > settle_seconds:
        return
    time.sleep(min(1.0, settle_seconds))
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise StageError("discover", f"{path}: still being written (size {before.st_size} → {after.st_size} bytes in 1 s)")


@dataclass
class RecordingResult:
    path: str
    status: str  # "done", "unchanged", "failed", "skipped" (failed before, unchanged) or "deferred"
    recording_id: str | None = None
    change: str | None = None  # "new", "changed" (new content at a known path) or None
    stage: str | None = None  # where it failed
    message: str | None = None
    duration_s: float = 0.0
    speakers: int = 0
    observations: int = 0
    words: int = 0
    computed: list[str] = field(default_factory=list)  # stages that ran (not cached)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    model_wall_s: float = 0.0  # wall time of transcription and diarisation together (they overlap)


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


def _section(profile: Profile, name: str) -> dict:
    data = getattr(profile, name).model_dump(mode="json")
    for key in SPEED_ONLY.get(name, ()):
        data.pop(key, None)
    return data


class ModelCache:
    """Loaded models keyed by their settings; share one between Ingestors to load them once."""

    def __init__(self):
        self._items: dict[tuple, object] = {}

    def get(self, key: tuple, factory: Callable[[], object]):
        if key not in self._items:
            self._items[key] = factory()
        return self._items[key]


class Ingestor:
    """Runs the chain over recordings; reusable across calls so models load once."""

    def __init__(
        self,
        profile: Profile,
        workspace: Path,
        database_path: Path | None = None,
        reporter: Reporter | None = None,
        speaker_count: SpeakerCount | None = None,
        db_wait: float = 0.0,
        model_cache: ModelCache | None = None,
        settle_seconds: float = 10.0,
    ):
        privacy.lock_down(profile.allow_downloads)
        memory.limit_malloc_arenas()
        self.profile = profile
        self.workspace = Workspace(workspace)
        self.database_path = database_path
        self.reporter = reporter or Reporter()
        self.count_override = speaker_count or SpeakerCount()
        self.db_wait = db_wait
        self.model_cache = model_cache or ModelCache()
        self.settle_seconds = settle_seconds
        self.last_summary: IngestSummary | None = None
        self.models: dict[str, str] = {}
        self.shard: Shard | None = None
        self.cached_only = False

    # --- models, loaded on first need -------------------------------------------------------

    def asr(self):
        cfg, allow = self.profile.asr, self.profile.allow_downloads
        model, resolved = self.model_cache.get(("asr", cfg.fingerprint(), allow), lambda: load_model(cfg, allow))
        self.models["asr"] = resolved.identity
        return model

    def asr_identity(self) -> str:
        from ..stages.transcribe import resolve_model

        if "asr" not in self.models:
            self.models["asr"] = resolve_model(self.profile.asr, self.profile.allow_downloads).identity
        return self.models["asr"]

    def diarizer(self) -> Diarizer:
        cfg, allow = self.profile.diarization, self.profile.allow_downloads
        token = os.environ.get(self.profile.hf_token_env)
        diarizer = self.model_cache.get(("diarization", cfg.fingerprint(), allow), lambda: Diarizer(cfg, allow, token))
        self.models["diarization"] = diarizer.identity
        return diarizer

    def diarization_identity(self) -> str:
        # From the config alone: a nightly run with nothing to do must not load a GPU pipeline.
        if "diarization" not in self.models:
            self.models["diarization"] = pipeline_identity(self.profile.diarization)
        return self.models["diarization"]

    # --- the batch ------------------------------------------------------------------------------

    def run(
        self,
        source: Path,
        until: str = "load",
        manifest_path: Path | None = None,
        limits: Limits | None = None,
        retry_failed: bool = False,
        shard: Shard | None = None,
        cached_only: bool = False,
    ) -> IngestSummary:
        """Process every recording under *source* up to stage *until*.

        Holds the workspace (and database) lock for the whole run. On an interrupt the summary
        of what finished is kept in ``last_summary`` before the exception propagates.

        *shard* processes only its share of the recordings and never writes the database (a
        sharded ``load`` stops after ``segment``); the shards of a batch share the workspace, and
        a final ``cached_only`` load merges their artifacts into the database without running
        a model.
        """
        if until not in STAGES:
            raise ValueError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
        if shard is not None and until == "load":
            until = "segment"
        self.shard, self.cached_only = shard, cached_only
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        manifest_path = manifest_path or find_manifest(source)
        manifest = read_manifest(manifest_path) if manifest_path else {}
        if until in ("transcribe", "diarize", "align", "segment", "load") and not cached_only:
            devices.require(self.profile, until)
        with contextlib.ExitStack() as locks:
            locks.enter_context(RunLock(self.workspace.root / ".lock", "workspace", shared=shard is not None))
            if shard is not None:
                locks.enter_context(RunLock(self.workspace.root / f".lock-{shard.name}", "shard"))
            if until == "load":
                locks.enter_context(RunLock(_db_lock_path(self.database_path), "database"))
            summary = self._run(source, until, manifest, limits or Limits(), retry_failed)
            if shard is not None:
                atomic_write_bytes(self.workspace.root / "shards" / f"{shard.name}.json",
                                   json.dumps(summary.to_dict(), indent=1, default=str).encode())  # fmt: skip
            return summary

    def _run(self, source, until, manifest, limits: Limits, retry_failed: bool) -> IngestSummary:
        started = time.monotonic()
        run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + secrets.token_hex(3)
        paths = audio.find_recordings(source)
        if self.shard is not None:
            paths = self.shard.select(paths, source)
        index = ContentIndex(self.workspace.root / "content-index.json")
        con = None
        if until == "load":
            con = database.connect(self.database_path, wait=self.db_wait)
            database.start_run(con, run_id, __version__, self.profile.name,
                               self.profile.model_dump(mode="json"), {})  # fmt: skip
        results: list[RecordingResult] = []
        self.reporter.start(len(paths))
        budget = _Budget(limits)
        try:
            for path in paths:
                self.reporter.file_started(path)
                if budget.exhausted():
                    result = RecordingResult(path=str(path), status="deferred", message=budget.reason())
                else:
                    meta = metadata_for(path, source, manifest, self.profile.metadata.filename_pattern)
                    result = self.process(path, meta, index, until, con, run_id, retry_failed)
                    budget.spend(result)
                results.append(result)
                self.reporter.file_finished(result)
                index.save()
        finally:
            index.save()
            summary = IngestSummary(run_id, str(self.database_path) if con else None,
                                    str(self.workspace.root), results,
                                    time.monotonic() - started, dict(self.models), len(paths))  # fmt: skip
            self.last_summary = summary
            if con is not None:
                status = "complete" if len(results) == len(paths) else "interrupted"
                data = summary.to_dict()
                data.pop("results")
                with protected():
                    database.finish_run(con, run_id, status, data)
                con.close()
        return summary

    def process(self, path: Path, meta: RecordingMeta, index: ContentIndex, until: str, con, run_id: str,
                retry_failed: bool = False) -> RecordingResult:  # fmt: skip
        result = RecordingResult(path=str(path), status="done")
        signature = _signature(path)
        if con is not None and not retry_failed:
            earlier = database.unresolved_failure(con, path, signature)
            if earlier:
                stage, message = earlier
                result.status, result.stage = "skipped", stage
                result.message = f"failed before and unchanged since ({message}); --retry-failed to try again"
                return result
        try:
            self._process(path, meta, index, until, con, run_id, result)
        except StageError as error:
            result.status, result.stage, result.message = "failed", error.stage, str(error)
            if con is not None:
                with protected():
                    database.record_failure(con, run_id, path, result.recording_id, error.stage, str(error), signature)
        else:
            if con is not None:
                with protected():
                    database.resolve_failures(con, path)
        return result

    def _process(self, path, meta, index, until, con, run_id, result: RecordingResult) -> None:
        stage = "extract"
        _check_settled(path, self.settle_seconds)
        try:
            sha = index.sha256(path)
        except OSError as error:
            raise StageError(stage, f"{path}: cannot read it ({error.strerror or error})") from None
        result.recording_id = sha[:16]
        chain = _Chain(self, path, sha, meta, result)
        try:
            chain.compute_keys()
            if con is not None:
                result.change = database.change_kind(con, path, result.recording_id)
                if database.is_current(con, chain.recording_id, chain.set_id, path, meta):
                    self._fill_from_database(con, chain, result)
                    return
            if self.cached_only:
                self._require_cached(chain, until)
            for stage in STAGES[: STAGES.index(until) + 1]:
                if stage == "extract":
                    chain.extract(need_wav=chain.models_needed(until))
                elif stage == "transcribe":
                    chain.run_models(with_diarization=STAGES.index(until) >= STAGES.index("diarize"))
                elif stage == "load":
                    result.status = "done" if self._load(con, chain, run_id) else "unchanged"
                else:
                    getattr(chain, stage)()
        except (StageError, MissingModelError):
            raise  # a missing model stops the batch: every other file would fail the same way
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None  # Ctrl-C inside a query (no handler installed)
        except INPUT_ERRORS as error:
            raise StageError(stage, _one_line(error, path)) from None
        if until != "load" and not result.computed:
            result.status = "unchanged"

    def _require_cached(self, chain: "_Chain", until: str) -> None:
        """A merge after a sharded run runs no model: a missing model artifact is a failure."""
        for stage in ("extract", "transcribe", "diarize"):
            if STAGES.index(stage) <= STAGES.index(until) and not chain.cached(stage):
                why = shard_failure(self.workspace.root, chain.path) or "no shard has processed it yet"
                raise StageError(stage, f"{chain.path}: no cached {stage} result ({why})")

    @staticmethod
    def _fill_from_database(con, chain: "_Chain", result: RecordingResult) -> None:
        """Nothing changed: report from the database without reading any artifact."""
        duration, speakers, observations, words = database.set_counts(con, chain.set_id)
        result.status = "unchanged"
        result.duration_s, result.speakers, result.observations, result.words = duration, speakers, observations, words

    def status(self, source: Path, manifest_path: Path | None = None) -> tuple[list[dict], str | None]:
        """Per recording, which stages are done, failed or pending; reads, never writes.

        Returns the rows and a note when the database could not be read (held by a run).
        """
        source = Path(source)
        manifest_path = manifest_path or find_manifest(source)
        manifest = read_manifest(manifest_path) if manifest_path else {}
        index = ContentIndex(self.workspace.root / "content-index.json")
        con, note = None, None
        if self.database_path and Path(self.database_path).exists():
            try:
                con = database.connect(self.database_path, read_only=True)
            except Exception as error:  # noqa: BLE001 - status must still show the workspace
                note = f"database not readable now ({' '.join(str(error).split())[:120]})"
        rows = [self._status_row(p, source, manifest, index, con) for p in audio.find_recordings(source)]
        if con is not None:
            con.close()
        return rows, note

    def _status_row(self, path: Path, source: Path, manifest, index: ContentIndex, con) -> dict:
        row = {"path": str(path), "stages": {stage: "pending" for stage in STAGES}, "cause": None}
        failure = database.unresolved_failure(con, path, _signature(path)) if con is not None else None
        try:
            meta = metadata_for(path, source, manifest, self.profile.metadata.filename_pattern)
            chain = self._keyed_chain(path, index.sha256(path), meta)
        except OSError as error:
            row["stages"]["extract"], row["cause"] = "failed", f"cannot read it ({error.strerror or error})"
            return row
        row["recording_id"] = chain.recording_id
        for stage in STAGES[:-1]:
            if chain.cached(stage):
                row["stages"][stage] = "done"
        if con is not None and database.is_current(con, chain.recording_id, chain.set_id, path, meta):
            row["stages"] = {stage: "done" for stage in STAGES}
        elif failure:
            row["stages"][failure[0] if failure[0] in STAGES else "extract"] = "failed"
            row["cause"] = failure[1]
        return row

    def _keyed_chain(self, path: Path, sha: str, meta: RecordingMeta) -> "_Chain":
        chain = _Chain(self, path, sha, meta, RecordingResult(path=str(path), status=""))
        chain.compute_keys()
        return chain

    def stage_keys(self, path: Path, meta: RecordingMeta | None = None) -> dict[str, str]:
        """The cache key of every stage for *path* under this profile (the artifacts' names)."""
        path = Path(path)
        index = ContentIndex(self.workspace.root / "content-index.json")
        return dict(self._keyed_chain(path, index.sha256(path), meta or RecordingMeta()).keys)

    def check_free_space(self, path: Path, duration: float) -> None:
        """Refuse to extract when the workspace cannot hold the WAV (16-bit mono) and a margin."""
        needed = int(duration * self.profile.extract.sample_rate * 2) + MIN_FREE_BYTES
        self.workspace.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.workspace.root).free
        if free < needed:
            raise StageError(
                "extract",
                f"{path}: not enough free space in {self.workspace.root} "
                f"(needs {needed / 1e6:.0f} MB for its audio, {free / 1e6:.0f} MB free)",
            )

    def _load(self, con, chain: "_Chain", run_id: str) -> bool:
        item = database.LoadedRecording(
            recording_id=chain.recording_id, name=chain.path.stem, path=chain.path,
            sha256=chain.sha, media=chain.media, meta=chain.meta, transcript=chain.transcript_,
            diarization=chain.diarization_, alignment=chain.alignment_,
            observations=chain.observations_, set_params=chain.set_params(),
            asr_model=self.models.get("asr", ""), diarization_model=self.models.get("diarization", ""),
        )  # fmt: skip
        started = time.monotonic()
        with protected():
            fresh = database.load_recording(con, item, run_id)
        chain.result.stage_seconds["load"] = round(time.monotonic() - started, 3)
        return fresh

    def speaker_count(self, meta: RecordingMeta) -> SpeakerCount:
        cfg, cli = self.profile.diarization, self.count_override
        num = cli.num_speakers or meta.speakers or cfg.num_speakers
        if num:
            return SpeakerCount(num_speakers=num)
        return SpeakerCount(
            min_speakers=cli.min_speakers or meta.min_speakers or cfg.min_speakers,
            max_speakers=cli.max_speakers or meta.max_speakers or cfg.max_speakers,
        )


def shard_failure(workspace: Path, path: Path) -> str | None:
    """Why a shard of an earlier sharded run failed on *path*, from the shards' summaries."""
    for summary in sorted((workspace / "shards").glob("shard-*.json")):
        try:
            results = json.loads(summary.read_text()).get("results", [])
        except (OSError, ValueError):
            continue
        for r in results:
            if r.get("path") == str(path) and r.get("status") == "failed":
                return f"{summary.stem} failed at {r.get('stage')}: {r.get('message')}"
    return None


def _one_line(error: Exception, path: Path) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if str(path) in text else f"{path}: {text}"


class _Chain:
    """One recording's artifacts, each computed (or read from the cache) once."""

    def __init__(self, owner: Ingestor, path: Path, sha: str, meta: RecordingMeta, result: RecordingResult):
        self.owner, self.path, self.sha, self.meta, self.result = owner, path, sha, meta, result
        self.recording_id = sha[:16]
        self.ws = owner.workspace
        self.profile = owner.profile
        self._audio: np.ndarray | None = None
        self.keys: dict[str, str] = {}
        self.diarization_: Diarization | None = None
        self._cancel_check: Callable[[], None] = lambda: None

    def _timed(self, stage: str, compute: Callable[[], object]):
        started = time.monotonic()
        value = compute()
        self.result.stage_seconds[stage] = round(time.monotonic() - started, 3)
        self.result.computed.append(stage)
        return value

    def _report(self, stage: str, completed=None, total=None) -> None:
        self.owner.reporter.stage(self.path, stage, completed, total)

    def audio(self) -> np.ndarray:
        if not self.wav.is_file():
            self._extract_wav()
        if self._audio is None:
            self._audio, _ = audio.read_wav(self.wav)
        return self._audio

    def compute_keys(self) -> None:
        """Every stage's cache key, from settings and model identities alone (no artifact read)."""
        profile, owner, keys = self.profile, self.owner, self.keys
        self.count = owner.speaker_count(self.meta)
        keys["extract"] = stage_key(self.sha, profile.extract.model_dump(mode="json"), STAGE_VERSIONS["extract"])
        keys["transcribe"] = stage_key(keys["extract"], _section(profile, "asr"), owner.asr_identity(),
                                       STAGE_VERSIONS["transcribe"])  # fmt: skip
        keys["diarize"] = stage_key(keys["extract"], _section(profile, "diarization"), asdict(self.count),
                                    owner.diarization_identity(), STAGE_VERSIONS["diarize"])  # fmt: skip
        keys["align"] = stage_key(keys["transcribe"], keys["diarize"], _section(profile, "align"), STAGE_VERSIONS["align"])
        keys["segment"] = stage_key(keys["align"], _section(profile, "segment"), STAGE_VERSIONS["segment"])
        self.set_id = observation_set_id(self.recording_id, keys["segment"])

    def extract(self, need_wav: bool = True) -> None:
        """Media info always; the WAV only when a model still has to hear it (``clean`` drops WAVs)."""
        key = self.keys["extract"]
        self.wav = self.ws.path("extract", key, ".wav")
        media = self.ws.load("extract", key, MediaInfo)
        if media is None or (need_wav and not self.wav.is_file()):
            media = self._extract_wav()
        self.media = media.model_copy(update={"path": str(self.path)})
        self.result.duration_s = round(media.duration, 3)

    def _extract_wav(self) -> MediaInfo:
        cfg, key = self.profile.extract, self.keys["extract"]
        self._report("extract")
        info = audio.probe(self.path, cfg.audio_stream)
        self.owner.check_free_space(self.path, info.duration)
        media = self._timed("extract", lambda: audio.extract(self.path, self.wav, cfg.audio_stream, cfg.sample_rate, info))
        self.ws.save("extract", key, media)
        return media

    def models_needed(self, until: str) -> bool:
        stages = [s for s in ("transcribe", "diarize") if STAGES.index(s) <= STAGES.index(until)]
        return until == "extract" or any(not self.cached(s) for s in stages)

    def run_models(self, with_diarization: bool) -> None:
        """Transcribe, and diarise at the same time when both must run and the profile allows it."""
        started = time.monotonic()
        both = with_diarization and not self.cached("transcribe") and not self.cached("diarize")
        if both and self.profile.overlap_models:
            self.audio()  # read once, before both stages share it
            background = Background(self._diarize_beside_asr, "diarize")
            self._cancel_check = background.check
            background.start()
            try:
                self.transcribe()
            except BaseException:
                background.cancel()
                raise
            try:
                background.result()
            except (StageError, MissingModelError):
                raise
            except INPUT_ERRORS as error:
                raise StageError("diarize", _one_line(error, self.path)) from None
        else:
            self.transcribe()
            if with_diarization:
                self.diarize()
        if self.result.computed:
            self.result.model_wall_s = round(time.monotonic() - started, 3)

    def _diarize_beside_asr(self) -> None:
        import torch

        cfg = self.profile.diarization
        self.owner.diarizer()  # loading it sets its own thread count
        torch.set_num_threads(cfg.threads_beside_asr)
        try:
            self.diarize()
        finally:
            torch.set_num_threads(cfg.threads)

    def cached(self, stage: str) -> bool:
        """The stage's artifact exists (for extract: the media info; the WAV may be cleaned)."""
        return self.ws.path(stage, self.keys[stage]).is_file()

    def transcribe(self) -> None:
        key = self.keys["transcribe"]
        transcript = self.ws.load("transcribe", key, Transcript)
        if transcript is None:
            duration = self.media.duration or None
            self._report("transcribe", 0, duration)

            def run():
                return transcribe(self.owner.asr(), self.audio(), self.profile.asr,
                                  progress=lambda done: self._report("transcribe", done, duration))  # fmt: skip

            transcript = self._timed("transcribe", run)
            self.ws.save("transcribe", key, transcript)
        self.transcript_ = transcript
        self.result.words = sum(len(s.words) for s in transcript.segments)

    def diarize(self) -> None:
        if self.diarization_ is not None:
            return  # computed beside the transcription
        key = self.keys["diarize"]
        diarization = self.ws.load("diarize", key, Diarization)
        if diarization is None:
            self._report("diarize")

            def run():
                def hook(step, done, total):
                    self._cancel_check()
                    self._report(f"diarize: {step}", done, total)
                rate = self.profile.extract.sample_rate
                return self.owner.diarizer()(self.audio(), rate, self.recording_id, self.count, hook)

            diarization = self._timed("diarize", run)
            self.ws.save("diarize", key, diarization)
        self.diarization_ = diarization
        self.result.speakers = len(diarization.speakers)

    def align(self) -> None:
        key = self.keys["align"]
        alignment = self.ws.load("align", key, Alignment)
        if alignment is None:
            alignment = self._timed("align", lambda: align(self.transcript_, self.diarization_, self.profile.align))
            self.ws.save("align", key, alignment)
        self.alignment_ = alignment

    def segment(self) -> None:
        key = self.keys["segment"]
        observations = self.ws.load("segment", key, Observations)
        if observations is None:
            observations = self._timed(
                "segment", lambda: segment(self.alignment_, self.profile.segment, self.recording_id, self.set_id)
            )
            self.ws.save("segment", key, observations)
        self.observations_ = observations
        self.result.observations = len(observations.observations)

    def set_params(self) -> dict:
        return {
            "stage_keys": self.keys,
            "speaker_count": asdict(self.count),
            **{name: _section(self.profile, name) for name in ("extract", "asr", "diarization", "align", "segment")},
        }
