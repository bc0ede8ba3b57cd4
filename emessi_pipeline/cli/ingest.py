"""`emessi ingest`, the per-stage commands (extract … load), `status` and `clean`: running the
chain over a folder, with a rich progress display, and printing the run's summary.

Exit codes are those of :class:`.common.Exit`; :func:`run` turns a finished run into one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import load_profile
from ..dataset.connection import DatabaseBusyError
from ..runs import interrupts
from ..runs.devices import DeviceError
from ..runs import STAGES, Ingestor, IngestSummary, Limits, RecordingResult, Reporter, RunStopped, describe_fault
from ..runs.lock import LockedError
from ..runs.manifest import ManifestError
from ..runs.runlog import FileLog, Reporters
from ..runs.shard import Shard
from ..stages.diarize import SpeakerCount
from ..stages.models import MissingModelError
from .common import DEFAULT_DB, DEFAULT_WORKSPACE, Exit, LoadDb, ProfileOpt, SummaryJson, Work, err, fail, out, quantity

Source = Annotated[Path, typer.Argument(help="A folder of recordings (searched recursively) or one file.")]
NumSpk = Annotated[Optional[int], typer.Option("--num-speakers", min=1, help="Exact speaker count for every recording.")]
MinSpk = Annotated[Optional[int], typer.Option("--min-speakers", min=1, help="Lower bound when the count is estimated.")]
MaxSpk = Annotated[Optional[int], typer.Option("--max-speakers", min=1, help="Upper bound when the count is estimated.")]
Lang = Annotated[Optional[str], typer.Option("--language", help="Whisper language code, or 'auto' to detect.")]
Stream = Annotated[Optional[int], typer.Option("--audio-stream", min=0, help="Which audio stream (0 = first).")]
Pause = Annotated[Optional[float], typer.Option("--max-pause", help="Seconds of pause that split one speaker's turn.")]
Manifest = Annotated[Optional[Path], typer.Option("--manifest", help="Metadata CSV/YAML (default: manifest.csv|yaml beside the recordings).")]
Downloads = Annotated[bool, typer.Option("--allow-downloads", help="Let missing hub models download (off by default: nothing leaves the machine).")]
Wait = Annotated[Optional[float], typer.Option("--db-wait", "--wait", min=0, show_default="10, or EMESSI_DB_WAIT",
                                               help="Seconds to wait whenever the database is held by another program.")]


def register(app: typer.Typer) -> None:
    """Add the run commands to the top-level app, in the order `emessi --help` lists them."""
    for stage in STAGES:
        app.command(stage)(_stage_command(stage, _STAGE_HELP[stage], f"emessi {stage} recordings/"))
    app.command("ingest")(
        _stage_command(
            "load",
            "Extract, transcribe, diarise, align, segment and load every recording in a folder.\n\n"
            "Cached stages are reused: re-running with nothing changed does no model work.\n\n"
            "On a cluster, each array task runs one shard and a last job merges them:\n\n"
            "  emessi ingest recordings/ -w /scratch/work --shard $SLURM_ARRAY_TASK_ID/8\n\n"
            "  emessi load recordings/ -w /scratch/work --db meetings.duckdb --cached-only",
            "emessi ingest recordings/ --db meetings.duckdb --num-speakers 6",
        )
    )
    app.command("status")(status)
    app.command("clean")(clean_command)


class RichReporter(Reporter):
    """A bar for the batch, and one per running stage (transcription and diarisation overlap)."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.files = progress.add_task("recordings", total=0)
        self.stages: dict[str, object] = {}

    def start(self, total: int) -> None:
        self.progress.update(self.files, total=total)

    def file_started(self, path: Path) -> None:
        self.progress.update(self.files, description=f"recordings ({path.name})")

    def stage(self, path, stage, completed=None, total=None) -> None:
        family = stage.split(":")[0]
        if family not in self.stages:
            self.stages[family] = self.progress.add_task("", total=None)
        self.progress.update(self.stages[family], description=f"{path.name}: {stage}", completed=completed or 0,
                             total=total, visible=True)  # fmt: skip

    def file_finished(self, result: RecordingResult) -> None:
        self.progress.advance(self.files)
        for task in self.stages.values():
            self.progress.update(task, visible=False)
        if result.status == "failed":
            self.progress.console.print(f"[red]FAILED[/] {result.stage}: {result.message}", highlight=False, soft_wrap=True)
        elif result.note:
            self.progress.console.print(f"[yellow]NOTE[/] {result.note}", highlight=False, soft_wrap=True)


