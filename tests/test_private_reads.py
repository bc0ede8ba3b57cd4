"""Private by default, the reading side: `emessi query` reads the dataset and nothing else, a
read never changes an old database, sheets carry no live formulas, archives from outside are
bounded, and an ingest and a query need no network at all (a namespace without one)."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from emessi_pipeline.cli import Exit, app
from emessi_pipeline.dataset import load
from emessi_pipeline.dataset.connection import SCHEMA_VERSION, open_writer

from .conftest import REPO, copy_to, ffmpeg, shared
from .dataset_fixtures import CODEBOOK, DEMO, dataset_base, db, read, snapshot  # noqa: F401

runner = CliRunner()


def emessi(*args):
    return runner.invoke(app, [str(a) for a in args])


def files(folder: Path) -> dict[str, str]:
    """Every file under *folder* with its content hash: what a command wrote or changed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def small(tmp_path, monkeypatch) -> Path:
    """A dataset with the current schema and one run row, plus outside files a query must not
    reach: a CSV, a Parquet file, a text file and another DuckDB database."""
    monkeypatch.chdir(tmp_path)  # relative COPY/EXPORT targets would land here
    db = tmp_path / "d.duckdb"
    with open_writer(db) as con:
        load.start_run(con, "r1", "test", "test", {}, {})
    (tmp_path / "secret.csv").write_text("name,diagnosis\nAino,burnout\n")
    (tmp_path / "secret.txt").write_text("Aino's diary\n")
    pq.write_table(pa.table({"name": ["Aino"]}), tmp_path / "secret.parquet")
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    other.execute("CREATE TABLE t (x INT)")
    other.close()
    return db


ESCAPES = [
    "COPY (SELECT * FROM runs) TO 'leak.csv'",
    "COPY runs TO 'leak.parquet' (FORMAT parquet)",
    "EXPORT DATABASE 'leak'",
    "EXPLAIN ANALYZE COPY runs TO 'leak.csv'",
    "ATTACH 'other.duckdb'",
    "ATTACH 'other.duckdb' AS o (READ_WRITE)",
    "ATTACH 'other.duckdb' AS o (READ_WRITE); INSERT INTO o.t VALUES (1)",
    "ATTACH 'new.duckdb' AS n",
    "SELECT * FROM read_csv('secret.csv')",
    "SELECT * FROM 'secret.csv'",
    "SELECT * FROM read_parquet('secret.parquet')",
    "SELECT * FROM read_text('secret.txt')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM glob('*')",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('https://example.org/x.csv')",
    "SET enable_external_access = true",
    "SET threads = 1",
    "RESET lock_configuration",
    "PRAGMA table_info('runs')",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "CHECKPOINT",
    "SELECT 1; SELECT 2",
    "SELECT 1; COPY runs TO 'leak.csv'",
    "DELETE FROM runs",
    "WITH gone AS (SELECT 1) INSERT INTO runs SELECT * FROM runs",
    "CREATE TEMP TABLE scratch AS SELECT 1",
    "USE other",
]


@pytest.mark.parametrize("sql", ESCAPES)
def test_query_refuses_every_way_out_with_one_line_and_writes_nothing(small, sql):
    before = files(small.parent)
    result = emessi("query", sql, "--db", small)
    assert result.exit_code == Exit.USAGE, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: query refused:"), result.output
    assert "Traceback" not in result.output
    assert files(small.parent) == before  # no file made, none changed (the database included)


@pytest.mark.parametrize("sql", ["SELECT run_id FROM runs", "WITH r AS (SELECT * FROM runs) SELECT run_id FROM r",
                                 "FROM runs SELECT run_id", "DESCRIBE runs", "SHOW TABLES", "SUMMARIZE runs",
                                 "EXPLAIN SELECT run_id FROM runs", "EXPLAIN ANALYZE SELECT run_id FROM runs"])  # fmt: skip
