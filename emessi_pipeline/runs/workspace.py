"""The workspace: stage artifacts cached by the hash of what produced them.

Like a build system, each stage's output is stored under a key made from its inputs' keys, its
own parameters, the model's identity and the stage's code version, so re-running does only
what changed. Every write goes to a temporary file first and is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


def stage_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Workspace:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.artifacts = self.root / "artifacts"

    def path(self, stage: str, key: str, suffix: str = ".json") -> Path:
        return self.artifacts / stage / f"{key}{suffix}"

    def load(self, stage: str, key: str, model: type[T]) -> T | None:
        path = self.path(stage, key)
        if not path.is_file():
            return None
        try:
            return model.model_validate_json(path.read_bytes())
        except ValueError:
            return None  # unreadable artifact: recompute rather than fail

    def save(self, stage: str, key: str, record: BaseModel) -> Path:
        path = self.path(stage, key)
        atomic_write_bytes(path, record.model_dump_json().encode())
        return path


class ContentIndex:
    """Remembers each file's sha256 by (size, mtime), so unchanged videos are not re-read."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            self.entries = {}
        self.dirty = False
        self._learned: dict[str, dict] = {}

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        entry = self.entries.get(key)
        if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
            return entry["sha256"]
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        self.entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
        self._learned[key] = self.entries[key]
        self.dirty = True
        return digest.hexdigest()

    def save(self) -> None:
        if self.dirty:
            # Shards of one batch share this file: keep what the others wrote meanwhile.
            try:
                self.entries = {**json.loads(self.path.read_text()), **self._learned}
            except (FileNotFoundError, ValueError):
                pass
            atomic_write_bytes(self.path, json.dumps(self.entries, indent=0).encode())
            self.dirty = False


def voices(profile, root: Path):
    """What voiceprints need (dataset/voiceprints.Voices) for a profile and a workspace folder:
    a recording's extracted WAV is the extract artifact named by the stage key of its set."""
    from ..dataset.voiceprints import Voices

    space = Workspace(root)
    return Voices(profile.voiceprints, lambda key: space.path("extract", key, ".wav"), where=f"workspace {root}")