@dataclass
class RunRequest:
    stage: str
    source: Path
    db: Path
    workspace: Path
    profile: str = "default"
    overrides: dict = field(default_factory=dict)
    count: SpeakerCount = field(default_factory=SpeakerCount)
    manifest: Path | None = None
    as_json: bool = False
    wait: float | None = None
    limits: Limits = field(default_factory=Limits)
    retry_failed: bool = False
    log_file: Path | None = None
    log_format: str = "text"
    settle_seconds: float = 10.0
    shard: str | None = None
    cached_only: bool = False


def run(request: RunRequest) -> None:
    """Run the chain as *request* says, print the summary and exit with the run's code."""
    try:
        prof = load_profile(request.profile, request.overrides)
        file_log = FileLog(request.log_file, request.log_format) if request.log_file else None
        shard = Shard.parse(request.shard) if request.shard else None
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    if not request.source.exists():
        fail(f"{request.source}: no such file or folder")  # the user's mistake: nothing was tried
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                        TimeElapsedColumn(), console=err, transient=True, disable=request.as_json)  # fmt: skip
    reporter = Reporters(RichReporter(progress), *([file_log] if file_log else []))
    ingestor = Ingestor(prof, request.workspace, request.db, reporter, request.count, db_wait=request.wait,
                        settle_seconds=request.settle_seconds)  # fmt: skip
    interrupts.install()
    try:
        with progress:
            summary = ingestor.run(request.source, until=request.stage, manifest_path=request.manifest,
                                   limits=request.limits, retry_failed=request.retry_failed,
                                   shard=shard, cached_only=request.cached_only)  # fmt: skip
    except (MissingModelError, DatabaseBusyError, LockedError, ManifestError, FileNotFoundError, DeviceError) as error:
        _log_stopped(ingestor.last_summary, file_log)
        fail(error, Exit.NOTHING_DONE)
    except RunStopped as error:
        _log_stopped(ingestor.last_summary, file_log)
        fail(error, Exit.NOTHING_DONE)
    except Exception as error:
        # Not the recording's fault and not foreseen (a full disk outside a stage, a bug): one
        # line and the exit code a scheduler acts on; EMESSI_DEBUG=1 keeps the traceback.
        if os.environ.get("EMESSI_DEBUG"):
            raise
        _log_stopped(ingestor.last_summary, file_log)
        fail(f"run stopped: {describe_fault(error)}", Exit.NOTHING_DONE)
    except KeyboardInterrupt:
        _report_interrupt(ingestor.last_summary, file_log)
        raise typer.Exit(Exit.INTERRUPTED)
    if file_log:
        file_log.finished(summary, "complete")
    _report(summary, request.as_json)
    if shard is not None and not request.as_json:
        err.print(f"{shard.name}: artifacts are in {request.workspace}; when every shard has finished, merge them with "
                  f"`emessi load {request.source} --db DB -w {request.workspace} --cached-only`", highlight=False, soft_wrap=True)
    raise typer.Exit(_exit_code(summary))


def _log_stopped(summary: IngestSummary | None, file_log: FileLog | None) -> None:
    if file_log and summary is not None:
        file_log.finished(summary, "stopped")


def _report_interrupt(summary: IngestSummary | None, file_log: FileLog | None) -> None:
    if summary is None:
        err.print("[yellow]interrupted[/] before any recording finished; run the same command to start again", soft_wrap=True)
        return
    finished = [r for r in summary.results if r.status in ("done", "unchanged")]
    left = summary.files_seen - len(finished) - len(summary.failed)
    err.print(
        f"[yellow]interrupted[/]: {len(finished)} of {summary.files_seen} recordings are complete "
        f"({sum(r.status == 'done' for r in finished)} loaded in this run); {left} will resume from their "
        f"cached stages when you run the same command again",
        highlight=False,
        soft_wrap=True,
    )
    if file_log:
        file_log.finished(summary, "interrupted")


def _exit_code(summary: IngestSummary) -> Exit:
    attempted = [r for r in summary.results if r.status in ("done", "failed")]
    if summary.failed and len(summary.failed) == len(attempted):
        return Exit.NOTHING_DONE
    if summary.failed:
        return Exit.SOME_FAILED
    return Exit.OK if attempted else Exit.NOTHING_TO_DO


