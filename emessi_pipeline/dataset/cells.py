"""Cells that leave in a spreadsheet (coding sheets, CSV tables) stay data: a transcript line or
a corrected text that begins like a formula must not run when the sheet is opened.

Excel, LibreOffice and Google Sheets treat a cell beginning with ``=``, ``+``, ``-`` or ``@`` as a
formula, and a leading tab or carriage return lets one hide after it (CSV injection). In XLSX
such a value is written as a text cell with the quote prefix (what typing ``'`` in Excel does),
so the value itself is unchanged. CSV has no cell types, so a ``'`` is put in front, which the
spreadsheet shows and does not run; `emessi coding import` takes exactly that one ``'`` off
again, so a sheet round-trips unchanged. A text that really begins with ``'`` (or several) and
then a formula character gets one more ``'`` by the same rule, so no value is ever ambiguous.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _risky(text: str) -> bool:
    return text.lstrip(QUOTE).startswith(FORMULA_START)


def to_csv_cell(value):
    """*value*, with a ``'`` in front when a spreadsheet would read it as a formula."""
    return QUOTE + value if isinstance(value, str) and _risky(value) else value


def from_csv_cell(text: str) -> str:
    """The value :func:`to_csv_cell` was given (one ``'`` before a formula character removed)."""
    return text[1:] if text.startswith(QUOTE) and _risky(text) else text


def csv_safe_frame(frame):
    """A copy of a DataFrame with every text cell passed through :func:`to_csv_cell`."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or str(frame[column].dtype).startswith("str"):
            frame[column] = frame[column].map(to_csv_cell)
    return frame


def append_text_row(sheet, values) -> None:
    """Append a row to an openpyxl sheet with every string a text cell, never a formula."""
    sheet.append(values)
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"  # openpyxl makes any string starting with '=' a formula
            if cell.value.startswith(FORMULA_START):
                cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
