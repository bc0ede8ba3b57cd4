"""`emessi report`: the built-in group-dynamics reports as a table, CSV, XLSX or PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DEFAULT_DB, AsJson, Db, dataset, out, print_table


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    kind: Annotated[str, typer.Argument(help="talk (talk time and shares), turns (turns, responses, overlaps per speaker), "
                                        "matrix (who speaks after whom) or codes (codes by role).")],
    group: Annotated[Optional[str], typer.Option("--group", "-g", help="Only this group's recordings.")] = None,
    recording: Annotated[Optional[str], typer.Option("--recording", "-r", help="Only this recording (name or its start).")] = None,
    coder: Annotated[Optional[str], typer.Option("--coder", help="codes: only this coder's codings.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (on screen), csv, xlsx or png (a chart: bars for talk and turns, a heat map for matrix and codes).")] = "table",
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="The file to write (default report-KIND[-GROUP].FORMAT).")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Report on group dynamics from the dataset's views; speakers are participant ids (else
    diarisation labels), never names.

    talk: talk_s, turns, mean turn and share of talk per speaker and recording (talk_per_participant).
    turns: turns, responses and median response latency, overlaps and interruptions per speaker.
    matrix: the turn-taking matrix, previous speaker × next speaker, summed over the recordings.
    codes: codings per code and role and the code's share of the role's codings (codes_by_role).

    Examples:

      emessi report matrix --group G1

      emessi report talk --group G1 --format png --out talk-G1.png
    """
    from ..dataset.common import DatasetError
    from ..dataset.reports import FORMATS, build_report, scope, write_report

    with dataset(db) as con:
        if fmt not in FORMATS:
            raise DatasetError(f"--format {fmt}: use {', '.join(FORMATS)}")
        if coder is not None and kind != "codes":
            raise DatasetError("--coder filters the codes report only")
        result = build_report(con, kind, scope(con, group, recording, coder))
        if fmt != "table":
            target = out_path or Path(f"report-{kind}{'-' + group if group else ''}.{fmt}")
            write_report(result, target, fmt)
    if fmt != "table":
        out.print(f"{len(result.frame)} rows → {target}", highlight=False, soft_wrap=True)
    elif as_json:
        print(result.frame.to_json(orient="records", force_ascii=False))
    else:
        out.print(result.title, highlight=False)
        print_table(list(result.frame.columns), ([("" if _missing(v) else v) for v in row] for row in result.frame.itertuples(index=False)))


def _missing(value) -> bool:
    return value is None or value != value  # NaN is the one value not equal to itself
