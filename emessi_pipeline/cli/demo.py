"""`emessi demo`: build the bundled demo meeting and ingest it, as `emessi ingest` would."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import Exit, SummaryJson, err, out
from .ingest import RunRequest, run


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    folder: Annotated[Path, typer.Option(help="Where the demo recording, workspace and database go.")] = Path("demo"),
    as_json: SummaryJson = False,
) -> None:
    """Build the bundled demo meeting (a Finnish multi-speaker video) and ingest it.

    Example:

      emessi demo --folder demo
    """
    from ..runs.demo import build_demo

    recording_dir = build_demo(folder)
    err.print(f"demo recording: {recording_dir}", highlight=False, soft_wrap=True)
    try:
        run(RunRequest("load", recording_dir, folder / "demo.duckdb", folder / "work", as_json=as_json))
    except typer.Exit as done:
        if not as_json and done.exit_code in (Exit.OK, Exit.NOTHING_TO_DO):
            out.print(
                "example query: emessi query --db "
                f"{folder / 'demo.duckdb'} \"SELECT speaker_label, count(*) AS turns, "
                "round(sum(duration_s), 1) AS seconds FROM current_observations GROUP BY 1 ORDER BY 1\"",
                highlight=False,
            )
            _example_query(folder / "demo.duckdb")
            out.print(f"open it in the workbench (listen, code, correct): emessi serve --db {folder / 'demo.duckdb'}",
                      highlight=False, soft_wrap=True)  # fmt: skip
        raise


def _example_query(db: Path) -> None:
    from ..dataset.connection import open_reader

    con = open_reader(db)
    rows = con.execute(
        "SELECT speaker_label, count(*) AS turns, round(sum(duration_s), 1) AS seconds "
        "FROM current_observations GROUP BY 1 ORDER BY 1"
    ).fetchall()
    con.close()
    table = Table("speaker", "turns", "seconds", show_edge=False)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    out.print(table)