def _report(summary: IngestSummary, as_json: bool) -> None:
    data = summary.to_dict()
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    if not summary.results:
        err.print("no recordings found")
        return
    table = Table(title="emessi ingest", show_edge=False)
    for column in ("recording", "status", "audio", "speakers", "observations", "words"):
        table.add_column(column, justify="left" if column in ("recording", "status") else "right")
    for r in summary.results:
        status = {"failed": f"[red]failed ({r.stage})[/]", "skipped": f"[yellow]skipped ({r.stage})[/]"}.get(r.status, r.status)
        table.add_row(Path(r.path).name, status, f"{r.duration_s:.1f} s", str(r.speakers), str(r.observations), str(r.words))
    out.print(table)
    rtf = data["real_time_factor"]
    extra = "".join(f", {data[k]} {k}" for k in ("skipped", "deferred") if data[k])
    out.print(
        f"{quantity(data['recordings'], 'recording')} ({data['new']} new, {data['changed']} changed; {data['done']} done, "
        f"{data['unchanged']} unchanged, {data['failed']} failed{extra}); {data['audio_seconds'] / 60:.1f} min of audio, "
        f"{data['speakers']} speakers, {data['observations']} observations; "
        f"wall {data['wall_seconds']:.1f} s" + (f", real-time factor {rtf:.3f}" if rtf else ""),
        highlight=False,
    )
    if data["stage_seconds"]:
        out.print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in data["stage_seconds"].items()), highlight=False, soft_wrap=True)
    if summary.database:
        out.print(f"database: {summary.database}", highlight=False, soft_wrap=True)
    for r in summary.results:
        if r.status in ("failed", "skipped", "deferred"):
            out.print(f"{r.status} {r.stage or ''}: {r.message}", highlight=False, soft_wrap=True)


def _stage_command(stage: str, summary_line: str, example: str):
    def command(
        source: Source,
        db: LoadDb = DEFAULT_DB,
        workspace: Work = DEFAULT_WORKSPACE,
        profile: ProfileOpt = "default",
        num_speakers: NumSpk = None,
        min_speakers: MinSpk = None,
        max_speakers: MaxSpk = None,
        language: Lang = None,
        audio_stream: Stream = None,
        max_pause: Pause = None,
        manifest: Manifest = None,
        allow_downloads: Downloads = False,
        wait: Wait = None,
        retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again files that failed before and have not changed.")] = False,
        max_files: Annotated[Optional[int], typer.Option("--max-files", min=1, help="Process at most this many new or changed files.")] = None,
        max_hours: Annotated[Optional[float], typer.Option("--max-hours", min=0, help="Stop starting new files after this many hours of audio.")] = None,
        log_file: Annotated[Optional[Path], typer.Option("--log-file", help="Append a log of the run to this file.")] = None,
        log_format: Annotated[str, typer.Option("--log-format", help="text or jsonl.")] = "text",
        settle_seconds: Annotated[float, typer.Option("--settle-seconds", help="A file modified this recently is checked for still being written.")] = 10.0,
        device: Annotated[Optional[str], typer.Option("--device", help="cpu or cuda for both models (default: the profile's).")] = None,
        shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: process only shard I of N (a Slurm array task); writes no database.")] = None,
        cached_only: Annotated[bool, typer.Option("--cached-only", help="Run no model: use cached results only (merging a sharded run).")] = False,
        as_json: SummaryJson = False,
    ) -> None:
        overrides = {"extract.audio_stream": audio_stream, "segment.max_pause": max_pause}
        if device is not None:
            if device not in ("cpu", "cuda", "auto"):
                err.print(f"[red]error:[/] --device {device!r}: choose cpu, cuda or auto")
                raise typer.Exit(Exit.USAGE)
            overrides |= {"asr.device": device, "diarization.device": device}
        if allow_downloads:
            overrides["allow_downloads"] = True
        if language is not None:
            overrides["asr.language"] = language
        run(RunRequest(
            stage, source, db, workspace, profile, overrides, SpeakerCount(num_speakers, min_speakers, max_speakers),
            manifest, as_json, wait, Limits(max_files, max_hours), retry_failed, log_file, log_format, settle_seconds,
            shard, cached_only,
        ))  # fmt: skip

    command.__doc__ = f"{summary_line}\n\nExample:\n\n  {example}"
    return command


