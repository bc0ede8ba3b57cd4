"""Undo and history commands, added to the `coding`, `speakers` and `participants` groups:
`coding history|imports|revert`, `speakers unassign`, `participants rename|move|history`.

A thin layer over dataset/undo.py, dataset/participant_changes.py and dataset/speakers.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Optional

import typer

from .common import DEFAULT_DB, DEFAULT_WORKSPACE, AsJson, Db, ProfileOpt, RecordingArg, Work, dataset, out, print_table
from .dataset import coding_app, learn_voices, participants_app, speakers_app

By = Annotated[Optional[str], typer.Option("--by", help="Who made the change (kept with it).")]


def register(app: typer.Typer) -> None:
    """Add the commands to the groups cli/dataset.py made (*app* holds those groups already)."""
    coding_app.command("history")(coding_history)
    coding_app.command("imports")(coding_imports)
    coding_app.command("revert")(coding_revert)
    speakers_app.command("unassign")(speakers_unassign)
    speakers_app.command("move")(speakers_move)
    participants_app.command("rename")(participants_rename)
    participants_app.command("move")(participants_move)
    participants_app.command("history")(participants_history)


def _codes(codes: list[str]) -> str:
    return ";".join(codes) if codes else "-"


def _time(value) -> str:
    return str(value)[:19]


def coding_history(
    observation: Annotated[str, typer.Argument(help="Observation id (or a unique start of it), as in the sheet's observation_id column.")],
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Show every coding, clear, revert and carry-over of one observation, oldest first.

    Each row is one change of one coder's dimension (or of the corrected text): the codes after it,
    the codes before it ('-': none), and the batch (import or revert, see `emessi coding imports`)
    that made it.

    Example:

      emessi coding history 3f2a9c1e0b7d-5e6f7a8b-00012
    """
    from ..dataset.undo import coding_history as history

    with dataset(db) as con:
        (obs, name, seq, _), events = history(con, observation)
    if as_json:
        print(json.dumps({"observation_id": obs, "recording": name, "seq": seq,
                          "events": [e.to_dict() for e in events]}, ensure_ascii=False, indent=2))  # fmt: skip
        return
    out.print(f"{name} #{seq} ({obs})", highlight=False)
    if not events:
        out.print("no codings or corrections yet")
        return
    # The batch's file or kind is in `emessi coding imports` (and in --json): the table stays narrow.
    print_table(["time", "coder", "dimension", "action", "codes", "was", "batch"],
                [(_time(e.at)[:16], e.coder, e.dimension, e.action, _codes(e.codes), _codes(e.was),
                  e.batch if e.action != "carried" else f"{e.batch or ''} (carried)") for e in events])  # fmt: skip


