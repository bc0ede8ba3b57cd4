"""Per recording, which stages are done, failed or pending (``emessi status``); reads, never writes.

Whether a recording is loaded is read from the database by its content, not recomputed from
today's options: a status run with another workspace, language or spelling of the path than the
ingest still sees it loaded (and says when an ingest with these settings would make a new set).
The other stages are the workspace's cached artifacts for the settings given."""

from __future__ import annotations

from pathlib import Path

from ..dataset.connection import open_reader
from ..dataset.load import loaded_set, unresolved_failure
from ..stages import audio, tracks
from .chain import STAGES, Chain, Host, recording_sha
from .manifest import find_manifest, metadata_for, read_manifest
from .workspace import ContentIndex


def file_signature(path: Path) -> str:
    """What a recorded failure remembers of the file (and of its tracks, when it has them):
    until it changes, the failure stands."""
    layout = tracks.layout_for(path)
    files = [path] if layout is None else [*([layout.mix] if layout.mix else []), *(t.path for t in layout.tracks)]
    return "+".join(_signature(p) for p in files) if files else "missing"


def _signature(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def own_files(workspace: Path, database_path: Path | None) -> tuple[Path, ...]:
    """What a run writes, which a recordings folder may hold: never a recording itself."""
    files = [Path(workspace)]
    if database_path is not None:
        db = Path(database_path)
        files += [db, Path(f"{db}.wal"), Path(f"{db}.emessi-lock")]
    return tuple(files)


def recording_status(host: Host, database_path: Path | None, source: Path,
                     manifest_path: Path | None = None) -> tuple[list[dict], str | None]:  # fmt: skip
    """One row per recording under *source*, and a note when the database could not be read
    (held by a run)."""
    source = audio.stored_path(source)
    manifest_path = manifest_path or find_manifest(source)
    manifest = read_manifest(manifest_path) if manifest_path else {}
    index = ContentIndex(host.workspace.root / "content-index.json")
    con, note = None, None
    if database_path and Path(database_path).exists():
        try:
            con = open_reader(database_path)
        except Exception as error:  # noqa: BLE001 - status must still show the workspace
            note = f"database not readable now ({' '.join(str(error).split())[:120]})"
    rows = [_row(host, p, source, manifest, index, con) for p in tracks.find_recordings(source, skip=own_files(host.workspace.root, database_path))]
    if con is not None:
        con.close()
    return rows, note


def _row(host: Host, path: Path, source: Path, manifest, index: ContentIndex, con) -> dict:
    row = {"path": str(path), "stages": {stage: "pending" for stage in STAGES}, "cause": None, "note": None}
    failure = unresolved_failure(con, path, file_signature(path)) if con is not None else None
    try:
        meta = metadata_for(path, source, manifest, host.profile.metadata.filename_pattern)
        sha, layout, track_shas = recording_sha(index, path)
        chain = Chain(host, path, sha, meta, None, layout, track_shas)
    except OSError as error:
        row["stages"]["extract"], row["cause"] = "failed", f"cannot read it ({error.strerror or error})"
        return row
    row["recording_id"] = chain.recording_id
    for stage in STAGES[:-1]:
        if chain.cached(stage):
            row["stages"][stage] = "done"
    loaded = loaded_set(con, chain.recording_id) if con is not None else None
    if loaded is not None:
        row["stages"] = {stage: "done" for stage in STAGES}
        row["set_id"] = loaded
        if loaded != chain.set_id:
            row["note"] = "loaded with other settings (ingest with these would make a new set)"
    elif failure:
        row["stages"][failure[0] if failure[0] in STAGES else "extract"] = "failed"
        row["cause"] = failure[1]
    return row
