"""The bugs a sociologist met walking through docs/coding.md (issue 17), each through the CLI on
the real dataset: another coder's sheet, recordings without metadata, partial assignments,
status after a differently spelt ingest, query output off a terminal, codebook retirement,
and the small ones (exit codes, row numbers, plurals, view order)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook, load_workbook

from emessi_pipeline.cli import Exit

from .dataset_fixtures import AMI, CODEBOOK, DEMO, dataset_base, db, emessi, read, snapshot  # noqa: F401

pytestmark = pytest.mark.slow


def _write_db(db: Path, *statements: str) -> None:
    con = duckdb.connect(str(db))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def _fill_xlsx(path: Path, codes: list[str]) -> list[str]:
    """Fill the function column of the first rows; returns their observation ids."""
    book = load_workbook(path)
    sheet = book["coding"]
    col = {c.value: i + 1 for i, c in enumerate(sheet[1])}
    ids = []
    for row, code in enumerate(codes, start=2):
        sheet.cell(row=row, column=col["function"], value=code)
        ids.append(sheet.cell(row=row, column=col["observation_id"]).value)
    book.save(path)
    return ids


def _codings(db: Path) -> list[tuple]:
    return read(db, "SELECT coder, observation_id, dimension, code FROM current_codings ORDER BY ALL")


def _coders(db: Path) -> list[str]:
    return [r[0] for r in read(db, "SELECT coder FROM coders ORDER BY coder")]


# ---------------------------------------------------------------- 1. coders


def test_a_sheet_made_for_another_coder_is_refused_and_a_new_coder_comes_only_on_purpose(db, tmp_path):
    emessi("codebook", "import", CODEBOOK, "--db", db)
    emessi("coding", "coders", "add", "anna", "--db", db)
    sheet = tmp_path / "coding-anna.xlsx"
    emessi("coding", "export", "--coder", "anna", "--recording", DEMO, "--out", sheet, "--db", db)
    ids = _fill_xlsx(sheet, ["question", "support", "experience"])
    done = emessi("coding", "import", sheet, "--coder", "anna", "--db", db, "--json")
    assert json.loads(done.stdout)["added"] == 3 and json.loads(done.stdout)["coder"] == "anna"

    # ben with anna's sheet: refused, saying whose it is and how to do it on purpose
    before = snapshot(db, ("codings", "coders"))
    refused = emessi("coding", "import", sheet, "--coder", "ben", "--new-coder", "--db", db, code=Exit.USAGE)
    text = " ".join(refused.output.split())
    assert "exported for coder anna" in text and "--sheet-coder anna" in text and "Traceback" not in text
    assert snapshot(db, ("codings", "coders")) == before and "ben" not in _coders(db)

    # `Anna` is anna (no new coder); a typo is no coder at all
    again = emessi("coding", "import", sheet, "--coder", "Anna", "--db", db, "--json")
    assert json.loads(again.stdout)["unchanged"] == 3 and json.loads(again.stdout)["coder"] == "anna"
    assert {c for c, *_ in _codings(db)} == {"anna"} and _coders(db) == ["anna"]
    typo = emessi("coding", "import", sheet, "--coder", "anan", "--db", db, code=Exit.USAGE)
    assert "no coder 'anan'" in typo.output and "--new-coder" in typo.output
    assert snapshot(db, ("codings", "coders")) == before

    # on purpose: anna's sheet as ben's codings, ben registered in the same import
    emessi("coding", "import", sheet, "--coder", "ben", "--new-coder", "--sheet-coder", "anna", "--db", db)
    per_coder = {}
    for coder, obs, dim, code in _codings(db):
        per_coder.setdefault(coder, set()).add((obs, dim, code))
    assert per_coder["ben"] == per_coder["anna"] and {o for o, _, _ in per_coder["ben"]} == set(ids)
    # --sheet-coder must name the sheet's real coder
    wrong = emessi("coding", "import", sheet, "--coder", "ben", "--sheet-coder", "carl", "--db", db, code=Exit.USAGE)
    assert "anna's sheet" in wrong.output

    # a CSV named as export names it is anna's too (anna is a known coder)
    csv_sheet = tmp_path / "coding-anna.csv"
    emessi("coding", "export", "--coder", "anna", "--recording", DEMO, "--out", csv_sheet, "--db", db)
    emessi("coding", "import", csv_sheet, "--coder", "ben", "--db", db, code=Exit.USAGE)

    listed = {r["coder"]: r for r in json.loads(emessi("coding", "coders", "--db", db, "--json").stdout)}
    assert set(listed) == {"anna", "ben"} and listed["anna"]["codings"] == listed["ben"]["codings"] == 3
    assert "already registered" in emessi("coding", "coders", "add", "ANNA", "--db", db).output
    assert _coders(db) == ["anna", "ben"]
    # export for an unknown name warns that the import will need --new-coder
    note = emessi("coding", "export", "--coder", "dana", "--out", tmp_path / "d.csv", "--db", db)
    assert "not a registered coder" in note.output


def test_upgrade_registers_the_coders_of_codings_made_before_the_registry(db, tmp_path):
    emessi("codebook", "import", CODEBOOK, "--db", db)
    sheet = tmp_path / "anna.xlsx"
    emessi("coding", "export", "--coder", "anna", "--recording", DEMO, "--out", sheet, "--db", db)
    _fill_xlsx(sheet, ["question"])
    emessi("coding", "import", sheet, "--coder", "anna", "--new-coder", "--db", db)
    # as a version-4 database had it: codings, no registry
    _write_db(db, "DROP TABLE coders", "UPDATE schema_info SET value = '4' WHERE key = 'schema_version'")
    stale = emessi("coding", "coders", "--db", db, code=Exit.USAGE)
    assert "emessi upgrade" in stale.output  # reading never migrates
    emessi("upgrade", "--db", db)
    listed = json.loads(emessi("coding", "coders", "--db", db, "--json").stdout)
    assert [(r["coder"], r["codings"], r["source"]) for r in listed] == [("anna", 1, "codings before the registry")]
    emessi("coding", "import", sheet, "--coder", "ANNA", "--db", db)  # registered: no --new-coder needed


# ---------------------------------------------------------------- 2. export without metadata


def test_coding_export_writes_both_sheets_when_a_recording_has_no_group_or_session(db, tmp_path):
    emessi("codebook", "import", CODEBOOK, "--db", db)
    _write_db(db, f"UPDATE recordings SET group_id = NULL, session_no = NULL WHERE name = '{AMI}'")
    emessi("coding", "export", "--coder", "anna", "--out", tmp_path / "sheet", "--db", db)
    observations = read(db, "SELECT count(*) FROM current_observations")[0][0]
    rows = list(load_workbook(tmp_path / "sheet.xlsx")["coding"].iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert len(body) == observations
    ami = [dict(zip(header, r)) for r in body if r[header.index("recording")] == AMI]
    assert ami and all(r["group"] is None and r["session"] is None for r in ami)
    with open(tmp_path / "sheet.csv", newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == observations


# ---------------------------------------------------------------- 3. partial assignment


def test_a_partial_assignment_changes_only_the_fields_given(db):
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P01", "--role", "leader", "--db", db)
    current = ("SELECT participant_id, role FROM current_speaker_assignments WHERE speaker_label = 'SPEAKER_00' "
               "AND recording_id = (SELECT recording_id FROM recordings WHERE name = ?)")
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--name", "Aino", "--db", db)
    assert read(db, current, [DEMO]) == [("G1-P01", "leader")]
    assert read(db, "SELECT name FROM participants WHERE participant_id = 'G1-P01'") == [("Aino",)]
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--role", "facilitator", "--db", db)
    assert read(db, current, [DEMO]) == [("G1-P01", "facilitator")]
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P02", "--db", db)
    assert read(db, current, [DEMO]) == [("G1-P02", "facilitator")]
    history = read(db, "SELECT participant_id, role, superseded_at IS NULL FROM speaker_assignments "
                       "WHERE speaker_label = 'SPEAKER_00' AND recording_id = (SELECT recording_id FROM recordings "
                       "WHERE name = ?) ORDER BY assigned_at", [DEMO])  # fmt: skip
    assert history == [("G1-P01", "leader", False), ("G1-P01", "facilitator", False), ("G1-P02", "facilitator", True)]
    # a name needs someone to name; nothing given is nothing to do
    assert "give --participant" in emessi("speakers", "assign", DEMO, "SPEAKER_01", "--name", "X", "--db", db, code=Exit.USAGE).output
    emessi("speakers", "assign", DEMO, "SPEAKER_01", "--db", db, code=Exit.USAGE)
    # a new assignment with a role alone has no participant
    emessi("speakers", "assign", DEMO, "SPEAKER_01", "--role", "leader", "--db", db)
    assert read(db, current.replace("SPEAKER_00", "SPEAKER_01"), [DEMO]) == [(None, "leader")]


# ---------------------------------------------------------------- 4. status


def test_status_reads_what_was_loaded_from_the_database_not_from_todays_options(dataset_base, db, tmp_path):
    ami_path = Path(read(db, "SELECT path FROM recordings WHERE name = ?", [AMI])[0][0])
    # another workspace, no --language (AMI was ingested in English) and another spelling of the path
    spelt = ami_path.parent / ".." / ami_path.parent.name / ami_path.name
    result = emessi("status", spelt, "--db", db, "-w", tmp_path / "other-work", "--json")
    (row,) = json.loads(result.stdout)["recordings"]
    assert row["stages"]["load"] == "done" and "other settings" in row["note"]
    assert row["set_id"] == read(db, "SELECT current_set_id FROM recordings WHERE name = ?", [AMI])[0][0]
    demo = json.loads(emessi("status", dataset_base.demo_source.parent, "--db", db, "-w", tmp_path / "w2", "--json").stdout)
    assert {Path(r["path"]).stem: r["stages"]["load"] for r in demo["recordings"]}[DEMO] == "done"
    table = emessi("status", spelt, "--db", db, "-w", tmp_path / "other-work")
    assert "1 recording: 1 loaded" in table.output


# ---------------------------------------------------------------- 5. query off a terminal


def test_query_to_a_file_or_pipe_prints_whole_values_and_missing_as_empty(db):
    # a whole transcript per recording is far wider than any terminal; nobody is assigned yet
    sql = ("SELECT recording_name, string_agg(text, ' ' ORDER BY seq) AS text, max(participant_id) AS participant_id, "
           "max(mean_word_prob) FILTER (WHERE false) AS mean_word_prob FROM utterances GROUP BY 1 ORDER BY 1")
    expected = [tuple("" if v is None else str(v) for v in r) for r in read(db, sql)]
    assert len(expected) == 2 and all(r[2] == r[3] == "" for r in expected), expected
    assert max(len(r[1]) for r in expected) > 120  # wider than the 80 columns rich assumes off a terminal
    for fmt in ("table", "csv"):
        result = emessi("query", sql, "--db", db, "--format", fmt)
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["recording_name", "text", "participant_id", "mean_word_prob"]
        assert [tuple(r) for r in rows[1:]] == expected
    as_json = json.loads(emessi("query", sql, "--db", db, "--format", "json").stdout)
    assert len(as_json) == len(expected) and as_json[0]["participant_id"] is None
    emessi("query", sql, "--db", db, "--format", "xml", code=Exit.USAGE)


# ---------------------------------------------------------------- 6. codebook retirement


def test_a_codebook_that_would_retire_codes_asks_first_and_the_summary_names_reactivated_codes(db, tmp_path):
    emessi("codebook", "import", CODEBOOK, "--db", db)
    active = [f"{d}/{c}" for d, c in read(db, "SELECT dimension, code FROM codebook_codes ORDER BY ALL")]
    other = tmp_path / "sentiment.csv"
    other.write_text("dimension,code,label,description\nsentiment,positive,Positive,\nsentiment,negative,Negative,\n")
    before = snapshot(db, ("codebook_versions", "codebook_codes", "codebook_dimensions"))
    refused = emessi("codebook", "import", other, "--db", db, code=Exit.USAGE)
    text = " ".join(refused.output.split())
    assert f"leaves out {len(active)} codes and 2 dimensions" in text and "--yes" in text
    assert all(code in text for code in active)
    assert snapshot(db, ("codebook_versions", "codebook_codes", "codebook_dimensions")) == before
    done = emessi("codebook", "import", other, "--yes", "--db", db)
    assert f"{len(active)} retired" in done.output and "2 codes added" in done.output
    back = " ".join(emessi("codebook", "import", CODEBOOK, "--yes", "--db", db).output.split())
    assert f"{len(active)} re-activated" in back and all(code in back for code in active)
    assert "sentiment/positive" in back  # the second codebook's codes retire in turn


# ---------------------------------------------------------------- 7. small ones


def test_usage_mistakes_exit_2_and_say_row_for_xlsx_and_count_in_the_singular(db, tmp_path):
    missing = tmp_path / "no-such-folder"
    result = emessi("ingest", missing, "--db", tmp_path / "x.duckdb", "-w", tmp_path / "w", code=Exit.USAGE)
    assert "no such file or folder" in result.output
    emessi("status", missing, "--db", db, "-w", tmp_path / "w", code=Exit.USAGE)
    emessi("codebook", "import", CODEBOOK, "--db", db)
    book = Workbook()
    book.active.title = "coding"
    book.active.append(["id", "function"])
    book.active.append(["x", "question"])
    book.save(tmp_path / "bad.xlsx")
    bad = emessi("coding", "import", tmp_path / "bad.xlsx", "--coder", "anna", "--new-coder", "--db", db, code=Exit.USAGE)
    assert "row 1: no 'observation_id' column" in bad.output and "line 1" not in bad.output


def _order_keys(sql: str) -> str:
    """The ORDER BY of the outermost query of a view's SQL ('' if none)."""
    depth, last = 0, None
    for i, ch in enumerate(sql):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and sql[i : i + 8].upper() == "ORDER BY":
            last = i + 8
    return sql[last:].strip().rstrip(";") if last else ""


