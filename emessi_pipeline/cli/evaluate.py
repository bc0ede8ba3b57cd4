"""`emessi eval`: score recordings in the database against reference files (docs/eval.md).

A thin layer over :func:`emessi_pipeline.evaluation.evaluate.evaluate_database` and
:func:`~emessi_pipeline.evaluation.evaluate.evaluate_recording`. Exit codes (:class:`.common.Exit`): 0 scored; 2 usage
error (no references given, unknown format, a file that does not parse, unknown recording, or no
reference matches a recording); 3 the database is held by another program.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import DEFAULT_DB, AsJson, Db, Exit, err, fail, out

_EXAMPLE = """Score recordings in the database against reference files: word and character error rate,
diarisation error rate (missed, false alarm, confusion), Jaccard error rate, speaker-attributed
word error (cpWER, and the share of recognised words given to the wrong speaker), and
turn-boundary precision and recall. Definitions: docs/eval.md.

References are RTTM, STM, SRT/WebVTT with speaker names, CSV/TSV (start,end,speaker[,text]) or
JSON (a list of {start, end, speaker[, text]}), told apart by extension. With --references DIR,
a file NAME.ext or NAME.anything.ext belongs to the recording named NAME (its file stem), and
NAME.uem gives its scored regions. With one RECORDING and --reference FILE, every file given
applies to that recording.

Example:

  emessi eval --db demo/demo.duckdb --references demo/references

  emessi eval sample --db meetings.duckdb --reference sample.rttm --reference sample.stm --json
