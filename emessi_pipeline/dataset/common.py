"""Shared pieces of the coded-dataset modules: errors that list every problem, recording look-up."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass


class DatasetError(ValueError):
    """Bad input for the dataset; *problems* lists every one found (nothing was written)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        head = super().__str__()
        return head + "".join(f"\n  {p}" for p in self.problems)


@dataclass(frozen=True)
class Recording:
    recording_id: str
    name: str
    path: str
    set_id: str
    group_id: str | None
    session_no: int | None
    video_streams: int | None


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> dt.datetime:
    """The time to store: timezone-aware UTC, so rows written on machines in other zones (or
    across a change to summer time) order and compare correctly."""
    return dt.datetime.now(dt.timezone.utc)


def resolve_recording(con, ref: str) -> Recording:
    """A recording by its id, an id prefix, or its name (file stem)."""
    rows = con.execute(
        "SELECT recording_id, name, path, current_set_id, group_id, session_no, video_streams, "
        "replaced_by IS NOT NULL FROM recordings WHERE recording_id = ? OR name = ? OR recording_id LIKE ? ORDER BY 1",
        [ref, ref, f"{ref}%"],
    ).fetchall()
    exact = [r for r in rows if r[0] == ref or r[1] == ref]
    rows = exact or rows
    # A name also names the earlier versions of its file (replaced, kept): it means the current one.
    rows = [r for r in rows if r[0] == ref or not r[7]] or rows
    if not rows:
        raise DatasetError(f"no recording {ref!r} (give its name or id; `emessi query \"SELECT name, recording_id FROM recordings\"` lists them)")
    if len({r[0] for r in rows}) > 1:
        raise DatasetError(f"{ref!r} names several recordings: " + ", ".join(f"{r[1]} ({r[0]})" for r in rows))
    return Recording(*rows[0][:7])


def all_recordings(con) -> list[Recording]:
    rows = con.execute(
        "SELECT recording_id, name, path, current_set_id, group_id, session_no, video_streams "
        "FROM recordings WHERE current_set_id IS NOT NULL AND replaced_by IS NULL ORDER BY group_id, session_no, name"
    ).fetchall()
    return [Recording(*r) for r in rows]


def clock(seconds: float, sep: str = ".", hours: bool = True) -> str:
    """00:01:02.345 (sep ',' for SRT)."""
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return (f"{h:02d}:" if hours else "") + f"{m:02d}:{s:02d}{sep}{ms:03d}"
