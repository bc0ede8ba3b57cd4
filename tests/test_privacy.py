"""Private by default, through the CLI: files only their owner can read, pseudonyms in every file
that leaves the dataset, and a participant's withdrawal (or a recording's removal) that leaves no
trace of their words in the database file's bytes or in the workspace."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from .dataset_fixtures import AMI, CODEBOOK, DEMO, dataset_base, db, emessi, read as _read  # noqa: F401

pytestmark = pytest.mark.slow
NAME = "Ainoliisa Testinen"  # a name no recording says, so finding it proves the export wrote it


@pytest.fixture
def loose_umask():
    """A umask that makes world-readable files, as a user's shell often has: the CLI must tighten it."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of *root* and everything under it."""
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    return {str(p): stat.S_IMODE(p.lstat().st_mode) for p in paths}


def _loose(modes: dict[str, int]) -> dict[str, str]:
    return {p: oct(m) for p, m in modes.items() if m & 0o077}


def test_everything_the_cli_writes_is_the_owners_only(dataset_base, tmp_path, loose_umask):
    # A fresh workspace: WAV, media artifact, shard summary and log made by the CLI itself.
    fresh = tmp_path / "fresh-work"
    emessi("extract", dataset_base.demo_source.parent, "-w", fresh, "--shard", "1/1",
           "--log-file", tmp_path / "logs" / "run.log")  # fmt: skip
    assert list(fresh.rglob("*.wav")) and list((fresh / "shards").glob("shard-*.json"))
    # A new database from cached artifacts (no model runs): the database file and its lock.
    work = tmp_path / "work"
    shutil.copytree(dataset_base.workspace, work)
    new_db = tmp_path / "new.duckdb"
    emessi("ingest", dataset_base.demo_source.parent, "-w", work, "--db", new_db)
    # Exports and listening samples into folders the CLI creates.
    emessi("codebook", "import", CODEBOOK, "--db", new_db)
    emessi("export", "transcript", DEMO, "--format", "all", "--out", tmp_path / "exports" / "t", "--db", new_db)
    emessi("export", "table", "utterances", tmp_path / "exports" / "u" / "utterances.parquet", "--db", new_db)
    emessi("export", "qdpx", tmp_path / "exports" / "q" / "p.qdpx", "--db", new_db)
    emessi("coding", "export", "--coder", "anna", "--out", tmp_path / "exports" / "s" / "anna", "--db", new_db)
    emessi("speakers", "list", DEMO, "--samples", tmp_path / "samples", "--db", new_db)
    written = {}
    for root in (fresh, tmp_path / "logs", tmp_path / "exports", tmp_path / "samples"):
        written |= _modes(root)
    written |= {str(p): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("new.duckdb*")}
    assert len(written) > 15 and any(p.endswith(".xlsx") for p in written) and any(p.endswith(".wav") for p in written)
    assert _loose(written) == {}
    assert {m for p, m in written.items() if Path(p).is_dir()} == {0o700}
    assert {m for p, m in written.items() if Path(p).is_file()} == {0o600}


def _named(db: Path) -> None:
    emessi("codebook", "import", CODEBOOK, "--db", db)
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P01", "--role", "leader", "--name", NAME, "--db", db)


def _exports(db: Path, folder: Path, *flags: str) -> dict[str, bytes]:
    """Every kind of file that leaves the dataset, as bytes (zips unpacked)."""
    emessi("export", "transcript", DEMO, "--format", "all", "--out", folder, *flags, "--db", db)
    emessi("coding", "export", "--coder", "anna", "--out", folder / "sheet", *flags, "--db", db)
    emessi("export", "qdpx", folder / "p.qdpx", *flags, "--db", db)
    for view in ("utterances", "current_speaker_assignments", "participants", "talk_per_participant"):
        emessi("export", "table", view, folder / f"{view}.csv", *flags, "--db", db)
        emessi("export", "table", view, folder / f"{view}.parquet", *flags, "--db", db)
    emessi("export", "table", "utterances", folder / "utterances.xlsx", *flags, "--db", db)
    for suffix in ("xlsx", "csv", "parquet", "sav"):
        emessi("export", "coded", folder / f"coded.{suffix}", *flags, "--db", db)
    files = {}
    for path in folder.iterdir():
        if path.suffix in (".xlsx", ".qdpx", ".docx"):
            with zipfile.ZipFile(path) as archive:
                files |= {f"{path.name}/{n}": archive.read(n) for n in archive.namelist()}
        else:
            files[path.name] = path.read_bytes()
    return files


