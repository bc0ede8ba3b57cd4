"""Connections to the DuckDB dataset: opening (with a wait for another program's lock), the schema
and its migrations, and transactions.

Two roles: ``open_reader`` for everything that only reads (queries, exports, evaluation, status)
and ``open_writer`` for a short-lived writing connection that is closed on leaving its ``with``
block. ``connect`` is the one both build on. The DDL text lives in ``schema``.

A reader is the one locked-down connection: it runs what a person types (`emessi query`), so it
reads the dataset file and nothing else. It never writes, not even to bring an old schema up to
date: only a writing open migrates (any writing command, or `emessi upgrade`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .schema import SCHEMA

# 2: coded-dataset tables and views, failure signatures; 3: review flags; 4: timestamps in UTC
# (TIMESTAMPTZ), recordings replaced by a changed file at the same path; 5: the coders registry
# (filled from the codings already there), every view ordered, coding batches, participant
# history, review resolutions; 6: speaker corrections (an observation moved to another label),
# verdicts on carried work that needed review (carry_resolutions); 7: voiceprints, the score of
# an assignment made from them (`auto`)
SCHEMA_VERSION = "7"

# DuckDB's `read_only` alone is no sandbox: COPY TO, ATTACH, read_csv('/etc/passwd'), INSTALL
# all still work. With external access off DuckDB opens no file but the database it was started
# on (and no URL), loads no extension, and `lock_configuration` stops SET/PRAGMA from turning any
# of it back on. Given at connect, so every reader in this process has the same configuration:
# DuckDB refuses a second connection to one file with another configuration (a writer and a
# reader of the same file cannot be open at once in one process; close the one before the other).
READER_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}

# What `emessi query` may run: DESCRIBE, SHOW, SUMMARIZE, VALUES, FROM-first and WITH … SELECT
# all parse as SELECT; EXPLAIN is checked on the statement it explains (EXPLAIN ANALYZE runs it).
READING_KINDS = "SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN"
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)


Migration = Callable[[duckdb.DuckDBPyConnection], object]
_MIGRATIONS: list[Migration] = []


# How long a command waits for a database another process holds before it gives up. Writers
# (an ingest's load transaction, a coding-sheet import) hold it for seconds at most.
DEFAULT_WAIT_S = 10.0
WAIT_ENV = "EMESSI_DB_WAIT"


class DatabaseBusyError(RuntimeError):
    """Another program holds the DuckDB file open for writing."""


def default_wait() -> float:
    """Seconds to wait for a held database: ``EMESSI_DB_WAIT``, else DEFAULT_WAIT_S."""
    value = os.environ.get(WAIT_ENV, "").strip()
    if not value:
        return DEFAULT_WAIT_S
    try:
        return max(float(value), 0.0)
    except ValueError:
        raise ValueError(f"{WAIT_ENV}={value!r}: expected a number of seconds") from None


class QueryRefused(ValueError):
    """A statement that is not one reading statement, or reaches outside the dataset."""


def register_migration(step: Migration) -> None:
    """Run *step(con)* on a writable open of a database that an older version made (or a new
    one), after the DDL and before the new schema version is written, in registration order."""
    if step not in _MIGRATIONS:
        _MIGRATIONS.append(step)


def connect(path: Path, read_only: bool = False, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the dataset; wait up to *wait* s for another program's lock (None: :func:`default_wait`).

    A writing open creates the schema, or brings an older version's up to date. A read-only open
    is the locked-down reader (:data:`READER_CONFIG`) and changes nothing, so a database an older
    version made stays as it is; :func:`outdated` says so, for the message when a view is missing.
    """
    if read_only and not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such database (run `emessi ingest` first)")
    return _open(path, read_only, wait)