"""


def register(app: typer.Typer) -> None:
    """Add `emessi eval` to the top-level app."""
    app.command("eval", help=_EXAMPLE)(eval_command)


def eval_command(
    recordings: Annotated[Optional[list[str]], typer.Argument(help="Recording names (file stems) or ids; default: every recording a reference names.", show_default=False)] = None,
    db: Db = DEFAULT_DB,
    references: Annotated[Optional[list[Path]], typer.Option("--references", "-r", help="Folder of reference files, matched to recordings by name (repeatable).", show_default=False)] = None,
    reference: Annotated[Optional[list[Path]], typer.Option("--reference", help="One reference file (repeatable); with one RECORDING it applies to it, else matched by name.", show_default=False)] = None,
    uem: Annotated[Optional[Path], typer.Option("--uem", help="UEM file of regions to score (<file> <channel> <start> <end>).")] = None,
    window: Annotated[Optional[tuple[float, float]], typer.Option("--window", help="Score only START..END seconds of every recording.", show_default=False)] = None,
    collar: Annotated[float, typer.Option("--collar", min=0.0, help="Seconds around each reference boundary not scored (DER/JER), on each side.")] = 0.0,
    skip_overlap: Annotated[bool, typer.Option("--skip-overlap", help="Leave overlapped reference speech out of DER/JER.")] = False,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, help="Seconds within which a turn boundary counts as found.")] = 0.5,
    language: Annotated[Optional[str], typer.Option("--language", help="Language for text normalisation ('fi' writes numbers out); default: each recording's.")] = None,
    as_json: AsJson = False,
) -> None:
    from ..dataset.connection import DatabaseBusyError
    from ..dataset.common import DatasetError
    from ..evaluation.evaluate import EvalOptions, Evaluation, evaluate_database, evaluate_recording
    from ..evaluation.references import ReferenceFileError, read_uem, reference_files

    if not references and not reference:
        fail("give reference files: --references DIR (matched by name) or --reference FILE")
    for path in [*(references or []), *(reference or []), *([uem] if uem else [])]:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    if window is not None and uem is not None:
        fail("give either --window or --uem, not both")
    if window is not None and not window[1] > window[0] >= 0:
        fail(f"--window {window[0]} {window[1]}: END must be after START, both seconds >= 0")
    if not db.exists():
        fail(f"{db}: no such database (run `emessi ingest` first, or pass --db)")
    folder_files = [f for folder in references or [] for f in (reference_files(folder) if folder.is_dir() else [folder])]
    try:
        options = EvalOptions(collar=collar, skip_overlap=skip_overlap, window=tuple(window) if window else None,
                              uem=read_uem(uem) if uem else None, tolerance=tolerance, language=language)  # fmt: skip
        if recordings and len(recordings) == 1 and reference:
            from ..evaluation.references import match_references

            mine, _ = match_references([recordings[0]], folder_files)
            files = [*reference, *mine.get(recordings[0], [])]
            result = evaluate_recording(db, recordings[0], files, options)
            evaluation = Evaluation((result,), options)
        else:
            evaluation = evaluate_database(db, [*(reference or []), *folder_files], recordings or None, options)
    except DatabaseBusyError as error:
        fail(error, Exit.NOTHING_DONE)
    except (ReferenceFileError, DatasetError, OSError) as error:
        fail(error)
    if not evaluation.recordings:
        fail(
            "no reference file matches a recording: a reference named NAME.ext or NAME.anything.ext is scored "
            f"against the recording named NAME (recordings: {', '.join(evaluation.without_reference) or 'none'}; "
            f"references: {', '.join(Path(p).name for p in evaluation.unmatched_references) or 'none'})"
        )
    for path in evaluation.unmatched_references:
        err.print(f"[yellow]warning:[/] {path}: matches no recording; not scored", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(evaluation.to_dict(), indent=2, ensure_ascii=False))
        return
    _table(evaluation)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


_TABLES = (  # title, columns: (header, score, attribute)
    ("words", (("WER", "text", "wer"), ("CER", "text", "cer"), ("ref words", "text", "reference_words"),
               ("cpWER", "speaker_words", "cpwer"), ("spk wrong", "speaker_words", "wrong_speaker_share"))),
    ("speakers", (("DER", "diarization", "der"), ("miss", "diarization", "missed"), ("FA", "diarization", "false_alarm"),
                  ("conf", "diarization", "confusion"), ("JER", "diarization", "jer"), ("ref s", "diarization", "total_s"))),
    ("turn boundaries", (("ref", "boundaries", "reference"), ("hyp", "boundaries", "hypothesis"), ("matched", "boundaries", "matched"),
                         ("P", "boundaries", "precision"), ("R", "boundaries", "recall"), ("F1", "boundaries", "f1"))),
)  # fmt: skip


def _cell(score, attribute: str) -> str:
    value = getattr(score, attribute) if score is not None else None
    if isinstance(value, int):
        return str(value)
    if attribute == "total_s" and value is not None:
        return f"{value:.1f}"
    return _fmt(value)


def _table(evaluation) -> None:
    from rich import box

    rows = [(r.recording, r) for r in evaluation.recordings]
    if len(rows) > 1:
        rows.append(("overall", evaluation.overall))
    for title, columns in _TABLES:
        table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
        table.add_column("recording", overflow="fold")
        for header, _, _ in columns:
            table.add_column(header, justify="right")
        for i, (name, scores) in enumerate(rows):
            get = scores.get if isinstance(scores, dict) else lambda n, s=scores: getattr(s, n)
            table.add_row(name, *(_cell(get(score), attribute) for _, score, attribute in columns),
                          end_section=len(rows) > 1 and i == len(rows) - 2)  # fmt: skip
        out.print(table)
    opts = evaluation.options
    scored = f"window {opts.window[0]:g}-{opts.window[1]:g} s" if opts.window else "UEM regions" if opts.uem else "whole recordings"
    out.print(
        f"collar {opts.collar:g} s, overlap {'skipped' if opts.skip_overlap else 'scored'}, boundary tolerance "
        f"{opts.tolerance:g} s, {scored}; overall = pooled counts and seconds. Definitions: docs/eval.md",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    for r in evaluation.recordings:
        refs = ", ".join(sorted({Path(p).name for p in (r.timeline_reference, r.text_reference) if p}))
        out.print(f"{r.recording}: {refs}" + "".join(f"; {n}" for n in r.notes), highlight=False, soft_wrap=True)
    if evaluation.without_reference:
        out.print(f"no reference for: {', '.join(evaluation.without_reference)}", highlight=False, soft_wrap=True)
