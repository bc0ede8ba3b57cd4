"""`emessi query`: one reading statement on the locked-down reader; `emessi upgrade`: bring a
database an older version made up to date (the one thing reading never does)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .common import DEFAULT_DB, Db, Exit, LoadDb, fail, out, print_table


def register(app: typer.Typer) -> None:
    app.command("query")(query)
    app.command("upgrade")(upgrade)


def query(
    sql: Annotated[str, typer.Argument(help="One reading statement: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN.")],
    db: LoadDb = DEFAULT_DB,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json; a table printed to a file or pipe is CSV (whole values).")] = "table",
) -> None:
    """Run one reading statement on the dataset; it can read the dataset and nothing else.

    Writing, COPY/EXPORT, ATTACH, SET/PRAGMA/CALL, INSTALL/LOAD and several statements are
    refused; so are files, URLs and extensions inside a SELECT (read_csv, glob, …).

    On a terminal the table fits the window; written to a file or a pipe it is CSV, every value
    whole. Missing values print as empty.

    Example:

      emessi query "SELECT speaker_label, count(*) FROM current_observations GROUP BY 1"
    """
    import duckdb

    from ..dataset.connection import DatabaseBusyError, QueryRefused, check_reading, open_reader, outdated, read_query

    if fmt not in ("table", "csv", "json"):
        fail(f"--format {fmt!r}: choose table, csv or json")
    try:
        check_reading(sql)  # before opening: a refused statement needs no database
    except QueryRefused as error:
        fail(f"query refused: {error}", Exit.USAGE)
    try:
        con = open_reader(db)
    except (FileNotFoundError, duckdb.Error) as error:
        fail(error, Exit.USAGE)
    except DatabaseBusyError as error:
        fail(error, Exit.NOTHING_DONE)
    try:
        frame = read_query(con, sql)
    except QueryRefused as error:
        fail(f"query refused: {error}", Exit.USAGE)
    except duckdb.CatalogException as error:
        hint = outdated(con, db)
        fail(f"{error}" + (f" ({hint})" if hint else ""), Exit.USAGE)
    except duckdb.Error as error:
        fail(error, Exit.USAGE)
    finally:
        con.close()
    if fmt == "json":
        print(frame.to_json(orient="records", force_ascii=False, date_format="iso"))
    elif fmt == "csv" or not out.is_terminal:
        # A table off a terminal is for a file or another program: rich would cut it to 80 columns.
        frame.to_csv(sys.stdout, index=False)
    else:
        print_table(list(frame.columns), frame.itertuples(index=False))


def upgrade(db: Db = DEFAULT_DB) -> None:
    """Bring a database made by an older emessi up to date (reading commands never change it).

    Any writing command (ingest, coding import, speakers assign, …) upgrades it too; this one
    does only that. Nothing already in the database is lost.

    Example:

      emessi upgrade --db meetings.duckdb
    """
    from ..dataset.connection import SCHEMA_VERSION, DatabaseBusyError, open_reader, open_writer, outdated

    if not db.exists():
        fail(f"{db}: no such database", Exit.USAGE)
    try:
        con = open_reader(db)
        before = outdated(con, db)
        con.close()
        if before is None:
            out.print(f"{db}: already up to date (schema {SCHEMA_VERSION})", highlight=False, soft_wrap=True)
            return
        with open_writer(db):
            pass
    except DatabaseBusyError as error:
        fail(error, Exit.NOTHING_DONE)
    out.print(f"{db}: brought up to date (schema {SCHEMA_VERSION})", highlight=False, soft_wrap=True)
