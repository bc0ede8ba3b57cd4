"""Exports read back by independent readers: DuckDB for Parquet/CSV, pympi-ling for ELAN,
the REFI-QDA schema for .qdpx, and a round trip of codings through a .qdpx into a fresh copy."""

from __future__ import annotations

import csv
import json
import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import duckdb
import pytest
from pympi.Elan import Eaf

from emessi_pipeline.cli import Exit
from emessi_pipeline.dataset.exports.qdpx import NS, guid, validate

from .dataset_fixtures import AMI, CODEBOOK, DEMO, dataset_base, db, snapshot, read as _read, emessi  # noqa: F401

pytestmark = pytest.mark.slow
Q = f"{{{NS}}}"


@pytest.fixture
def coded(db, tmp_path):
    """Speakers named, codebook in, the demo coded by anna; plus an untouched copy of the database."""
    pristine = tmp_path / "pristine.duckdb"
    shutil.copy(db, pristine)
    emessi("codebook", "import", CODEBOOK, "--db", db)
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P01", "--role", "leader", "--name", "Aino", "--db", db)
    emessi("speakers", "assign", DEMO, "SPEAKER_01", "--participant", "G1-P02", "--role", "facilitator", "--db", db)
    sheet = tmp_path / "anna.csv"
    emessi("coding", "export", "--coder", "anna", "--recording", DEMO, "--out", sheet, "--db", db)
    with open(sheet, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        row["function"] = ["question", "experience", "support"][i % 3]
        row["topic"] = "wellbeing;working_time" if i % 2 else "change_crisis"
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    emessi("coding", "import", sheet, "--coder", "anna", "--new-coder", "--db", db)
    return db, pristine


def test_any_table_or_view_to_parquet_and_csv(coded, tmp_path):
    db, _ = coded
    for name in ("talk_per_participant", "current_codings", "observations"):
        expected = _read(db, f"SELECT count(*) FROM {name}")[0][0]
        assert expected > 0
        for suffix in ("parquet", "csv"):
            target = tmp_path / f"{name}.{suffix}"
            emessi("export", "table", name, target, "--db", db)
            reader = "read_parquet" if suffix == "parquet" else "read_csv_auto"
            con = duckdb.connect()
            assert con.execute(f"SELECT count(*) FROM {reader}('{target}')").fetchone()[0] == expected
    columns = duckdb.connect().execute(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path / 'current_codings.parquet'}')").fetchall()
    assert {"observation_id", "coder", "dimension", "code", "role"} <= {c[0] for c in columns}
    result = emessi("export", "table", "nosuch", tmp_path / "x.csv", "--db", db, code=Exit.USAGE)
    assert "no table or view 'nosuch'" in result.output


def test_transcript_markdown_srt_and_webvtt_carry_speakers_roles_and_times(coded, tmp_path):
    db, _ = coded
    emessi("export", "transcript", DEMO, "--format", "all", "--out", tmp_path, "--db", db)
    rows = _read(db, "SELECT start_s, end_s, coalesce(participant_id, speaker_label), role, text "
                     "FROM utterances WHERE recording_name = ? ORDER BY seq", [DEMO])  # fmt: skip
    md = (tmp_path / f"{DEMO}.md").read_text()
    assert "G1-P01 (leader)" in md and "G1-P02 (facilitator)" in md and "- session: 3" in md
    assert "Aino" not in md  # names only with --with-names (tests/test_privacy.py)
    assert md.count("**[") == len(rows)
    srt = (tmp_path / f"{DEMO}.srt").read_text()
    cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+?): (.*)\n", srt)
    assert [int(c[0]) for c in cues] == list(range(1, len(rows) + 1))
    for cue, (start, end, speaker, _, text) in zip(cues, rows):
        assert _seconds(cue[1].replace(",", ".")) == pytest.approx(start, abs=1e-3)
        assert _seconds(cue[2].replace(",", ".")) == pytest.approx(end, abs=1e-3)
        assert (cue[3], cue[4]) == (speaker, text)
    vtt = (tmp_path / f"{DEMO}.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n")
    voices = re.findall(r"\n(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n<v ([^>]+)>", vtt)
    assert [v[2] for v in voices] == [r[2] for r in rows]


