"""Edges of long-running use (issue 11: 2, 4, 5, 10), each through the CLI: `clean` without a
database or beside unmerged shards, a workspace and exports inside the recordings folder, paths
given two ways and a moved recordings folder, one file name in two folders.

The tests reuse the dataset fixture's workspace (a copy per test): every recording here is the
demo meeting or the AMI clip it already holds, so no model runs and no test depends on which
words Whisper heard."""

from __future__ import annotations

import json
import shutil
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from emessi_pipeline.cli import Exit

from .conftest import copy_to, shared
from .dataset_fixtures import DEMO, dataset_base, emessi, read  # noqa: F401

# Both models' stages must come from the cache: a model run here would make the test slow and
# its outcome hang on the processor.
DEMO_AS_BUILT = ("--num-speakers", "4")  # its manifest says 4; the copies here have no manifest
AMI_AS_BUILT = ("--language", "en", "--num-speakers", "4")
NOW = ("--settle-seconds", "0")


def _work(base, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base.workspace, tmp_path / "work"))


def _ingest(*args, code=Exit.OK) -> dict:
    summary = json.loads(emessi("ingest", *map(str, args), *NOW, "--json", code=code).stdout)
    for r in summary["results"]:
        assert not {"transcribe", "diarize"} & set(r["computed"]), r
    return summary


def _artifacts(work: Path) -> set[str]:
    """Each artifact as STAGE/KEY.SUFFIX."""
    return {p.relative_to(work / "artifacts").as_posix() for p in (work / "artifacts").glob("*/*")}


# ---------------------------------------------------------------- 2: clean


def test_clean_without_a_database_refuses_and_removes_nothing(tmp_path, monkeypatch):
    """The default emessi.duckdb is missing in the folder clean runs from: every result would
    look unused, so clean says why on one line and leaves the workspace as it was."""
    work = tmp_path / "emessi-work"
    for name in ("transcribe/aa.json", "diarize/bb.json", "extract/cc.wav", "extract/.cc.wav.x1.tmp"):
        (work / "artifacts" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "artifacts" / name).write_text("{}")
    monkeypatch.chdir(tmp_path)
    before = _artifacts(work)
    result = emessi("clean", code=Exit.USAGE)
    text = " ".join(result.output.split())
    assert "emessi.duckdb: no such database" in text and "--db" in text and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _artifacts(work) == before
    emessi("clean", "--db", tmp_path / "meetings.duckdb", "--unused-results", code=Exit.USAGE)
    assert _artifacts(work) == before


@pytest.mark.slow
def test_clean_removes_audio_by_default_results_only_when_asked_and_never_an_unmerged_shard(dataset_base, tmp_path):
    work, db = _work(dataset_base, tmp_path), tmp_path / "meetings.duckdb"
    copy_to(dataset_base.demo_source, tmp_path / "loaded")
    _ingest(tmp_path / "loaded", "--db", db, "-w", work, *DEMO_AS_BUILT)
    # A re-segmented set becomes current; the first set's observations are an unused result.
    _ingest(tmp_path / "loaded", "--db", db, "-w", work, *DEMO_AS_BUILT, "--max-pause", "0.3")
    current = {f"segment/{k}.json" for (p,) in read(db, "SELECT params FROM observation_sets s JOIN recordings r "
                                                        "ON s.set_id = r.current_set_id")
               for k in json.loads(p)["stage_keys"].values()}  # fmt: skip
    # The AMI meeting goes through a shard that has not been merged.
    copy_to(shared("ami", "trn07.wav"), tmp_path / "sharded")
    _ingest(tmp_path / "sharded", "-w", work, "--db", tmp_path / "unused.duckdb", "--shard", "1/1", *AMI_AS_BUILT,
            code=Exit.NOTHING_TO_DO)  # every stage cached: nothing computed
    made = json.loads((work / "shards" / "shard-1-of-1.json").read_text())["artifacts"]
    shard_keys = {k for m in made.values() for k in m["stage_keys"].values()}
    shard_files = {a for a in _artifacts(work) if a.split("/")[1].split(".")[0] in shard_keys}
    assert any(a.endswith(".wav") for a in shard_files) and any(a.startswith("diarize/") for a in shard_files)
    unused = {a for a in _artifacts(work) if a.startswith("segment/")} - current - shard_files
    assert unused  # at least the first set's observations
    temporary = work / "artifacts" / "transcribe" / ".left-by-a-kill.json.x1.tmp"
    temporary.write_text("{")

    default = json.loads(emessi("clean", "--db", db, "-w", work, "--json").stdout)
    left = _artifacts(work)
    assert not temporary.exists() and default["bytes_freed"] > 0
    assert not {a for a in left if a.endswith(".wav")} - shard_files  # every WAV but the shard's went
    assert unused <= left and default["kept_unused_results"] >= len(unused)
    assert shard_files <= left and default["kept_for_shards"] == len(shard_files)

    emessi("clean", "--db", db, "-w", work, "--unused-results")
    left = _artifacts(work)
    assert not unused & left
    assert shard_files <= left
    # The shard's work was all there: the merge runs no model and loads the meeting.
    merged = _ingest(tmp_path / "sharded", "--db", db, "-w", work, "--cached-only", *AMI_AS_BUILT)
    assert [r["status"] for r in merged["results"]] == ["done"]
    assert read(db, "SELECT count(*) FROM recordings WHERE current_set_id IS NOT NULL") == [(2,)]
    emessi("clean", "--db", db, "-w", work, "--unused-results")
    left = _artifacts(work)
    assert {a for a in shard_files if not a.endswith(".wav")} <= left  # now current: kept
    assert not {a for a in shard_files if a.endswith(".wav")} & left  # merged: its audio is rebuildable


