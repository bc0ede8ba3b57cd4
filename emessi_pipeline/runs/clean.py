"""Free workspace space without losing anything that is expensive to rebuild.

Kept: every artifact of every recording's current observation set in the database, except the
extracted WAVs, which ffmpeg rebuilds from the recordings in seconds. Removed: WAVs, artifacts
no current set uses (older parameters or models), and temporary files of killed runs.
Transcripts and diarisations of current sets stay, so re-segmenting needs no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset.connection import open_reader
from .lock import RunLock
from .workspace import Workspace


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept: int = 0


def _current_keys(database_path: Path) -> set[str]:
    con = open_reader(database_path)
    try:
        rows = con.execute(
            "SELECT s.params FROM observation_sets s JOIN recordings r ON s.set_id = r.current_set_id"
        ).fetchall()
    finally:
        con.close()
    return {key for (params,) in rows for key in json.loads(params).get("stage_keys", {}).values()}


def clean(workspace: Path, database_path: Path, keep_audio: bool = False, dry_run: bool = False) -> CleanReport:
    ws = Workspace(workspace)
    report = CleanReport()
    with RunLock(ws.root / ".lock", "workspace"):
        keep = _current_keys(database_path) if Path(database_path).exists() else set()
        for path in sorted(ws.artifacts.glob("*/*")) if ws.artifacts.exists() else []:
            if _keep(path, keep, keep_audio):
                report.kept += 1
                continue
            report.removed.append(str(path))
            report.bytes_freed += path.stat().st_size
            if not dry_run:
                path.unlink()
    return report


def _keep(path: Path, keep: set[str], keep_audio: bool) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith((".tmp", ".part")):
        return False  # left by a killed run
    key = name.split(".")[0]
    if path.suffix == ".wav":
        return keep_audio and key in keep
    return key in keep
