"""Renaming a participant's pseudonymous id and moving a participant to another group, with a
`participant_history` row for each, so every change can be seen and undone (rename back, move back).

Assignments name a participant by id, and the old assignments must stay as they were: a rename
registers the new id (same group, name and note), marks the old row `renamed_to`, and appends, for
every assignment in force that names the old id, one that names the new id (same label and role).
Codings point at observations, not participants, so they follow by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import DatasetError, new_id, now
from .connection import transaction
from .speakers import PARTICIPANT_PATTERN, write_assignment


@dataclass(frozen=True)
class ParticipantChange:
    participant_id: str
    change: str  # renamed, moved
    old_value: str | None
    new_value: str | None
    assignments: int
    changed_by: str | None = None
    changed_at: object = None


def _participant(con, participant_id: str) -> tuple:
    row = con.execute(
        "SELECT participant_id, group_id, name, note, renamed_to FROM participants WHERE participant_id = ?",
        [participant_id],
    ).fetchone()
    if row is None:
        raise DatasetError(f"no participant {participant_id!r} (`emessi participants list` lists them)")
    if row[4]:
        raise DatasetError(f"participant {participant_id} was renamed to {row[4]}: give {row[4]}")
    return row


def _log(con, change: ParticipantChange) -> None:
    con.execute(
        "INSERT INTO participant_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [new_id(), change.participant_id, change.change, change.old_value, change.new_value, change.assignments,
         change.changed_by, now()],
    )  # fmt: skip


def rename_participant(con, old: str, new: str, changed_by: str | None = None) -> ParticipantChange:
    """Give participant *old* the id *new*; assignments in force move with them. Renaming back
    to an id the participant had before takes that row up again."""
    _, group_id, name, note, _ = _participant(con, old)
    if not PARTICIPANT_PATTERN.match(new or ""):
        raise DatasetError(f"participant id {new!r}: use a pseudonymous code of letters, digits, '-', '_' (e.g. G1-P03)")
    taken = con.execute("SELECT renamed_to FROM participants WHERE participant_id = ?", [new]).fetchone()
    if new == old:
        raise DatasetError(f"{old} is already called {new}")
    # An id the participant had before is free again; any other id in the registry is someone else.
    was_theirs = taken is not None and taken[0] == old
    if taken is not None and not was_theirs:
        raise DatasetError(f"participant {new} exists already: pick another id (or move codings by reassigning speakers)")
    with transaction(con):
        if was_theirs:
            con.execute("UPDATE participants SET renamed_to = NULL, group_id = ?, name = ?, note = ? WHERE participant_id = ?",
                        [group_id, name, note, new])  # fmt: skip
        else:
            con.execute("INSERT INTO participants (participant_id, group_id, name, note, created_at) VALUES (?, ?, ?, ?, ?)",
                        [new, group_id, name, note, now()])  # fmt: skip
        con.execute("UPDATE participants SET renamed_to = ? WHERE participant_id = ?", [new, old])
        con.execute("UPDATE voiceprints SET participant_id = ? WHERE participant_id = ?", [new, old])
        moved = 0
        for recording_id, set_id, label, role in con.execute(
            "SELECT recording_id, set_id, speaker_label, role FROM speaker_assignments "
            "WHERE participant_id = ? AND superseded_at IS NULL ORDER BY recording_id, set_id, speaker_label",
            [old],
        ).fetchall():
            moved += write_assignment(con, recording_id, label, new, role, changed_by, None, set_id=set_id)
        change = ParticipantChange(old, "renamed", old, new, moved, changed_by)
        _log(con, change)
    return change


def move_participant(con, participant_id: str, group_id: str, changed_by: str | None = None) -> ParticipantChange:
    """Put a participant in another group; their assignments and codings stay as they are."""
    _, old_group, *_ = _participant(con, participant_id)
    if not group_id or not group_id.strip():
        raise DatasetError("give the group: --group G2")
    if old_group == group_id:
        raise DatasetError(f"{participant_id} is in group {group_id} already")
    with transaction(con):
        con.execute("UPDATE participants SET group_id = ? WHERE participant_id = ?", [group_id, participant_id])
        change = ParticipantChange(participant_id, "moved", old_group, group_id, 0, changed_by)
        _log(con, change)
    return change


def participant_aliases(con, participant_id: str) -> set[str]:
    """Every id the participant has had, following renames both ways (the id itself included)."""
    ids, frontier = {participant_id}, {participant_id}
    while frontier:
        rows = con.execute(
            "SELECT participant_id, new_value FROM participant_history WHERE change = 'renamed' "
            "AND (list_contains(?, participant_id) OR list_contains(?, new_value))",
            [sorted(frontier), sorted(frontier)],
        ).fetchall()
        frontier = {x for r in rows for x in r} - ids
        ids |= frontier
    return ids


def participant_history(con, participant_id: str) -> list[ParticipantChange]:
    """Every rename and move of a participant, under any of the ids they had, oldest first."""
    ids = participant_aliases(con, participant_id)
    if not con.execute("SELECT 1 FROM participants WHERE list_contains(?, participant_id)", [sorted(ids)]).fetchone():
        raise DatasetError(f"no participant {participant_id!r} (`emessi participants list` lists them)")
    rows = con.execute(
        "SELECT participant_id, change, old_value, new_value, assignments, changed_by, changed_at FROM participant_history "
        "WHERE list_contains(?, participant_id) ORDER BY changed_at",
        [sorted(ids)],
    ).fetchall()
    return [ParticipantChange(*r) for r in rows]
