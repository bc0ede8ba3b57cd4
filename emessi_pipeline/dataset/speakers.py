"""Participants (a pseudonymous registry per group) and who each diarisation label is.

A label (`SPEAKER_00`) only means something within one observation set, so an assignment is
keyed by (recording, set, label); carry.py moves it to the matching label of a new set.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .connection import transaction
from .common import DatasetError, Recording, new_id, now, output_folder, resolve_observation, resolve_recording
from .schema import ROLES
from .sheets import read_csv_dicts

PARTICIPANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Who an assignment is by when voiceprints made it (`emessi speakers suggest --apply`): told apart
# from a person's, never replacing one, and replaced by a person's confirmation.
AUTO = "auto"


@dataclass(frozen=True)
class Assignment:
    recording: str
    speaker_label: str
    participant_id: str | None
    role: str
    name: str | None = None


@dataclass(frozen=True)
class LabelSummary:
    speaker_label: str
    participant_id: str | None
    participant_name: str | None
    role: str
    talk_s: float
    turns: int
    observations: int
    first_utterances: list[str]


def add_participant(con, participant_id: str, group_id: str | None, name: str | None = None, note: str | None = None) -> bool:
    """Register a participant; returns False when it was there already (name/note filled in if given)."""
    problems = _participant_problems(con, participant_id, group_id)
    if problems:
        raise DatasetError("participant not added", problems)
    existing = con.execute("SELECT 1 FROM participants WHERE participant_id = ?", [participant_id]).fetchone()
    if existing:
        con.execute(
            "UPDATE participants SET name = coalesce(?, name), note = coalesce(?, note) WHERE participant_id = ?",
            [name, note, participant_id],
        )
        return False
    con.execute("INSERT INTO participants (participant_id, group_id, name, note, created_at) VALUES (?, ?, ?, ?, ?)",
                [participant_id, group_id, name, note, now()])  # fmt: skip
    return True


def _participant_problems(con, participant_id: str, group_id: str | None) -> list[str]:
    if not PARTICIPANT_PATTERN.match(participant_id or ""):
        return [f"participant id {participant_id!r}: use a pseudonymous code of letters, digits, '-', '_' (e.g. G1-P03)"]
    row = con.execute("SELECT group_id, renamed_to FROM participants WHERE participant_id = ?", [participant_id]).fetchone()
    if row and row[1]:
        return [f"participant {participant_id} was renamed to {row[1]} (`emessi participants rename` renames back)"]
    if row and group_id and row[0] and row[0] != group_id:
        return [f"participant {participant_id} belongs to group {row[0]}, not {group_id}"]
    return []


def list_participants(con, group_id: str | None = None) -> list[tuple]:
    """The participants in force: an id renamed to another is left out (its row stays)."""
    # A reader never migrates: a database of schema 4 has no renamed_to yet.
    renamed = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'participants' "
                          "AND column_name = 'renamed_to'").fetchone()[0]  # fmt: skip
    return con.execute(
        "SELECT participant_id, group_id, name, note FROM participants "
        f"WHERE (? IS NULL OR group_id = ?) {'AND renamed_to IS NULL' if renamed else ''} ORDER BY group_id, participant_id",
        [group_id, group_id],
    ).fetchall()


def assign(con, assignments: list[Assignment], assigned_by: str | None = None) -> int:
    """Validate every assignment, then write them all in one transaction; returns how many changed.

    An unknown participant is registered in the recording's group. Re-assigning a label
    supersedes the earlier assignment (kept, with `superseded_at`).
    """
    resolved, problems = [], []
    if assigned_by == AUTO:
        problems.append(f"--by {AUTO} is kept for suggestions applied from voiceprints (`emessi speakers suggest --apply`)")
    for line, a in enumerate(assignments, start=1):
        where = f"row {line}" if len(assignments) > 1 else a.speaker_label
        try:
            rec = resolve_recording(con, a.recording)
        except DatasetError as error:
            problems.append(f"{where}: {error}")
            continue
        problems += [f"{where}: {p}" for p in _assignment_problems(con, rec, a)]
        resolved.append((rec, a))
    if problems:
        raise DatasetError("no assignment was written", problems)
    changed = 0
    with transaction(con):
        for rec, a in resolved:
            if a.participant_id:
                add_participant(con, a.participant_id, rec.group_id, a.name)
            changed += write_assignment(con, rec, a.speaker_label, a.participant_id, a.role, assigned_by, None)
    return changed


def assign_fields(con, recording: str, label: str, participant_id: str | None = None, role: str | None = None,
                  name: str | None = None, assigned_by: str | None = None) -> tuple[Assignment, int]:
    """Change only the given fields of a label's assignment: the others keep their value in force
    (a new assignment: no participant, role `participant` with one, else `unknown`). *name* is
    the name of the participant (given, or the one assigned). Returns the assignment now in force
    and how many assignments changed (0 when only the name changed, or nothing)."""
    if participant_id is None and role is None and name is None:
        raise DatasetError("nothing to change: give --participant, --role or --name")
    rec = resolve_recording(con, recording)
    current = con.execute(
        "SELECT participant_id, role FROM speaker_assignments "
        "WHERE set_id = ? AND speaker_label = ? AND superseded_at IS NULL",
        [rec.set_id, label],
    ).fetchone()
    participant_id = participant_id if participant_id is not None else (current[0] if current else None)
    default_role = "participant" if participant_id else "unknown"
    role = role if role is not None else (current[1] if current else default_role)
    if name is not None and not participant_id:
        raise DatasetError(f"--name is a participant's name, and {label} has none: give --participant too")
    wanted = Assignment(recording, label, participant_id, role, name)
    return wanted, assign(con, [wanted], assigned_by)


def _assignment_problems(con, rec: Recording, a: Assignment) -> list[str]:
    problems = []
    if a.role not in ROLES:
        problems.append(f"role {a.role!r} is not one of {', '.join(ROLES)}")
    labels = {r[0] for r in con.execute("SELECT speaker_label FROM speakers WHERE set_id = ?", [rec.set_id]).fetchall()}
    if a.speaker_label not in labels:
        problems.append(f"{rec.name} has no speaker {a.speaker_label!r} (it has {', '.join(sorted(labels)) or 'none'})")
    if a.participant_id:
        problems += _participant_problems(con, a.participant_id, rec.group_id)
    return problems


def write_assignment(con, rec_or_id, label: str, participant_id: str | None, role: str,
                     assigned_by: str | None, carried_from: str | None, set_id: str | None = None,
                     score: float | None = None) -> int:  # fmt: skip
    """Assign one label of a set (the recording's current set unless *set_id*), superseding a
    different assignment in force; returns 1, or 0 when that assignment is already in force.
    A person giving the same participant and role as an `auto` assignment confirms it (a new
    row, theirs). The caller holds the transaction and has checked the assignment."""
    recording_id = rec_or_id.recording_id if isinstance(rec_or_id, Recording) else rec_or_id
    set_id = set_id or rec_or_id.set_id
    current = con.execute(
        "SELECT assignment_id, participant_id, role, assigned_by FROM speaker_assignments "
        "WHERE set_id = ? AND speaker_label = ? AND superseded_at IS NULL",
        [set_id, label],
    ).fetchone()
    if current and (current[1], current[2]) == (participant_id, role) and (current[3] == AUTO) == (assigned_by == AUTO):
        return 0
    if current:
        con.execute("UPDATE speaker_assignments SET superseded_at = ? WHERE assignment_id = ?", [now(), current[0]])
    con.execute(
        "INSERT INTO speaker_assignments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
        [new_id(), recording_id, set_id, label, participant_id, role, assigned_by, now(), carried_from, score],
    )
    return 1


def read_assignment_csv(path: Path) -> list[Assignment]:
    """Columns: recording, speaker_label, participant, role[, name]. Header required."""
    rows = read_csv_dicts(path)  # Excel's ';' and Windows-1252 too
    if not rows:
        raise DatasetError(f"{path}: no rows")
    missing = {"recording", "speaker_label", "role"} - set(rows[0])
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))} "
                           "(need recording, speaker_label, participant, role[, name])")  # fmt: skip
    return [
        Assignment(
            recording=(r.get("recording") or "").strip(),
            speaker_label=(r.get("speaker_label") or "").strip(),
            participant_id=(r.get("participant") or "").strip() or None,
            role=(r.get("role") or "").strip() or "unknown",
            name=(r.get("name") or "").strip() or None,
        )
        for r in rows
    ]


def summarize_labels(con, recording: str, utterances: int = 3) -> tuple[Recording, list[LabelSummary]]:
    """Per label of the current set: who it is, talk time, turns, and its first utterances."""
    rec = resolve_recording(con, recording)
    rows = con.execute(
        """SELECT s.speaker_label, s.participant_id, a.participant_name, s.role, s.talk_s, s.turns,
                  s.observations
           FROM talk_per_speaker s
           LEFT JOIN current_speaker_assignments a
             ON s.recording_id = a.recording_id AND s.speaker_label = a.speaker_label
           WHERE s.recording_id = ? ORDER BY s.speaker_label""",
        [rec.recording_id],
    ).fetchall()
    summaries = []
    for label, pid, name, role, talk, turns, count in rows:
        first = [
            f"[{start:.1f}s] {text}"
            for start, text in con.execute(
                "SELECT start_s, text FROM utterances WHERE recording_id = ? AND speaker_label = ? ORDER BY seq LIMIT ?",
                [rec.recording_id, label, utterances],
            ).fetchall()
        ]
        summaries.append(LabelSummary(label, pid, name, role, talk, turns, count, first))
    return rec, summaries


def cut_samples(con, recording: str, folder: Path, seconds: float = 8.0) -> dict[str, Path]:
    """Cut each label's longest observation (at most *seconds*) from the source media into WAVs."""
    rec = resolve_recording(con, recording)
    if not Path(rec.path).exists():
        raise DatasetError(f"{rec.name}: source media {rec.path} is not there any more (moved? re-run ingest on it)")
    output_folder(folder, "listening samples")
    rows = con.execute(
        """SELECT speaker_label, start_s, duration_s FROM current_observations
           WHERE recording_id = ?
           QUALIFY row_number() OVER (PARTITION BY speaker_label ORDER BY duration_s DESC, seq) = 1
           ORDER BY speaker_label""",
        [rec.recording_id],
    ).fetchall()
    out = {}
    for label, start, duration in rows:
        target = folder / f"{rec.name}_{label}.wav"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-ss", f"{start:.3f}", "-t",
             f"{min(duration, seconds):.3f}", "-i", rec.path, "-vn", "-ac", "1", "-ar", "16000", str(target)],
            check=True,
        )  # fmt: skip
        out[label] = target
    return out


