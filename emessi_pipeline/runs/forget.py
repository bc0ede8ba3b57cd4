"""The workspace's share of a withdrawal or a recording's removal (the database's is
``dataset.withdrawal``): artifacts that hold a withdrawn person's words are rewritten under the
same cache key, so a re-run reads the blanked version instead of the original; extracted WAVs,
which hold their voice, are removed (ffmpeg makes them again from the source in seconds). A
removed recording loses every artifact of every set and its content-index entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from ..dataset.withdrawal import Removal
from ..stages.records import Alignment, Observations, Transcript
from .lock import RunLock
from .workspace import Workspace, atomic_write_bytes

WORD_STAGES = {"transcribe": Transcript, "align": Alignment, "segment": Observations}


@dataclass
class WorkspaceChange:
    rewritten: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def forget_in_workspace(workspace: Path, removal: Removal, dry_run: bool = False) -> WorkspaceChange:
    ws = Workspace(workspace)
    change = WorkspaceChange()
    if not ws.artifacts.is_dir():
        return change
    with RunLock(ws.root / ".lock", "workspace"):
        for recording_id, keys in removal.stage_keys.items():
            for stage_dir in sorted(p for p in ws.artifacts.iterdir() if p.is_dir()):
                for key in keys:
                    for path in sorted(stage_dir.glob(f"{key}.*")):
                        _forget_file(path, stage_dir.name, removal, recording_id, change, dry_run)
            # A segmentation that was never loaded (another max_pause tried, say) holds the same
            # words; its observation ids begin with the recording's id, so it can be found.
            for path in sorted((ws.artifacts / "segment").glob("*.json")):
                if path.stem not in keys and _segments_of(path, recording_id):
                    _forget_file(path, "segment", removal, recording_id, change, dry_run)
            if removal.kind == "recording":
                _drop_from_index(ws.root / "content-index.json", recording_id, change, dry_run)
    return change


def _forget_file(path: Path, stage: str, removal: Removal, recording_id: str, change: WorkspaceChange,
                 dry_run: bool) -> None:  # fmt: skip
    if removal.kind == "recording" or path.suffix == ".wav":
        change.removed.append(str(path))
        if not dry_run:
            path.unlink()
        return
    model = WORD_STAGES.get(stage)
    if model is None or path.suffix != ".json":
        return  # media info and diarisation: times and labels, no words
    record = model.model_validate_json(path.read_bytes())
    blanked = _blank(record, removal.spans.get(recording_id, []))
    if blanked != record:
        change.rewritten.append(str(path))
        if not dry_run:
            atomic_write_bytes(path, blanked.model_dump_json().encode())


def _segments_of(path: Path, recording_id: str) -> bool:
    try:
        observations = Observations.model_validate_json(path.read_bytes()).observations
    except (OSError, ValueError):
        return False
    return any(o.observation_id.startswith(recording_id[:12]) for o in observations)


def _inside(start: float, end: float, spans) -> bool:
    middle = (start + end) / 2
    return any(a <= middle <= b for a, b in spans)


def _mostly_inside(start: float, end: float, spans) -> bool:
    if end - start < 0.01:
        return _inside(start, end, spans)
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans) >= 0.5 * (end - start)


def _blank(record: BaseModel, spans) -> BaseModel:
    """The record with every word in a withdrawn span emptied (times kept, so indices still hold)."""
    def words(items):
        return tuple(w.model_copy(update={"text": "", "probability": 0.0}) if _inside(w.start, w.end, spans) else w
                     for w in items)  # fmt: skip

    if isinstance(record, Transcript):
        segments = []
        for s in record.segments:
            kept = words(s.words)
            text = "".join(w.text for w in kept).strip() if kept != s.words else s.text
            segments.append(s.model_copy(update={"words": kept, "text": text}))
        return record.model_copy(update={"segments": tuple(segments)})
    if isinstance(record, Alignment):
        return record.model_copy(update={"words": words(record.words)})
    if isinstance(record, Observations):
        return record.model_copy(update={"observations": tuple(
            o.model_copy(update={"text": ""}) if _mostly_inside(o.start, o.end, spans) else o
            for o in record.observations)})  # fmt: skip
    return record


def _drop_from_index(index: Path, recording_id: str, change: WorkspaceChange, dry_run: bool) -> None:
    """The content index maps file paths (which may hold a name) to hashes: drop the recording's."""
    try:
        entries = json.loads(index.read_text())
    except (FileNotFoundError, ValueError):
        return
    kept = {p: e for p, e in entries.items() if not str(e.get("sha256", "")).startswith(recording_id)}
    if len(kept) != len(entries):
        change.rewritten.append(str(index))
        if not dry_run:
            atomic_write_bytes(index, json.dumps(kept, indent=0).encode())
