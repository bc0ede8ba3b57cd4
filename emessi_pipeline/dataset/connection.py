"""Connections to the DuckDB dataset: opening (with a wait for another program's lock), the schema
and its migrations, and transactions.

Two roles: ``open_reader`` for everything that only reads (queries, exports, evaluation) and
``open_writer`` for a short-lived writing connection that is closed on leaving its ``with``
block. ``connect`` is the one both build on. The DDL text lives in ``schema``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .schema import SCHEMA

# 2: coded-dataset tables and views, failure signatures; 3: review flags; 4: timestamps in UTC
# (TIMESTAMPTZ), recordings replaced by a changed file at the same path
SCHEMA_VERSION = "4"

# A reader runs what it is given (`emessi query`), so it gets no extension DuckDB would fetch or
# load behind its back. Set with SET, not at connect: DuckDB refuses a second connection to the
# same file with another configuration, and a reader may be opened while another one is open.
READER_SETTINGS = ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false")

Migration = Callable[[duckdb.DuckDBPyConnection], object]
_MIGRATIONS: list[Migration] = []


class DatabaseBusyError(RuntimeError):
    """Another program holds the DuckDB file open for writing."""


def register_migration(step: Migration) -> None:
    """Run *step(con)* on a writable open of a database that an older version made (or a new
    one), after the DDL and before the new schema version is written, in registration order."""
    if step not in _MIGRATIONS:
        _MIGRATIONS.append(step)


def connect(path: Path, read_only: bool = False, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open the dataset, creating the schema on first write; wait up to *wait* s for a lock.

    A read-only open of a database made by an older version first brings its schema up to date
    (when no other program holds it), so queries and views work on old files too.
    """
    if read_only and not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such database (run `emessi ingest` first)")
    con = _open(path, read_only, wait)
    if read_only and _schema_version(con) != SCHEMA_VERSION:
        con.close()
        try:
            _open(path, False, 0.0).close()
        except DatabaseBusyError:
            pass  # a writer holds it: read what is there
        con = _open(path, True, wait)
    return con


def open_reader(path: Path, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection that installs and loads no DuckDB extension by itself."""
    con = connect(path, read_only=True, wait=wait)
    for setting in READER_SETTINGS:
        con.execute(setting)
    return con


@contextmanager
def open_writer(path: Path, wait: float = 0.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writing connection for one ``with`` block: DuckDB allows one writer per file, so hold it
    no longer than the work takes."""
    con = connect(path, wait=wait)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _schema_version(con) -> str | None:
    try:
        row = con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(
                    f"{path}: the database is open in another program (DuckDB allows one "
                    f"writer); close it, or pass --wait SECONDS to retry"
                ) from None
            time.sleep(0.5)
    if not read_only:
        _migrate(con)
    return con


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    before = _schema_version(con)
    con.execute(SCHEMA)
    if before != SCHEMA_VERSION:  # made by an older version (review flags are filled in here)
        _timestamps_to_utc(con)
        for step in _MIGRATIONS:
            step(con)
    con.execute("INSERT OR REPLACE INTO schema_info VALUES ('schema_version', ?)", [SCHEMA_VERSION])


def _timestamps_to_utc(con: duckdb.DuckDBPyConnection) -> None:
    """Versions before 4 wrote naive local clock times (TIMESTAMP). Each such column becomes
    TIMESTAMPTZ, its values read as wall-clock times of this machine's time zone (DuckDB's
    TimeZone setting, which it takes from TZ or /etc/localtime) — the zone they were most likely
    written in. The zone used is kept in schema_info, since it cannot be recovered afterwards."""
    columns = con.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' AND c.table_schema = 'main' AND c.data_type = 'TIMESTAMP' "
        "ORDER BY 1, 2"
    ).fetchall()
    if not columns:
        return
    (zone,) = con.execute("SELECT current_setting('TimeZone')").fetchone()
    for table, column in columns:
        con.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TIMESTAMPTZ')
    con.execute("INSERT OR REPLACE INTO schema_info VALUES ('naive_timestamps_read_in_zone', ?)", [zone])
