"""Coding without special software: a sheet (CSV or XLSX) out, the filled sheet back in.

Import checks every row before writing anything and then writes all rows in one transaction.
A codings row is (observation, coder, dimension, code); the same sheet imported twice finds
every coding already there and changes nothing; two coders' codings live side by side.
A non-empty cell is the coder's whole answer for that dimension: codes no longer in it are
superseded (kept, with `superseded_at`), never deleted. An empty cell leaves codings alone;
a cell holding only `-` clears the dimension on purpose (its codings superseded, none added).
Each import is one batch (batches.py), so it can be reverted (undo.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .archives import check_archive
from .batches import record_carried, record_items, set_counts, start_batch
from .cells import append_text_row, from_csv_cell
from .codebook import MULTI_SEPARATOR, ActiveCodebook, load_active
from .coders import add_coder, find_coder, require_coder
from .connection import transaction
from .common import DatasetError, clock, new_id, now, resolve_recording
from .sheets import read_csv, write_csv

FIXED_COLUMNS = ["observation_id", "recording", "group", "session", "seq", "start", "start_s", "end_s",
                 "speaker_label", "participant", "role", "text"]  # fmt: skip
CORRECTION_COLUMN = "corrected_text"
# The XLSX codebook tab names the sheet's coder on a line of its own (see _write_xlsx).
CODER_NOTE = re.compile(r"^coder: (.*?); several codes in one cell")
# A CSV has no place for it; the name export gives it (coding-NAME.csv) is the hint.
DEFAULT_SHEET_NAME = re.compile(r"^coding-(.+)$")
# A cell holding only this clears the dimension for the coder: a spreadsheet cannot tell an empty
# cell left alone from one emptied on purpose, so "no code" needs a mark of its own.
CLEAR_MARK = "-"


@dataclass(frozen=True)
class SheetRow:
    line: int
    values: dict[str, str]


@dataclass
class CodingChange:
    """What one import would do, checked before anything is written."""

    add: list[tuple[str, str, str, str]] = field(default_factory=list)  # observation, coder, dimension, code
    supersede: list[str] = field(default_factory=list)  # coding ids
    corrections: list[tuple[str, str]] = field(default_factory=list)  # observation, text
    unchanged: int = 0
    cleared: int = 0  # cells the coder emptied on purpose (some may have held nothing already)


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    added: int
    superseded: int
    unchanged: int
    corrections: int
    carried: int = 0
    for_review: int = 0
    coder: str = ""
    new_coder: bool = False
    cleared: int = 0
    batch: int | None = None


# ---------------------------------------------------------------- export


def sheet_frame(con, coder: str, recording: str | None = None, with_names: bool = False):
    """The coding sheet as a DataFrame: one row per current observation, one column per dimension,
    pre-filled with this coder's codings so far. The participant column holds the pseudonymous id
    (the name instead only with *with_names*: sheets go to coders outside the project)."""
    book = load_active(con)
    if book.version is None:
        raise DatasetError("no codebook yet: run `emessi codebook import FILE` first")
    where, params = "", []
    if recording:
        where, params = "WHERE recording_id = ?", [resolve_recording(con, recording).recording_id]
    frame = con.execute(
        f"""SELECT observation_id, recording_name AS recording, group_id AS "group",
                   session_no AS session, seq, start_s, end_s, speaker_label,
                   coalesce(CASE WHEN ? THEN participant_name END, participant_id, '') AS participant,
                   role, text
            FROM utterances {where} ORDER BY group_id, session_no, recording_name, seq""",
        [with_names, *params],
    ).df()
    frame.insert(frame.columns.get_loc("start_s"), "start", [clock(s, hours=True)[:-2] for s in frame["start_s"]])
    existing = defaultdict(list)
    for obs, dim, code in con.execute(
        "SELECT observation_id, dimension, code FROM codings WHERE coder = ? AND superseded_at IS NULL ORDER BY code",
        [coder],
    ).fetchall():
        existing[(obs, dim)].append(code)
    for dim in book.dimensions:
        frame[dim] = [MULTI_SEPARATOR.join(existing.get((o, dim), [])) for o in frame["observation_id"]]
    frame[CORRECTION_COLUMN] = ""
    return frame


def export_sheet(con, coder: str, out: Path, recording: str | None = None, with_names: bool = False,
                 delimiter: str = ",") -> Path:
    """Write the sheet as CSV or XLSX (by *out*'s suffix); XLSX gets a codebook tab and drop-downs.
    No text becomes a formula (``cells``): transcripts and corrections are data from outside.
    The CSV is written for spreadsheets (``sheets.write_csv``: a UTF-8 mark, *delimiter*)."""
    frame = sheet_frame(con, coder, recording, with_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".xlsx":
        _write_xlsx(con, frame, out, coder)
    else:
        write_csv(frame, out, delimiter)
    return out


def _write_xlsx(con, frame, out: Path, coder: str) -> None:
    from openpyxl import Workbook
    from openpyxl.worksheet.datavalidation import DataValidation

    book = load_active(con)
    wb = Workbook()
    sheet = wb.active
    sheet.title = "coding"
    append_text_row(sheet, list(frame.columns))
    for row in frame.itertuples(index=False):
        # A recording without group or session gives None, NaN or pandas' NA (which has no truth value).
        append_text_row(sheet, [None if _missing(v) else v for v in row])
    sheet.freeze_panes = "B2"
    codes_tab = wb.create_sheet("codebook")
    append_text_row(codes_tab, ["dimension", "code", "label", "description", "retired", "several allowed"])
    rows = con.execute(
        "SELECT c.dimension, c.code, c.label, c.description, c.retired, d.multiple FROM codebook_codes c "
        "JOIN codebook_dimensions d USING (dimension) ORDER BY d.position, c.retired, c.position"
    ).fetchall()
    for r in rows:
        append_text_row(codes_tab, list(r))
    codes_tab.append([])
    append_text_row(codes_tab, [f"coder: {coder}; several codes in one cell: separate with '{MULTI_SEPARATOR}'"])
    # Drop-downs only where one code is allowed: a list validation would reject "a;b".
    columns = list(frame.columns)
    for dim, multiple in book.dimensions.items():
        active = [c for c, retired in book.codes.get(dim, {}).items() if not retired]
        if multiple or not active or len(",".join(active)) > 250:
            continue
        letter = sheet.cell(row=1, column=columns.index(dim) + 1).column_letter
        rule = DataValidation(type="list", formula1='"' + ",".join(active) + '"', allow_blank=True)
        rule.add(f"{letter}2:{letter}{len(frame) + 1}")
        sheet.add_data_validation(rule)
    wb.save(out)


# ---------------------------------------------------------------- import


def _missing(value) -> bool:
    from pandas import isna
    from pandas.api.types import is_scalar

    return value is None or (is_scalar(value) and bool(isna(value)))


def read_sheet(path: Path) -> tuple[list[str], list[SheetRow]]:
    """Header and rows with the line (CSV) or row (XLSX) number a person sees in their editor."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if path.suffix.lower() == ".xlsx":
        return _read_xlsx(path)
    header, rows = read_csv(path)  # ',' or ';', UTF-8 (with or without the mark) or Windows-1252
    for line, cells in rows:
        if len(cells) > len(header):
            raise DatasetError(f"{path}: line {line}: {len(cells)} cells but the header has {len(header)}")
    rows = [SheetRow(line, dict(zip(header, (from_csv_cell(c.strip()) for c in cells)))) for line, cells in rows]
    return header, rows


def _read_xlsx(path: Path) -> tuple[list[str], list[SheetRow]]:
    from openpyxl import load_workbook

    check_archive(path, "sheet (.xlsx)")
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises several unrelated types for a bad file
        raise DatasetError(f"{path}: not a readable XLSX sheet: {error}") from None
    sheet = wb["coding"] if "coding" in wb.sheetnames else wb.worksheets[0]
    cells = sheet.iter_rows(values_only=True)
    header = [str(h).strip() if h is not None else "" for h in next(cells, ())]
    rows = []
    for number, values in enumerate(cells, start=2):
        text = ["" if v is None else str(v).strip() for v in values]
        if any(text):
            rows.append(SheetRow(number, dict(zip(header, text))))
    wb.close()
    return header, rows


def plan_sheet_import(con, header: list[str], rows: list[SheetRow], coder: str, label: str = "line") -> CodingChange:
    """Check every row; raise DatasetError listing all bad rows, or return what would change."""
    book = load_active(con)
    problems = _header_problems(header, book, coder, label)
    if problems:
        raise DatasetError("nothing imported: the sheet does not fit the codebook", problems)
    dims = [h for h in header if h in book.dimensions]
    retired_dims = [h for h in header if h in book.retired_dimensions]
    ids = [r.values.get("observation_id", "") for r in rows]
    known = _observation_texts(con, [i for i in ids if i])
    wanted: dict[tuple[str, str], set[str]] = {}
    corrections, seen = [], {}
    for row in rows:
        obs = row.values.get("observation_id", "")
        where = f"{label} {row.line}"
        if not obs:
            problems.append(f"{where}: no observation_id")
            continue
        if obs not in known:
            problems.append(f"{where}: unknown observation {obs!r}")
            continue
        if obs in seen:
            problems.append(f"{where}: observation {obs} is also on {label} {seen[obs]}")
            continue
        seen[obs] = row.line
        for dim in retired_dims:
            if row.values.get(dim):
                problems.append(f"{where}: dimension {dim!r} is retired in the codebook")
        for dim in dims:
            if row.values.get(dim, "").strip() == CLEAR_MARK:
                wanted[(obs, dim)] = set()
                continue
            codes, errors = parse_cell(row.values.get(dim, ""), dim, book)
            problems += [f"{where}: {e}" for e in errors]
            if codes and not errors:
                wanted[(obs, dim)] = codes
        corrected = row.values.get(CORRECTION_COLUMN, "")
        if corrected and corrected != known[obs]:
            corrections.append((obs, corrected))
    if problems:
        raise DatasetError(f"nothing imported: {len(problems)} problem(s)", problems)
    return plan_change(con, coder, wanted, corrections)


def _header_problems(header: list[str], book: ActiveCodebook, coder: str, label: str = "line") -> list[str]:
    problems = []
    if not coder or not coder.strip():
        problems.append("give the coder's name (--coder NAME)")
    if book.version is None:
        problems.append("no codebook yet: run `emessi codebook import FILE` first")
        return problems
    if "observation_id" not in header:
        problems.append(f"{label} 1: no 'observation_id' column (export a sheet with `emessi coding export`)")
    known = set(FIXED_COLUMNS) | {CORRECTION_COLUMN} | set(book.dimensions) | book.retired_dimensions
    unknown = [h for h in header if h and h not in known]
    if unknown:
        problems.append(f"{label} 1: column(s) {', '.join(unknown)} are not dimensions of the codebook "
                        f"(it has {', '.join(book.dimensions)}): a sheet for another codebook?")  # fmt: skip
    if not any(h in book.dimensions for h in header):
        problems.append(f"{label} 1: no dimension column (expected one of {', '.join(book.dimensions)})")
    return problems


def parse_cell(cell: str, dim: str, book: ActiveCodebook) -> tuple[set[str], list[str]]:
    cell = unicodedata.normalize("NFC", cell)  # 'työaika' typed on a Mac may arrive decomposed
    codes = {c.strip() for c in cell.replace(",", MULTI_SEPARATOR).split(MULTI_SEPARATOR) if c.strip()}
    errors = []
    if CLEAR_MARK in codes:
        errors.append(f"{dim}: '{CLEAR_MARK}' clears the dimension and stands alone in its cell")
        codes.discard(CLEAR_MARK)
    allowed = book.codes.get(dim, {})
    for code in sorted(codes):
        if code not in allowed:
            active = [c for c, retired in allowed.items() if not retired]
            errors.append(f"{dim}: unknown code {code!r} (codes: {', '.join(active)})")
        elif allowed[code]:
            errors.append(f"{dim}: code {code!r} is retired in the codebook")
    if len(codes) > 1 and not book.dimensions.get(dim, False):
        errors.append(f"{dim}: {len(codes)} codes ({', '.join(sorted(codes))}) but the dimension allows one")
    return codes, errors


def _observation_texts(con, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = con.execute(
        """SELECT o.observation_id, coalesce(c.text, o.text) FROM observations o
           LEFT JOIN text_corrections c ON o.observation_id = c.observation_id AND c.superseded_at IS NULL
           WHERE list_contains(?, o.observation_id)""",
        [sorted(set(ids))],
    ).fetchall()
    return dict(rows)


def plan_change(con, coder: str, wanted: dict[tuple[str, str], set[str]], corrections) -> CodingChange:
    """What writing *wanted* (codes per observation and dimension) for *coder* would add,
    supersede and leave unchanged against the codings in force; *apply_change* writes it."""
    change = CodingChange(corrections=corrections)
    change.cleared = sum(1 for codes in wanted.values() if not codes)
    existing: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for coding_id, obs, dim, code in con.execute(
        "SELECT coding_id, observation_id, dimension, code FROM codings WHERE coder = ? AND superseded_at IS NULL",
        [coder],
    ).fetchall():
        existing[(obs, dim)][code] = coding_id
    for (obs, dim), codes in wanted.items():
        have = existing.get((obs, dim), {})
        change.add += [(obs, coder, dim, c) for c in sorted(codes - set(have))]
        change.supersede += [cid for c, cid in have.items() if c not in codes]
        change.unchanged += len(codes & set(have))
    return change


def apply_change(con, change: CodingChange, source: str, corrector: str, batch: int | None = None,
                 carry: bool = True) -> tuple[int, int]:  # fmt: skip
    """Write a checked change (caller holds the transaction) as part of *batch* (a new import
    batch when None). Returns (carried, for review). *carry*: bring rows written on a set that is
    no longer current to the current one (a revert writes every cell itself and says False)."""
    from .carry import carry_to_current

    if batch is None:
        batch = start_batch(con, "import", corrector, source)
    stamp, version = now(), load_active(con).version
    # Every coder with codings is in the registry (a QDA project's users come in here).
    for coder in sorted({c for _, c, _, _ in change.add}):
        add_coder(con, coder, source)
    if change.supersede:
        con.execute("UPDATE codings SET superseded_at = ? WHERE list_contains(?, coding_id)", [stamp, change.supersede])
    added = []
    for obs, coder, dim, code in change.add:
        coding_id = new_id()
        added.append(coding_id)
        con.execute(
            "INSERT INTO codings VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            [coding_id, obs, coder, dim, code, version, source, stamp],
        )
    correction_ids, replaced_corrections = [], []
    for obs, text in change.corrections:
        replaced_corrections += [r[0] for r in con.execute(
            "SELECT correction_id FROM text_corrections WHERE observation_id = ? AND superseded_at IS NULL", [obs]
        ).fetchall()]  # fmt: skip
        con.execute(
            "UPDATE text_corrections SET superseded_at = ? WHERE observation_id = ? AND superseded_at IS NULL",
            [stamp, obs],
        )
        correction_ids.append(new_id())
        con.execute("INSERT INTO text_corrections VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                    [correction_ids[-1], obs, corrector, text, stamp])  # fmt: skip
    record_items(con, batch, "coding", "added", added)
    record_items(con, batch, "coding", "superseded", change.supersede)
    record_items(con, batch, "correction", "added", correction_ids)
    record_items(con, batch, "correction", "superseded", replaced_corrections)
    if not carry:
        return 0, 0
    # A sheet exported before a re-ingest codes the old set: bring that work to the current set.
    outcome = carry_to_current(con, added, correction_ids)
    record_carried(con, batch, added, correction_ids)
    return outcome


def sheet_coder(path: Path) -> tuple[str | None, str]:
    """Whom the sheet was exported for, and how that is known: the note on an XLSX's codebook
    tab, or a CSV's name as export gives it (coding-NAME.csv); (None, "") when it does not say."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            if "codebook" not in wb.sheetnames:
                return None, ""
            for (first, *_) in wb["codebook"].iter_rows(values_only=True):
                found = CODER_NOTE.match(str(first or ""))
                if found:
                    return found.group(1), "its codebook tab says so"
        finally:
            wb.close()
        return None, ""
    found = DEFAULT_SHEET_NAME.match(path.stem)
    return (found.group(1), "its file name says so") if found else (None, "")


def check_sheet_coder(con, path: Path, coder: str, sheet_of: str | None) -> None:
    """Refuse a sheet made for another coder unless *sheet_of* names that coder: importing it
    would put one coder's answers under another's name (and agreement would be 100 %)."""
    made_for, how = sheet_coder(path)
    if made_for is None:
        return
    if path.suffix.lower() != ".xlsx" and find_coder(con, made_for) is None:
        return  # a file name is only a hint: it speaks for a coder the registry knows, no one else
    same = made_for.strip().lower()
    if same == coder.lower() or (sheet_of is not None and sheet_of.strip().lower() == same):
        return
    if sheet_of is not None:
        raise DatasetError(f"{path.name} is {made_for}'s sheet ({how}), not {sheet_of.strip()}'s: nothing imported")
    raise DatasetError(
        f"{path.name} was exported for coder {made_for} ({how}), not {coder}: nothing imported. "
        f"Import it with --coder {made_for}, or, to import {made_for}'s sheet as {coder}'s codings on purpose, "
        f"add --sheet-coder {made_for}"
    )


def import_sheet(con, path: Path, coder: str, sheet_of: str | None = None, new_coder: bool = False) -> ImportSummary:
    """Validate the whole sheet, then write all of it in one transaction (or nothing).

    *coder* must be registered (matched case-insensitively) unless *new_coder*; a sheet exported
    for another coder is refused unless *sheet_of* names that coder."""
    header, rows = read_sheet(path)
    if not rows:
        raise DatasetError(f"{path}: no rows")
    coder, to_register = require_coder(con, coder, new_coder)
    check_sheet_coder(con, path, coder, sheet_of)
    label = "row" if path.suffix.lower() == ".xlsx" else "line"
    change = plan_sheet_import(con, header, rows, coder, label)
    with transaction(con):
        if to_register:
            add_coder(con, coder, f"sheet:{path.name}")
        batch = start_batch(con, "import", coder, f"sheet:{path.name}", path)
        carried, review = apply_change(con, change, f"sheet:{path.name}", coder, batch)
        summary = ImportSummary(len(rows), len(change.add), len(change.supersede), change.unchanged,
                                len(change.corrections), carried, review, coder=coder, new_coder=to_register,
                                cleared=change.cleared, batch=batch)  # fmt: skip
        set_counts(con, batch, summary_counts(summary))
    return summary


def summary_counts(summary: ImportSummary) -> dict:
    return {k: getattr(summary, k) for k in ("rows", "added", "superseded", "unchanged", "corrections", "cleared")}