def _seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_elan_eaf_has_one_tier_per_speaker_linked_to_the_media(coded, tmp_path):
    db, _ = coded
    emessi("export", "transcript", DEMO, "--format", "eaf", "--out", tmp_path, "--db", db)
    eaf = Eaf(str(tmp_path / f"{DEMO}.eaf"))
    rows = _read(db, "SELECT coalesce(participant_id, speaker_label), start_s, end_s, text FROM utterances "
                     "WHERE recording_name = ? ORDER BY seq", [DEMO])  # fmt: skip
    assert set(eaf.get_tier_names()) == {r[0] for r in rows}
    for tier in eaf.get_tier_names():
        mine = [(round(s * 1000), round(e * 1000), t) for who, s, e, t in rows if who == tier]
        assert sorted(eaf.get_annotation_data_for_tier(tier)) == sorted(mine)
    media = eaf.get_linked_files()
    assert len(media) == 1 and media[0]["MEDIA_URL"].endswith(f"{DEMO}.mp4") and media[0]["MIME_TYPE"] == "video/mp4"
    assert Path(media[0]["MEDIA_URL"].removeprefix("file://")).exists()


def test_qdpx_validates_and_holds_sources_cases_codes_and_codings(coded, tmp_path):
    db, _ = coded
    project = tmp_path / "emessi.qdpx"
    emessi("export", "qdpx", project, "--db", db)
    with zipfile.ZipFile(project) as archive:
        qde = archive.read("project.qde")
        names = archive.namelist()
        root = ET.fromstring(qde)
        assert validate(qde) == []
        transcripts = list(root.iter(f"{Q}Transcript"))
        for transcript in transcripts:  # every sync point brackets its observation's text in the file
            text = archive.read("sources/" + transcript.get("plainTextPath").removeprefix("internal://")).decode()
            points = {p.get("guid"): p for p in transcript.findall(f"{Q}SyncPoint")}
            for sel in transcript.findall(f"{Q}TranscriptSelection"):
                a, b = points[sel.get("fromSyncPoint")], points[sel.get("toSyncPoint")]
                said = _read(db, "SELECT text, start_s FROM utterances WHERE observation_id = ?", [sel.get("name")])[0]
                assert text[int(a.get("position")):int(b.get("position"))] == said[0]
                assert int(a.get("timeStamp")) == round(said[1] * 1000)
    recordings = _read(db, "SELECT count(*) FROM recordings")[0][0]
    assert len(transcripts) == recordings and sum(n.endswith(".txt") for n in names) == recordings
    codings = [c for c in root.iter(f"{Q}Coding")]
    assert len(codings) == _read(db, "SELECT count(*) FROM current_codings")[0][0] > 0
    codes = {c.get("name") for c in root.iter(f"{Q}Code")}
    assert {"Topic", "Function", "Well-being at work", "Steering the discussion"} <= codes
    cases = list(root.iter(f"{Q}Case"))
    assert len(cases) == _read(db, "SELECT count(*) FROM current_speakers WHERE observation_count > 0")[0][0]
    roles = {v.findtext(f"{Q}TextValue") for c in cases for v in c.findall(f"{Q}VariableValue")
             if v.find(f"{Q}VariableRef").get("targetGUID") == guid("variable", "role")}  # fmt: skip
    assert {"leader", "facilitator", "unknown"} <= roles
    broken = qde.replace(b'isCodable="true"', b'isCodable="maybe"', 1)
    assert validate(broken) != []  # the schema check is real


