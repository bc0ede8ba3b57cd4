"""Voiceprints through the CLI, on real speech: the pyannote sample's two speakers cut into two
"sessions" of one group (0-18 s and 18-30 s), ingested once per module. A person assigns the
first session's labels (by the reference timeline, as a researcher listening would); the
second session's labels are then suggested, applied, confirmed, unassigned and withdrawn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from emessi_pipeline.dataset.connection import SCHEMA_VERSION

from .conftest import ffmpeg, shared
from .dataset_fixtures import emessi, read

SPLIT_S = 18.0
FIRST, SECOND = "G9_S1", "G9_S2"
# The reference speakers get participant ids; which label is whom comes from the RTTM.
PEOPLE = {"speaker90": "G9-A", "speaker91": "G9-B"}


@pytest.fixture(scope="module")
def sessions(make_ingestor, tmp_path_factory):
    root = tmp_path_factory.mktemp("voiceprints")
    folder = root / "recordings"
    folder.mkdir()
    sample = shared("pyannote_sample", "sample.wav")
    ffmpeg("-i", str(sample), "-t", str(SPLIT_S), str(folder / f"{FIRST}.wav"))
    ffmpeg("-ss", str(SPLIT_S), "-i", str(sample), str(folder / f"{SECOND}.wav"))
    (folder / "manifest.csv").write_text(f"file,group,session,speakers\n{FIRST}.wav,G9,1,2\n{SECOND}.wav,G9,2,2\n")
    db, work = root / "base.duckdb", root / "work"
    summary = make_ingestor(workspace=work, db=db, overrides={"asr.language": "en"}).run(folder)
    assert not summary.failed
    return db, work, folder


@pytest.fixture
def db(sessions, tmp_path) -> Path:
    target = tmp_path / "voices.duckdb"
    shutil.copy(sessions[0], target)
    return target


@pytest.fixture(scope="module")
def assigned(sessions, tmp_path_factory):
    """The sessions with the first one's labels assigned by a person: (db, workspace, label →
    participant, what the CLI said)."""
    base, work, _ = sessions
    db = tmp_path_factory.mktemp("assigned") / "assigned.duckdb"
    shutil.copy(base, db)
    truth = reference_labels(db, FIRST, 0.0)
    said = {p: emessi("speakers", "assign", FIRST, label, "--participant", p, "--db", db, "-w", work).output
            for label, p in sorted(truth.items())}  # fmt: skip
    return db, work, truth, said


@pytest.fixture
def adb(assigned, tmp_path) -> Path:
    """A private copy of the assigned dataset."""
    target = tmp_path / "assigned.duckdb"
    shutil.copy(assigned[0], target)
    return target


def reference_labels(db: Path, recording: str, offset: float) -> dict[str, str]:
    """Each diarisation label of *recording* → the participant the reference says talks most in it."""
    rttm = [line.split() for line in shared("pyannote_sample", "sample.rttm").read_text().splitlines()]
    truth = [(float(f[3]) - offset, float(f[3]) + float(f[4]) - offset, f[7]) for f in rttm]
    shared_s: dict[str, dict[str, float]] = {}
    for start, end, label in read(db, "SELECT t.start_s, t.end_s, t.speaker_label FROM speaker_turns t JOIN recordings r "
                                      "ON t.set_id = r.current_set_id WHERE r.name = ? AND t.kind = 'exclusive'", [recording]):  # fmt: skip
        for a, b, who in truth:
            shared_s.setdefault(label, {}).setdefault(who, 0.0)
            shared_s[label][who] += max(0.0, min(end, b) - max(start, a))
    return {label: PEOPLE[max(by, key=by.get)] for label, by in shared_s.items()}


def suggest(db: Path, work: Path, *extra) -> list[dict]:
    return json.loads(emessi("speakers", "suggest", SECOND, "--json", "--db", db, "-w", work, *extra).stdout)


def test_assigning_learns_voiceprints_that_name_the_same_people_in_the_next_session(assigned, adb):
    _, work, truth, said = assigned
    db = adb
    assert sorted(set(truth.values())) == ["G9-A", "G9-B"]  # the diarisation found both speakers
    assert all(f"voiceprint of {p}: learnt from" in said[p] for p in said)
    prints = read(db, "SELECT participant_id, embedder, len(vector), speech_s > 0 FROM voiceprints ORDER BY 1")
    assert [(p, e.split("@")[0], n, ok) for p, e, n, ok in prints] == [
        ("G9-A", "resemblyzer-ge2e", 256, True), ("G9-B", "resemblyzer-ge2e", 256, True)]  # fmt: skip
    found = suggest(db, work)
    expected = reference_labels(db, SECOND, SPLIT_S)
    assert {s["speaker_label"]: s["participant"] for s in found} == expected
    assert all(s["score"] > 0.5 for s in found)
    # The recording is named as everywhere (any case, a unique start); a threshold above every
    # score makes every label unknown.
    strict = tmp_profile(db.parent, threshold=0.999)
    unknown = json.loads(emessi("speakers", "suggest", "g9_s2", "--json", "--db", db, "-w", work, "-p", strict).stdout)
    assert [s["participant"] for s in unknown] == [None, None] and all("below the threshold" in s["note"] for s in unknown)


def tmp_profile(folder: Path, **voiceprints) -> Path:
    from emessi_pipeline.config import CONFIG_DIR

    text = (CONFIG_DIR / "default.yaml").read_text()
    for key, value in voiceprints.items():
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
        text = text.replace(line, f"  {key}: {value}")
    path = folder / "voices.yaml"
    path.write_text(text)
    return path


def test_apply_records_auto_assignments_with_scores_and_never_replaces_a_persons(assigned, adb):
    work, db = assigned[1], adb
    expected = reference_labels(db, SECOND, SPLIT_S)
    kept, auto = sorted(expected)
    # A person already said who `kept` is (the other participant, on purpose): that stands.
    other = "G9-B" if expected[kept] == "G9-A" else "G9-A"
    emessi("speakers", "assign", SECOND, kept, "--participant", other, "--by", "anna", "--db", db, "-w", work)
    found = {s["speaker_label"]: s for s in suggest(db, work, "--apply", "--min-score", "0.5")}
    assert found[kept]["applied"] == "kept_persons" and found[kept]["note"] == "assigned by a person"
    assert found[auto]["applied"] == "assigned"
    rows = read(db, "SELECT speaker_label, participant_id, assigned_by, score FROM current_speaker_assignments "
                    "WHERE recording_id = (SELECT recording_id FROM recordings WHERE name = ?) ORDER BY 1", [SECOND])  # fmt: skip
    assert rows[[r[0] for r in rows].index(kept)][1:] == (other, "anna", None)
    label, participant, by, score = rows[[r[0] for r in rows].index(auto)]
    assert (participant, by) == (found[auto]["participant"], "auto") and score == pytest.approx(found[auto]["score"])
    # An auto assignment teaches the voiceprint nothing; a person confirming it does.
    assert read(db, "SELECT count(*) FROM voiceprints WHERE participant_id = ?", [participant]) == [(1,)]
    emessi("speakers", "assign", SECOND, auto, "--participant", participant, "--by", "anna", "--db", db, "-w", work)
    assert read(db, "SELECT assigned_by, score FROM current_speaker_assignments WHERE speaker_label = ? "
                    "AND recording_id = (SELECT recording_id FROM recordings WHERE name = ?)", [auto, SECOND]) == [("anna", None)]  # fmt: skip
    assert read(db, "SELECT count(*) FROM voiceprints WHERE participant_id = ?", [participant]) == [(2,)]
    # `auto` is not a person's name.
    refused = emessi("speakers", "assign", SECOND, auto, "--participant", participant, "--by", "auto", "--db", db, code=2)
    assert "kept for suggestions" in refused.output


def test_unassigning_and_withdrawing_take_the_voiceprint_out_and_exports_leave_it_in(assigned, adb, tmp_path):
    _, work, truth, _ = assigned
    db = adb
    label_a = next(label for label, p in truth.items() if p == "G9-A")
    emessi("speakers", "unassign", FIRST, label_a, "--db", db, "-w", work)
    assert read(db, "SELECT participant_id FROM voiceprints") == [("G9-B",)]
    refused = emessi("export", "table", "voiceprints", tmp_path / "v.parquet", "--db", db, code=2)
    assert "--with-voiceprints" in refused.output and not (tmp_path / "v.parquet").exists()
    emessi("export", "table", "voiceprints", tmp_path / "v.parquet", "--with-voiceprints", "--db", db)
    assert (tmp_path / "v.parquet").exists()
    gone = json.loads(emessi("forget", "G9-B", "--yes", "--json", "--db", db).stdout)
    assert gone["voiceprints"] == 1 and read(db, "SELECT count(*) FROM voiceprints") == [(0,)]
    # Nothing left to compare with: one line saying what to do.
    none = emessi("speakers", "suggest", SECOND, "--db", db, "-w", work, code=2)
    assert "has a voiceprint" in none.output and "Traceback" not in none.output


def test_the_profile_can_apply_suggestions_at_ingest(sessions, assigned, adb, make_ingestor):
    _, work, _, _ = assigned
    expected = reference_labels(adb, SECOND, SPLIT_S)
    # A changed segmentation setting re-runs only segmenting and loading (the models' output is
    # cached), so both sessions get a new set: the first keeps its person's assignments (carried).
    overrides = {"asr.language": "en", "segment.max_pause": 1.4, "voiceprints.apply_at_ingest": True,
                 "voiceprints.apply_min_score": 0.5}  # fmt: skip
    summary = make_ingestor(workspace=work, db=adb, overrides=overrides).run(sessions[2])
    assert not summary.failed
    by_name = {Path(r.path).stem: r for r in summary.results}
    assert (by_name[FIRST].auto_assigned, by_name[SECOND].auto_assigned) == (0, len(expected))
    rows = read(adb, "SELECT speaker_label, participant_id, assigned_by FROM current_speaker_assignments "
                     "WHERE recording_id = (SELECT recording_id FROM recordings WHERE name = ?) ORDER BY 1", [SECOND])  # fmt: skip
    assert rows == [(label, p, "auto") for label, p in sorted(reference_labels(adb, SECOND, SPLIT_S).items())]


def test_missing_audio_keeps_the_assignment_and_says_what_is_needed(db, tmp_path):
    label = read(db, "SELECT min(speaker_label) FROM current_speakers s JOIN recordings r USING (recording_id) "
                     "WHERE r.name = ?", [FIRST])[0][0]  # fmt: skip
    result = emessi("speakers", "assign", FIRST, label, "--participant", "G9-A", "--db", db, "-w", tmp_path / "elsewhere")
    assert "voiceprint of G9-A not updated" in result.output and "emessi extract" in result.output
    # The command it names to learn again is one that exists.
    assert f"emessi speakers voiceprints {FIRST}" in " ".join(result.output.split())
    assert read(db, "SELECT participant_id FROM current_speaker_assignments WHERE speaker_label = ? AND "
                    "recording_id = (SELECT recording_id FROM recordings WHERE name = ?)", [label, FIRST]) == [("G9-A",)]  # fmt: skip
    assert read(db, "SELECT count(*) FROM voiceprints") == [(0,)]


def test_a_version_6_database_upgrades_to_voiceprints(db):
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE voiceprints")
    con.execute("ALTER TABLE speaker_assignments DROP COLUMN score")
    con.execute("UPDATE schema_info SET value = '6' WHERE key = 'schema_version'")
    con.close()
    assert f"brought up to date (schema {SCHEMA_VERSION})" in emessi("upgrade", "--db", db).output
    assert SCHEMA_VERSION == "7"
    assert read(db, "SELECT count(*) FROM voiceprints") == [(0,)]
    assert read(db, "SELECT count(score) FROM current_speaker_assignments") == [(0,)]


@pytest.mark.parametrize("command", [["speakers", "suggest"], ["speakers", "voiceprints"]], ids=" ".join)
def test_voiceprint_commands_have_help_with_an_example(command):
    result = emessi(*command, "--help")
    assert "Example" in result.output and f"emessi {' '.join(command)}" in result.output