def test_exports_name_nobody_unless_asked(db, tmp_path):
    _named(db)
    plain = _exports(db, tmp_path / "plain")
    assert {"G1_S3_vertaismentorointi.eaf", "sheet.csv", "utterances.parquet"} <= set(plain)
    assert [n for n, data in plain.items() if NAME.encode() in data] == []
    assert all(b"G1-P01" in plain[n] for n in (f"{DEMO}.md", f"{DEMO}.srt", f"{DEMO}.vtt", f"{DEMO}.eaf", "sheet.csv", "utterances.csv"))
    named = _exports(db, tmp_path / "named", "--with-names")
    carrying = {n for n, data in named.items() if NAME.encode() in data}
    expected = {f"{DEMO}.md", f"{DEMO}.srt", f"{DEMO}.vtt", f"{DEMO}.eaf", "sheet.csv", "utterances.csv",
                "utterances.parquet", "participants.csv", "participants.parquet", "current_speaker_assignments.csv",
                "current_speaker_assignments.parquet"}  # fmt: skip
    assert expected <= carrying and any(n.startswith("sheet.xlsx/") for n in carrying) and any(n.startswith("p.qdpx/") for n in carrying)
    assert {"coded.csv", "coded.sav"} <= carrying  # uncompressed: the name is in the bytes
    assert f"{DEMO}.docx/word/document.xml" in carrying
    assert any(n.startswith("coded.xlsx/") for n in carrying) and any(n.startswith("utterances.xlsx/") for n in carrying)
    assert _read(db, "SELECT name FROM participants WHERE participant_id = 'G1-P01'") == [(NAME,)]


# ---------------------------------------------------------------- withdrawal and removal


def _own_words(db: Path, where: str, params=()) -> list[str]:
    """Longer words said only in the observations *where* selects (whatever Whisper heard)."""
    rows = _read(db, f"SELECT text, {where} FROM observations WHERE text IS NOT NULL", params)
    mine = {w for text, ours in rows if ours for w in text.split() if len(w) >= 7 and w.isalpha()}
    others = {w for text, ours in rows if not ours for w in text.split()}
    return sorted(mine - others)


def _found(data: bytes, words: list[str]) -> set[str]:
    return {w for w in words if w.encode() in data}


def _in_workspace(root: Path, words: list[str]) -> dict[str, set[str]]:
    hits = {}
    for path in root.rglob("*"):
        if path.is_file():
            found = _found(path.read_bytes(), words)
            if found:
                hits[str(path.relative_to(root))] = found
    return hits


@pytest.fixture
def work(dataset_base, tmp_path) -> Path:
    target = tmp_path / "work"
    shutil.copytree(dataset_base.workspace, target)
    return target


