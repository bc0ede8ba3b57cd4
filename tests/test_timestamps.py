"""Times are stored in UTC (TIMESTAMPTZ). A database written by schema version 3, whose naive
timestamps are this machine's wall-clock times, keeps every row when a command opens it: each
timestamp column becomes TIMESTAMPTZ, its values read in the machine's time zone."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from emessi_pipeline.dataset import load
from emessi_pipeline.dataset.connection import SCHEMA_VERSION, connect
from emessi_pipeline.dataset.speakers import write_assignment

from .conftest import REPO
from .dataset_fixtures import CODEBOOK, emessi
from .test_dataset_connection import recording

ZONE = "Europe/Helsinki"  # not the UTC of a CI machine, and with summer time
SUMMER, WINTER = dt.datetime(2024, 6, 1, 12, 0), dt.datetime(2024, 1, 15, 12, 0)


def _timestamp_columns(con) -> dict[tuple[str, str], str]:
    return {(t, c): kind for t, c, kind in con.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' AND c.data_type LIKE 'TIMESTAMP%'").fetchall()}  # fmt: skip


def _version_3(db: Path) -> dict[str, list[tuple]]:
    """Turn a database made now into what version 3 wrote on a machine in ZONE: naive local
    times, no replacement columns. Returns every row of every table."""
    con = duckdb.connect(str(db))
    con.execute(f"SET TimeZone = '{ZONE}'")
    for table, column in _timestamp_columns(con):
        con.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TIMESTAMP')
    con.execute("ALTER TABLE recordings DROP COLUMN replaced_by; ALTER TABLE recordings DROP COLUMN replaced_at; "
                "UPDATE schema_info SET value = '3' WHERE key = 'schema_version'")  # fmt: skip
    con.execute("UPDATE runs SET started_at = ?, finished_at = ?", [SUMMER, WINTER])
    assert set(_timestamp_columns(con).values()) == {"TIMESTAMP"}
    rows = {t: con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall()
            for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()
            if t != "schema_info"}  # fmt: skip
    con.close()
    return rows


def test_an_old_database_keeps_every_row_and_new_rows_are_utc(tmp_path):
    db = tmp_path / "old.duckdb"
    con = connect(db)
    load.start_run(con, "r1", "test", "test", {}, {})
    load.load_recording(con, recording(tmp_path, "setA"), "r1")
    load.finish_run(con, "r1", "complete", {})
    write_assignment(con, "rec1", "SPEAKER_00", None, "leader", "tester", None, set_id="setA")
    con.close()
    emessi("participants", "add", "G1-P01", "--group", "G1", "--db", db)
    emessi("codebook", "import", CODEBOOK, "--db", db)
    before = _version_3(db)
    assert all(before[t] for t in ("runs", "recordings", "observation_sets", "participants", "speaker_assignments",
                                   "codebook_versions", "review_sets"))  # fmt: skip

    # A writing command, run where the clock is in ZONE: it migrates, then adds a row.
    env = {k: v for k, v in os.environ.items() if k != "TZ"} | {"TZ": ZONE, "PYTHONPATH": str(REPO)}
    started = dt.datetime.now(dt.timezone.utc)
    done = subprocess.run([sys.executable, "-m", "emessi_pipeline", "participants", "add", "G1-P02", "--db", str(db)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    finished = dt.datetime.now(dt.timezone.utc)

    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        assert set(_timestamp_columns(con).values()) == {"TIMESTAMP WITH TIME ZONE"}
        assert con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchone() == (SCHEMA_VERSION,)
        assert con.execute("SELECT value FROM schema_info WHERE key = 'naive_timestamps_read_in_zone'").fetchone() == (ZONE,)
        utc = dt.timezone.utc
        assert con.execute("SELECT started_at, finished_at FROM runs").fetchall() == [
            (dt.datetime(2024, 6, 1, 9, 0, tzinfo=utc), dt.datetime(2024, 1, 15, 10, 0, tzinfo=utc))]  # +3 h, +2 h
        local = ZoneInfo(ZONE)
        for table, rows in before.items():
            after = con.execute(f'SELECT * FROM "{table}" ORDER BY ALL').fetchall()
            if table == "participants":
                after = [r for r in after if r[0] != "G1-P02"]
            elif table == "recordings":  # gained replaced_by, replaced_at (empty) at the end
                assert all(r[-2:] == (None, None) for r in after)
                after = [r[:-2] for r in after]
            expected = [tuple(v.replace(tzinfo=local) if isinstance(v, dt.datetime) else v for v in row) for row in rows]
            assert after == expected, table
        (added,) = con.execute("SELECT created_at FROM participants WHERE participant_id = 'G1-P02'").fetchone()
        assert started - dt.timedelta(seconds=1) <= added <= finished
    finally:
        con.close()
