"""Codebook and coding on a dataset built by the real pipeline: sheets out and in, all-or-none
validation, idempotent re-import, two coders, agreement, and a codebook change that orphans nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from emessi_pipeline.cli import Exit, app

from .dataset_fixtures import CODEBOOK, AMI, DEMO, dataset_base, db, snapshot, read as _read  # noqa: F401

pytestmark = pytest.mark.slow
runner = CliRunner()


def emessi(*args):
    return runner.invoke(app, [str(a) for a in args])


def _sheet(db: Path, tmp_path: Path, coder: str, *extra) -> list[dict]:
    result = emessi("coding", "export", "--coder", coder, "--out", tmp_path / f"{coder}.csv", "--db", db, *extra)
    assert result.exit_code == 0, result.output
    with open(tmp_path / f"{coder}.csv", newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _write(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


FUNCTIONS = ["question", "answer_advice", "experience", "support", "steering", "technical"]


@pytest.fixture
def coded(db, tmp_path):
    """The example codebook imported and the demo coded by 'anna' through a CSV sheet."""
    assert emessi("codebook", "import", CODEBOOK, "--db", db).exit_code == 0
    rows = _sheet(db, tmp_path, "anna", "--recording", DEMO)
    for i, row in enumerate(rows):
        row["function"] = FUNCTIONS[i % len(FUNCTIONS)]
        row["topic"] = "wellbeing;working_time" if i % 3 == 0 else "frame_of_work"
    sheet = _write(rows, tmp_path / "anna-filled.csv")
    result = emessi("coding", "import", sheet, "--coder", "anna", "--new-coder", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    return db, sheet, rows, json.loads(result.stdout)


def test_sheet_has_one_row_per_observation_and_one_column_per_dimension(db, tmp_path):
    assert emessi("codebook", "import", CODEBOOK, "--db", db).exit_code == 0
    rows = _sheet(db, tmp_path, "anna")
    expected = _read(db, "SELECT observation_id FROM current_observations ORDER BY 1")
    assert sorted(r["observation_id"] for r in rows) == [e[0] for e in expected]
    assert {"recording", "start", "speaker_label", "participant", "role", "text", "topic", "function"} <= set(rows[0])
    assert all(r["topic"] == "" and r["function"] == "" for r in rows)
    xlsx = tmp_path / "anna.xlsx"
    assert emessi("coding", "export", "--coder", "anna", "--out", xlsx, "--db", db).exit_code == 0
    book = load_workbook(xlsx)
    header = [c.value for c in book["coding"][1]]
    assert header[: len(rows[0])] == list(rows[0]) and book["coding"].max_row == len(rows) + 1
    assert {r[1] for r in book["codebook"].iter_rows(min_row=2, values_only=True) if r[0] == "function"} == set(FUNCTIONS)


def test_import_writes_every_code_and_the_same_sheet_twice_changes_nothing(coded):
    db, sheet, rows, summary = coded
    n_topics = sum(len(r["topic"].split(";")) for r in rows)
    assert summary["added"] == len(rows) + n_topics and summary["unchanged"] == 0
    stored = _read(db, "SELECT observation_id, dimension, code FROM current_codings WHERE coder = 'anna'")
    expected = {(r["observation_id"], "function", r["function"]) for r in rows}
    expected |= {(r["observation_id"], "topic", t) for r in rows for t in r["topic"].split(";")}
    assert set(stored) == expected and len(stored) == len(expected)
    before = snapshot(db)
    again = emessi("coding", "import", sheet, "--coder", "anna", "--new-coder", "--db", db, "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["added"] == 0 and json.loads(again.stdout)["unchanged"] == len(expected)
    assert snapshot(db) == before


def test_two_coders_are_both_kept_and_a_changed_answer_supersedes_without_deleting(coded, tmp_path):
    db, sheet, rows, _ = coded
    ben = _sheet(db, tmp_path, "ben", "--recording", DEMO)
    assert all(r["function"] == "" for r in ben)  # another coder starts empty
    for r in ben:
        r["function"] = "question"
    assert emessi("coding", "import", _write(ben, tmp_path / "ben.csv"), "--coder", "ben", "--new-coder", "--db", db).exit_code == 0
    per_coder = dict(_read(db, "SELECT coder, count(*) FROM current_codings WHERE dimension = 'function' GROUP BY 1"))
    assert per_coder == {"anna": len(rows), "ben": len(rows)}
    # anna changes her mind on one row: the old coding stays in the table, superseded
    anna = _sheet(db, tmp_path, "anna", "--recording", DEMO)
    assert [r["function"] for r in anna] == [r["function"] for r in rows]  # her codings come pre-filled
    anna[0]["function"] = "technical" if anna[0]["function"] != "technical" else "support"
    assert emessi("coding", "import", _write(anna, tmp_path / "anna2.csv"), "--coder", "anna", "--new-coder", "--db", db).exit_code == 0
    history = _read(db, "SELECT code, superseded_at IS NULL FROM codings WHERE coder = 'anna' AND dimension = 'function' "
                        "AND observation_id = ? ORDER BY coded_at", [anna[0]["observation_id"]])  # fmt: skip
    assert history == [(rows[0]["function"], False), (anna[0]["function"], True)]


def test_a_bad_sheet_lists_every_bad_row_with_its_line_and_writes_nothing(coded, tmp_path):
    db, _, rows, _ = coded
    bad = [dict(r) for r in rows[:5]]
    bad[0]["function"] = "nonsense"                 # line 2: unknown code
    bad[1]["observation_id"] = "no-such-observation"  # line 3: unknown observation
    bad[2]["function"] = "question;support"         # line 4: two codes, dimension allows one
    bad[3]["topic"] = "wellbeing;nonsense"          # line 5: unknown code inside a multi cell
    bad[4]["function"] = "technical"                # line 6: fine, but must not go in either
    before = snapshot(db)
    result = emessi("coding", "import", _write(bad, tmp_path / "bad.csv"), "--coder", "carl", "--new-coder", "--db", db)
    assert result.exit_code == Exit.USAGE
    text = " ".join(result.output.split())
    assert "line 2: function: unknown code 'nonsense'" in text
    assert "line 3: unknown observation 'no-such-observation'" in text
    assert "line 4: function: 2 codes" in text and "allows one" in text
    assert "line 5: topic: unknown code 'nonsense'" in text
    assert "line 6" not in text and "Traceback" not in result.output
    assert snapshot(db) == before


def test_a_sheet_for_another_codebook_or_not_a_sheet_is_refused(coded, tmp_path):
    db, _, rows, _ = coded
    before = snapshot(db)
    other = [{"observation_id": r["observation_id"], "sentiment": "positive"} for r in rows]
    result = emessi("coding", "import", _write(other, tmp_path / "other.csv"), "--coder", "anna", "--new-coder", "--db", db)
    assert result.exit_code == Exit.USAGE and "sentiment" in result.output and "another codebook" in " ".join(result.output.split())
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"PK\x03\x04 not really a workbook")
    result = emessi("coding", "import", junk, "--coder", "anna", "--new-coder", "--db", db)
    assert result.exit_code == Exit.USAGE and "not a readable XLSX" in result.output
    assert snapshot(db) == before


def test_xlsx_round_trip_and_text_corrections(db, tmp_path):
    assert emessi("codebook", "import", CODEBOOK, "--db", db).exit_code == 0
    xlsx = tmp_path / "dana.xlsx"
    assert emessi("coding", "export", "--coder", "dana", "--out", xlsx, "--recording", AMI, "--db", db).exit_code == 0
    book = load_workbook(xlsx)
    sheet = book["coding"]
    header = [c.value for c in sheet[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    sheet.cell(row=2, column=col["function"], value="question")
    sheet.cell(row=2, column=col["corrected_text"], value="Korjattu teksti.")
    book.save(xlsx)
    result = emessi("coding", "import", xlsx, "--coder", "dana", "--new-coder", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 1 and json.loads(result.stdout)["corrections"] == 1
    obs = sheet.cell(row=2, column=col["observation_id"]).value
    text, asr_text, corrected = _read(db, "SELECT text, asr_text, corrected FROM utterances WHERE observation_id = ?", [obs])[0]
    assert (text, corrected) == ("Korjattu teksti.", True) and asr_text != text


def test_a_new_codebook_version_retires_codes_and_keeps_their_codings(coded, tmp_path):
    db, _, rows, _ = coded
    used = _read(db, "SELECT count(*) FROM current_codings WHERE dimension = 'function' AND code = 'technical'")[0][0]
    assert used > 0
    text = CODEBOOK.read_text()
    changed = tmp_path / "codebook_v2.yaml"
    changed.write_text(text[: text.index("      - id: technical")])  # the last function code
    result = emessi("codebook", "import", changed, "--db", db, "--yes")
    assert result.exit_code == 0 and "version 2" in result.output and "function/technical" in result.output
    assert _read(db, "SELECT retired FROM codebook_codes WHERE code = 'technical'") == [(True,)]
    kept = _read(db, "SELECT count(*), bool_and(code_retired) FROM current_codings WHERE code = 'technical'")
    assert kept == [(used, True)]
    assert emessi("codebook", "import", changed, "--db", db).output.startswith("codebook unchanged")
    # a retired code cannot be given again, and says why
    sheet = [dict(rows[1], function="technical")]
    result = emessi("coding", "import", _write(sheet, tmp_path / "late.csv"), "--coder", "eve", "--new-coder", "--db", db)
    assert result.exit_code == Exit.USAGE and "retired" in result.output


def test_agreement_matches_cohens_formula(coded, tmp_path):
    db, _, rows, _ = coded
    ben = _sheet(db, tmp_path, "ben", "--recording", DEMO)
    for i, r in enumerate(ben):  # ben agrees on the first half, then answers one category over
        r["function"] = rows[i]["function"] if i < len(rows) // 2 else FUNCTIONS[(i + 1) % len(FUNCTIONS)]
    assert emessi("coding", "import", _write(ben, tmp_path / "ben.csv"), "--coder", "ben", "--new-coder", "--db", db).exit_code == 0
    result = emessi("coding", "agreement", "--coders", "anna,ben", "--db", db, "--json")
    assert result.exit_code == 0
    by_dim = {r["dimension"]: r for r in json.loads(result.stdout)}
    a = [r["function"] for r in rows]
    b = [r["function"] for r in ben]
    assert by_dim["function"]["shared"] == len(rows)
    assert by_dim["function"]["agreed"] == sum(x == y for x, y in zip(a, b))
    assert by_dim["function"]["kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert by_dim["topic"]["shared"] == 0 and by_dim["topic"]["kappa"] is None  # ben coded no topics


def test_codes_by_role_and_by_session_count_the_current_codings(coded, tmp_path):
    db, _, rows, _ = coded
    assert emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P01", "--role", "leader", "--db", db).exit_code == 0
    by_role = _read(db, "SELECT role, sum(codings) FROM codes_by_role WHERE dimension = 'function' GROUP BY 1")
    expected = _read(db, "SELECT u.role, count(*) FROM codings c JOIN utterances u USING (observation_id) "
                         "WHERE c.dimension = 'function' AND c.superseded_at IS NULL GROUP BY 1")  # fmt: skip
    assert sorted(by_role) == sorted(expected) and ("leader",) in {(r,) for r, _ in by_role}
    shares = _read(db, "SELECT session_no, sum(share_in_session) FROM codes_by_session WHERE dimension = 'topic' GROUP BY 1")
    assert [(s, round(v, 3)) for s, v in shares] == [(3, 1.0)]


def test_a_query_that_tries_to_write_is_refused_and_changes_nothing(coded):
    db = coded[0]
    before = snapshot(db)
    result = emessi("query", "DELETE FROM codings", "--db", db)
    assert result.exit_code == Exit.USAGE and "read-only" in result.output.lower()
    assert snapshot(db) == before