def test_a_withdrawn_participant_leaves_no_words_behind(db, work, tmp_path, dataset_base):
    _named(db)
    demo = "(SELECT recording_id FROM recordings WHERE name = ?)"
    theirs = f"speaker_label = 'SPEAKER_00' AND set_id = (SELECT current_set_id FROM recordings WHERE name = ?)"
    words = _own_words(db, theirs, [DEMO])
    samples = tmp_path / "samples"
    emessi("speakers", "list", DEMO, "--samples", samples, "--db", db)
    talk_before = _read(db, f"SELECT speaker_label, talk_s, turns FROM talk_per_speaker WHERE recording_id = {demo} "
                            "AND speaker_label <> 'SPEAKER_00' ORDER BY 1", [DEMO])  # fmt: skip
    n_theirs = _read(db, f"SELECT count(*) FROM observations WHERE {theirs}", [DEMO])[0][0]
    obs = _read(db, f"SELECT observation_id FROM observations WHERE {theirs} ORDER BY seq LIMIT 1", [DEMO])[0][0]
    marker = "Korjattusalaisuus"
    with open(tmp_path / "fill.csv", "w", encoding="utf-8") as handle:
        handle.write("observation_id,function,corrected_text\n" + f"{obs},question,{marker} teksti\n")
    emessi("coding", "import", tmp_path / "fill.csv", "--coder", "anna", "--new-coder", "--db", db)
    assert _read(db, "SELECT count(*) FROM current_codings WHERE observation_id = ?", [obs]) == [(1,)]
    wal = Path(f"{db}.wal")
    before = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert len(words) >= 3 and _found(before, words) and _found(before, [marker, NAME])  # the check can fail
    assert _in_workspace(work, words) and (samples / f"{DEMO}_SPEAKER_00.wav").exists()
    extract_key = json.loads(_read(db, "SELECT params FROM observation_sets WHERE set_id = "
                                       "(SELECT current_set_id FROM recordings WHERE name = ?)", [DEMO])[0][0])["stage_keys"]["extract"]
    assert extract_key in {p.stem for p in work.rglob("*.wav")}

    # A dry run and a refused confirmation change nothing.
    plan = emessi("forget", "G1-P01", "--db", db, "-w", work, "--samples", samples, "--dry-run")
    assert "would remove participant G1-P01" in plan.output and f"observations: {n_theirs} " in plan.output
    emessi("forget", "G1-P01", "--db", db, "-w", work, "--samples", samples, code=3)
    assert _read(db, "SELECT count(*) FROM participants WHERE participant_id = 'G1-P01'") == [(1,)]
    assert (samples / f"{DEMO}_SPEAKER_00.wav").exists()

    emessi("forget", "G1-P01", "--db", db, "-w", work, "--samples", samples, "--yes", "--by", "ethics-test")
    after = db.read_bytes()
    assert _found(after, words + [marker, NAME]) == set()
    assert not Path(f"{db}.wal").exists()
    assert _in_workspace(work, words + [marker]) == {}
    wavs = {p.stem for p in work.rglob("*.wav")}  # their voice goes; the other recording's stays
    assert extract_key not in wavs and len(wavs) == 1
    assert not (samples / f"{DEMO}_SPEAKER_00.wav").exists() and (samples / f"{DEMO}_SPEAKER_01.wav").exists()
    # Their turns stay as timed, speaker-less rows; everyone else's figures are as they were.
    assert _read(db, "SELECT count(*), count(text), count(DISTINCT speaker_label) FROM observations "
                     f"WHERE speaker_label = 'withdrawn' AND recording_id = {demo}", [DEMO]) == [(n_theirs, 0, 1)]  # fmt: skip
    assert _read(db, f"SELECT speaker_label, talk_s, turns FROM talk_per_speaker WHERE recording_id = {demo} "
                     "AND speaker_label NOT IN ('SPEAKER_00', 'withdrawn') ORDER BY 1", [DEMO]) == talk_before  # fmt: skip
    for table in ("participants", "speaker_assignments"):
        assert _read(db, f"SELECT count(*) FROM {table} WHERE participant_id = 'G1-P01'") == [(0,)]
    assert _read(db, "SELECT count(*) FROM codings WHERE observation_id = ?", [obs]) == [(0,)]
    assert _read(db, "SELECT count(*) FROM text_corrections") == [(0,)]
    log = _read(db, "SELECT kind, subject, done_by, done_at IS NOT NULL, counts FROM privacy_log")
    assert [r[:4] for r in log] == [("participant", "G1-P01", "ethics-test", True)]
    assert not _found(log[0][4].encode(), words + [marker, NAME])

    # Re-segmenting the recording from the workspace (a new set, no model) keeps them withdrawn.
    emessi("ingest", dataset_base.demo_source.parent, "-w", work, "--db", db, "--max-pause", "2.75")
    current = _read(db, f"SELECT text FROM current_observations WHERE recording_id = {demo}", [DEMO])
    assert current and _read(db, f"SELECT count(*) FROM current_observations WHERE recording_id = {demo} "
                                 "AND speaker_label = 'withdrawn'", [DEMO])[0][0] > 0  # fmt: skip
    said = " ".join(t for (t,) in current if t) + " ".join(t for (t,) in _read(db, "SELECT text FROM words"))
    assert {w for w in words if w in said.split()} == set()


def test_a_removed_recording_is_gone_and_not_loaded_again(db, work, dataset_base):
    rid, keys = _read(db, "SELECT recording_id, list(params) FROM recordings r JOIN observation_sets s "
                          "USING (recording_id) WHERE r.name = ? GROUP BY 1", [DEMO])[0]  # fmt: skip
    words = _own_words(db, "recording_id = ?", [rid])
    assert len(words) >= 3 and _in_workspace(work, words)
    emessi("forget", "--recording", DEMO, "--db", db, "-w", work, "--yes")
    tables = _read(db, "SELECT table_name FROM information_schema.columns WHERE column_name = 'recording_id' "
                       "AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE') "
                       "AND table_name NOT IN ('removed_recordings')")  # fmt: skip
    assert len(tables) >= 8
    assert {t: _read(db, f"SELECT count(*) FROM {t} WHERE recording_id = ?", [rid])[0][0] for (t,) in tables} == {t: 0 for (t,) in tables}
    assert _found(db.read_bytes(), words) == set() and _in_workspace(work, words) == {}
    assert rid not in (work / "content-index.json").read_text()
    assert _read(db, "SELECT count(*) FROM recordings WHERE name = ?", [AMI]) == [(1,)]  # the other one stays
    again = emessi("ingest", dataset_base.demo_source.parent, "-w", work, "--db", db, code=3)
    assert "removed from the dataset" in again.output
    assert _read(db, "SELECT kind, subject FROM privacy_log") == [("recording", rid)]