_STAGE_HELP = {
    "extract": "Probe each recording and extract its audio as 16 kHz mono WAV into the workspace.",
    "transcribe": "Extract, then transcribe with faster-whisper (word timestamps, repetition guard).",
    "diarize": "Extract and transcribe, then diarise with pyannote.audio (who spoke when).",
    "align": "Run the chain up to giving every word one speaker.",
    "segment": "Run the chain up to utterance observations (cached in the workspace, not loaded).",
    "load": "Run the whole chain and load observations into DuckDB (the same as ingest).",
}


def status(
    source: Source,
    db: LoadDb = DEFAULT_DB,
    workspace: Work = DEFAULT_WORKSPACE,
    profile: ProfileOpt = "default",
    language: Lang = None,
    max_pause: Pause = None,
    num_speakers: NumSpk = None,
    manifest: Manifest = None,
    as_json: SummaryJson = False,
) -> None:
    """Show, per recording, which stages are done, failed (with the cause) or pending.

    Loaded is what the database holds for the file's content, whatever the workspace, options or
    path spelling of today; the other stages are the workspace's cached artifacts for the settings
    given (profile and options). A recording loaded with other settings says so.

    Example:

      emessi status recordings/ --db meetings.duckdb
    """
    if not source.exists():
        fail(f"{source}: no such file or folder")
    prof = load_profile(profile, {"asr.language": language, "segment.max_pause": max_pause})
    count = SpeakerCount(num_speakers=num_speakers)
    rows, note = Ingestor(prof, workspace, db, speaker_count=count).status(source, manifest)
    totals = {state: sum(r["stages"]["load"] == state for r in rows) for state in ("done", "pending")}
    totals["failed"] = sum("failed" in r["stages"].values() for r in rows)
    totals["pending"] -= totals["failed"]
    if as_json:
        print(json.dumps({"recordings": rows, "totals": totals, "note": note}, indent=2))
        return
    table = Table(show_edge=False)
    table.add_column("recording")
    for stage in STAGES:
        table.add_column(stage)
    table.add_column("cause")
    colour = {"done": "green", "failed": "red", "pending": "yellow"}
    for r in rows:
        cells = [f"[{colour[v]}]{v}[/]" for v in r["stages"].values()]
        table.add_row(Path(r["path"]).name, *cells, r["cause"] or r["note"] or "")
    out.print(table)
    out.print(f"{quantity(len(rows), 'recording')}: {totals['done']} loaded, {totals['failed']} failed, {totals['pending']} pending")
    if note:
        out.print(note, highlight=False, soft_wrap=True)


def clean_command(
    db: LoadDb = DEFAULT_DB,
    workspace: Work = DEFAULT_WORKSPACE,
    keep_audio: Annotated[bool, typer.Option("--keep-audio", help="Keep extracted WAVs of current recordings.")] = False,
    unused_results: Annotated[bool, typer.Option("--unused-results", help="Also remove transcripts, diarisations and other model results no current observation set uses (older settings or models); they cost model time to make again.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    as_json: SummaryJson = False,
) -> None:
    """Remove what rebuilds in seconds: extracted WAVs (ffmpeg makes them again) and temporary
    files of killed runs. Model results no current observation set uses go only with
    --unused-results. Needs the database, which says what is current; what a shard made and the
    merge has not loaded stays. The database is never touched.

    Example:

      emessi clean --db meetings.duckdb --workspace emessi-work --dry-run
    """
    from ..runs.clean import CleanRefused, clean

    try:
        report = clean(workspace, db, keep_audio=keep_audio, unused_results=unused_results, dry_run=dry_run)
    except (FileNotFoundError, CleanRefused) as error:
        fail(error, Exit.USAGE)
    except (LockedError, DatabaseBusyError) as error:
        fail(error, Exit.NOTHING_DONE)
    if as_json:
        print(json.dumps({"removed": report.removed, "bytes_freed": report.bytes_freed, "kept": report.kept,
                          "kept_for_shards": report.kept_for_shards, "kept_unused_results": report.kept_results,
                          "dry_run": dry_run}, indent=2))  # fmt: skip
        return
    verb = "would remove" if dry_run else "removed"
    notes = [f"{report.kept_for_shards} made by shards not merged yet"] if report.kept_for_shards else []
    if report.kept_results:
        notes.append(f"{report.kept_results} unused model results (--unused-results removes them)")
    out.print(f"{verb} {len(report.removed)} files ({report.bytes_freed / 1e6:.1f} MB); kept {report.kept}"
              + (f" ({'; '.join(notes)})" if notes else ""), highlight=False)  # fmt: skip