def open_reader(path: Path, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """The read-only, locked-down connection every read path uses (see :data:`READER_CONFIG`)."""
    return connect(path, read_only=True, wait=wait)


def outdated(con: duckdb.DuckDBPyConnection, path: Path | str = "the database") -> str | None:
    """Why a reader may miss tables or views: the file was made by an older version (None if not)."""
    version = _schema_version(con)
    if version == SCHEMA_VERSION or version is None and not _has_table(con, "observations"):
        return None  # current, or not an emessi dataset at all (nothing to upgrade)
    return (f"{path} was made by an older emessi (schema {version or 1}, this version reads {SCHEMA_VERSION}) "
            f"and reading never changes it; bring it up to date with `emessi upgrade --db {path}` "
            f"(any writing command, such as `emessi ingest`, does it too)")  # fmt: skip


def check_reading(sql: str) -> str:
    """*sql* if it is exactly one reading statement; else :class:`QueryRefused` saying why."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(" ".join(str(error).split())) from None
    if len(statements) != 1:
        raise QueryRefused(f"{len(statements)} statements given; emessi query runs exactly one "
                           f"({READING_KINDS})")  # fmt: skip
    statement = statements[0]
    kind = statement.type
    if kind == duckdb.StatementType.EXPLAIN:
        explained = _EXPLAIN.sub("", statement.query, count=1)
        if explained == statement.query:
            raise QueryRefused("EXPLAIN of what? write EXPLAIN [ANALYZE] followed by a reading statement")
        check_reading(explained)
    elif kind != duckdb.StatementType.SELECT:
        word = re.match(r"\s*([A-Za-z]+)", statement.query)  # INSTALL, not DuckDB's kind LOAD
        raise QueryRefused(f"{word.group(1).upper() if word else kind.name} is not allowed: the dataset is "
                           f"read-only here; emessi query runs one {READING_KINDS}")  # fmt: skip
    return sql


def read_query(con: duckdb.DuckDBPyConnection, sql: str):
    """Run one checked reading statement on a reader and return its rows as a DataFrame."""
    check_reading(sql)
    try:
        return con.execute(sql).df()
    except duckdb.PermissionException as error:
        said = " ".join(str(error).split("\nLINE ")[0].split())  # DuckDB's caret drawing is not one line
        raise QueryRefused("it reaches outside the dataset (files, URLs, extensions and settings are off "
                           f"in a reader): {said}") from None  # fmt: skip


@contextmanager
def open_writer(path: Path, wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writing connection for one ``with`` block: DuckDB allows one writer per file, so hold it
    no longer than the work takes."""
    con = connect(path, wait=wait)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, commit: bool = True) -> Iterator[None]:
    """One transaction; rolled back on an error, and also at the end when *commit* is false (a dry
    run that counts what it would change)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT" if commit else "ROLLBACK")


def _schema_version(con) -> str | None:
    try:
        row = con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def _has_table(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()[0])


def _open(path: Path, read_only: bool, wait: float | None) -> duckdb.DuckDBPyConnection:
    wait = default_wait() if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        try:
            if read_only:
                con = duckdb.connect(str(path), read_only=True, config=READER_CONFIG)
            else:
                con = duckdb.connect(str(path))
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(
                    f"{path}: the database is held by {holder(str(error))} (waited {wait:g} s; DuckDB allows "
                    f"one writer, or readers only); try again when it is done, or wait longer with "
                    f"--db-wait SECONDS or {WAIT_ENV}"
                ) from None
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
        except duckdb.ConnectionException as error:
            if "different configuration" not in str(error):
                raise
            raise DatabaseBusyError(
                f"{path}: already open in this program for {'writing' if read_only else 'reading'}; DuckDB "
                f"gives one file one kind of connection per process: close that one first"
            ) from None
    if not read_only:
        _migrate(con)
    return con


def holder(lock_error: str) -> str:
    """Who holds the file, from DuckDB's lock error ("… held in PROGRAM (PID n) …"): the process
    id, its command line and since when it runs, as far as this system tells."""
    found = re.search(r"held in (.*?) \(PID (\d+)\)", lock_error)
    if not found:
        return "another program"
    program, pid = found.group(1), int(found.group(2))
    proc = Path(f"/proc/{pid}")
    try:
        command = " ".join(a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a)
    except OSError:
        command = ""
    return f"pid {pid} ({_short(command or program)}{_since(proc)})"


def _short(command: str, limit: int = 160) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"


def _since(proc: Path) -> str:
    """The process's start time, from the kernel's clock ticks since boot (Linux only)."""
    try:
        ticks = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return ""
    started = dt.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"))
    return f", running since {started:%Y-%m-%d %H:%M:%S}"


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    before = _schema_version(con)
    if before == SCHEMA_VERSION:
        # Up to date: the DDL would only cost time (about a second), and a run opens the
        # database once per recording. A change to SCHEMA bumps SCHEMA_VERSION.
        return
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
