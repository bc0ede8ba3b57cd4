"""Bounds on one run's work (``--max-files``, ``--max-hours``) and what has been spent of them."""

from __future__ import annotations

from dataclasses import dataclass

from .results import RecordingResult


@dataclass(frozen=True)
class Limits:
    """Bounds on one run's work, so a nightly job ends in time; unchanged files cost nothing."""

    max_files: int | None = None
    max_hours: float | None = None


class Budget:
    """What a run has spent of its limits; recordings past them are deferred to the next run."""

    def __init__(self, limits: Limits):
        self.limits, self.files, self.seconds = limits, 0, 0.0

    def spend(self, result: RecordingResult) -> None:
        if result.status in ("done", "failed"):
            self.files += 1
            self.seconds += result.duration_s

    def exhausted(self) -> bool:
        return bool(self.reason())

    def reason(self) -> str:
        if self.limits.max_files is not None and self.files >= self.limits.max_files:
            return f"--max-files {self.limits.max_files} reached; next run continues"
        if self.limits.max_hours is not None and self.seconds >= self.limits.max_hours * 3600:
            return f"--max-hours {self.limits.max_hours:g} reached; next run continues"
        return ""