def test_codings_round_trip_through_qdpx_into_a_fresh_database(coded, tmp_path):
    db, pristine = coded
    project = tmp_path / "emessi.qdpx"
    emessi("export", "qdpx", project, "--recording", DEMO, "--db", db)
    emessi("codebook", "import", CODEBOOK, "--db", pristine)
    result = emessi("coding", "import", project, "--db", pristine, "--json")
    query = "SELECT observation_id, coder, dimension, code FROM current_codings ORDER BY ALL"
    assert _read(pristine, query) == _read(db, query)
    assert json.loads(result.stdout)["added"] == len(_read(db, query))
    # back into the database it came from: nothing changes
    before = snapshot(db)
    again = json.loads(emessi("coding", "import", project, "--db", db, "--json").stdout)
    assert again["added"] == 0 and snapshot(db) == before


def test_codings_added_in_another_tool_come_back_and_bad_ones_are_refused(coded, tmp_path):
    db, _ = coded
    project = tmp_path / "emessi.qdpx"
    emessi("export", "qdpx", project, "--recording", DEMO, "--db", db)
    with zipfile.ZipFile(project) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    ET.register_namespace("", NS)
    root = ET.fromstring(files["project.qde"])
    users = root.find(f"{Q}Users")
    ET.SubElement(users, f"{Q}User", guid="00000000-0000-0000-0000-0000000000b0", name="bea")
    selection = list(root.iter(f"{Q}TranscriptSelection"))[-1]
    coding = ET.SubElement(selection, f"{Q}Coding", guid="00000000-0000-0000-0000-0000000000c1",
                           creatingUser="00000000-0000-0000-0000-0000000000b0")  # fmt: skip
    ET.SubElement(coding, f"{Q}CodeRef", targetGUID=guid("code", "function/steering"))
    edited = tmp_path / "edited.qdpx"
    _zip(edited, files, ET.tostring(root, encoding="utf-8", xml_declaration=True))
    emessi("coding", "import", edited, "--db", db)
    assert _read(db, "SELECT observation_id, code FROM current_codings WHERE coder = 'bea'") == [(selection.get("name"), "steering")]
    # a code the codebook does not have: refused, nothing written
    bad = ET.SubElement(selection, f"{Q}Coding", guid="00000000-0000-0000-0000-0000000000c2",
                        creatingUser="00000000-0000-0000-0000-0000000000b0")  # fmt: skip
    ET.SubElement(bad, f"{Q}CodeRef", targetGUID="00000000-0000-0000-0000-00000000dead")
    wrong = tmp_path / "wrong.qdpx"
    _zip(wrong, files, ET.tostring(root, encoding="utf-8", xml_declaration=True))
    before = snapshot(db)
    result = emessi("coding", "import", wrong, "--db", db, code=Exit.USAGE)
    assert "is not a code of the codebook" in result.output and snapshot(db) == before
    (tmp_path / "junk.qdpx").write_bytes(b"not a zip")
    result = emessi("coding", "import", tmp_path / "junk.qdpx", "--db", db, code=Exit.USAGE)
    assert "not a REFI-QDA project" in result.output


def _zip(path: Path, files: dict[str, bytes], qde: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, qde if name == "project.qde" else data)


# QualCoder's own pattern for millisecond sync stamps in transcript text (code_av.py, view_av.py).
QUALCODER_STAMP = re.compile(r"#[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]{1,3}#")


def _as_qualcoder_reads(project: Path) -> dict:
    """The parts of a project QualCoder's REFI-QDA import takes (refi.py): the owner of a transcript's
    codings is the user its <Transcript creatingUser> names, else "default"; the media is copied under
    the source's name; the text's #hh:mm:ss.sss# stamps sync it to the media."""
    with zipfile.ZipFile(project) as archive:
        root = ET.fromstring(archive.read("project.qde"))
        users = {u.get("guid"): u.get("name") for u in root.iter(f"{Q}User")}
        sources = {}
        for source in root.find(f"{Q}Sources"):
            transcript = source.find(f"{Q}Transcript")
            text = archive.read("sources/" + transcript.get("plainTextPath").removeprefix("internal://")).decode()
            stamps = []
            for match in QUALCODER_STAMP.finditer(text):
                h, m, s = match.group()[1:-1].split(":")
                whole, frac = s.split(".")
                stamps.append((int(h) * 3600 + int(m) * 60 + int(whole)) * 1000 + int(frac.ljust(3, "0")))
            owner = users.get(transcript.get("creatingUser"), "default")
            sources[source.get("name")] = {
                "tag": source.tag.removeprefix(Q), "path": source.get("path"), "stamps": stamps,
                "codings": [owner for sel in transcript.iter(f"{Q}TranscriptSelection") for _ in sel.findall(f"{Q}Coding")],
            }  # fmt: skip
        return {"basePath": root.get("basePath"), "sources": sources}


