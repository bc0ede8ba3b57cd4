"""Free workspace space without losing anything that is expensive to rebuild.

By default only what rebuilds in seconds goes: the extracted WAVs (ffmpeg makes them again from
the recordings) and temporary files of killed runs. Model results (transcripts, diarisations,
alignments, observations) no current observation set uses go only when asked for: another
setting may come back, and a transcript costs more than the real time of its meeting.

What the database says is current decides what stays, so there is no cleaning without it: a
missing database (a wrong folder, a typo in --db) would make every result look unused. What a
shard made and the merge (`load --cached-only`) has not loaded yet stays whatever is asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset.connection import open_reader
from .lock import RunLock
from .workspace import Workspace


class CleanRefused(ValueError):
    """Cleaning would guess: nothing was removed."""


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept: int = 0
    kept_for_shards: int = 0  # of kept: made by a shard, not merged into the database yet
    kept_results: int = 0  # of kept: model results no current set uses (remove with unused_results)


def _database_keys(database_path: Path) -> tuple[set[str], set[str]]:
    """The stage keys of every current observation set, and the ids of every set ever loaded."""
    con = open_reader(database_path)
    try:
        current = con.execute(
            "SELECT s.params FROM observation_sets s JOIN recordings r ON s.set_id = r.current_set_id"
        ).fetchall()
        loaded = {set_id for (set_id,) in con.execute("SELECT set_id FROM observation_sets").fetchall()}
    finally:
        con.close()
    keys = {key for (params,) in current for key in json.loads(params).get("stage_keys", {}).values()}
    return keys, loaded


def _unmerged_shard_keys(workspace: Path, loaded: set[str]) -> set[str] | None:
    """Stage keys of what shards made whose observation set is not in the database yet.

    None when a shard summary from before shards listed their artifacts names recordings: then
    which files they made is unknown, and every model result must stay.
    """
    keys: set[str] = set()
    for summary in sorted((workspace / "shards").glob("shard-*.json")):
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            return None  # unreadable: assume the worst
        if "artifacts" not in data:
            if any(r.get("recording_id") for r in data.get("results", [])):
                return None
            continue
        for made in data["artifacts"].values():
            if made.get("set_id") not in loaded:
                keys.update(made.get("stage_keys", {}).values())
    return keys


def clean(workspace: Path, database_path: Path, keep_audio: bool = False, unused_results: bool = False,
          dry_run: bool = False) -> CleanReport:  # fmt: skip
    """Remove extracted WAVs and temporary files; with *unused_results*, also model results no
    current set uses. Raises FileNotFoundError without the database or the workspace, and
    CleanRefused when the database uses nothing in the workspace (probably another project's)."""
    database_path, ws = Path(database_path), Workspace(workspace)
    if not database_path.is_file():
        raise FileNotFoundError(f"{database_path}: no such database; clean keeps what the database's recordings use, "
                                f"so it needs the database (pass --db)")  # fmt: skip
    if not ws.root.is_dir():
        raise FileNotFoundError(f"{ws.root}: no such workspace (pass -w)")
    report = CleanReport()
    with RunLock(ws.root / ".lock", "workspace"):
        current, loaded = _database_keys(database_path)
        pending = _unmerged_shard_keys(ws.root, loaded)
        files = sorted(ws.artifacts.glob("*/*")) if ws.artifacts.exists() else []
        results = [p for p in files if not _temporary(p) and p.suffix != ".wav"]
        if unused_results and results and not any(_key(p) in current for p in results):
            raise CleanRefused(f"{database_path} uses none of the {len(results)} results in {ws.root}: is it the database "
                               f"this workspace was loaded into? Nothing was removed")  # fmt: skip
        for path in files:
            keep = _keep(path, current, pending, keep_audio, unused_results)
            if keep:
                report.kept += 1
                report.kept_for_shards += keep == "shard"
                report.kept_results += keep == "unused result"
                continue
            report.removed.append(str(path))
            report.bytes_freed += path.stat().st_size
            if not dry_run:
                path.unlink()
    return report


def _temporary(path: Path) -> bool:
    return path.name.startswith(".") or path.name.endswith((".tmp", ".part"))  # left by a killed run


def _key(path: Path) -> str:
    return path.name.split(".")[0]


def _keep(path: Path, current: set[str], pending: set[str] | None, keep_audio: bool, unused_results: bool) -> str | None:
    """Why *path* stays, or None when it goes."""
    if _temporary(path):
        return None  # the workspace lock is held, so no run is writing it
    key, audio = _key(path), path.suffix == ".wav"
    if pending is not None and key in pending:
        return "shard"
    if audio:
        return "current audio" if keep_audio and key in current else None
    if key in current:
        return "current"
    if pending is None:
        return "shard"  # an old shard summary: which results it made is unknown
    return None if unused_results else "unused result"
