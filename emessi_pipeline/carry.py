"""Carry human work (codings, speaker assignments, corrections) from a recording's previous
observation set to its new one when the recording is re-processed."""

from __future__ import annotations


def carry_over(con, recording_id: str, old_set_id: str | None, new_set_id: str) -> None:
    """Called inside the load transaction after *new_set_id* became the current set."""
