"""The root `emessi` app: `--version`, and every command group registered in the order
`emessi --help` lists them. The groups never import this module (see common.py); exit codes
are documented on :class:`.common.Exit`.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from ..runs.privacy import owner_only
from ..version import __version__
from . import dataset, demo, evaluate, history, ingest, models, privacy, query, recordings, report, review, serve
from .common import Exit, err, out

app = typer.Typer(
    help="Recorded group meetings → speaker-attributed utterance observations in DuckDB.\n\n"
    "Example:\n\n  emessi ingest recordings/ --db meetings.duckdb",
    no_args_is_help=True,
    add_completion=False,
)

for group in (ingest, models, query, demo, recordings, dataset, history, review, report, serve, evaluate, privacy):
    group.register(app)


@app.callback(invoke_without_command=True)
def _version(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    db_wait: Annotated[Optional[float], typer.Option(
        "--db-wait", min=0, metavar="SECONDS", show_default="10, or EMESSI_DB_WAIT",
        help="Seconds any command waits when another program holds the database, before it says who and exits 3.")] = None,
) -> None:
    if db_wait is not None:
        # Through the environment, so that every connection the command opens (and a library
        # call it makes) waits the same.
        os.environ["EMESSI_DB_WAIT"] = str(db_wait)
    # Before any command writes: every file it makes (WAVs, database, exports, samples, logs)
    # holds speech of named people, so only the user who runs emessi may read it.
    owner_only()
    if version:
        out.print(__version__)
        raise typer.Exit()


def main() -> None:
    from ..dataset.connection import DatabaseBusyError

    try:
        app()
    except DatabaseBusyError as error:
        # A command without its own handler met a held database: the same one line and code.
        err.print(f"[red]error:[/] {' '.join(str(error).split())}", highlight=False, soft_wrap=True)
        raise SystemExit(Exit.NOTHING_DONE) from None
