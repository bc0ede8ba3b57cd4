"""Per-recording metadata: group, session, date and expected speakers.

Read from an optional manifest beside the recordings (``manifest.csv`` or ``manifest.yaml``),
else from a file-name pattern in the profile. Missing metadata is never an error.

Manifest columns (all but ``file`` optional):

====================  ==========================================================
``file``              file name, relative to the recordings folder
``group``             group id, e.g. ``G1``
``session``           session number within the group (1, 2, ...)
``date``              meeting date, ``YYYY-MM-DD``
``speakers``          expected number of speakers (fixes the diarisation count)
``min_speakers``      lower bound when the count is not known
``max_speakers``      upper bound when the count is not known
``tracks``            per-participant tracks' labels: ``track=P01; other=P02`` (a track is
                      named by its file name, its stem or its label; docs/multitrack.md)
====================  ==========================================================
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..stages.records import RecordingMeta

MANIFEST_NAMES = ("manifest.csv", "manifest.yaml", "manifest.yml")


class ManifestError(ValueError):
    pass


def find_manifest(folder: Path) -> Path | None:
    if folder.is_file():
        folder = folder.parent
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_manifest(path: Path) -> dict[str, RecordingMeta]:
    """Rows keyed by file name; a bad row is an error naming the manifest and the row."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
        first_line = 2
    else:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        rows = loaded.get("recordings", []) if isinstance(loaded, dict) else loaded
        first_line = 1
    table = {}
    for number, row in enumerate(rows, first_line):
        name = str(row.get("file") or "").strip()
        if not name:
            raise ManifestError(f"{path}: row {number} has no 'file'")
        try:
            table[name] = RecordingMeta.model_validate(row)
        except ValidationError as error:
            problem = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
            raise ManifestError(f"{path}: row {number} ({name}): {problem}") from None
    return table


def from_filename(path: Path, pattern: str | None) -> RecordingMeta:
    if not pattern:
        return RecordingMeta()
    match = re.search(pattern, path.name)
    if not match:
        return RecordingMeta()
    try:
        return RecordingMeta.model_validate(match.groupdict())
    except ValidationError:
        return RecordingMeta()


def metadata_for(path: Path, root: Path, manifest: dict[str, RecordingMeta], pattern: str | None) -> RecordingMeta:
    relative = path.name if root.is_file() else path.relative_to(root).as_posix()
    return manifest.get(relative) or manifest.get(path.name) or from_filename(path, pattern)
