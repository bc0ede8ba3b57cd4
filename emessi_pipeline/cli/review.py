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

from ..dataset.review import OUTCOMES, REASONS
from .common import DEFAULT_DB, AsJson, Db, Exit, dataset, err, fail, out


def register(app: typer.Typer) -> None:
    app.command("review")(review_command)


def review_command(
    recording: Annotated[Optional[str], typer.Argument(help="Recording name (file stem), file path or id (default: every recording).")] = None,
    reason: Annotated[Optional[list[str]], typer.Option("--reason", "-r", help=f"Only this reason (repeatable): {', '.join(REASONS)}.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Show at most this many observations.")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="Flag with this profile's `review` thresholds (default: those of the run that loaded each recording).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also list the observations already resolved, with their resolution.")] = False,
    resolve: Annotated[Optional[str], typer.Option("--resolve", metavar="OBS", help="Mark this observation (id or a unique start of it) done; with --as.")] = None,
    outcome: Annotated[Optional[str], typer.Option("--as", help=f"With --resolve: {', '.join(OUTCOMES)}.")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="With --resolve: a note kept with the resolution.")] = None,
    reopen: Annotated[Optional[str], typer.Option("--reopen", metavar="OBS", help="Put a resolved observation back on the list.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="With --resolve or --reopen: who did it.")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """List the observations to check first: doubtful transcription, repetition loops, overlaps,
    likely diarisation slips, mid-sentence speaker changes and speakers with very little talk.

    Most urgent first (repetition_loop, low_confidence, short_between_same, mid_sentence_change,
    minor_speaker, overlap), then by the number of reasons and time. The flags are also in the
    `current_review` view; the rules and thresholds are in docs/coding.md.

    Mark an item done with --resolve OBS --as kept|corrected|reassigned: it leaves the list
    (--all shows it again, with its resolution; --reopen OBS puts it back). Resolutions are kept.

    Examples:

      emessi review G1_S3_vertaismentorointi --reason low_confidence --reason overlap --limit 20

      emessi review --resolve 3f2a9c1e0b7d-5e6f7a8b-00012 --as corrected --note "fixed the name"
    """
    from ..config import load_profile
    from ..dataset.connection import outdated
    from ..dataset.review import review_list, stale_sets

    if resolve or reopen or outcome or note:
        _resolve_item(db, resolve, reopen, outcome, note, by)
        return
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
        items = review_list(con, rid, reason, limit, resolved=show_all)
        hidden = 0 if show_all else len(review_list(con, rid, reason, resolved=True)) - len(review_list(con, rid, reason))
    if as_json:
        print(json.dumps([i.to_dict() for i in items], ensure_ascii=False, indent=2))
        return
    _print(items, hidden)


def _resolve_item(db: Path, observation: str | None, reopen: str | None, outcome: str | None,
                  note: str | None, by: str | None) -> None:  # fmt: skip
    from ..dataset.review import REOPENED, resolve

    if observation and reopen:
        fail("give --resolve OBS or --reopen OBS, not both")
    if reopen and (outcome or note):
        fail("--reopen takes no --as or --note")
    if not observation and not reopen:
        fail("--as and --note go with --resolve OBS")
    if observation and not outcome:
        fail(f"say how it was resolved: --as {'|'.join(OUTCOMES)}")
    with dataset(db, write=True) as con:
        obs, name, seq, _ = resolve(con, observation or reopen, outcome or REOPENED, note, by)
    out.print(f"{name} #{seq} ({obs}): " + (f"resolved as {outcome}" if observation else "back on the review list"),
              highlight=False)  # fmt: skip


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


def _print(items, hidden: int = 0) -> None:
    from ..dataset.common import clock

    more = f" ({hidden} resolved not shown: --all)" if hidden else ""
    if not items:
        out.print("nothing to review" + more, highlight=False)
        return
    table = Table(show_edge=False, show_lines=True)
    for column in ("recording", "start", "speaker", "reason", "why", "text"):
        table.add_column(column, overflow="fold")
    for i in items:
        done = f"\n[resolved: {i.resolution['outcome']}]" if i.resolution else ""
        # The observation id is what --resolve takes.
        table.add_row(f"{i.recording}\n{i.observation_id}", clock(i.start_s, hours=i.start_s >= 3600), i.speaker,
                      "\n".join(r["reason"] for r in i.reasons), "\n".join(_short(r["detail"]) for r in i.reasons),
                      i.text + done)  # fmt: skip
    out.print(table)
    counts = Counter(r["reason"] for i in items for r in i.reasons)
    out.print(f"{len(items)} observations to check: " + ", ".join(f"{counts[r]} {r}" for r in REASONS if counts[r])
              + more, highlight=False)  # fmt: skip
