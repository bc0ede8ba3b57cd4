"""A run's log on disk, as text or JSON lines, beside the terminal's progress bars."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .results import IngestSummary, RecordingResult, Reporter


class Reporters(Reporter):
    """Fan progress events out to several reporters."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def start(self, total: int) -> None:
        for r in self.reporters:
            r.start(total)

    def file_started(self, path: Path) -> None:
        for r in self.reporters:
            r.file_started(path)

    def stage(self, path, stage, completed=None, total=None) -> None:
        for r in self.reporters:
            r.stage(path, stage, completed, total)

    def file_finished(self, result: RecordingResult) -> None:
        for r in self.reporters:
            r.file_finished(result)


class FileLog(Reporter):
    """Appends one line per event; ``jsonl`` lines are for log shippers and scripts."""

    def __init__(self, path: Path, fmt: str = "text"):
        if fmt not in ("text", "jsonl"):
            raise ValueError(f"log format must be text or jsonl, not {fmt!r}")
        self.path, self.fmt = Path(path), fmt
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, event: str, text: str, **fields) -> None:
        now = dt.datetime.now().isoformat(timespec="seconds")
        if self.fmt == "jsonl":
            line = json.dumps({"time": now, "event": event, **fields}, ensure_ascii=False, default=str)
        else:
            line = f"{now} {event}: {text}"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def start(self, total: int) -> None:
        self._write("run_started", f"{total} recordings found", recordings=total)

    def file_finished(self, result: RecordingResult) -> None:
        detail = f" at {result.stage}: {result.message}" if result.status in ("failed", "skipped") else ""
        self._write("recording", f"{result.path} {result.status}{detail}", **vars(result))

    def finished(self, summary: IngestSummary, status: str) -> None:
        data = summary.to_dict()
        data.pop("results")
        text = (f"{status}; {data['recordings']} recordings: {data['done']} done, {data['unchanged']} unchanged, "
                f"{data['failed']} failed, {data['skipped']} skipped, {data['deferred']} deferred; "
                f"{data['audio_hours']:.2f} h audio; wall {data['wall_seconds']:.0f} s")  # fmt: skip
        self._write("run_finished", text, status=status, **data)
