"""CLI commands over the coded dataset: speakers, codebook, coding, exports.

A thin layer: each command opens the database, calls one library function and prints. Bad
input (DatasetError) prints every problem and exits 2 with the database unchanged; a database
another program holds exits 3 (:class:`.common.Exit`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import DEFAULT_DB, AsJson, Db, RecordingArg, WithNames, dataset, err, fail, out, print_table

speakers_app = typer.Typer(help="Who each diarised speaker is: list labels, assign participants and roles.\n\n"
                           "Example:\n\n  emessi speakers list G1_S3 --samples samples/", no_args_is_help=True)  # fmt: skip
participants_app = typer.Typer(help="The participant registry (pseudonymous ids per group).\n\n"
                               "Example:\n\n  emessi participants add G1-P03 --group G1", no_args_is_help=True)  # fmt: skip
codebook_app = typer.Typer(help="Import and show the versioned codebook.\n\n"
                           "Example:\n\n  emessi codebook import configs/codebook_example.yaml", no_args_is_help=True)  # fmt: skip
coding_app = typer.Typer(help="Code observations in a sheet: export, import, agreement, review.\n\n"
                         "Example:\n\n  emessi coding export --coder anna", no_args_is_help=True)  # fmt: skip
export_app = typer.Typer(help="Export tables, views, transcripts, subtitles, ELAN and REFI-QDA projects.\n\n"
                         "Example:\n\n  emessi export table talk_per_participant talk.parquet", no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the dataset commands to the top-level `emessi` app."""
    app.add_typer(speakers_app, name="speakers")
    app.add_typer(participants_app, name="participants")
    app.add_typer(codebook_app, name="codebook")
    app.add_typer(coding_app, name="coding")
    app.add_typer(export_app, name="export")


# ---------------------------------------------------------------- participants


