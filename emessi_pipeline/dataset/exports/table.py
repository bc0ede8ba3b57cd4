"""Any table or view to Parquet, CSV or XLSX, fetched from the reader as Arrow and written here.

The reader cannot write files (external access is off, see ``connection.READER_CONFIG``), so
DuckDB's ``COPY … TO`` is not available to it; Arrow keeps the column types exactly for Parquet.
CSV text cells that a spreadsheet would run as formulas get a leading ``'`` (``cells``); Parquet
keeps every value as it is, so analyses in R or pandas read the Parquet file. CSV and XLSX are
written for spreadsheets (``sheets``: a UTF-8 mark, ``;`` and decimal commas where asked).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..common import DatasetError
from ..sheets import write_csv, write_xlsx

FORMATS = (".parquet", ".csv", ".xlsx")


def relations(con) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


# Biometric data (voiceprints.py): written to a file only when the caller asks for it by name.
PERSONAL_RELATIONS = {"voiceprints"}

# Columns that hold participants' names: left out of a file unless the caller asks for names.
NAME_COLUMNS = {"participant_name"}
NAME_COLUMNS_OF = {"participants": {"name"}}


def export_relation(con, name: str, out: Path, with_names: bool = False, delimiter: str = ",",
                    with_voiceprints: bool = False) -> int:  # fmt: skip
    """Write table or view *name* to *out* (.parquet, .csv or .xlsx); returns the number of rows.

    Without *with_names* the columns holding participants' names are left out (the pseudonymous
    `participant_id` and the role stay); the voiceprints are refused without *with_voiceprints*."""
    import pyarrow.parquet as pq

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise DatasetError(f"{out}: write .parquet, .csv or .xlsx")
    known = relations(con)
    if name not in known:
        raise DatasetError(f"no table or view {name!r}; there are: {', '.join(known)}")
    if name in PERSONAL_RELATIONS and not with_voiceprints:
        raise DatasetError(f"{name} holds voiceprints (biometric personal data): they leave the database only "
                           "with --with-voiceprints")  # fmt: skip
    columns = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
    hidden = set() if with_names else (NAME_COLUMNS | NAME_COLUMNS_OF.get(name, set())) & set(columns)
    kept = ", ".join(f'"{c}"' for c in columns if c not in hidden)
    relation = con.sql(f'SELECT {kept} FROM "{name}"')
    table = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
    if suffix == ".csv":
        write_csv(table.to_pandas(), out, delimiter)
    elif suffix == ".xlsx":
        write_xlsx(out, [(name, table.column_names, list(zip(*(c.to_pylist() for c in table.columns))))])
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")  # a failed write leaves no half file under the name
        try:
            pq.write_table(table, partial)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return table.num_rows
