"""`emessi query`: SQL on a read-only connection to the dataset."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .common import DEFAULT_DB, Exit, LoadDb, fail, print_table


def register(app: typer.Typer) -> None:
    app.command("query")(query)


def query(
    sql: Annotated[str, typer.Argument(help="SQL to run (read-only).")],
    db: LoadDb = DEFAULT_DB,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Run SQL on a read-only connection to the dataset.

    Example:

      emessi query "SELECT speaker_label, count(*) FROM current_observations GROUP BY 1"
    """
    import duckdb

    from ..dataset.connection import DatabaseBusyError, connect

    try:
        con = connect(db, read_only=True)
    except DatabaseBusyError as error:
        fail(error, Exit.NOTHING_DONE)
    except (duckdb.Error, FileNotFoundError) as error:
        fail(error, Exit.USAGE)
    try:
        frame = con.execute(sql).df()
    except duckdb.Error as error:
        fail(error, Exit.USAGE)
    finally:
        con.close()
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        print(frame.to_json(orient="records", force_ascii=False, date_format="iso"))
    else:
        print_table(list(frame.columns), frame.itertuples(index=False))