# ---------------------------------------------------------------- 4: the workspace is not a recordings folder


@pytest.mark.slow
def test_ingest_of_its_own_folder_skips_the_workspace_database_and_exports(dataset_base, tmp_path, monkeypatch):
    meetings = tmp_path / "meetings"
    copy_to(dataset_base.demo_source, meetings)
    # The default workspace inside the folder, as an earlier version left it: WAVs, no marker.
    shutil.copytree(dataset_base.workspace, meetings / "emessi-work")
    (meetings / "emessi-work" / ".emessi-output").unlink(missing_ok=True)
    assert list((meetings / "emessi-work").rglob("*.wav"))
    monkeypatch.chdir(meetings)

    first = _ingest(".", *DEMO_AS_BUILT)
    assert [Path(r["path"]).name for r in first["results"]] == [dataset_base.demo_source.name]
    emessi("speakers", "list", DEMO, "--samples", "samples")
    emessi("export", "transcript", "--format", "all", "--out", "transcripts")
    assert list((meetings / "samples").glob("*.wav")) and (meetings / "emessi.duckdb").exists()

    again = _ingest(".", *DEMO_AS_BUILT, code=Exit.NOTHING_TO_DO)
    assert again["files_seen"] == 1 and [r["status"] for r in again["results"]] == ["unchanged"]
    rows = json.loads(emessi("status", ".", "--json").stdout)["recordings"]
    assert [Path(r["path"]).name for r in rows] == [dataset_base.demo_source.name]
    assert read(meetings / "emessi.duckdb", "SELECT count(*) FROM recordings") == [(1,)]


# ---------------------------------------------------------------- 5: paths