def coding_imports(
    coder: Annotated[Optional[str], typer.Option("--coder", help="Only this coder's batches.")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """List the coding batches: every sheet or project import and every revert, numbered.

    Example:

      emessi coding imports --coder anna
    """
    from ..dataset.undo import list_batches

    with dataset(db) as con:
        batches = list_batches(con, coder)
    if as_json:
        print(json.dumps([b.to_dict() for b in batches], ensure_ascii=False, indent=2))
        return
    counts = ("added", "superseded", "cleared", "corrections")  # all of them in --json
    print_table(["batch", "time", "kind", "coder", "source", "changes", "reverted by"],
                [(b.batch_no, _time(b.made_at), b.kind, b.coder, b.source,
                  ", ".join(f"{b.counts[k]} {k}" for k in counts if b.counts.get(k)),
                  ", ".join(map(str, b.reverted_by))) for b in batches])  # fmt: skip


def coding_revert(
    batch: Annotated[int, typer.Argument(help="Batch number, from `emessi coding imports`.")],
    force: Annotated[bool, typer.Option("--force", help="Revert also cells a later batch changed again (undoing that change there).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would change.")] = False,
    by: By = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Undo a whole import: every cell it changed goes back to what was in force before it.

    Nothing is deleted: the revert is a new batch that supersedes what the import added and
    writes again what it replaced, so it can itself be reverted. Lists each cell it changes.
    Refused when a later batch changed the same cells, unless --force.

    Example:

      emessi coding revert 3 --dry-run
    """
    from ..dataset.undo import revert_batch

    with dataset(db, write=not dry_run) as con:
        plan, made = revert_batch(con, batch, force, by, dry_run)
    if as_json:
        print(json.dumps(plan.to_dict() | {"revert_batch": made}, ensure_ascii=False, indent=2))
        return
    if not plan.changes:
        out.print(f"batch {batch}: nothing to revert (what it wrote is no longer in force, or it changed nothing)")
        return
    print_table(["recording", "seq", "coder", "dimension", "now", "restored"],
                [(c.recording, c.seq, c.coder or "", c.dimension, _codes(c.current), _codes(c.restored))
                 for c in plan.changes])  # fmt: skip
    if made is None:
        out.print(f"would revert batch {batch}: {len(plan.changes)} cells (nothing written: --dry-run)", highlight=False)
    else:
        out.print(f"reverted batch {batch} as batch {made}: {len(plan.changes)} cells "
                  f"(undo with `emessi coding revert {made}`)", highlight=False)  # fmt: skip


def speakers_unassign(recording: RecordingArg,
                      label: Annotated[str, typer.Argument(help="Diarisation label, e.g. SPEAKER_00.")],
                      by: By = None, db: Db = DEFAULT_DB, workspace: Work = DEFAULT_WORKSPACE,
                      profile: ProfileOpt = "default") -> None:  # fmt: skip
    """Take back who a label is: it counts as unassigned (role unknown) from now on.

    The earlier assignment is kept; assign again to undo. What the participant's voiceprint had
    learnt from the label is taken out.

    Example:

      emessi speakers unassign G1_S3_vertaismentorointi SPEAKER_02
    """
    from ..dataset.speakers import unassign

    with dataset(db, write=True) as con:
        was = unassign(con, recording, label, by)
        if was is None:
            out.print(f"{label} was not assigned (nothing changed)", highlight=False)
        else:
            out.print(f"{label}: {was.participant_id or '-'} ({was.role}) → unassigned", highlight=False)
            learn_voices(con, [recording], workspace, profile)


def speakers_move(observation: Annotated[str, typer.Argument(help="Observation id (or a unique start of it).")],
                  to: Annotated[str, typer.Option("--to", help="The speaker label it belongs to, e.g. SPEAKER_01.")],
                  note: Annotated[Optional[str], typer.Option("--note", help="Why (kept with the move).")] = None,
                  by: By = None, db: Db = DEFAULT_DB) -> None:  # fmt: skip
    """Move one observation to another speaker label of its recording (the diarisation gave it to
    the wrong one). Every view counts it for the new label; the move is kept in history
    (`speaker_corrections`) and carried over when the recording is processed again. Moving it
    back to the label the diarisation gave undoes it.

    Example:

      emessi speakers move 3f9a1c2e --to SPEAKER_01 --by anna
    """
    from ..dataset.speakers import move_observation

    with dataset(db, write=True) as con:
        moved = move_observation(con, observation, to, by, note)
    if not moved.changed:
        out.print(f"{moved.recording} #{moved.seq} is already {moved.label} (nothing changed)", highlight=False)
    else:
        out.print(f"{moved.recording} #{moved.seq}: {moved.previous} → {moved.label}", highlight=False)


def participants_rename(
    old: Annotated[str, typer.Argument(help="The participant's id now, e.g. G1-P03.")],
    new: Annotated[str, typer.Argument(help="The new pseudonymous id, e.g. G1-P13.")],
    by: By = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Give a participant another id; their speaker assignments move with them (kept in history).

    Example:

      emessi participants rename G1-P03 G1-P13
    """
    from ..dataset.participant_changes import rename_participant

    with dataset(db, write=True) as con:
        change = rename_participant(con, old, new, by)
    out.print(f"renamed {old} → {new} ({change.assignments} assignments moved; undo with "
              f"`emessi participants rename {new} {old}`)", highlight=False)  # fmt: skip


def participants_move(
    participant: Annotated[str, typer.Argument(help="Participant id, e.g. G1-P03.")],
    group: Annotated[str, typer.Option("--group", help="The group they belong to now, e.g. G2.")],
    by: By = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Move a participant to another group (kept in history; move back to undo).

    Example:

      emessi participants move G1-P03 --group G2
    """
    from ..dataset.participant_changes import move_participant

    with dataset(db, write=True) as con:
        change = move_participant(con, participant, group, by)
    out.print(f"moved {participant}: group {change.old_value or '-'} → {group}", highlight=False)


def participants_history(
    participant: Annotated[str, typer.Argument(help="Participant id (now or before a rename).")],
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Show a participant's renames and group moves, oldest first.

    Example:

      emessi participants history G1-P03
    """
    from ..dataset.participant_changes import participant_history

    with dataset(db) as con:
        changes = participant_history(con, participant)
    if as_json:
        print(json.dumps([asdict(c) | {"changed_at": str(c.changed_at)} for c in changes], ensure_ascii=False))
        return
    if not changes:
        out.print(f"{participant}: no renames or moves")
        return
    print_table(["time", "participant", "change", "from", "to", "assignments", "by"],
                [(_time(c.changed_at), c.participant_id, c.change, c.old_value, c.new_value, c.assignments, c.changed_by)
                 for c in changes])  # fmt: skip
