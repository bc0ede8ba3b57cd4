"""CSV as spreadsheets write and read it, Finnish Excel included.

Excel opens a CSV in the encoding of the Windows code page (Windows-1252 in Finland) unless the
file starts with a UTF-8 byte-order mark, so every CSV emessi writes starts with one: without it
*työaika* shows as *tyÃ¶aika*. R (readr, data.table), pandas, DuckDB, SPSS and LibreOffice skip
the mark. Excel also splits a CSV at its *list separator*, which is ``;`` wherever the decimal
separator is a comma (Finnish, Swedish, German …): a ``,`` file opens as one column there. Such a
file is written with ``;`` and decimal commas (``12,5``), which is what Excel in those locales
writes itself and what R's ``read.csv2`` reads; ``"auto"`` picks it when this machine's locale
writes decimals with a comma (on Windows, the regional settings Excel uses too).

Reading takes what people save: UTF-8 with or without the mark, UTF-16 (Excel's "Unicode
text"), else Windows-1252 (Excel's "CSV (semicolon delimited)" on a Finnish Windows); the
delimiter is ``,``, ``;`` or tab, told by the header line (every file emessi reads has one).
"""

from __future__ import annotations

import codecs
import csv
import io
import locale
import os
import unicodedata
from pathlib import Path

from .cells import csv_safe_frame
from .common import DatasetError

DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t"}
CANDIDATES = (",", ";", "\t")


def locale_delimiter() -> str:
    """``;`` when this machine's locale (LC_NUMERIC) writes decimals with a comma, else ``,``."""
    before = locale.setlocale(locale.LC_NUMERIC)
    try:
        locale.setlocale(locale.LC_NUMERIC, "")
        decimal = locale.localeconv()["decimal_point"]
    except locale.Error:  # a locale named in the environment but not installed: the C default
        decimal = "."
    finally:
        locale.setlocale(locale.LC_NUMERIC, before)
    return ";" if decimal == "," else ","


def resolve_delimiter(choice: str | None) -> str:
    """``,``, ``;`` or a tab from ``","``, ``";"``, ``"tab"``, or ``"auto"``/None (by locale)."""
    if choice in (None, "auto"):
        return locale_delimiter()
    if choice not in DELIMITERS:
        raise DatasetError(f"--delimiter {choice!r}: use ',', ';', 'tab' or 'auto'")
    return DELIMITERS[choice]


def write_csv(frame, out: Path, delimiter: str = ",") -> Path:
    """*frame* as CSV for spreadsheets: UTF-8 with a byte-order mark, formulas neutralised
    (``cells``), decimal commas when the delimiter is ``;``. Written under a temporary name and
    moved into place, so a failed write leaves no half file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        csv_safe_frame(frame).to_csv(partial, index=False, sep=delimiter, decimal="," if delimiter == ";" else ".",
                                     encoding="utf-8-sig")  # fmt: skip
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def decode(path: Path, data: bytes) -> str:
    """The text of a CSV file in whichever encoding a spreadsheet saved it."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise DatasetError(f"{path}: not readable as UTF-16 text: {error}") from None
    try:
        text = data.decode("utf-8-sig")  # with or without the mark
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as error:
            raise DatasetError(f"{path}: neither UTF-8 nor Windows-1252 text (save it as CSV UTF-8): {error}") from None
    # macOS may hand over decomposed letters (a + ¨): one form, so 'työaika' matches 'työaika'.
    return unicodedata.normalize("NFC", text)


def sniff_delimiter(text: str) -> str:
    """The delimiter splitting the header line into most cells; when none splits it (a file of
    one column), csv.Sniffer over the first lines, limited to ``,;\\t``; else ``,``."""
    header = text.split("\n", 1)[0]
    counts = {d: len(next(csv.reader([header], delimiter=d), [])) for d in CANDIDATES}
    best = max(CANDIDATES, key=lambda d: counts[d])  # ties go to the earlier: ','
    if counts[best] > 1:
        return best
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters="".join(CANDIDATES)).delimiter
    except csv.Error:
        return ","


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (stripped) and the non-blank rows, each with the line number an editor shows.
    Raises DatasetError naming the file for a missing or unreadable one."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    text = decode(path, path.read_bytes())
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
        header = [h.strip() for h in next(reader, [])]
        rows, start = [], reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as error:
        raise DatasetError(f"{path}: not a readable CSV file: {error}") from None
    return header, rows


def read_csv_dicts(path: Path) -> list[dict[str, str]]:
    """Rows as {header: cell} (cells stripped), for the small CSV files people write by hand."""
    header, rows = read_csv(path)
    return [dict(zip(header, (c.strip() for c in cells))) for _, cells in rows]


EXCEL_MAX_ROWS = 1_048_576


def _excel_value(value):
    """A cell value openpyxl can write: no NaN, no time zone (Excel has none: UTC, as stored),
    lists and structs as their text."""
    import datetime as dt

    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, (list, tuple, dict, set)) or type(value).__module__ == "numpy" and getattr(value, "ndim", 0):
        return str(list(value) if not isinstance(value, dict) else value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def write_xlsx(out: Path, tabs: list[tuple[str, list[str], list]]) -> Path:
    """An XLSX workbook with one tab per (title, header, rows); text never becomes a formula
    (``cells``). Written under a temporary name and moved into place."""
    from openpyxl import Workbook

    from .cells import append_text_row

    out = Path(out)
    for title, _, rows in tabs:
        if len(rows) + 1 > EXCEL_MAX_ROWS:
            raise DatasetError(f"{out}: {len(rows)} rows for tab {title!r}, more than Excel's {EXCEL_MAX_ROWS - 1}: "
                               "write .parquet or .csv")  # fmt: skip
    wb = Workbook()
    wb.remove(wb.active)
    for title, header, rows in tabs:
        sheet = wb.create_sheet(title[:31])  # Excel's limit on a tab's name
        append_text_row(sheet, list(header))
        for row in rows:
            append_text_row(sheet, [_excel_value(v) for v in row])
        sheet.freeze_panes = "A2"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        wb.save(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out
