"""The batch: every recording under a folder through the chain, then into the database.

Models are loaded once per batch and only when some recording actually needs them; one
recording's way through the stages is ``chain``'s, the run's records are ``results``'.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from ..config import Profile
from ..dataset.connection import DatabaseBusyError, connect
from ..dataset.load import (LoadedRecording, change_kind, finish_run, is_current, load_recording, record_failure,
                            resolve_failures, set_counts, start_run, unresolved_failure)  # fmt: skip
from ..dataset.withdrawal import removed_on
from ..stages import audio, tracks
from ..stages.diarize import Diarizer, SpeakerCount, pipeline_identity
from ..stages.models import MissingModelError
from ..stages.records import Alignment, Diarization, MediaInfo, Observations, Transcript
from ..stages.transcribe import load_model, resolve_model
from ..version import __version__
from . import devices, environment, memory, privacy
from .budget import Budget, Limits
from .chain import INPUT_ERRORS, STAGES, Chain, RunStopped, StageError, recording_sha
from .interrupts import protected
from .lock import RunLock
from .manifest import RecordingMeta, find_manifest, metadata_for, read_manifest
from .results import IngestSummary, RecordingResult, Reporter
from .shard import Shard, shard_failure
from .status import file_signature, own_files, recording_status
from .workspace import ContentIndex, Workspace, atomic_write_bytes

MIN_FREE_BYTES = 200_000_000  # headroom beyond the WAV itself, for artifacts and the database


def _db_lock_path(database_path: Path) -> Path:
    return Path(str(database_path) + ".emessi-lock")  # status.own_files names it too


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


@contextlib.contextmanager
def _failing_as(stage: str, path: Path) -> Iterator[None]:
    """A bad input inside the block is the recording's failure at *stage*; any other error stops
    the run without blaming the recording (a full disk would fail every file after it, and a
    good recording marked failed would be skipped until someone noticed)."""
    try:
        yield
    except INPUT_ERRORS as error:
        raise StageError.from_input(stage, error, path) from None
    except (StageError, MissingModelError, RunStopped, DatabaseBusyError):
        raise  # a missing model stops the batch: every other file would fail the same way
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None  # Ctrl-C inside a query (no handler installed)
    except Exception as error:
        raise RunStopped.from_error(stage, error, path) from error


class RunDatabase:
    """The run's way into the dataset: a connection for short pieces of work (a recording's
    checks, its load transaction, a failure record), closed before any model runs and at least
    every HOLD_S seconds, so that researchers can query, import coding sheets and assign speakers
    while a long run goes on; their commands wait that long at most. Checks of unchanged
    recordings in a row share one connection: opening one costs a good part of a second.
    DuckDB lets one process write a file at a time; the run's own lock file keeps two runs apart."""

    HOLD_S = 2.0

    def __init__(self, path: Path, wait: float | None):
        self.path, self.wait = Path(path), wait
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened = 0.0

    @contextlib.contextmanager
    def open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is None:
            self._con = connect(self.path, wait=self.wait)
            self._opened = time.monotonic()
        try:
            yield self._con
        except BaseException:
            self.release()
            raise
        if time.monotonic() - self._opened > self.HOLD_S:
            self.release()

    def release(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


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
        db_wait: float | None = None,  # None: EMESSI_DB_WAIT or the default (dataset.connection)
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
        self.artifacts_made: dict[str, dict] = {}  # per path: set_id and stage_keys, for shard summaries

    # --- models, loaded on first need -------------------------------------------------------

    def asr(self):
        cfg, allow = self.profile.asr, self.profile.allow_downloads
        model, resolved = self.model_cache.get(("asr", cfg.fingerprint(), allow), lambda: load_model(cfg, allow))
        self.models["asr"] = resolved.identity
        return model

    def asr_identity(self) -> str:
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
        if not Path(source).exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        source = audio.stored_path(source)
        manifest_path = manifest_path or find_manifest(source)
        manifest = read_manifest(manifest_path) if manifest_path else {}
        if until in ("transcribe", "diarize", "align", "segment", "load") and not cached_only:
            devices.require(self.profile, until)
        with contextlib.ExitStack() as locks:
            locks.enter_context(privacy.private_files())  # before the first folder or lock file
            locks.enter_context(RunLock(self.workspace.root / ".lock", "workspace", shared=shard is not None))
            audio.mark_as_output(self.workspace.root, "workspace")
            if shard is not None:
                locks.enter_context(RunLock(self.workspace.root / f".lock-{shard.name}", "shard"))
            if until == "load":
                locks.enter_context(RunLock(_db_lock_path(self.database_path), "database"))
            summary = self._run(source, until, manifest, limits or Limits(), retry_failed, shard, cached_only)
            if shard is not None:
                # What this shard made, by observation set: `clean` keeps it until the merge loads the set.
                data = summary.to_dict() | {"artifacts": self.artifacts_made}
                atomic_write_bytes(self.workspace.root / "shards" / f"{shard.name}.json",
                                   json.dumps(data, indent=1, default=str).encode())  # fmt: skip
            return summary

    def _run(self, source: Path, until: str, manifest, limits: Limits, retry_failed: bool,
             shard: Shard | None, cached_only: bool) -> IngestSummary:  # fmt: skip
        started = time.monotonic()
        run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + secrets.token_hex(3)
        paths = tracks.find_recordings(source, skip=own_files(self.workspace.root, self.database_path))
        if shard is not None:
            paths = shard.select(paths, source)
        index = ContentIndex(self.workspace.root / "content-index.json")
        self.artifacts_made = {}
        db = None
        if until == "load":
            db = RunDatabase(self.database_path, self.db_wait)
            with db.open() as con:
                start_run(con, run_id, __version__, self.profile.name, self.profile.model_dump(mode="json"), {},
                          environment.describe(self.profile))  # fmt: skip
            db.release()
        results: list[RecordingResult] = []
        self.reporter.start(len(paths))
        budget = Budget(limits)
        status = "interrupted"
        try:
            for path in paths:
                self.reporter.file_started(path)
                if budget.exhausted():
                    result = RecordingResult(path=str(path), status="deferred", message=budget.reason())
                else:
                    meta = metadata_for(path, source, manifest, self.profile.metadata.filename_pattern)
                    result = self.process(path, meta, index, until, db, run_id, retry_failed, cached_only)
                    budget.spend(result)
                results.append(result)
                self.reporter.file_finished(result)
                index.save()
            status = "complete"
        except Exception:
            status = "stopped"
            raise
        finally:
            try:
                index.save()
            finally:
                summary = IngestSummary(run_id, str(self.database_path) if db else None,
                                        str(self.workspace.root), results,
                                        time.monotonic() - started, dict(self.models), len(paths))  # fmt: skip
                self.last_summary = summary
                if db is not None:
                    self._finish_run(db, run_id, status, summary)
        return summary

    @staticmethod
    def _finish_run(db: "RunDatabase", run_id: str, status: str, summary: IngestSummary) -> None:
        data = summary.to_dict()
        data.pop("results")
        try:
            with db.open() as con, protected():
                finish_run(con, run_id, status, data)
            db.release()
        except (DatabaseBusyError, duckdb.Error, OSError):
            if status == "complete":
                raise
            # The run is already stopping for a reason of its own, which is the one to report;
            # the next run marks this one's row as killed.

    def process(self, path: Path, meta: RecordingMeta, index: ContentIndex, until: str, db: "RunDatabase | None",
                run_id: str, retry_failed: bool = False, cached_only: bool = False) -> RecordingResult:  # fmt: skip
        """One recording up to stage *until*; *cached_only* runs no model (see ``run``)."""
        path = audio.stored_path(path)
        result = RecordingResult(path=str(path), status="done")
        signature = file_signature(path)
        if db is not None and not retry_failed:
            with db.open() as con:
                earlier = unresolved_failure(con, path, signature)
            if earlier:
                stage, message = earlier
                result.status, result.stage = "skipped", stage
                result.message = f"failed before and unchanged since ({message}); --retry-failed to try again"
                return result
        try:
            self._process(path, meta, index, until, db, run_id, result, cached_only)
        except StageError as error:
            result.status, result.stage, result.message = "failed", error.stage, str(error)
            if db is not None:
                with db.open() as con, protected():
                    record_failure(con, run_id, path, result.recording_id, error.stage, str(error), signature)
        return result

    def _process(self, path: Path, meta: RecordingMeta, index: ContentIndex, until: str, db: "RunDatabase | None",
                 run_id: str, result: RecordingResult, cached_only: bool) -> None:  # fmt: skip
        _check_settled(path, self.settle_seconds)
        try:
            sha, layout, track_shas = recording_sha(index, path)
        except OSError as error:
            raise StageError("extract", f"{path}: cannot read it ({error.strerror or error})") from None
        result.recording_id = sha[:16]
        removed = None
        if db is not None:
            with db.open() as con:
                removed = removed_on(con, result.recording_id)
        if removed is not None:
            # Before any model runs: its words must not come back into the workspace either.
            raise StageError("discover", f"{path}: removed from the dataset on {removed:%Y-%m-%d} (emessi forget "
                                         "--recording); take the file out of the folder")  # fmt: skip
        with _failing_as("extract", path):
            chain = Chain(self, path, sha, meta, result, layout, track_shas)
            self.artifacts_made[str(path)] = {"set_id": chain.set_id, "stage_keys": dict(chain.keys)}
            if db is not None:
                with db.open() as con:
                    result.change = change_kind(con, path, result.recording_id)
                    if is_current(con, chain.recording_id, chain.set_id, path, meta):
                        self._fill_from_database(con, chain, result)
                        with protected():
                            resolve_failures(con, path)
                        return
            if cached_only:
                self._require_cached(chain, until)
        if db is not None:
            db.release()  # the models take minutes: researchers may use the database meanwhile
        self._through(chain, until, db, run_id)
        if until != "load" and not result.computed:
            result.status = "unchanged"

    def _through(self, chain: Chain, until: str, db: "RunDatabase | None", run_id: str) -> None:
        """The stages in order, each given what the ones before produced; stops after *until*."""
        reached = lambda stage: STAGES.index(stage) <= STAGES.index(until)  # noqa: E731
        with _failing_as("extract", chain.path):
            media = chain.extract(need_wav=chain.models_needed(until))
        if not reached("transcribe"):
            return
        with _failing_as("transcribe", chain.path):  # and a diarisation after it; one beside it says "diarize"
            transcript, diarization = chain.run_models(media, with_diarization=reached("diarize"))
        if not reached("align"):
            return
        with _failing_as("align", chain.path):
            alignment = chain.align(transcript, diarization)
        if not reached("segment"):
            return
        with _failing_as("segment", chain.path):
            observations = chain.segment(alignment)
        if not reached("load"):
            return
        with _failing_as("load", chain.path):
            fresh = self._load(db, chain, run_id, media, transcript, diarization, alignment, observations)
        chain.result.status = "done" if fresh else "unchanged"

    def _require_cached(self, chain: Chain, until: str) -> None:
        """A merge after a sharded run runs no model: a missing model artifact is a failure."""
        for stage in ("extract", "transcribe", "diarize"):
            if STAGES.index(stage) <= STAGES.index(until) and not chain.cached(stage):
                why = shard_failure(self.workspace.root, chain.path) or "no shard has processed it yet"
                raise StageError(stage, f"{chain.path}: no cached {stage} result ({why})")

    @staticmethod
    def _fill_from_database(con, chain: Chain, result: RecordingResult) -> None:
        """Nothing changed: report from the database without reading any artifact."""
        duration, speakers, observations, words = set_counts(con, chain.set_id)
        result.status = "unchanged"
        result.duration_s, result.speakers, result.observations, result.words = duration, speakers, observations, words

    def status(self, source: Path, manifest_path: Path | None = None) -> tuple[list[dict], str | None]:
        """Per recording, which stages are done, failed or pending; reads, never writes.

        Returns the rows and a note when the database could not be read (held by a run).
        """
        return recording_status(self, self.database_path, source, manifest_path)

    def stage_keys(self, path: Path, meta: RecordingMeta | None = None) -> dict[str, str]:
        """The cache key of every stage for *path* under this profile (the artifacts' names)."""
        path = Path(path)
        index = ContentIndex(self.workspace.root / "content-index.json")
        sha, layout, track_shas = recording_sha(index, path)
        return dict(Chain(self, path, sha, meta or RecordingMeta(), None, layout, track_shas).keys)

    def check_free_space(self, path: Path, duration: float) -> None:
        """Refuse to extract when the workspace cannot hold the WAV (16-bit mono) and a margin."""
        needed = int(duration * self.profile.extract.sample_rate * 2) + MIN_FREE_BYTES
        self.workspace.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.workspace.root).free
        if free < needed:  # the machine's fault, not the file's: every file after it would fail too
            raise RunStopped(
                "extract", path,
                f"not enough free space in {self.workspace.root} "
                f"(needs {needed / 1e6:.0f} MB for its audio, {free / 1e6:.0f} MB free)",
            )  # fmt: skip

    def _load(self, db: "RunDatabase", chain: Chain, run_id: str, media: MediaInfo, transcript: Transcript,
              diarization: Diarization, alignment: Alignment, observations: Observations) -> bool:  # fmt: skip
        item = LoadedRecording(
            recording_id=chain.recording_id, name=chain.path.stem, path=chain.path,
            sha256=chain.sha, media=media, meta=chain.meta, transcript=transcript,
            diarization=diarization, alignment=alignment,
            observations=observations, set_params=chain.set_params(),
            asr_model=self.models.get("asr", ""), diarization_model=self.models.get("diarization", ""),
        )  # fmt: skip
        started = time.monotonic()
        with db.open() as con, protected():
            fresh = load_recording(con, item, run_id)
            resolve_failures(con, path=chain.path)
            if fresh and self.profile.voiceprints.apply_at_ingest:
                chain.result.auto_assigned = self._suggest(con, chain)
        db.release()
        chain.result.stage_seconds["load"] = round(time.monotonic() - started, 3)
        return fresh

    def _suggest(self, con, chain: Chain) -> int:
        """Assign the new set's labels from the group's voiceprints, as `emessi speakers suggest
        --apply` does; a group with no voiceprints yet (or no embedder) is simply left unassigned."""
        from ..dataset import voiceprints
        from ..dataset.common import DatasetError
        from ..stages.models import MissingModelError
        from .workspace import voices

        try:
            found = voiceprints.suggest(con, chain.recording_id, voices(self.profile, self.workspace.root))
            done = voiceprints.apply(con, chain.recording_id, found, self.profile.voiceprints.apply_min_score)
        except (DatasetError, MissingModelError):
            return 0
        return sum(1 for d in done if d.outcome == "assigned")

    def speaker_count(self, meta: RecordingMeta) -> SpeakerCount:
        cfg, cli = self.profile.diarization, self.count_override
        num = cli.num_speakers or meta.speakers or cfg.num_speakers
        if num:
            return SpeakerCount(num_speakers=num)
        return SpeakerCount(
            min_speakers=cli.min_speakers or meta.min_speakers or cfg.min_speakers,
            max_speakers=cli.max_speakers or meta.max_speakers or cfg.max_speakers,
        )