def unassign(con, recording: str, label: str, unassigned_by: str | None = None) -> Assignment | None:
    """Take a label's assignment back: an assignment to nobody (role unknown) is appended, so the
    earlier one stays readable and the label counts as unassigned everywhere. Returns the
    assignment that was in force (None when there was none: nothing is written)."""
    rec = resolve_recording(con, recording)
    problems = _assignment_problems(con, rec, Assignment(recording, label, None, "unknown"))
    if problems:
        raise DatasetError("nothing unassigned", problems)
    current = con.execute(
        "SELECT participant_id, role FROM speaker_assignments WHERE set_id = ? AND speaker_label = ? AND superseded_at IS NULL",
        [rec.set_id, label],
    ).fetchone()
    if current is None or current == (None, "unknown"):
        return None
    with transaction(con):
        write_assignment(con, rec, label, None, "unknown", unassigned_by, None)
    return Assignment(rec.name, label, current[0], current[1])


@dataclass(frozen=True)
class Move:
    observation_id: str
    recording: str
    seq: int
    previous: str  # the label in force before
    label: str  # the label in force now
    changed: bool


def move_observation(con, observation: str, to_label: str, moved_by: str | None = None, note: str | None = None) -> Move:
    """Give one observation of a current set to another speaker label of that set (the diarisation
    put it on the wrong one). The earlier move stays in `speaker_corrections`, superseded; moving
    it back to its diarised label supersedes the move (the observation reads as diarised)."""
    obs, name, seq, set_id = resolve_observation(con, observation)
    row = con.execute(
        "SELECT o.speaker_label, c.speaker_label FROM observations o "
        "LEFT JOIN current_observations c USING (observation_id) WHERE o.observation_id = ?", [obs]).fetchone()  # fmt: skip
    diarised, current = row
    if current is None:
        raise DatasetError(f"{name} #{seq} ({obs}) is not in its recording's current set (it was re-processed): "
                           "move the observation that replaced it")  # fmt: skip
    labels = sorted(r for r, in con.execute("SELECT speaker_label FROM speakers WHERE set_id = ?", [set_id]).fetchall())
    to_label = (to_label or "").strip()
    if to_label not in labels:
        raise DatasetError(f"{name} has no speaker {to_label!r} (it has {', '.join(labels)})")
    if to_label == current:
        return Move(obs, name, seq, current, current, False)
    with transaction(con):
        con.execute("UPDATE speaker_corrections SET superseded_at = ? WHERE observation_id = ? AND superseded_at IS NULL",
                    [now(), obs])  # fmt: skip
        if to_label != diarised:
            con.execute("INSERT INTO speaker_corrections VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                        [new_id(), obs, to_label, moved_by, now(), note])  # fmt: skip
    return Move(obs, name, seq, current, to_label, True)
