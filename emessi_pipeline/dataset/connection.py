"""Connections to the DuckDB dataset: opening (with a wait for another program's lock), the schema
and its migrations, and transactions.

Two roles: ``open_reader`` for everything that only reads (queries, exports, evaluation) and
``open_writer`` for a short-lived writing connection that is closed on leaving its ``with``
block. ``connect`` is the one both build on. The DDL text lives in ``schema``.
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

SCHEMA_VERSION = "3"  # 2: coded-dataset tables and views, failure signatures; 3: review flags

# A reader runs what it is given (`emessi query`), so it gets no extension DuckDB would fetch or
# load behind its back. Set with SET, not at connect: DuckDB refuses a second connection to the
# same file with another configuration, and a reader may be opened while another one is open.
READER_SETTINGS = ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false")

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


def register_migration(step: Migration) -> None:
    """Run *step(con)* on a writable open of a database that an older version made (or a new
    one), after the DDL and before the new schema version is written, in registration order."""
    if step not in _MIGRATIONS:
        _MIGRATIONS.append(step)


def connect(path: Path, read_only: bool = False, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the dataset, creating the schema on first write; wait up to *wait* s for a lock
    (None: :func:`default_wait`).

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


def open_reader(path: Path, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection that installs and loads no DuckDB extension by itself."""
    con = connect(path, read_only=True, wait=wait)
    for setting in READER_SETTINGS:
        con.execute(setting)
    return con


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


def _open(path: Path, read_only: bool, wait: float | None) -> duckdb.DuckDBPyConnection:
    wait = default_wait() if wait is None else wait
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
                    f"{path}: the database is held by {holder(str(error))} (waited {wait:g} s; DuckDB allows "
                    f"one writer, or readers only); try again when it is done, or wait longer with "
                    f"--db-wait SECONDS or {WAIT_ENV}"
                ) from None
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
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
        for step in _MIGRATIONS:
            step(con)
    con.execute("INSERT OR REPLACE INTO schema_info VALUES ('schema_version', ?)", [SCHEMA_VERSION])
