"""Any table or view to Parquet or CSV, with DuckDB's own writer (no pyarrow needed)."""

from __future__ import annotations

from pathlib import Path

from ..common import DatasetError

FORMATS = {".parquet": "(FORMAT parquet)", ".csv": "(FORMAT csv, HEADER true)"}


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
    options = FORMATS.get(out.suffix.lower())
    if options is None:
        raise DatasetError(f"{out}: write .parquet or .csv")
    known = relations(con)
    if name not in known:
        raise DatasetError(f"no table or view {name!r}; there are: {', '.join(known)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    path = str(out).replace("'", "''")
    columns = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
    hidden = set() if with_names else (NAME_COLUMNS | NAME_COLUMNS_OF.get(name, set())) & set(columns)
    exclude = f" EXCLUDE ({', '.join(chr(34) + c + chr(34) for c in sorted(hidden))})" if hidden else ""
    con.execute(f"COPY (SELECT *{exclude} FROM \"{name}\") TO '{path}' {options}")
    return con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
