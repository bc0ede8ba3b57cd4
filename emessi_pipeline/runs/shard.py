"""A deterministic split of a folder's recordings, for a Slurm job array or several machines.

Each recording goes to the shard given by a hash of its path relative to the source folder, so
the split does not depend on listing order or on which machine lists the folder, and a file
added later does not move any other file to another shard.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as in `#SBATCH --array=1-N`
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = _FORM.fullmatch(text)
        if not match:
            raise ValueError(f"--shard {text!r}: expected I/N, e.g. 3/8")
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= index <= count:
            raise ValueError(f"--shard {text!r}: I must be between 1 and N")
        return cls(index, count)

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, path: Path, source: Path) -> bool:
        relative = path.relative_to(source).as_posix() if source.is_dir() else path.name
        digest = hashlib.sha256(relative.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def select(self, paths: list[Path], source: Path) -> list[Path]:
        return [p for p in paths if self.owns(p, source)]


def shard_failure(workspace: Path, path: Path) -> str | None:
    """Why a shard of an earlier sharded run failed on *path*, from the shards' summaries."""
    for summary in sorted((workspace / "shards").glob("shard-*.json")):
        try:
            results = json.loads(summary.read_text()).get("results", [])
        except (OSError, ValueError):
            continue
        for r in results:
            if r.get("path") == str(path) and r.get("status") == "failed":
                return f"{summary.stem} failed at {r.get('stage')}: {r.get('message')}"
    return None