def test_qualcoder_reads_coder_names_media_names_and_millisecond_stamps(coded, tmp_path):
    db, pristine = coded
    sheet = tmp_path / "bea.csv"  # a second coder on the same recording
    emessi("coding", "export", "--coder", "bea", "--recording", DEMO, "--out", sheet, "--db", db)
    with open(sheet, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["function"], row["topic"] = "support", "change_crisis"
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    emessi("coding", "import", sheet, "--coder", "bea", "--new-coder", "--db", db)
    recordings = {name: Path(path) for name, path in _read(db, "SELECT name, path FROM recordings")}
    anna = _read(db, "SELECT count(*) FROM current_codings WHERE coder = 'anna'")[0][0]

    # both coders in one project: QualCoder can name only one owner per transcript, so none is named
    both = tmp_path / "both.qdpx"
    result = emessi("export", "qdpx", both, "--db", db)
    assert "--coder NAME" in result.output and DEMO in result.output
    assert set(_as_qualcoder_reads(both)["sources"][f"{DEMO}.mp4"]["codings"]) == {"default"}

    # one coder's project: every coding arrives as theirs, media named with its extension
    project = tmp_path / "anna.qdpx"
    emessi("export", "qdpx", project, "--coder", "anna", "--include-media", "--db", db)
    read = _as_qualcoder_reads(project)
    assert set(read["sources"]) == {p.name for p in recordings.values()} == {f"{DEMO}.mp4", f"{AMI}.wav"}
    assert read["sources"][f"{DEMO}.mp4"]["tag"] == "VideoSource"
    for name, source in read["sources"].items():
        assert source["path"].endswith(Path(name).suffix)  # the copied-in file keeps the type too
        starts = _read(db, "SELECT start_s FROM utterances WHERE recording_name = ? ORDER BY seq", [Path(name).stem])
        assert source["stamps"] == [round(s * 1000) for (s,) in starts]  # milliseconds, not whole seconds
    assert read["sources"][f"{DEMO}.mp4"]["codings"] == ["anna"] * anna
    with zipfile.ZipFile(project) as archive:
        assert validate(archive.read("project.qde")) == []
    emessi("codebook", "import", CODEBOOK, "--db", pristine)
    emessi("coding", "import", project, "--db", pristine)
    query = "SELECT observation_id, coder, dimension, code FROM current_codings WHERE coder = 'anna' ORDER BY ALL"
    assert _read(pristine, query.replace("WHERE coder = 'anna' ", "")) == _read(db, query)

    # linked media relative to the project file, resolved the way QualCoder joins basePath and path
    linked = tmp_path / "elsewhere" / "linked.qdpx"
    emessi("export", "qdpx", linked, "--relative-media", "--db", db)
    read = _as_qualcoder_reads(linked)
    assert read["basePath"] == linked.parent.resolve().as_posix()
    for name, source in read["sources"].items():
        assert source["path"].startswith("relative:///")
        assert Path(read["basePath"] + source["path"].removeprefix("relative://")).resolve() == recordings[Path(name).stem].resolve()
    emessi("export", "qdpx", linked, "--relative-media", "--base-path", "D:/study/exports/", "--db", db)
    assert _as_qualcoder_reads(linked)["basePath"] == "D:/study/exports"
    emessi("export", "qdpx", linked, "--base-path", "D:/study", "--db", db, code=Exit.USAGE)
