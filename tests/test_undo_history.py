"""Undo and history on the real dataset, through the CLI: imports as numbered batches, a dimension
cleared from a sheet with '-', an observation's history, reverting a batch (conflicts, --force,
a revert reverted), speakers unassign, participants renamed and moved, review items resolved,
and a schema-4 database whose earlier imports become batches on upgrade. Nothing is deleted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from emessi_pipeline.cli import app

from .dataset_fixtures import CODEBOOK, DEMO, dataset_base, db, emessi, read, snapshot  # noqa: F401

COMMANDS = [
    ["coding", "history"], ["coding", "imports"], ["coding", "revert"], ["speakers", "unassign"],
    ["participants", "rename"], ["participants", "move"], ["participants", "history"], ["review"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_undo_command_has_help_with_an_example(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"emessi {' '.join(command)}" in result.output


pytestmark = pytest.mark.slow


def _sheet(db: Path, path: Path) -> list[dict]:
    emessi("coding", "export", "--coder", "anna", "--recording", DEMO, "--out", path, "--db", db)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _write(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _current(db: Path) -> set:
    return set(read(db, "SELECT observation_id, dimension, code FROM current_codings WHERE coder = 'anna'"))


def _one_line_error(result) -> str:
    assert result.output.startswith("error:") and "Traceback" not in result.output
    return " ".join(result.output.split())


@pytest.fixture
def two_imports(db, tmp_path):
    """Batch 1 codes three observations; batch 2 changes one, clears another with '-' and
    corrects the text of the third."""
    emessi("codebook", "import", CODEBOOK, "--db", db)
    rows = _sheet(db, tmp_path / "anna.csv")[:3]
    for row, function in zip(rows, ("question", "experience", "support")):
        row["function"], row["topic"] = function, "wellbeing"
    first = json.loads(emessi("coding", "import", _write(rows, tmp_path / "one.csv"), "--coder", "anna", "--new-coder",
                              "--db", db, "--json").stdout)  # fmt: skip
    after_first = _current(db)
    rows = _sheet(db, tmp_path / "again.csv")[:3]
    rows[0]["function"] = "steering"
    rows[1]["topic"] = "-"
    rows[2]["corrected_text"] = "Korjattu teksti."
    second = json.loads(emessi("coding", "import", _write(rows, tmp_path / "two.csv"), "--coder", "anna", "--new-coder",
                               "--db", db, "--json").stdout)  # fmt: skip
    return db, [r["observation_id"] for r in rows], first, second, after_first


def test_imports_are_numbered_batches_and_a_dash_clears_a_dimension(two_imports):
    db, obs, first, second, after_first = two_imports
    assert (first["batch"], second["batch"]) == (1, 2)
    assert second["cleared"] == 1 and second["superseded"] == 2 and second["corrections"] == 1
    now = _current(db)
    assert (obs[1], "topic", "wellbeing") not in now and (obs[1], "function", "experience") in now
    assert (obs[0], "function", "steering") in now and (obs[0], "function", "question") not in now
    batches = json.loads(emessi("coding", "imports", "--db", db, "--json").stdout)
    assert [(b["batch_no"], b["kind"], b["coder"], b["source"]) for b in batches] == [
        (1, "import", "anna", "sheet:one.csv"), (2, "import", "anna", "sheet:two.csv")]
    assert batches[1]["counts"]["cleared"] == 1 and len(batches[0]["file_sha256"]) == 64
    # The clear is a superseded row, not a deleted one: the code is still in the table.
    assert read(db, "SELECT count(*) FROM codings WHERE observation_id = ? AND dimension = 'topic' "
                    "AND code = 'wellbeing' AND superseded_at IS NOT NULL", [obs[1]]) == [(1,)]  # fmt: skip
    table = emessi("coding", "imports", "--db", db).output
    assert "sheet:two" in table and "1 cleared" in " ".join(table.split())


def test_a_dash_with_a_code_is_refused_and_nothing_is_written(two_imports, tmp_path):
    db, obs, *_ = two_imports
    rows = _sheet(db, tmp_path / "bad.csv")[:1]
    rows[0]["topic"] = "wellbeing;-"
    before = snapshot(db)
    result = emessi("coding", "import", _write(rows, tmp_path / "bad.csv"), "--coder", "anna", "--new-coder", "--db", db, code=2)
    assert "'-' clears the dimension and stands alone" in result.output and snapshot(db) == before


def test_history_shows_every_coding_clear_and_revert_of_an_observation(two_imports):
    db, obs, *_ = two_imports
    history = json.loads(emessi("coding", "history", obs[1], "--db", db, "--json").stdout)
    topic = [(e["action"], e["codes"], e["was"], e["batch"]) for e in history["events"] if e["dimension"] == "topic"]
    assert topic == [("coded", ["wellbeing"], [], 1), ("cleared", [], ["wellbeing"], 2)]
    emessi("coding", "revert", "2", "--db", db)
    history = json.loads(emessi("coding", "history", obs[1], "--db", db, "--json").stdout)
    topic = [(e["action"], e["codes"], e["batch"]) for e in history["events"] if e["dimension"] == "topic"]
    assert topic[-1] == ("reverted", ["wellbeing"], 3)
    text = [(e["action"], e["codes"]) for e in json.loads(
        emessi("coding", "history", obs[2], "--db", db, "--json").stdout)["events"] if e["dimension"] == "text"]
    assert text == [("coded", ["Korjattu teksti."]), ("reverted", [])]
    shown = [" ".join(line.split()) for line in emessi("coding", "history", obs[1], "--db", db).output.splitlines()]
    assert any("│ anna │ topic │ cleared │ - │ wellbeing │ 2" in line for line in shown), shown
    assert "starts several observation ids" in _one_line_error(emessi("coding", "history", obs[1][:-2], "--db", db, code=2))
    assert "no observation 'nope'" in _one_line_error(emessi("coding", "history", "nope", "--db", db, code=2))


def test_revert_restores_the_state_before_the_batch_by_appending_rows(two_imports):
    db, obs, first, second, after_first = two_imports
    before = snapshot(db)
    dry = emessi("coding", "revert", "2", "--dry-run", "--db", db).output
    assert "would revert batch 2: 3 cells" in " ".join(dry.split()) and snapshot(db) == before
    done = " ".join(emessi("coding", "revert", "2", "--by", "lead", "--db", db).output.split())
    assert "reverted batch 2 as batch 3: 3 cells" in done and "steering" in done
    assert _current(db) == after_first
    assert read(db, "SELECT corrected FROM utterances WHERE observation_id = ?", [obs[2]]) == [(False,)]
    ids_before = {r[0] for r in duckdb.connect(str(db), read_only=True).execute("SELECT coding_id FROM codings").fetchall()}
    # Every row there before is still there: the revert superseded and added, never deleted.
    assert {r.split("'")[1] for r in before["codings"]} <= ids_before
    # Batch 1's cells were changed again by 2 and 3: refused (exit 2) unless --force.
    refused = emessi("coding", "revert", "1", "--db", db, code=2)
    assert "changed again by batch 2 (sheet:two.csv), batch 3 (revert of batch 2)" in refused.output
    # Reverting the revert brings batch 2 back; forcing batch 1 empties every cell it coded.
    emessi("coding", "revert", "3", "--db", db)
    assert (obs[0], "function", "steering") in _current(db) and (obs[1], "topic", "wellbeing") not in _current(db)
    emessi("coding", "revert", "1", "--force", "--db", db)
    assert _current(db) == set()
    listed = json.loads(emessi("coding", "imports", "--db", db, "--json").stdout)
    assert [(b["batch_no"], b["kind"], b["reverts"], b["reverted_by"]) for b in listed] == [
        (1, "import", None, [5]), (2, "import", None, [3]), (3, "revert", 2, [4]), (4, "revert", 3, []),
        (5, "revert", 1, [])]  # fmt: skip
    assert "no batch 9" in _one_line_error(emessi("coding", "revert", "9", "--db", db, code=2))


def test_unassign_rename_and_move_keep_every_earlier_assignment(db):
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P03", "--role", "leader", "--db", db)
    out = " ".join(emessi("participants", "rename", "G1-P03", "G1-P13", "--by", "lead", "--db", db).output.split())
    assert "renamed G1-P03 → G1-P13 (1 assignments moved" in out
    assert read(db, "SELECT participant_id, role FROM current_speaker_assignments WHERE speaker_label = 'SPEAKER_00' "
                    "AND recording_id = (SELECT recording_id FROM recordings WHERE name = ?)", [DEMO]) == [("G1-P13", "leader")]
    assert read(db, "SELECT count(*) FROM speaker_assignments WHERE participant_id = 'G1-P03'") == [(1,)]
    listed = json.loads(emessi("participants", "list", "--db", db, "--json").stdout)
    assert [p["participant"] for p in listed] == ["G1-P13"]
    refused = emessi("speakers", "assign", DEMO, "SPEAKER_01", "--participant", "G1-P03", "--db", db, code=2)
    assert "was renamed to G1-P13" in refused.output
    emessi("participants", "move", "G1-P13", "--group", "G2", "--db", db)
    assert json.loads(emessi("participants", "list", "--db", db, "--json").stdout)[0]["group"] == "G2"
    assert "is in group G2 already" in _one_line_error(emessi("participants", "move", "G1-P13", "--group", "G2", "--db", db, code=2))
    emessi("participants", "rename", "G1-P13", "G1-P03", "--db", db)  # back again: the old row is taken up
    history = json.loads(emessi("participants", "history", "G1-P03", "--db", db, "--json").stdout)
    assert [(h["change"], h["old_value"], h["new_value"]) for h in history] == [
        ("renamed", "G1-P03", "G1-P13"), ("moved", "G1", "G2"), ("renamed", "G1-P13", "G1-P03")]
    assert [p["participant"] for p in json.loads(emessi("participants", "list", "--db", db, "--json").stdout)] == ["G1-P03"]
    emessi("participants", "add", "G1-P20", "--group", "G1", "--db", db)
    assert "exists already" in _one_line_error(emessi("participants", "rename", "G1-P03", "G1-P20", "--db", db, code=2))
    # Unassign appends an assignment to nobody: the label counts as unassigned, the rows stay.
    rows = read(db, "SELECT count(*) FROM speaker_assignments")[0][0]
    out = " ".join(emessi("speakers", "unassign", DEMO, "SPEAKER_00", "--db", db).output.split())
    assert out == "SPEAKER_00: G1-P03 (leader) → unassigned"
    assert read(db, "SELECT DISTINCT participant_id, role FROM utterances WHERE recording_name = ? AND speaker_label = 'SPEAKER_00'",
                [DEMO]) == [(None, "unknown")]  # fmt: skip
    assert read(db, "SELECT count(*) FROM speaker_assignments")[0][0] == rows + 1
    assert "was not assigned" in emessi("speakers", "unassign", DEMO, "SPEAKER_00", "--db", db).output
    assert "has no speaker 'SPEAKER_99'" in emessi("speakers", "unassign", DEMO, "SPEAKER_99", "--db", db, code=2).output


def test_resolved_review_items_leave_the_list_and_stay_in_history(db):
    emessi("upgrade", "--db", db)
    items = json.loads(emessi("review", "--db", db, "--json").stdout)
    first, second = items[0]["observation_id"], items[1]["observation_id"]
    out = emessi("review", "--resolve", first, "--as", "kept", "--note", "heard it", "--by", "anna", "--db", db).output
    assert "resolved as kept" in out
    emessi("review", "--resolve", second, "--as", "corrected", "--db", db)
    left = json.loads(emessi("review", "--db", db, "--json").stdout)
    assert len(left) == len(items) - 2 and first not in {i["observation_id"] for i in left}
    every = {i["observation_id"]: i for i in json.loads(emessi("review", "--all", "--db", db, "--json").stdout)}
    assert len(every) == len(items) and every[first]["resolution"]["outcome"] == "kept"
    assert every[first]["resolution"]["note"] == "heard it" and every[first]["resolution"]["resolved_by"] == "anna"
    assert "2 resolved not shown: --all" in " ".join(emessi("review", "--db", db).output.split())
    emessi("review", "--reopen", second, "--db", db)
    assert len(json.loads(emessi("review", "--db", db, "--json").stdout)) == len(items) - 1
    assert read(db, "SELECT outcome FROM review_resolutions WHERE observation_id = ? ORDER BY resolved_at", [second]) == [
        ("corrected",), ("reopened",)]
    assert "--as kept|corrected|reassigned" in _one_line_error(emessi("review", "--resolve", first, "--db", db, code=2))
    assert "use one of kept, corrected, reassigned" in _one_line_error(
        emessi("review", "--resolve", first, "--as", "fine", "--db", db, code=2))
    flagged = {i["observation_id"] for i in items}
    calm = read(db, "SELECT observation_id FROM current_observations WHERE NOT list_contains(?, observation_id) LIMIT 1",
                [sorted(flagged)])[0][0]  # fmt: skip
    assert "not on the review list" in _one_line_error(emessi("review", "--resolve", calm, "--as", "kept", "--db", db, code=2))


def test_imports_made_before_schema_5_become_batches_on_upgrade(two_imports):
    db, obs, first, second, after_first = two_imports
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE coding_batches; DROP TABLE coding_batch_items; DROP TABLE participant_history; "
                "DROP TABLE review_resolutions; ALTER TABLE participants DROP COLUMN renamed_to; "
                "UPDATE schema_info SET value = '4' WHERE key = 'schema_version'")  # fmt: skip
    con.close()
    assert "emessi upgrade" in emessi("coding", "imports", "--db", db, code=2).output
    assert emessi("participants", "list", "--db", db).exit_code == 0  # reading a schema-4 file still works
    emessi("upgrade", "--db", db)
    batches = json.loads(emessi("coding", "imports", "--db", db, "--json").stdout)
    assert [(b["batch_no"], b["source"]) for b in batches] == [(1, "sheet:one.csv"), (2, "sheet:two.csv")]
    emessi("coding", "revert", "2", "--db", db)
    assert _current(db) == after_first


def test_forget_after_a_rename_removes_every_id_the_participant_had(db, tmp_path):
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P03", "--name", "Mikko", "--db", db)
    emessi("participants", "rename", "G1-P03", "G1-P13", "--db", db)
    emessi("forget", "G1-P13", "--yes", "--db", db, "-w", tmp_path / "work")
    assert read(db, "SELECT count(*) FROM participants WHERE name = 'Mikko' OR participant_id IN ('G1-P03', 'G1-P13')") == [(0,)]
    assert read(db, "SELECT count(*) FROM speaker_assignments WHERE participant_id IN ('G1-P03', 'G1-P13')") == [(0,)]
    assert read(db, "SELECT count(*) FROM participant_history") == [(0,)]
