"""A file that changes at the same path (re-exported, trimmed, fixed) takes its recording's place:
one current recording, its coding carried over by time or listed for review, the earlier version
kept and queryable; putting the old file back makes it current again, duplicating nothing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from .conftest import ffmpeg, shared
from .dataset_fixtures import CODEBOOK, emessi, read

pytestmark = pytest.mark.slow
NAME = "meeting"
TRIM_S = 20.0  # the changed file keeps the first 20 s of the 30-s clip


def _ingest(folder: Path, db: Path, work: Path) -> dict:
    result = emessi("ingest", folder, "--db", db, "-w", work, "--language", "en", "--settle-seconds", 0, "--json")
    return json.loads(result.stdout)


def _fill(sheet: Path, coded: Path, correct: bool) -> int:
    """Code every row of an exported sheet (and correct every third one's text); returns the rows."""
    with open(sheet, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        row["function"] = ("question", "answer_advice", "experience")[i % 3]
        row["topic"] = "wellbeing" if i % 2 else "managing_work"
        row["corrected_text"] = f"corrected {i}" if correct and i % 3 == 0 else ""
    with open(coded, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _current(db: Path) -> list[tuple]:
    return read(db, "SELECT DISTINCT recording_id, set_id FROM current_observations")


def test_a_changed_file_replaces_its_recording_and_its_work_follows(tmp_path):
    folder, db, work = tmp_path / "recordings", tmp_path / "d.duckdb", tmp_path / "work"
    folder.mkdir()
    original = shared("ami", "trn00.wav")
    target = folder / f"{NAME}.wav"
    shutil.copy(original, target)
    assert _ingest(folder, db, work)["new"] == 1
    [(old_id, old_set)] = _current(db)

    emessi("codebook", "import", CODEBOOK, "--db", db)
    labels = [r[0] for r in read(db, "SELECT speaker_label FROM current_speakers ORDER BY 1")]
    emessi("speakers", "assign", NAME, labels[0], "--participant", "G1-P01", "--role", "leader", "--db", db)
    sheet = tmp_path / "anna.csv"
    emessi("coding", "export", "--coder", "anna", "--recording", NAME, "--out", sheet, "--db", db)
    coded = _fill(sheet, tmp_path / "anna-coded.csv", correct=True)
    emessi("coding", "import", tmp_path / "anna-coded.csv", "--coder", "anna", "--new-coder", "--db", db)
    ben_sheet = tmp_path / "ben.csv"  # exported now, filled in and imported after the file changed
    emessi("coding", "export", "--coder", "ben", "--recording", NAME, "--out", ben_sheet, "--db", db)
    before = {
        "coding": read(db, "SELECT c.coding_id, o.start_s FROM codings c JOIN observations o USING (observation_id) "
                           "WHERE o.set_id = ?", [old_set]),  # fmt: skip
        "assignment": read(db, "SELECT assignment_id, NULL FROM speaker_assignments WHERE set_id = ?", [old_set]),
        "correction": read(db, "SELECT c.correction_id, o.start_s FROM text_corrections c "
                               "JOIN observations o USING (observation_id) WHERE o.set_id = ?", [old_set]),  # fmt: skip
    }
    assert len(before["coding"]) == 2 * coded and before["assignment"] and before["correction"]

    trimmed = tmp_path / "trimmed.wav"
    ffmpeg("-i", str(original), "-t", str(TRIM_S), "-c", "copy", str(trimmed))
    shutil.move(trimmed, target)  # the same path, other content
    summary = _ingest(folder, db, work)
    assert (summary["changed"], summary["new"]) == (1, 0)

    # One current recording: the views count the meeting once, and only its new version.
    [(new_id, new_set)] = _current(db)
    assert new_id != old_id and new_set != old_set
    rows = dict(read(db, "SELECT recording_id, replaced_by FROM recordings WHERE name = ?", [NAME]))
    assert rows == {old_id: new_id, new_id: None}
    assert read(db, "SELECT DISTINCT recording_id FROM talk_per_speaker") == [(new_id,)]
    assert read(db, "SELECT max(end_s) FROM utterances")[0][0] <= TRIM_S + 0.5

    # The earlier version stays: its set, observations and every coding on them, untouched.
    assert read(db, "SELECT recording_id FROM observation_sets WHERE set_id = ?", [old_set]) == [(old_id,)]
    still = read(db, "SELECT count(*) FROM codings c JOIN observations o USING (observation_id) "
                     "WHERE o.set_id = ? AND c.superseded_at IS NULL", [old_set])  # fmt: skip
    assert still == [(2 * coded,)]

    # Zero lost: each item of the old set is carried (onto an observation overlapping it in time)
    # or listed for review; nothing of the trimmed-off part can be carried.
    log = {(kind, item): (outcome, reason) for kind, item, outcome, reason in read(
        db, "SELECT kind, item_id, outcome, reason FROM carry_log WHERE old_set_id = ? AND new_set_id = ?",
        [old_set, new_set])}  # fmt: skip
    outcomes = {}
    for kind, items in before.items():
        for item, start in items:
            outcome, reason = outcomes[item] = log.pop((kind, item))
            assert outcome in ("carried", "review"), (kind, item, outcome)
            if start is not None and start >= TRIM_S:
                assert outcome == "review" and "no observation" in reason
    assert log == {}
    misplaced = read(db, """SELECT count(*) FROM codings c JOIN codings old ON c.carried_from = old.coding_id
                            JOIN observations n ON c.observation_id = n.observation_id
                            JOIN observations o ON old.observation_id = o.observation_id
                            WHERE n.set_id <> ? OR n.end_s <= o.start_s OR n.start_s >= o.end_s""", [new_set])  # fmt: skip
    assert misplaced == [(0,)]
    carried = read(db, "SELECT count(*) FROM current_codings WHERE carried_from IS NOT NULL")[0][0]
    listed = json.loads(emessi("coding", "review", "--recording", NAME, "--db", db, "--json").stdout)
    assert carried + len([i for i in listed if i["kind"] == "coding"]) == 2 * coded
    assigned = read(db, "SELECT participant_id FROM current_speaker_assignments")
    [(assignment, _)] = before["assignment"]
    assert assigned == ([("G1-P01",)] if outcomes[assignment][0] == "carried" else [])

    # A sheet exported before the change still lands: on the recording that replaced it.
    coded_ben = _fill(ben_sheet, tmp_path / "ben-coded.csv", correct=False)
    emessi("coding", "import", tmp_path / "ben-coded.csv", "--coder", "ben", "--new-coder", "--db", db)
    on_new = read(db, "SELECT count(*) FROM current_codings WHERE coder = 'ben'")[0][0]
    ben_review = read(db, "SELECT count(*) FROM carry_review r JOIN codings c ON r.item_id = c.coding_id "
                          "WHERE c.coder = 'ben' AND r.new_set_id = ?", [new_set])[0][0]  # fmt: skip
    assert on_new + ben_review == 2 * coded_ben

    # Undo: the original file back at its path is the current recording again, its work in
    # force once (nothing duplicated by carrying back what had been carried from it).
    shutil.copy(original, target)
    again = _ingest(folder, db, work)
    assert (again["changed"], again["failed"]) == (1, 0)
    assert _current(db) == [(old_id, old_set)]
    assert dict(read(db, "SELECT recording_id, replaced_by FROM recordings WHERE name = ?", [NAME])) == {
        old_id: None, new_id: old_id}
    doubled = read(db, "SELECT observation_id, coder, dimension, code FROM current_codings "
                       "GROUP BY ALL HAVING count(*) > 1")  # fmt: skip
    assert doubled == []
    assert read(db, "SELECT count(*) FROM current_codings WHERE coder = 'anna'") == [(2 * coded,)]