@pytest.mark.slow
def test_a_path_given_two_ways_is_one_file_and_a_moved_folder_keeps_recording_and_codings(dataset_base, tmp_path,
                                                                                          monkeypatch):  # fmt: skip
    work, db = _work(dataset_base, tmp_path), tmp_path / "meetings.duckdb"
    media = copy_to(dataset_base.demo_source, tmp_path / "project" / "meetings")
    monkeypatch.chdir(tmp_path / "project")
    _ingest("./meetings", "--db", db, "-w", work, *DEMO_AS_BUILT)
    assert read(db, "SELECT path FROM recordings") == [(str(media),)]
    label = read(db, "SELECT min(speaker_label) FROM current_speakers WHERE observation_count > 0")[0][0]
    emessi("speakers", "assign", DEMO, label, "--participant", "G1-P01", "--role", "leader", "--db", db)
    again = _ingest(media.parent, "--db", db, "-w", work, *DEMO_AS_BUILT, code=Exit.NOTHING_TO_DO)
    assert [r["status"] for r in again["results"]] == ["unchanged"]

    # Exports from elsewhere still link the media itself.
    monkeypatch.chdir(tmp_path)
    eaf = Path(emessi("export", "transcript", DEMO, "--format", "eaf", "--out", tmp_path / "elan", "--db", db).stdout.strip())
    descriptor = ET.parse(eaf).getroot().find("HEADER/MEDIA_DESCRIPTOR")
    assert Path(unquote(urlparse(descriptor.get("MEDIA_URL")).path)) == media
    assert (eaf.parent / descriptor.get("RELATIVE_MEDIA_URL")).resolve() == media
    emessi("export", "qdpx", tmp_path / "p.qdpx", "--db", db)
    with zipfile.ZipFile(tmp_path / "p.qdpx") as archive:
        assert f'path="absolute://{media}"' in archive.read("project.qde").decode()

    # The folder moves: the same recording, at its new path, with its speaker assignment.
    moved = tmp_path / "archive" / "2024"
    moved.parent.mkdir()
    shutil.move(media.parent, moved)
    after = _ingest(moved, "--db", db, "-w", work, *DEMO_AS_BUILT, code=Exit.NOTHING_TO_DO)
    assert [(r["status"], r["change"]) for r in after["results"]] == [("unchanged", None)]
    assert read(db, "SELECT path FROM recordings") == [(str(moved / media.name),)]
    assert read(db, "SELECT count(*) FROM observation_sets") == [(1,)]
    assert read(db, "SELECT participant_id, role FROM current_speaker_assignments WHERE speaker_label = ?", [label]) == [
        ("G1-P01", "leader")]  # fmt: skip
    sample = emessi("speakers", "list", DEMO, "--samples", tmp_path / "samples", "--json", "--db", db).stdout
    assert all(Path(s["sample"]).exists() for s in json.loads(sample)["speakers"] if s["sample"])


# ---------------------------------------------------------------- 10: one file name in two folders


@pytest.mark.slow
def test_one_file_name_in_two_folders_gives_separate_exports_and_samples(dataset_base, tmp_path):
    work, db = _work(dataset_base, tmp_path), tmp_path / "meetings.duckdb"
    copy_to(dataset_base.demo_source, tmp_path / "groups" / "G1", "S1.mp4")
    copy_to(shared("ami", "trn07.wav"), tmp_path / "groups" / "G2", "S1.wav")
    first = _ingest(tmp_path / "groups" / "G1", "--db", db, "-w", work, *DEMO_AS_BUILT)["results"][0]["recording_id"]
    second = _ingest(tmp_path / "groups" / "G2", "--db", db, "-w", work, *AMI_AS_BUILT)["results"][0]["recording_id"]
    later = f"S1_{second[:8]}"

    written = emessi("export", "transcript", "--format", "all", "--out", tmp_path / "t", "--db", db).stdout.split()
    names = sorted(Path(w).name for w in written)
    assert names == sorted(f"{n}.{f}" for n in ("S1", later) for f in ("md", "srt", "vtt", "eaf", "docx"))
    # The first loaded keeps the plain name, so exports written before the second came stay right.
    assert first in (tmp_path / "t" / "S1.md").read_text() and second in (tmp_path / "t" / f"{later}.md").read_text()

    ambiguous = emessi("speakers", "list", "S1", "--db", db, code=Exit.USAGE).output
    assert "names several recordings" in ambiguous and later in ambiguous and first in ambiguous
    samples = tmp_path / "samples"
    for ref in (first, later):
        emessi("speakers", "list", ref, "--samples", samples, "--db", db)
    labels = read(db, "SELECT recording_id, count(*) FROM current_speakers WHERE observation_count > 0 GROUP BY 1")
    cut = sorted(p.name for p in samples.glob("*.wav"))
    assert len(cut) == sum(n for _, n in labels)
    assert {c.rsplit("_SPEAKER", 1)[0] for c in cut} == {"S1", later}

    emessi("export", "qdpx", tmp_path / "p.qdpx", "--db", db)
    with zipfile.ZipFile(tmp_path / "p.qdpx") as archive:
        sources = [e.get("name") for e in ET.fromstring(archive.read("project.qde")).iter()
                   if e.tag.endswith(("AudioSource", "VideoSource"))]  # fmt: skip
    # (a source's name may carry its media's extension, as QualCoder names copied media after it)
    assert sorted(n.removesuffix(".mp4").removesuffix(".wav") for n in sources) == ["S1", later]
