"""`emessi review`: the observations a person should check first, with the reasons.

A thin layer over dataset/review.py. Flags are stored when a set is loaded; sets without flags (loaded
by an older version) or, with --profile, flagged with other thresholds get them here first.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..dataset.review import REASONS
from .common import DEFAULT_DB, AsJson, Db, Exit, dataset, err, fail, out


def register(app: typer.Typer) -> None:
    app.command("review")(review_command)


def review_command(
    recording: Annotated[Optional[str], typer.Argument(help="Recording name (file stem), file path or id (default: every recording).")] = None,
    reason: Annotated[Optional[list[str]], typer.Option("--reason", "-r", help=f"Only this reason (repeatable): {', '.join(REASONS)}.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Show at most this many observations.")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="Flag with this profile's `review` thresholds (default: those of the run that loaded each recording).")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """List the observations to check first: doubtful transcription, repetition loops, overlaps,
    likely diarisation slips, mid-sentence speaker changes and speakers with very little talk.

    Most urgent first (repetition_loop, low_confidence, short_between_same, mid_sentence_change,
    minor_speaker, overlap), then by the number of reasons and time. The flags are also in the
    `current_review` view; the rules and thresholds are in docs/coding.md.

    Example:

      emessi review G1_S3_vertaismentorointi --reason low_confidence --reason overlap --limit 20
    """
    from ..config import load_profile
    from ..dataset.connection import outdated
    from ..dataset.review import review_list, stale_sets

    try:
        config = load_profile(profile).review if profile else None
    except (FileNotFoundError, ValueError) as error:
        err.print(f"[red]error:[/] {' '.join(str(error).split())}", highlight=False)
        raise typer.Exit(Exit.USAGE)
    with dataset(db) as con:
        if not con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = 'review_sets'").fetchone():
            # Reading never changes the file (not even an old one): say which command does.
            fail(outdated(con, db) or f"{db} has no review flags", Exit.USAGE)
        rid = _resolve(con, recording) if recording else None
        stale = stale_sets(con, config, rid)
    if stale:
        _refresh(db, config, rid, len(stale))
    with dataset(db) as con:
        items = review_list(con, rid, reason, limit)
    if as_json:
        print(json.dumps([i.to_dict() for i in items], ensure_ascii=False, indent=2))
        return
    _print(items)


def _resolve(con, ref: str) -> str:
    """A recording id from its name, id (prefix) or the path of its file."""
    from ..dataset.common import resolve_recording

    path = Path(ref)
    if path.is_file():
        row = con.execute("SELECT recording_id FROM recording_files WHERE path = ?", [str(path.resolve())]).fetchone()
        return row[0] if row else resolve_recording(con, path.stem).recording_id
    return resolve_recording(con, ref).recording_id


def _refresh(db: Path, config, recording_id: str | None, count: int) -> None:
    from ..dataset.connection import DatabaseBusyError, connect
    from ..dataset.review import fill_stale

    try:
        con = connect(db)
    except DatabaseBusyError:
        err.print(f"[yellow]warning:[/] the database is busy: {count} recordings' flags could not be (re)computed now; "
                  "listing the stored ones", highlight=False)  # fmt: skip
        return
    try:
        fill_stale(con, config, recording_id)
    finally:
        con.close()


def _short(detail: str) -> str:
    """The first clause of a flag's detail (the whole detail is in --json and current_review)."""
    cut = [i for i in (detail.find("; "), detail.find(": ")) if i > 0]
    return detail[: min(cut)] if cut else detail


def _print(items) -> None:
    from ..dataset.common import clock

    if not items:
        out.print("nothing to review")
        return
    table = Table(show_edge=False, show_lines=True)
    for column in ("recording", "start", "speaker", "reason", "why", "text"):
        table.add_column(column, overflow="fold")
    for i in items:
        table.add_row(i.recording, clock(i.start_s, hours=i.start_s >= 3600), i.speaker,
                      "\n".join(r["reason"] for r in i.reasons), "\n".join(_short(r["detail"]) for r in i.reasons),
                      i.text)  # fmt: skip
    out.print(table)
    counts = Counter(r["reason"] for i in items for r in i.reasons)
    out.print(f"{len(items)} observations to check: " + ", ".join(f"{counts[r]} {r}" for r in REASONS if counts[r]),
              highlight=False)  # fmt: skip
