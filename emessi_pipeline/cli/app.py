"""The root `emessi` app: `--version`, and every command group registered in the order
`emessi --help` lists them. The groups never import this module (see common.py); exit codes
are documented on :class:`.common.Exit`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..runs.privacy import owner_only
from ..version import __version__
from . import dataset, demo, evaluate, ingest, models, privacy, query, review
from .common import out

app = typer.Typer(
    help="Recorded group meetings → speaker-attributed utterance observations in DuckDB.\n\n"
    "Example:\n\n  emessi ingest recordings/ --db meetings.duckdb",
    no_args_is_help=True,
    add_completion=False,
)

for group in (ingest, models, query, demo, dataset, review, evaluate, privacy):
    group.register(app)


@app.callback(invoke_without_command=True)
def _version(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    # Before any command writes: every file it makes (WAVs, database, exports, samples, logs)
    # holds speech of named people, so only the user who runs emessi may read it.
    owner_only()
    if version:
        out.print(__version__)
        raise typer.Exit()


def main() -> None:
    app()
