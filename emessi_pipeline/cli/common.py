"""What every command group shares: the consoles, the exit codes, the common options and the
dataset connection wrapper. Group modules import this and never ``app``, so the root app can
import them all without a circle.

Exit codes, for schedulers: 0 work done, no failures; 1 some recordings failed; 2 usage error;
3 nothing could be done (every recording tried failed, a model is missing, the database or
workspace is held by another run); 4 nothing to do (no recordings, or none new or changed);
130 interrupted (Ctrl-C or SIGTERM; the next run resumes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True)
out = Console()


class Exit(IntEnum):
    OK = 0
    SOME_FAILED = 1
    USAGE = 2
    NOTHING_DONE = 3
    NOTHING_TO_DO = 4
    INTERRUPTED = 130


DEFAULT_DB = Path("emessi.duckdb")
DEFAULT_WORKSPACE = Path("emessi-work")

# Where each database this process was given came from, for messages (one command a process).
_DB_SOURCES: dict[str, str] = {}


def _locate_db(ctx: typer.Context, param: typer.CallbackParam, value: Path) -> Path:
    """--db when given; else EMESSI_DB, else the nearest emessi.toml, else the default. A callback
    on the shared option, so every command (and every one added later) resolves it the same way."""
    from ..dataset.common import DatasetError
    from ..dataset.location import find_database

    if value is None or ctx.resilient_parsing:
        return value
    source = ctx.get_parameter_source(param.name)
    # By name: typer vendors its own click, whose ParameterSource is not click's.
    if source is not None and source.name != "DEFAULT":
        _DB_SOURCES[str(value)] = "--db"
        return value
    try:
        choice = find_database(value)
    except DatasetError as error:
        fail(error)
    _DB_SOURCES[str(choice.path)] = choice.source
    return choice.path


def db_source(db: Path) -> str:
    """*db* with where it came from when the user did not type it (EMESSI_DB, emessi.toml)."""
    source = _DB_SOURCES.get(str(db))
    return f"{db} (from {source})" if source not in (None, "--db", "default") else str(db)


_DB_DEFAULT = "EMESSI_DB, else db in emessi.toml here or in a folder above, else emessi.duckdb"
# Two wordings of --db and --json, kept as the help has always read: the run commands load into
# the database and print a run summary; the dataset commands read or edit it and print its rows.
Db = Annotated[Path, typer.Option("--db", help="The DuckDB dataset.", show_default=_DB_DEFAULT, callback=_locate_db)]
LoadDb = Annotated[Path, typer.Option("--db", help="DuckDB dataset to load into.", show_default=_DB_DEFAULT, callback=_locate_db)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
SummaryJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
Work = Annotated[Path, typer.Option("--workspace", "-w", help="Folder for cached stage artifacts.")]
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name in configs/ or a YAML path.")]
RecordingArg = Annotated[str, typer.Argument(help="Recording name (file stem) or id.")]
# Files that leave the dataset name people by pseudonymous id and role; names are opt-in.
WithNames = Annotated[bool, typer.Option("--with-names", help="Write participants' names too (default: ids and roles only).")]


def fail(message: object, code: Exit = Exit.USAGE) -> NoReturn:
    """Print *message* on one line (library messages may carry newlines) and exit with *code*."""
    err.print(f"[red]error:[/] {' '.join(str(message).split())}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def quantity(n: int, noun: str) -> str:
    """'1 recording', '2 recordings'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def cell_text(value) -> str:
    """A value as a table shows it: missing (None, NaN, pandas' NA, NaT) is empty."""
    from pandas import isna
    from pandas.api.types import is_scalar

    if value is None or (is_scalar(value) and bool(isna(value))):
        return ""
    return str(value)


def print_table(columns: list[str], rows) -> None:
    table = Table(show_edge=False)
    for column in columns:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*(cell_text(v) for v in row))
    out.print(table)


@contextmanager
def dataset(db: Path, write: bool = False) -> Iterator:
    """An open connection (the locked-down reader unless *write*); DatasetError, lock and
    missing-file errors become exit codes, and a missing view in a database an older version made
    says how to upgrade it."""
    import duckdb

    from ..dataset.common import DatasetError
    from ..dataset.connection import DatabaseBusyError, connect, outdated

    if not db.exists():
        err.print(f"[red]error:[/] {db_source(db)}: no such database (run `emessi ingest` first, or pass --db)", highlight=False, soft_wrap=True)
        raise typer.Exit(Exit.USAGE)
    try:
        con = connect(db, read_only=not write)  # waits --db-wait / EMESSI_DB_WAIT for a holder
    except DatabaseBusyError as error:
        fail(error, Exit.NOTHING_DONE)
    try:
        yield con
    except DatasetError as error:
        where = db_source(db)
        # A database the user did not type is named, so a surprise from emessi.toml shows.
        suffix = "" if where == str(db) else f"{chr(10) if error.problems else ' '}(database: {where})"
        err.print(f"[red]error:[/] {error}{suffix}", highlight=False, soft_wrap=True)
        raise typer.Exit(Exit.USAGE)
    except duckdb.Error as error:
        hint = outdated(con, db) if isinstance(error, duckdb.CatalogException) else None
        message = " ".join(str(error).split()) + (f" ({hint})" if hint else "")
        err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(Exit.USAGE)
    finally:
        con.close()
