"""`emessi forget`: a participant's withdrawal, or a whole recording's removal, from the database,
the workspace and the listening samples. Destructive, so it shows what it will remove first,
asks (``--yes`` for scripts; ``--dry-run`` only shows), and leaves a `privacy_log` row."""

from __future__ import annotations

import getpass
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import duckdb
import typer

from ..dataset.withdrawal import Removal, forget_participant, forget_recording, rewrite
from ..runs.forget import WorkspaceChange, forget_in_workspace
from ..runs.lock import LockedError
from .common import DEFAULT_DB, DEFAULT_WORKSPACE, AsJson, Db, Exit, Work, dataset, err, fail, out


def register(app: typer.Typer) -> None:
    app.command("forget")(forget_command)


def forget_command(
    participant: Annotated[Optional[str], typer.Argument(help="Participant id who withdraws, e.g. G1-P03.")] = None,
    recording: Annotated[Optional[str], typer.Option("--recording", help="Remove this whole recording instead (name or id).")] = None,
    drop_turns: Annotated[bool, typer.Option("--drop-turns", help="Delete the participant's turns too (default: keep their times as speaker-less 'withdrawn' rows, so others' turn-taking figures stay right).")] = False,
    samples: Annotated[Optional[list[Path]], typer.Option("--samples", help="Folder of listening samples (`speakers list --samples`) to remove theirs from (repeatable).")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who does it, for the audit row (default: the login name).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be removed.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (for scripts).")] = False,
    db: Db = DEFAULT_DB,
    workspace: Work = DEFAULT_WORKSPACE,
    as_json: AsJson = False,
) -> None:
    """Withdraw a participant (their words, texts, codings, corrections, samples and name), or
    remove a whole recording, from the database and the workspace, for good.

    Shows what it will remove and asks first. The database file is rewritten so the removed
    text is gone from its bytes; re-ingesting the recording keeps the participant withdrawn,
    and a removed recording is refused. The source media files are yours to delete.

    Example:

      emessi forget G1-P03 --db meetings.duckdb -w emessi-work --samples samples/ --dry-run
    """
    if (participant is None) == (recording is None):
        fail("give a participant id, or --recording REC (one of them)")
    if recording and drop_turns:
        fail("--drop-turns is for a participant; --recording removes every turn anyway")
    by = by or getpass.getuser()

    def act(dry: bool) -> Removal:
        with dataset(db, write=True) as con:
            if participant:
                return forget_participant(con, participant, by, drop_turns, dry_run=dry)
            return forget_recording(con, recording, by, dry_run=dry)

    plan = act(True)
    plan_ws = _workspace(workspace, plan, True)
    plan_samples = _samples(samples or [], plan, True)
    if as_json and dry_run:
        print(json.dumps(_report(plan, plan_ws, plan_samples), indent=2))
        return
    if not as_json:
        _print(plan, plan_ws, plan_samples, "would remove" if dry_run else "will remove")
    if dry_run:
        return
    if not yes:
        try:
            sure = typer.confirm("Remove this for good? It cannot be undone", default=False, err=True)
        except typer.Abort:
            sure = False
        if not sure:
            fail("nothing removed (pass --yes to remove without asking)", Exit.NOTHING_DONE)
    removal = act(False)
    try:
        rewrite(db)
    except duckdb.Error as error:
        fail(f"the rows are removed, but rewriting {db} failed ({error}); the removed text may remain in "
             "the file's free space until `emessi forget` runs again", Exit.NOTHING_DONE)  # fmt: skip
    change = _workspace(workspace, removal, False)
    removed_samples = _samples(samples or [], removal, False)
    if as_json:
        print(json.dumps(_report(removal, change, removed_samples), indent=2))
    else:
        _print(removal, change, removed_samples, "removed")


def _workspace(workspace: Path, removal: Removal, dry: bool) -> WorkspaceChange:
    try:
        return forget_in_workspace(workspace, removal, dry_run=dry)
    except LockedError as error:
        fail(f"{error} (the database part is {'not done' if dry else 'done'}; run again when it is free)", Exit.NOTHING_DONE)


def _samples(folders: list[Path], removal: Removal, dry: bool) -> list[str]:
    found = sorted({str(p) for folder in folders for pattern in removal.samples for p in folder.glob(pattern)})
    if not dry:
        for path in found:
            Path(path).unlink(missing_ok=True)
    return found


def _report(removal: Removal, change: WorkspaceChange, samples: list[str]) -> dict:
    return {"kind": removal.kind, "subject": removal.subject, **removal.counts(), "workspace": asdict(change),
            "samples": samples}  # fmt: skip


def _print(removal: Removal, change: WorkspaceChange, samples: list[str], verb: str) -> None:
    what = "participant" if removal.kind == "participant" else "recording"
    turns = "dropped" if removal.drop_turns or removal.kind == "recording" else "kept as timed 'withdrawn' rows, text removed"
    out.print(f"{verb} {what} {removal.subject} in {len(removal.recordings)} recording(s)"
              f"{': ' + ', '.join(removal.recordings) if removal.recordings else ''}", highlight=False, soft_wrap=True)  # fmt: skip
    rows = [("observations", f"{removal.observations} ({turns})"), ("words", removal.words),
            ("codings", removal.codings), ("text corrections", removal.corrections),
            ("review flags", removal.review_flags), ("speaker assignments", removal.assignments),
            ("name", "yes" if removal.name else "none stored"), ("voiceprint sessions", removal.voiceprints),
            ("workspace artifacts rewritten", len(change.rewritten)), ("workspace files removed", len(change.removed)),
            ("listening samples", len(samples))]  # fmt: skip
    for label, value in rows:
        out.print(f"  {label}: {value}", highlight=False)
    if removal.kind == "recording" or samples == []:
        err.print("the source media files and any copies outside the database and workspace are not touched",
                  highlight=False, soft_wrap=True)  # fmt: skip