def test_every_reading_kind_still_reads(small, sql):
    before = files(small.parent)
    result = emessi("query", sql, "--db", small, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and ("r1" in result.stdout or sql.startswith(("DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN")))
    assert files(small.parent) == before


def _make_old(db: Path) -> None:
    """What a database made by the version before review flags looks like (schema 2)."""
    con = duckdb.connect(str(db))
    con.execute("DROP VIEW current_review; DROP TABLE review_flags; DROP TABLE review_sets; "
                "UPDATE schema_info SET value = '2' WHERE key = 'schema_version'; CHECKPOINT")  # fmt: skip
    con.close()


def test_reading_an_old_database_never_changes_it_and_upgrade_says_so(small, tmp_path):
    _make_old(small)
    before = files(tmp_path)
    assert emessi("query", "SELECT run_id FROM runs", "--db", small).exit_code == 0
    missing = emessi("query", "SELECT count(*) FROM review_flags", "--db", small)
    assert missing.exit_code == Exit.USAGE and len(missing.output.strip().splitlines()) == 1
    assert "older emessi (schema 2" in missing.output and f"emessi upgrade --db {small}" in missing.output
    exported = emessi("export", "table", "runs", tmp_path / "out" / "runs.parquet", "--db", small)
    assert exported.exit_code == 0, exported.output
    assert pq.read_table(tmp_path / "out" / "runs.parquet").column("run_id").to_pylist() == ["r1"]
    after = files(tmp_path)
    after.pop("out/runs.parquet")
    assert after == before  # the database (and its WAL, if any) byte for byte
    upgraded = emessi("upgrade", "--db", small)
    assert upgraded.exit_code == 0 and f"brought up to date (schema {SCHEMA_VERSION})" in upgraded.output
    assert read(small, "SELECT run_id FROM runs") == [("r1",)]  # nothing lost
    assert emessi("query", "SELECT count(*) FROM review_flags", "--db", small).exit_code == 0
    assert "already up to date" in emessi("upgrade", "--db", small).output


# ------------------------------------------------------------------ archives from outside


def _bomb(path: Path, member: str, others=()) -> Path:
    """A zip whose *member* is 64 MiB of zeros packed into ~64 KiB: a small zip bomb."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in others:
            archive.writestr(name, "<x/>")
        with archive.open(member, "w") as handle:
            chunk = bytes(2**20)
            for _ in range(64):
                handle.write(chunk)
    assert path.stat().st_size < 2**20
    return path


def _refused(db: Path, result, *words) -> None:
    lines = result.output.strip().splitlines()
    assert result.exit_code == Exit.USAGE and len(lines) == 1, result.output
    assert all(w in lines[0] for w in words), lines[0]


def test_a_zip_bomb_sheet_or_project_is_one_line_and_imports_nothing(small, tmp_path):
    assert emessi("codebook", "import", CODEBOOK, "--db", small).exit_code == 0
    before = snapshot(small)
    sheet = _bomb(tmp_path / "bomb.xlsx", "xl/worksheets/sheet1.xml", ["[Content_Types].xml", "xl/workbook.xml"])
    _refused(small, emessi("coding", "import", sheet, "--coder", "anna", "--new-coder", "--db", small),
             "bomb.xlsx", "xl/worksheets/sheet1.xml", "zip bomb")  # fmt: skip
    project = _bomb(tmp_path / "bomb.qdpx", "project.qde")
    _refused(small, emessi("coding", "import", project, "--db", small), "bomb.qdpx", "project.qde", "zip bomb")
    crowded = tmp_path / "crowded.xlsx"
    with zipfile.ZipFile(crowded, "w") as archive:
        for i in range(10_001):
            archive.writestr(f"xl/m{i}.xml", "")
    _refused(small, emessi("coding", "import", crowded, "--coder", "anna", "--new-coder", "--db", small), "10001 members")
    assert snapshot(small) == before


# ------------------------------------------------------------------ no formulas from data

FORMULA = '=HYPERLINK("http://x","y")'


@pytest.mark.slow
def test_a_formula_in_a_correction_stays_text_in_every_sheet_and_round_trips(db, tmp_path):
    assert emessi("codebook", "import", CODEBOOK, "--db", db).exit_code == 0
    first = tmp_path / "first.csv"
    assert emessi("coding", "export", "--coder", "anna", "--recording", DEMO, "--out", first, "--db", db).exit_code == 0
    with open(first, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    # As a coder types them in a text editor; a leading ' means what it means in a spreadsheet.
    raw = {rows[0]["observation_id"]: FORMULA, rows[1]["observation_id"]: "@SUM(1+1)", rows[2]["observation_id"]: "'-quoted"}
    typed = raw | {rows[2]["observation_id"]: "-quoted"}
    for row in rows:
        row["corrected_text"] = raw.get(row["observation_id"], "")
    with open(first, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = emessi("coding", "import", first, "--coder", "anna", "--new-coder", "--db", db, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["corrections"] == 3, result.output
    stored = dict(read(db, "SELECT observation_id, text FROM utterances WHERE corrected"))
    assert stored == typed

    again = tmp_path / "again"
    assert emessi("coding", "export", "--coder", "anna", "--recording", DEMO, "--out", again, "--db", db).exit_code == 0
    with open(again.with_suffix(".csv"), newline="", encoding="utf-8-sig") as handle:
        sheet = {r["observation_id"]: r for r in csv.DictReader(handle)}
    assert {o: sheet[o]["text"] for o in typed} == {o: "'" + t for o, t in typed.items()}  # neutralised
    book = load_workbook(again.with_suffix(".xlsx"))
    assert not [c.coordinate for ws in book for row in ws.iter_rows() for c in row if c.data_type == "f"]
    ws = book["coding"]
    col = {c.value: c.column for c in ws[1]}
    cells = {ws.cell(r, col["observation_id"]).value: ws.cell(r, col["text"]) for r in range(2, ws.max_row + 1)}
    assert {o: cells[o].value for o in typed} == typed and all(cells[o].quotePrefix for o in typed)

    # The coder copies the text column into corrected_text, as it stands, in both sheets.
    for r in range(2, ws.max_row + 1):
        ws.cell(r, col["corrected_text"], value=ws.cell(r, col["text"]).value if ws.cell(r, col["observation_id"]).value in typed else None)
    book.save(again.with_suffix(".xlsx"))
    for row in sheet.values():
        row["corrected_text"] = row["text"] if row["observation_id"] in typed else ""
    with open(again.with_suffix(".csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(next(iter(sheet.values()))))
        writer.writeheader()
        writer.writerows(sheet.values())
    for path in (again.with_suffix(".csv"), again.with_suffix(".xlsx")):
        result = emessi("coding", "import", path, "--coder", "anna", "--new-coder", "--db", db, "--json")
        assert result.exit_code == 0 and json.loads(result.stdout)["corrections"] == 0, (path, result.output)
    assert dict(read(db, "SELECT observation_id, text FROM utterances WHERE corrected")) == typed

    for target in (tmp_path / "u.csv", tmp_path / "u.parquet"):
        assert emessi("export", "table", "utterances", target, "--db", db).exit_code == 0
    with open(tmp_path / "u.csv", newline="", encoding="utf-8-sig") as handle:
        table = {r["observation_id"]: r["text"] for r in csv.DictReader(handle)}
    assert {o: table[o] for o in typed} == {o: "'" + t for o, t in typed.items()}
    exact = pq.read_table(tmp_path / "u.parquet").to_pydict()
    assert {o: t for o, t in zip(exact["observation_id"], exact["text"]) if o in typed} == typed  # Parquet: as is


# ------------------------------------------------------------------ no network at all


def _no_network(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--net", "--", *command], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_ingest_and_query_succeed_in_a_network_namespace_without_interfaces(tmp_path):
    """Not only no socket call seen (test_cli's audit hook): the kernel gives the processes no
    network to use. Root (here and in CI) may make the namespace; a failure to make it fails."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is not installed: this test needs it to run without a network")
    made = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"cannot make a network namespace (needs root or CAP_SYS_ADMIN): {made.stderr.strip()}")
    # The namespace's own view (sysfs still shows the host's): only a loopback, and it is down,
    # so even 127.0.0.1 is unreachable.
    canary = ("import socket\nprint([name for _, name in socket.if_nameindex()])\n"
              "for address in (('1.1.1.1', 53), ('127.0.0.1', 9)):\n"
              "    try:\n        socket.create_connection(address, timeout=2)\n"
              "    except OSError as error:\n        print(error.errno)\n")  # fmt: skip
    seen = _no_network(sys.executable, "-c", canary, cwd=tmp_path)
    unreachable = str(errno.ENETUNREACH)
    assert seen.stdout.split() == ["['lo']", unreachable, unreachable], seen.stdout + seen.stderr
    rec = tmp_path / "rec"
    rec.mkdir()
    ffmpeg("-i", str(shared("picovoice_falcon_test", "test.wav")), "-t", "6", str(rec / "clip.wav"))
    db, work = tmp_path / "n.duckdb", tmp_path / "w"
    cli = [sys.executable, "-m", "emessi_pipeline"]
    ingest = _no_network(*cli, "ingest", str(rec), "--db", str(db), "-w", str(work), "--language", "en", "--json",
                         cwd=REPO)  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    assert json.loads(ingest.stdout)["done"] == 1
    query = _no_network(*cli, "query", "SELECT count(*) AS n FROM current_observations", "--db", str(db),
                        "--format", "json", cwd=REPO)  # fmt: skip
    assert query.returncode == 0, query.stderr[-2000:]
    assert json.loads(query.stdout)[0]["n"] >= 1
