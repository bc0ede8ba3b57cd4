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

from .common import (DEFAULT_DB, DEFAULT_WORKSPACE, AsJson, Db, ProfileOpt, RecordingArg, Work, WithNames, dataset, err,
                     fail, out, print_table, quantity)  # fmt: skip

speakers_app = typer.Typer(help="Who each diarised speaker is: list labels, assign participants and roles, "
                           "suggest them from voiceprints.\n\n"
                           "Example:\n\n  emessi speakers list G1_S3 --samples samples/", no_args_is_help=True)  # fmt: skip
participants_app = typer.Typer(help="The participant registry (pseudonymous ids per group).\n\n"
                               "Example:\n\n  emessi participants add G1-P03 --group G1", no_args_is_help=True)  # fmt: skip
codebook_app = typer.Typer(help="Import and show the versioned codebook.\n\n"
                           "Example:\n\n  emessi codebook import configs/codebook_example.yaml", no_args_is_help=True)  # fmt: skip
coding_app = typer.Typer(help="Code observations in a sheet: export, import, agreement, review.\n\n"
                         "Example:\n\n  emessi coding export --coder anna", no_args_is_help=True)  # fmt: skip
export_app = typer.Typer(help="Export tables, views, the coded dataset, transcripts, subtitles, ELAN and REFI-QDA projects.\n\n"
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
    role: Annotated[Optional[str], typer.Option("--role", help="leader, facilitator, participant or unknown (a new assignment: participant with --participant, else unknown).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="The participant's name (of --participant, or of the one assigned).")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who made the assignment.")] = None,
    db: Db = DEFAULT_DB,
    workspace: Work = DEFAULT_WORKSPACE,
    profile: ProfileOpt = "default",
) -> None:
    """Say who a diarisation label is (survives re-ingest: carried to the matching label).

    Only the fields given change: --role alone keeps the participant, --name alone names the
    participant assigned. The participant's voiceprint learns from the label's clean speech in
    the recording's extracted audio (in --workspace); confirming an `auto` suggestion is
    assigning the same participant.

    Example:

      emessi speakers assign G1_S3_vertaismentorointi SPEAKER_00 --participant G1-P03 --role leader
    """
    from ..dataset.speakers import assign_fields

    with dataset(db, write=True) as con:
        now_in_force, changed = assign_fields(con, recording, label, participant, role, name, by)
        named = f" (named {name})" if name is not None else ""
        out.print(f"{label} → {now_in_force.participant_id or '-'} ({now_in_force.role}){named}"
                  + ("" if changed or name is not None else " (already so)"), highlight=False)  # fmt: skip
        learn_voices(con, [recording], workspace, profile)


def learn_voices(con, recordings: list[str], workspace: Path, profile: str) -> None:
    """Bring the recordings' parts of the voiceprints in line with their assignments and say what
    was learnt; missing audio or models leave the assignments as they are, with a warning."""
    from ..config import load_profile
    from ..runs.workspace import voices
    from ..stages.models import MissingModelError
    from ..dataset.voiceprints import refresh

    try:
        source = voices(load_profile(profile), workspace)
        learnt = [item for rec in dict.fromkeys(recordings) for item in refresh(con, rec, source)]
    except (MissingModelError, FileNotFoundError, ValueError) as error:
        err.print(f"[yellow]warning:[/] voiceprints not updated: {' '.join(str(error).split())}", highlight=False, soft_wrap=True)
        return
    for item in learnt:
        if item.status == "built":
            err.print(f"voiceprint of {item.participant_id}: learnt from {item.speech_s:.1f} s of {item.recording} "
                      f"({', '.join(item.speaker_labels)})", highlight=False, soft_wrap=True)  # fmt: skip
        elif item.status == "removed":
            err.print(f"voiceprint of {item.participant_id}: {item.recording} taken out", highlight=False, soft_wrap=True)
        elif item.status != "unchanged":
            err.print(f"[yellow]warning:[/] voiceprint of {item.participant_id} not updated: {item.note}",
                      highlight=False, soft_wrap=True)  # fmt: skip


@speakers_app.command("import")
def speakers_import(
    csv_file: Annotated[Path, typer.Argument(help="CSV with columns recording, speaker_label, participant, role[, name].")],
    by: Annotated[Optional[str], typer.Option("--by", help="Who made the assignments.")] = None,
    db: Db = DEFAULT_DB,
    workspace: Work = DEFAULT_WORKSPACE,
    profile: ProfileOpt = "default",
) -> None:
    """Assign many labels at once from a CSV: all rows are checked first, then all go in or none.

    The voiceprints learn from every recording named, as with `emessi speakers assign`.

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
        learn_voices(con, [r.recording for r in rows], workspace, profile)


@speakers_app.command("suggest")
def speakers_suggest(
    recording: RecordingArg,
    apply: Annotated[bool, typer.Option("--apply", help="Record the suggestions scoring at least --min-score as assignments by `auto`.")] = False,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="With --apply: the lowest score applied (default: the profile's voiceprints.apply_min_score).")] = None,
    db: Db = DEFAULT_DB,
    workspace: Work = DEFAULT_WORKSPACE,
    profile: ProfileOpt = "default",
    as_json: AsJson = False,
) -> None:
    """Suggest who each speaker label is, from the voiceprints of the recording's group.

    One participant per label (Hungarian assignment on cosine scores); a label below the
    profile's threshold is unknown, and a second label that looks like a person already taken is
    reported as possibly one person split in two. --apply records the suggestions as assignments
    made by `auto`, with their score; a person's assignment is never replaced, and a person
    confirms one by assigning it (`emessi speakers assign`, or the workbench's confirm button).

    Examples:

      emessi speakers suggest G1_S4 --json

      emessi speakers suggest G1_S4 --apply --min-score 0.85
    """
    from ..config import load_profile
    from ..dataset import voiceprints
    from ..runs.workspace import voices
    from ..stages.models import MissingModelError

    if min_score is not None and not apply:
        fail("--min-score goes with --apply")
    try:
        prof = load_profile(profile)
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    with dataset(db, write=apply) as con:
        try:
            found = voiceprints.suggest(con, recording, voices(prof, workspace))
        except MissingModelError as error:
            fail(error)
        applied = voiceprints.apply(con, recording, found, prof.voiceprints.apply_min_score if min_score is None else min_score) if apply else []
    outcome = {a.speaker_label: a.outcome for a in applied}
    if as_json:
        print(json.dumps([s.to_dict() | ({"applied": outcome.get(s.speaker_label)} if apply else {}) for s in found],
                         ensure_ascii=False, indent=2))  # fmt: skip
        return
    rows = []
    for s in found:
        rows.append((s.speaker_label, s.participant or "unknown", "" if s.score is None else f"{s.score:.3f}",
                     ", ".join(f"{c['participant']} {c['score']:.2f}" for c in s.candidates),
                     f"{s.assigned} ({s.assigned_by or 'a person'})" if s.assigned else "", s.note,
                     *([outcome.get(s.speaker_label, "")] if apply else [])))  # fmt: skip
    print_table(["label", "suggested", "score", "closest", "assigned now", "note", *(["applied"] if apply else [])], rows)


@speakers_app.command("voiceprints")
def speakers_voiceprints(
    recording: Annotated[Optional[str], typer.Argument(help="Learn again from this recording's assignments (e.g. after re-extracting its audio).")] = None,
    group: Annotated[Optional[str], typer.Option("--group", help="Only this group's participants.")] = None,
    db: Db = DEFAULT_DB,
    workspace: Work = DEFAULT_WORKSPACE,
    profile: ProfileOpt = "default",
    as_json: AsJson = False,
) -> None:
    """List the participants' voiceprints (embedder, sessions, seconds of speech; never the vectors).

    Examples:

      emessi speakers voiceprints --group G1

      emessi speakers voiceprints G1_S3 -w emessi-work
    """
    from ..dataset.voiceprints import summary

    with dataset(db, write=recording is not None) as con:
        if recording is not None:
            learn_voices(con, [recording], workspace, profile)
        rows = summary(con, group)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    print_table(["participant", "group", "embedder", "sessions", "speech s", "recordings"], [tuple(r.values()) for r in rows])


# ---------------------------------------------------------------- codebook


@codebook_app.command("import")
def codebook_import(
    file: Annotated[Path, typer.Argument(help="Codebook YAML or CSV (dimension, code, label, description[, multiple]).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Retire the codes the file leaves out without asking (for scripts).")] = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Import a codebook as a new version; codes it leaves out are retired (kept, never deleted).

    What would change is shown first; retiring codes is asked for on a terminal and needs --yes
    elsewhere. Re-activated codes (retired before, back in the file) are listed too.

    Example:

      emessi codebook import configs/codebook_example.yaml
    """
    import sys

    from ..dataset.codebook import import_codebook, plan_codebook_import

    with dataset(db) as con:
        plan = plan_codebook_import(con, file)
    retiring = plan.retired + [f"{d} (dimension)" for d in plan.retired_dimensions]
    if plan.new and retiring and not yes:
        what = quantity(len(plan.retired), "code") + (f" and {quantity(len(plan.retired_dimensions), 'dimension')}" if plan.retired_dimensions else "")
        if not sys.stdin.isatty():
            fail(f"nothing imported: {file.name} leaves out {what}, which would be retired "
                 f"({', '.join(retiring)}); check it is the whole codebook, then add --yes")
        out.print(_codebook_change(plan), highlight=False, soft_wrap=True)
        out.print(f"[yellow]{what} would be retired[/] (their codings stay, new codings with them are refused): "
                  + ", ".join(retiring), highlight=False, soft_wrap=True)
        if not typer.confirm("Retire them?", default=False):
            fail("nothing imported")
    with dataset(db, write=True) as con:
        result = import_codebook(con, file)
    if not result.new:
        out.print(f"codebook unchanged (version {result.version})")
        return
    out.print(_codebook_change(result), highlight=False, soft_wrap=True)


def _codebook_change(result) -> str:
    parts = [f"{quantity(len(result.added), 'code')} added", f"{len(result.changed)} changed",
             f"{len(result.reactivated)} re-activated" + (f" ({', '.join(result.reactivated)})" if result.reactivated else ""),
             f"{len(result.retired)} retired" + (f" ({', '.join(result.retired)})" if result.retired else "")]  # fmt: skip
    if result.retired_dimensions:
        parts.append(f"dimension(s) {', '.join(result.retired_dimensions)} retired")
    return f"codebook version {result.version}: " + ", ".join(parts)


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
# Excel splits a CSV at the locale's list separator: ';' where decimals have a comma (Finland).
Delimiter = Annotated[str, typer.Option("--delimiter", help="CSV delimiter: ',', ';' (with decimal commas, for Excel in Finnish), 'tab', or 'auto': ';' when this machine's locale writes decimals with a comma.")]


@coding_app.command("export")
def coding_export(
    coder: Coder,
    recording: Annotated[Optional[str], typer.Option("--recording", help="Only this recording (default: all).")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="FILE.csv, FILE.xlsx, or a name without suffix for both (default coding-CODER).")] = None,
    with_names: WithNames = False,
    delimiter: Delimiter = "auto",
    db: Db = DEFAULT_DB,
) -> None:
    """Write a coding sheet (CSV and XLSX): one row per observation, one column per dimension.

    The coder's earlier codings are filled in; several codes in one cell are separated by ';'.
    Fill `corrected_text` to correct a transcript line. Speakers are pseudonymous ids and roles
    unless --with-names. The CSV is UTF-8 with a byte-order mark, so Excel shows ä and ö.

    Examples:

      emessi coding export --coder anna --recording G1_S3_vertaismentorointi

    A CSV for Excel in Finnish (';' between cells):

      emessi coding export --coder anna --out anna.csv --delimiter ';'
    """
    from ..dataset.coders import check_name, find_coder
    from ..dataset.coding import export_sheet
    from ..dataset.sheets import resolve_delimiter

    with dataset(db) as con:
        registered = find_coder(con, coder)
        coder = registered or check_name(coder)
        target = out_path or Path(f"coding-{coder}")
        targets = [target] if target.suffix.lower() in (".csv", ".xlsx") else [target.with_suffix(".csv"), target.with_suffix(".xlsx")]
        sep = resolve_delimiter(delimiter)
        for t in targets:
            export_sheet(con, coder, t, recording, with_names, sep)
    out.print("wrote " + ", ".join(str(t) for t in targets), highlight=False)
    if registered is None:
        err.print(f"[yellow]note:[/] {coder} is not a registered coder yet: import the filled sheet with "
                  f"--coder {coder} --new-coder (or first `emessi coding coders add {coder}`)", highlight=False, soft_wrap=True)


@coding_app.command("import")
def coding_import(
    sheet: Annotated[Path, typer.Argument(help="A filled sheet (.xlsx; .csv with ',' or ';', UTF-8 or Windows-1252) or a REFI-QDA project (.qdpx).")],
    coder: Annotated[Optional[str], typer.Option("--coder", help="The coder, a registered one (matched ignoring case); required for sheets, for .qdpx only codings without a user.")] = None,
    new_coder: Annotated[bool, typer.Option("--new-coder", help="Register --coder as a new coder if no coder has that name.")] = False,
    sheet_coder: Annotated[Optional[str], typer.Option("--sheet-coder", help="Whose sheet it is, when it was exported for another coder than --coder: import that coder's sheet as --coder's codings on purpose.")] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Import codings: every row is checked first; all go in (one transaction) or none.

    Importing the same sheet again changes nothing. Bad rows are listed with their line (CSV) or
    row (XLSX) numbers. A sheet exported for another coder is refused (see --sheet-coder); a coder
    the registry does not know is refused unless --new-coder (`emessi coding coders` lists them).

    Example:

      emessi coding import coding-anna.xlsx --coder anna

    A new coder's first sheet:

      emessi coding import coding-ben.xlsx --coder ben --new-coder
    """
    from ..dataset.coders import find_coder
    from ..dataset.coding import import_sheet
    from ..dataset.common import DatasetError
    from ..dataset.exports.qdpx import import_qdpx

    with dataset(db, write=True) as con:
        if sheet.suffix.lower() == ".qdpx":
            summary = import_qdpx(con, sheet, coder and (find_coder(con, coder) or coder))
        else:
            if not coder:
                raise DatasetError("give the coder's name: --coder NAME")
            summary = import_sheet(con, sheet, coder, sheet_coder, new_coder)
    if as_json:
        print(json.dumps(asdict(summary)))
        return
    who = f" for {summary.coder}" + (" (new coder)" if summary.new_coder else "") if summary.coder else ""
    out.print(f"{summary.rows} rows{who}: {summary.added} codings added, {summary.superseded} replaced, "
              f"{summary.unchanged} unchanged, {summary.corrections} text corrections"
              + (f", {summary.cleared} cleared" if summary.cleared else "")
              + (f"; {summary.carried} carried to the current set, {summary.for_review} for review" if summary.carried or summary.for_review else "")
              + (f" (batch {summary.batch}: undo with `emessi coding revert {summary.batch}`)" if summary.batch else ""),
              highlight=False)  # fmt: skip


coders_app = typer.Typer(help="The coders registry: list coders, add one.\n\n"
                         "Example:\n\n  emessi coding coders add ben")  # fmt: skip
coding_app.add_typer(coders_app, name="coders")


@coders_app.callback(invoke_without_command=True)
def coders_list(ctx: typer.Context, db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """List the registered coders with their codings in force (names are matched ignoring case).

    Example:

      emessi coding coders --db meetings.duckdb
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..dataset.coders import list_coders

    with dataset(db) as con:
        rows = list_coders(con)
    if as_json:
        print(json.dumps([asdict(r) for r in rows], default=str, ensure_ascii=False))
        return
    print_table(["coder", "codings", "added", "by"], [(r.coder, r.codings, f"{r.added_at:%Y-%m-%d %H:%M}" if r.added_at else "", r.source) for r in rows])


@coders_app.command("add")
def coders_add(
    name: Annotated[str, typer.Argument(help="The coder's name as they should be shown, e.g. anna.")],
    db: Db = DEFAULT_DB,
) -> None:
    """Register a coder (nothing changes when one of that name, in any case, is there).

    Example:

      emessi coding coders add ben
    """
    from ..dataset.coders import add_coder
    from ..dataset.connection import transaction

    with dataset(db, write=True) as con:
        with transaction(con):
            coder, added = add_coder(con, name, "coding coders add")
    out.print(f"added coder {coder}" if added else f"coder {coder} is already registered", highlight=False)


@coding_app.command("agreement")
def coding_agreement(
    coders: Annotated[str, typer.Option("--coders", help="Two or more coders, comma-separated: A,B[,C…].")],
    summary: Annotated[bool, typer.Option("--summary", help="Only the table of kappa and alpha per dimension.")] = False,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Agreement per dimension: Cohen's kappa, percent agreement and a confusion matrix for each
    pair of coders, Krippendorff's alpha over all of them, and the observations they coded
    differently.

    Kappa and the confusion matrix count the observations both coders coded; alpha (nominal)
    takes every observation at least two coders coded. A dimension with several codes per
    observation compares whole sets of codes (a;b).

    Examples:

      emessi coding agreement --coders anna,ben

      emessi coding agreement --coders anna,ben,eve --summary
    """
    from ..dataset.agreement import agreement_report

    names = [c.strip() for c in coders.split(",") if c.strip()]
    with dataset(db) as con:
        from ..dataset.coders import find_coder

        report = agreement_report(con, [find_coder(con, n) or n for n in names])
    if as_json:
        print(json.dumps([asdict(r) | {"disagreements": [asdict(d) for d in report.disagreements if d.dimension == r.dimension
                                                         and d.codes[r.coder_a] is not None and d.codes[r.coder_b] is not None
                                                         and d.codes[r.coder_a] != d.codes[r.coder_b]]}
                          for r in report.pairs], ensure_ascii=False))  # fmt: skip
        return
    several = len(report.coders) > 2

    def number(value, digits=3):
        return "n/a" if value is None else f"{value:.{digits}f}"

    print_table(["dimension", *(["coders"] if several else []), "shared", "agreed", "percent", "kappa", "alpha"],
                [(r.dimension, *([f"{r.coder_a}-{r.coder_b}"] if several else []), r.shared, r.agreed,
                  "" if r.percent is None else f"{100 * r.percent:.1f}", number(r.kappa),
                  number(r.alpha) if not several or (r.coder_a, r.coder_b) == tuple(report.coders[:2]) else "")
                 for r in report.pairs])  # fmt: skip
    if summary:
        return
    for r in report.pairs:
        if not r.shared:
            continue
        table = Table(title=f"{r.dimension}: {r.coder_a} (rows) × {r.coder_b} (columns)", show_edge=False)
        table.add_column(f"{r.coder_a} \\ {r.coder_b}")
        for label in r.confusion["labels"]:
            table.add_column(label, justify="right")
        for label, counts in zip(r.confusion["labels"], r.confusion["counts"]):
            table.add_row(label, *(str(n) for n in counts))
        out.print(table)
    out.print(f"{len(report.disagreements)} disagreements", highlight=False)
    if report.disagreements:
        from ..dataset.common import clock

        print_table(["recording", "seq", "at", "speaker", "dimension", *report.coders, "text"],
                    [(d.recording, d.seq, clock(d.start_s, hours=False), d.speaker, d.dimension,
                      *(d.codes[c] or "-" for c in report.coders), _clip(d.text))
                     for d in report.disagreements])  # fmt: skip


def _clip(text: str | None, size: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= size else text[: size - 1] + "…"


@coding_app.command("review")
def coding_review(
    recording: Annotated[Optional[str], typer.Option("--recording", help="Only this recording.")] = None,
    resolve: Annotated[Optional[str], typer.Option("--resolve", metavar="ITEM", help="Record a verdict on this item (its id, or a unique start of it) with --as.")] = None,
    outcome: Annotated[Optional[str], typer.Option("--as", help="With --resolve: placed (done by hand where it belongs) or dismissed (not wanted any more).")] = None,
    reopen: Annotated[Optional[str], typer.Option("--reopen", metavar="ITEM", help="Put a resolved item back on the list.")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Why, kept with the verdict.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who decided (kept with the verdict).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Resolved items too, with their verdict.")] = False,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """List the codings, speaker assignments, corrections and moves a re-ingest could not carry
    over; record what was done about each, so the list shrinks (verdicts are kept, never deleted).

    Examples:

      emessi coding review --recording G1_S3_vertaismentorointi

      emessi coding review --resolve 3f2a9c --as placed --note "coded again by hand" --by anna
    """
    from ..dataset.carry import REOPENED, carried_for_review, resolve_carried
    from ..dataset.common import resolve_recording

    if resolve and reopen:
        fail("give --resolve or --reopen, not both")
    if resolve or reopen:
        if resolve and not outcome:
            fail("--resolve needs --as placed|dismissed")
        with dataset(db, write=True) as con:
            _, kind, item = resolve_carried(con, resolve or reopen, outcome if resolve else REOPENED, note, by)
        out.print(f"{kind} {item}: " + (f"resolved as {outcome}" if resolve else "back on the list"), highlight=False)
        return
    with dataset(db) as con:
        rid = resolve_recording(con, recording).recording_id if recording else None
        items = carried_for_review(con, rid, resolved=everything)
    if as_json:
        print(json.dumps(items, default=str, ensure_ascii=False))
        return
    columns = ["kind", "item_id", "old_target", "reason", "candidates", *(["resolution"] if everything else [])]
    print_table(columns, [tuple(i[c] for c in columns) for i in items])


# ---------------------------------------------------------------- export


@export_app.command("table")
def export_table(
    name: Annotated[str, typer.Argument(help="Table or view, e.g. talk_per_participant, current_codings.")],
    target: Annotated[Path, typer.Argument(help="Output .parquet, .csv or .xlsx.")],
    with_names: WithNames = False,
    delimiter: Delimiter = "auto",
    with_voiceprints: Annotated[bool, typer.Option("--with-voiceprints", help="Allow exporting the voiceprints table (biometric personal data).")] = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Write any table or view to Parquet, CSV or XLSX (for R, SPSS, pandas, Excel).

    Columns with participants' names (participant_name; name of `participants`) are left out
    unless --with-names; the voiceprints table is refused unless --with-voiceprints. CSV is
    UTF-8 with a byte-order mark (Excel shows ä and ö).

    Examples:

      emessi export table turn_transitions transitions.csv

      emessi export table talk_per_participant talk.xlsx
    """
    from ..dataset.exports.table import export_relation
    from ..dataset.sheets import resolve_delimiter

    with dataset(db) as con:
        rows = export_relation(con, name, target, with_names, resolve_delimiter(delimiter), with_voiceprints)
    out.print(f"{rows} rows → {target}", highlight=False)


@export_app.command("transcript")
def export_transcript(
    recording: Annotated[Optional[str], typer.Argument(help="Recording name or id (default: every recording).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, docx (Word), srt, vtt, eaf (ELAN), or all.")] = "md",
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("transcripts"),
    coder: Annotated[Optional[list[str]], typer.Option("--coder", help="Show this coder's codes beside the turns (md, docx; repeatable).")] = None,
    with_names: WithNames = False,
    db: Db = DEFAULT_DB,
) -> None:
    """Write transcripts with speakers, roles and times (Markdown, Word), subtitles (SRT, WebVTT) or ELAN .eaf.

    Speakers are pseudonymous participant ids (or diarisation labels); names only with --with-names.
    With --coder, Markdown and Word show that coder's codes beside each turn (Word: a column per coder).

    Examples:

      emessi export transcript G1_S3_vertaismentorointi --format all --out transcripts/

      emessi export transcript G1_S3_vertaismentorointi --format docx --coder anna --coder ben
    """
    from ..dataset.common import DatasetError, all_recordings
    from ..dataset.exports.transcripts import FORMATS, write_transcript

    known = (*FORMATS, "docx", "eaf")
    formats = list(known) if fmt == "all" else [fmt]
    with dataset(db) as con:
        if any(f not in known for f in formats):
            raise DatasetError(f"--format {fmt}: use md, docx, srt, vtt, eaf or all")
        recs = [recording] if recording else [r.recording_id for r in all_recordings(con)]
        written = [write_transcript(con, r, f, out_dir, with_names, coder) for r in recs for f in formats]
    out.print("\n".join(str(w) for w in written), highlight=False, soft_wrap=True)  # one path a line, never folded


@export_app.command("coded")
def export_coded_command(
    target: Annotated[Path, typer.Argument(help="Output .xlsx, .csv, .parquet or .sav (SPSS).")],
    coder: Annotated[Optional[list[str]], typer.Option("--coder", help="Only these coders (repeatable; default: every coder).")] = None,
    recording: Annotated[Optional[list[str]], typer.Option("--recording", help="Only these recordings (repeatable).")] = None,
    with_names: WithNames = False,
    delimiter: Delimiter = "auto",
    db: Db = DEFAULT_DB,
) -> None:
    """Write the coded dataset wide: one row per observation, a column per dimension × coder.

    Each row has the observation's recording, group, session, times, speaker label, participant
    (pseudonymous id) and role. A dimension with several codes per observation also gets a 0/1
    column per code. Variable labels come from the codebook (SPSS: variable and value labels;
    XLSX: a `variables` and a `codes` tab; Parquet: field metadata). Details: docs/coding.md.

    Examples:

      emessi export coded coded.sav

      emessi export coded coded.csv --coder anna --coder ben --delimiter ';'
    """
    from ..dataset.exports.wide import export_coded
    from ..dataset.sheets import resolve_delimiter

    with dataset(db) as con:
        summary = export_coded(con, target, coder, recording, with_names, resolve_delimiter(delimiter))
    out.print(f"{summary.rows} observations, {summary.columns} columns ({len(summary.coders)} coder(s): "
              f"{', '.join(summary.coders) or 'none'}) → {target}", highlight=False, soft_wrap=True)  # fmt: skip


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