def test_every_view_gives_its_rows_in_one_order(db, tmp_path):
    # some human work, so the coding and assignment views have rows
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P01", "--role", "leader", "--db", db)
    emessi("codebook", "import", CODEBOOK, "--db", db)
    sheet = tmp_path / "anna.xlsx"
    emessi("coding", "export", "--coder", "anna", "--out", sheet, "--db", db)
    _fill_xlsx(sheet, ["question", "support", "experience", "question"])
    emessi("coding", "import", sheet, "--coder", "anna", "--new-coder", "--db", db)
    emessi("upgrade", "--db", db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        views = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
        assert len(views) >= 26
        for name, sql in views:
            keys = _order_keys(sql)
            assert keys, f"view {name} has no ORDER BY"
            total, distinct = con.execute(f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {name})) FROM {name}").fetchone()
            assert total == distinct, f"{name}: ORDER BY {keys} leaves ties"
            rows = [repr(r) for r in con.execute(f"SELECT * FROM {name}").fetchall()]
            assert rows == [repr(r) for r in con.execute(f"SELECT * FROM {name} ORDER BY {keys}").fetchall()], name
        populated = {n for n, _ in views if con.execute(f"SELECT count(*) FROM {n}").fetchone()[0]}
        assert {"utterances", "current_codings", "codes_by_role", "turns", "overlap_events"} <= populated
    finally:
        con.close()
    assert _order_keys("SELECT 1 FROM (SELECT 2 ORDER BY 1)") == ""  # only the outermost query counts
