"""Any table or view to Parquet or CSV, fetched from the reader as Arrow and written here.

The reader cannot write files (external access is off, see ``connection.READER_CONFIG``), so
DuckDB's ``COPY … TO`` is not available to it; Arrow keeps the column types exactly for Parquet.
CSV text cells that a spreadsheet would run as formulas get a leading ``'`` (``cells``); Parquet
keeps every value as it is, so analyses in R or pandas read the Parquet file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..cells import csv_safe_frame
from ..common import DatasetError

FORMATS = (".parquet", ".csv")


def relations(con) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


# Columns that hold participants' names: left out of a file unless the caller asks for names.
NAME_COLUMNS = {"participant_name"}
NAME_COLUMNS_OF = {"participants": {"name"}}


def export_relation(con, name: str, out: Path, with_names: bool = False) -> int:
    """Write table or view *name* to *out* (.parquet or .csv); returns the number of rows.

    Without *with_names* the columns holding participants' names are left out (the pseudonymous
    `participant_id` and the role stay)."""
    import pyarrow.parquet as pq

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise DatasetError(f"{out}: write .parquet or .csv")
    known = relations(con)
    if name not in known:
        raise DatasetError(f"no table or view {name!r}; there are: {', '.join(known)}")
    columns = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
    hidden = set() if with_names else (NAME_COLUMNS | NAME_COLUMNS_OF.get(name, set())) & set(columns)
    kept = ", ".join(f'"{c}"' for c in columns if c not in hidden)
    relation = con.sql(f'SELECT {kept} FROM "{name}"')
    table = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")  # a failed write leaves no half file under the name
    try:
        if suffix == ".parquet":
            pq.write_table(table, partial)
        else:
            csv_safe_frame(table.to_pandas()).to_csv(partial, index=False, encoding="utf-8")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return table.num_rows