@participants_app.command("add")
def participants_add(
    participant: Annotated[str, typer.Argument(help="Pseudonymous id, e.g. G1-P03.")],
    group: Annotated[Optional[str], typer.Option("--group", help="Group id, e.g. G1.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Optional name or nickname.")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Optional note.")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Register a participant (or fill in the name/note of one already there).

    Example:

      emessi participants add G1-P03 --group G1 --name Mikko
    """
    from ..dataset.connection import transaction
    from ..dataset.speakers import add_participant

    with dataset(db, write=True) as con:
        with transaction(con):
            added = add_participant(con, participant, group, name, note)
    out.print(f"{'added' if added else 'updated'} {participant}", highlight=False)


@participants_app.command("list")
def participants_list(
    group: Annotated[Optional[str], typer.Option("--group", help="Only this group.")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """List registered participants.

    Example:

      emessi participants list --group G1
    """
    from ..dataset.speakers import list_participants

    with dataset(db) as con:
        rows = list_participants(con, group)
    columns = ["participant", "group", "name", "note"]
    if as_json:
        print(json.dumps([dict(zip(columns, r)) for r in rows], ensure_ascii=False))
    else:
        print_table(columns, rows)


# ---------------------------------------------------------------- speakers


@speakers_app.command("list")
def speakers_list(
    recording: RecordingArg,
    utterances: Annotated[int, typer.Option("--utterances", "-n", min=0, help="How many first utterances to show per label.")] = 3,
    samples: Annotated[Optional[Path], typer.Option("--samples", help="Also cut a short WAV per label into this folder for listening.")] = None,
    seconds: Annotated[float, typer.Option("--seconds", min=1.0, help="Length of each sample (at most).")] = 8.0,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Show each speaker label of a recording: who it is, talk time, turns and first utterances.

    Example:

      emessi speakers list G1_S3_vertaismentorointi --samples samples/
    """
    from ..dataset.speakers import cut_samples, summarize_labels

    with dataset(db) as con:
        rec, rows = summarize_labels(con, recording, utterances)
        cut = cut_samples(con, recording, samples, seconds) if samples else {}
    if as_json:
        print(json.dumps({"recording": rec.name, "recording_id": rec.recording_id,
                          "speakers": [asdict(r) | {"sample": str(cut[r.speaker_label]) if r.speaker_label in cut else None} for r in rows]},
                         ensure_ascii=False, indent=2))  # fmt: skip
        return
    table = Table(title=rec.name, show_edge=False, show_lines=True)
    for column in ("label", "participant", "role", "talk s", "turns", "first utterances", *(["sample"] if cut else [])):
        table.add_column(column)
    for r in rows:
        who = f"{r.participant_id} ({r.participant_name})" if r.participant_name else (r.participant_id or "")
        table.add_row(r.speaker_label, who, r.role, f"{r.talk_s:.1f}", str(r.turns), "\n".join(r.first_utterances),
                      *([str(cut.get(r.speaker_label, ""))] if cut else []))  # fmt: skip
    out.print(table)


@speakers_app.command("assign")
def speakers_assign(
    recording: RecordingArg,
    label: Annotated[str, typer.Argument(help="Diarisation label, e.g. SPEAKER_00.")],
    participant: Annotated[Optional[str], typer.Option("--participant", help="Participant id (registered in the recording's group if new).")] = None,
    role: Annotated[str, typer.Option("--role", help="leader, facilitator, participant or unknown.")] = "participant",
    name: Annotated[Optional[str], typer.Option("--name", help="Participant's name, if new.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who made the assignment.")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Say who a diarisation label is (survives re-ingest: carried to the matching label).

    Example:

      emessi speakers assign G1_S3_vertaismentorointi SPEAKER_00 --participant G1-P03 --role leader
    """
    from ..dataset.speakers import Assignment, assign

    with dataset(db, write=True) as con:
        changed = assign(con, [Assignment(recording, label, participant, role, name)], by)
    out.print(f"{label} → {participant or '-'} ({role})" + ("" if changed else " (already so)"), highlight=False)


@speakers_app.command("import")
def speakers_import(
    csv_file: Annotated[Path, typer.Argument(help="CSV with columns recording, speaker_label, participant, role[, name].")],
    by: Annotated[Optional[str], typer.Option("--by", help="Who made the assignments.")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Assign many labels at once from a CSV: all rows are checked first, then all go in or none.

    Example:

      emessi speakers import assignments.csv
    """
    from ..dataset.speakers import assign, read_assignment_csv

    with dataset(db, write=True) as con:
        from ..dataset.common import DatasetError

        if not csv_file.exists():
            raise DatasetError(f"{csv_file}: no such file")
        rows = read_assignment_csv(csv_file)
        changed = assign(con, rows, by)
    out.print(f"{len(rows)} rows, {changed} assignments changed", highlight=False)


# ---------------------------------------------------------------- codebook


@codebook_app.command("import")
def codebook_import(
    file: Annotated[Path, typer.Argument(help="Codebook YAML or CSV (dimension, code, label, description[, multiple]).")],
    db: Db = DEFAULT_DB,
) -> None:
    """Import a codebook as a new version; removed codes are kept as retired, never deleted.

    Example:

      emessi codebook import configs/codebook_example.yaml
    """
    from ..dataset.codebook import import_codebook

    with dataset(db, write=True) as con:
        result = import_codebook(con, file)
    if not result.new:
        out.print(f"codebook unchanged (version {result.version})")
        return
    out.print(f"codebook version {result.version}: {len(result.added)} codes added, {len(result.changed)} changed, "
              f"{len(result.retired)} retired" + (f" ({', '.join(result.retired)})" if result.retired else ""),
              highlight=False)  # fmt: skip


@codebook_app.command("show")
def codebook_show(db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """Show the codebook's dimensions and codes (retired ones marked).

    Example:

      emessi codebook show
    """
    with dataset(db) as con:
        frame = con.execute(
            "SELECT c.dimension, d.multiple AS several, c.code, c.label, c.retired, c.first_version, c.last_version, "
            "c.description FROM codebook_codes c JOIN codebook_dimensions d USING (dimension) "
            "ORDER BY d.retired, d.position, c.retired, c.position"
        ).df()
    if as_json:
        print(frame.to_json(orient="records", force_ascii=False))
    else:
        print_table(list(frame.columns), frame.itertuples(index=False))


# ---------------------------------------------------------------- coding


Coder = Annotated[str, typer.Option("--coder", help="The coder's name (codings are kept per coder).")]


@coding_app.command("export")
def coding_export(
    coder: Coder,
    recording: Annotated[Optional[str], typer.Option("--recording", help="Only this recording (default: all).")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="FILE.csv, FILE.xlsx, or a name without suffix for both (default coding-CODER).")] = None,
    with_names: WithNames = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Write a coding sheet (CSV and XLSX): one row per observation, one column per dimension.

    The coder's earlier codings are filled in; several codes in one cell are separated by ';'.
    Fill `corrected_text` to correct a transcript line. Speakers are pseudonymous ids and roles
    unless --with-names.

    Example:

      emessi coding export --coder anna --recording G1_S3_vertaismentorointi
    """
    from ..dataset.coding import export_sheet

    target = out_path or Path(f"coding-{coder}")
    targets = [target] if target.suffix.lower() in (".csv", ".xlsx") else [target.with_suffix(".csv"), target.with_suffix(".xlsx")]
    with dataset(db) as con:
        for t in targets:
            export_sheet(con, coder, t, recording, with_names)
    out.print("wrote " + ", ".join(str(t) for t in targets), highlight=False)


@coding_app.command("import")
def coding_import(
    sheet: Annotated[Path, typer.Argument(help="A filled sheet (.csv, .xlsx) or a REFI-QDA project (.qdpx).")],
    coder: Annotated[Optional[str], typer.Option("--coder", help="The coder (required for sheets; for .qdpx only codings without a user).")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Import codings: every row is checked first; all go in (one transaction) or none.

    Importing the same sheet again changes nothing. Bad rows are listed with their line numbers.

    Example:

      emessi coding import coding-anna.xlsx --coder anna
    """
    from ..dataset.coding import import_sheet
    from ..dataset.common import DatasetError
    from ..dataset.exports.qdpx import import_qdpx

    with dataset(db, write=True) as con:
        if sheet.suffix.lower() == ".qdpx":
            summary = import_qdpx(con, sheet, coder)
        else:
            if not coder:
                raise DatasetError("give the coder's name: --coder NAME")
            summary = import_sheet(con, sheet, coder)
    if as_json:
        print(json.dumps(asdict(summary)))
        return
    out.print(f"{summary.rows} rows: {summary.added} codings added, {summary.superseded} replaced, "
              f"{summary.unchanged} unchanged, {summary.corrections} text corrections"
              + (f", {summary.cleared} cleared" if summary.cleared else "")
              + (f"; {summary.carried} carried to the current set, {summary.for_review} for review" if summary.carried or summary.for_review else "")
              + (f" (batch {summary.batch}: undo with `emessi coding revert {summary.batch}`)" if summary.batch else ""),
              highlight=False)  # fmt: skip


@coding_app.command("agreement")
def coding_agreement(
    coders: Annotated[str, typer.Option("--coders", help="Two coders, comma-separated: A,B.")],
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Cohen's kappa, percent agreement and shared observations per dimension for two coders.

    Example:

      emessi coding agreement --coders anna,ben
    """
    from ..dataset.agreement import agreement
    from ..dataset.common import DatasetError

    names = [c.strip() for c in coders.split(",") if c.strip()]
    with dataset(db) as con:
        if len(names) != 2:
            raise DatasetError("--coders takes two names: A,B")
        rows = agreement(con, *names)
    if as_json:
        print(json.dumps([asdict(r) for r in rows]))
        return
    print_table(["dimension", "shared", "agreed", "percent", "kappa"],
                [(r.dimension, r.shared, r.agreed, "" if r.percent is None else f"{100 * r.percent:.1f}",
                  "n/a" if r.kappa is None else f"{r.kappa:.3f}") for r in rows])  # fmt: skip


@coding_app.command("review")
def coding_review(
    recording: Annotated[Optional[str], typer.Option("--recording", help="Only this recording.")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """List the codings, speaker assignments and corrections a re-ingest could not carry over.

    Example:

      emessi coding review --recording G1_S3_vertaismentorointi
    """
    from ..dataset.common import resolve_recording

    with dataset(db) as con:
        rid = resolve_recording(con, recording).recording_id if recording else None
        frame = con.execute(
            "SELECT kind, item_id, old_target, reason, candidates, old_set_id, new_set_id, logged_at FROM carry_review "
            "WHERE ? IS NULL OR recording_id = ? ORDER BY logged_at, kind",
            [rid, rid],
        ).df()
    if as_json:
        print(frame.to_json(orient="records", force_ascii=False, date_format="iso"))
    else:
        print_table(list(frame.columns[:5]), frame.iloc[:, :5].itertuples(index=False))


# ---------------------------------------------------------------- export


@export_app.command("table")
def export_table(
    name: Annotated[str, typer.Argument(help="Table or view, e.g. talk_per_participant, current_codings.")],
    target: Annotated[Path, typer.Argument(help="Output .parquet or .csv.")],
    with_names: WithNames = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Write any table or view to Parquet or CSV (for R, SPSS, pandas).

    Columns with participants' names (participant_name; name of `participants`) are left out
    unless --with-names.

    Example:

      emessi export table turn_transitions transitions.csv
    """
    from ..dataset.exports.table import export_relation

    with dataset(db) as con:
        rows = export_relation(con, name, target, with_names)
    out.print(f"{rows} rows → {target}", highlight=False)


@export_app.command("transcript")
def export_transcript(
    recording: Annotated[Optional[str], typer.Argument(help="Recording name or id (default: every recording).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, srt, vtt, eaf (ELAN), or all.")] = "md",
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("transcripts"),
    with_names: WithNames = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Write transcripts with speakers, roles and times (Markdown), subtitles (SRT, WebVTT) or ELAN .eaf.

    Speakers are pseudonymous participant ids (or diarisation labels); names only with --with-names.

    Example:

      emessi export transcript G1_S3_vertaismentorointi --format all --out transcripts/
    """
    from ..dataset.common import DatasetError, all_recordings
    from ..dataset.exports.transcripts import FORMATS, write_transcript

    formats = [*FORMATS, "eaf"] if fmt == "all" else [fmt]
    with dataset(db) as con:
        if any(f not in (*FORMATS, "eaf") for f in formats):
            raise DatasetError(f"--format {fmt}: use md, srt, vtt, eaf or all")
        recs = [recording] if recording else [r.recording_id for r in all_recordings(con)]
        written = [write_transcript(con, r, f, out_dir, with_names) for r in recs for f in formats]
    out.print("\n".join(str(w) for w in written), highlight=False, soft_wrap=True)  # one path a line, never folded


@export_app.command("qdpx")
def export_qdpx_command(
    target: Annotated[Path, typer.Argument(help="Output project, e.g. emessi.qdpx.")],
    recording: Annotated[Optional[list[str]], typer.Option("--recording", help="Only these recordings (repeatable).")] = None,
    include_media: Annotated[bool, typer.Option("--include-media", help="Copy the media files into the project.")] = False,
    coder: Annotated[Optional[str], typer.Option("--coder", help="Only this coder's codings; every transcript is theirs (QualCoder keeps one coder per transcript).")] = None,
    relative_media: Annotated[bool, typer.Option("--relative-media", help="Link media by a path relative to the project file's folder (relative://), not an absolute path of this machine.")] = False,
    base_path: Annotated[Optional[str], typer.Option("--base-path", help="With --relative-media: the project file's folder as the receiving machine will see it (the project's basePath; default: that folder here).")] = None,
    with_names: WithNames = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Write a REFI-QDA project (QualCoder, ATLAS.ti, MAXQDA, NVivo), validated against its schema.

    Transcripts have sync points per observation, speakers are cases with role/group/session,
    the codebook is the code system and codings are codings; speakers are named by pseudonymous id
    unless --with-names. Bring codings back with `emessi coding import PROJECT.qdpx`. Moving it to
    each program: docs/qda.md.

    Examples:

      emessi export qdpx emessi.qdpx --recording G1_S3_vertaismentorointi

    One coder's project for QualCoder, media copied in:

      emessi export qdpx anna.qdpx --coder anna --include-media
    """
    from ..dataset.exports.qdpx import export_qdpx

    if base_path is not None and not relative_media:
        fail("--base-path is the base of the relative media paths: give --relative-media too")
    with dataset(db) as con:
        summary = export_qdpx(con, target, recording, include_media, coder, relative_media, base_path, with_names)
    out.print(f"{target}: {summary.sources} sources, {summary.selections} selections, {summary.codings} codings, "
              f"{summary.cases} cases (validated against the REFI-QDA project schema)", highlight=False)  # fmt: skip
    if summary.shared:
        err.print(f"[yellow]note:[/] {len(summary.shared)} recording(s) carry several coders' codings "
                  f"({', '.join(summary.shared)}). ATLAS.ti, MAXQDA and NVivo keep each coding's coder; QualCoder "
                  "gives all codings of a transcript one owner and will file these under 'default'. For QualCoder, "
                  "export one project per coder with --coder NAME.", highlight=False, soft_wrap=True)  # fmt: skip
