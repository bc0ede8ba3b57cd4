"""The coded dataset in one wide table: one row per current observation, its speaker, participant,
role, group, session and times, and a column per dimension × coder, for SPSS, R, Stata and Excel.

A dimension that allows one code gets one column per coder holding the code id (in SPSS: the
code's number in the codebook, with the codebook's labels as value labels). A dimension that
allows several gets that column with the ids separated by ``;`` and also one 0/1 column per code
(SPSS's "multiple dichotomy" set): 1 the coder gave the code, 0 the coder coded the dimension
but not with this code, empty the coder did not code the dimension on this observation.
Variable labels come from the codebook's labels; XLSX carries them on a `variables` tab and
Parquet in each field's metadata (``label``).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..codebook import MULTI_SEPARATOR
from ..common import DatasetError, resolve_recording
from ..sheets import write_csv, write_xlsx

FORMATS = (".xlsx", ".csv", ".parquet", ".sav")

FIXED = [  # column, label, SQL over `utterances`
    ("observation_id", "Observation id", "observation_id"),
    ("recording", "Recording (file name)", "recording_name"),
    ("recording_id", "Recording id", "recording_id"),
    ("group", "Group", "group_id"),
    ("session", "Session number", "session_no"),
    ("session_date", "Session date", "session_date"),
    ("seq", "Observation number in the recording", "seq"),
    ("start_s", "Start (seconds from the recording's start)", "start_s"),
    ("end_s", "End (seconds from the recording's start)", "end_s"),
    ("duration_s", "Duration (seconds)", "duration_s"),
    ("speaker_label", "Speaker (diarisation label)", "speaker_label"),
    ("participant", "Participant (pseudonymous id)", "participant_id"),
    ("role", "Role of the speaker", "role"),
    ("text", "Text (corrected where corrected)", "text"),
]
NAME = ("participant_name", "Participant's name", "participant_name")
INDICATOR_LABELS = {0: "not given", 1: "given"}


@dataclass
class Variable:
    """A column: its name in the file, the codebook's label, and value labels (SPSS only)."""

    name: str
    label: str
    values: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CodedSummary:
    rows: int
    columns: int
    coders: list[str]
    dimensions: list[str]


def coded_frame(con, coders: list[str] | None = None, recordings: list[str] | None = None,
                with_names: bool = False, numbered: bool = False):
    """(DataFrame, variables, coders, dimensions). *numbered*: single-code columns hold the code's
    number (1 = first in the codebook) instead of its id, as SPSS wants them."""  # fmt: skip
    import pandas as pd

    fixed = FIXED + ([NAME] if with_names else [])
    rec_ids = [resolve_recording(con, r).recording_id for r in recordings or []]
    select = ", ".join(f'{sql} AS "{name}"' for name, _, sql in fixed)
    frame = con.execute(
        f"SELECT {select} FROM utterances WHERE len(?) = 0 OR list_contains(?, recording_id) "
        "ORDER BY group_id, session_no, recording_name, seq",
        [rec_ids, rec_ids],
    ).df()
    variables = [Variable(name, label) for name, label, _ in fixed]
    known = [r[0] for r in con.execute("SELECT DISTINCT coder FROM current_codings ORDER BY 1").fetchall()]
    unknown = [c for c in coders or [] if c not in known]
    if unknown:
        raise DatasetError(f"no codings by {', '.join(unknown)} (coders: {', '.join(known) or 'none yet'})")
    chosen = list(dict.fromkeys(coders)) if coders else known
    codings: dict[tuple[str, str, str], list[str]] = {}
    for obs, coder, dim, code in con.execute(
        "SELECT observation_id, coder, dimension, code FROM current_codings WHERE list_contains(?, coder)", [chosen]
    ).fetchall():
        codings.setdefault((obs, coder, dim), []).append(code)
    used = {dim for _, _, dim in codings}
    dims = con.execute(
        "SELECT dimension, label, multiple FROM codebook_dimensions WHERE NOT retired OR list_contains(?, dimension) "
        "ORDER BY retired, position", [sorted(used)]
    ).fetchall()  # fmt: skip
    codes: dict[str, list[tuple[str, str]]] = {}
    for dim, code, label in con.execute(
        "SELECT dimension, code, label FROM codebook_codes ORDER BY dimension, retired, position, code"
    ).fetchall():
        codes.setdefault(dim, []).append((code, label))
    columns = {}
    observations = list(frame["observation_id"])
    for dim, dim_label, multiple in dims:
        number = {code: i for i, (code, _) in enumerate(codes.get(dim, []), start=1)}
        for coder in chosen:
            given = [sorted(codings.get((o, coder, dim), []), key=lambda c: number.get(c, 0)) for o in observations]
            name = f"{dim}_{coder}"
            if numbered and not multiple:
                columns[name] = pd.array([number.get(g[0]) if g else None for g in given], dtype="Int64")
                variables.append(Variable(name, f"{dim_label} ({coder})", {n: label for n, (_, label) in enumerate(codes.get(dim, []), 1)}))
            else:
                columns[name] = [MULTI_SEPARATOR.join(g) if g else None for g in given]
                variables.append(Variable(name, f"{dim_label} ({coder})" + (", code ids" if multiple else "")))
            if multiple:
                for code, code_label in codes.get(dim, []):
                    column = f"{dim}_{code}_{coder}"
                    columns[column] = pd.array([(1 if code in g else 0) if g else None for g in given], dtype="Int64")
                    variables.append(Variable(column, f"{dim_label}: {code_label} ({coder})", dict(INDICATOR_LABELS)))
    if columns:
        frame = pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
    return frame, variables, chosen, [d for d, _, _ in dims]


def export_coded(con, out: Path, coders: list[str] | None = None, recordings: list[str] | None = None,
                 with_names: bool = False, delimiter: str = ",") -> CodedSummary:
    """Write the wide coded dataset to *out*: .xlsx, .csv, .parquet or .sav (by its suffix)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise DatasetError(f"{out}: write .xlsx, .csv, .parquet or .sav")
    frame, variables, chosen, dims = coded_frame(con, coders, recordings, with_names, numbered=suffix == ".sav")
    if suffix == ".csv":
        write_csv(frame, out, delimiter)
    elif suffix == ".xlsx":
        header = list(frame.columns)
        rows = list(frame.astype(object).itertuples(index=False))
        codes = con.execute(
            "SELECT dimension, code, label, retired FROM codebook_codes ORDER BY dimension, retired, position, code"
        ).fetchall()
        numbered, place = [], {}
        for dim, code, label, retired in codes:
            place[dim] = place.get(dim, 0) + 1
            numbered.append((dim, place[dim], code, label, retired))
        write_xlsx(out, [("coded", header, rows),
                         ("variables", ["column", "label"], [(v.name, v.label) for v in variables]),
                         ("codes", ["dimension", "number", "code", "label", "retired"], numbered)])  # fmt: skip
    elif suffix == ".parquet":
        _write_parquet(frame, variables, out)
    else:
        _write_sav(frame, variables, out)
    return CodedSummary(len(frame), len(frame.columns), chosen, dims)


def _write_parquet(frame, variables: list[Variable], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    labels = {v.name: v.label for v in variables}
    schema = pa.schema([f.with_metadata({"label": labels[f.name]}) for f in table.schema], metadata=table.schema.metadata)
    _replace(out, lambda partial: pq.write_table(table.cast(schema), partial))


# SPSS: a name starts with a letter, holds letters, digits, _ . $ # @, does not end in '.', is at
# most 64 bytes, is none of these words, and is unique without regard to case.
SPSS_RESERVED = {"ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"}


def spss_names(names: list[str]) -> dict[str, str]:
    """An SPSS variable name for each column name: ASCII (ä → a), valid, unique, ≤ 64 bytes."""
    result, taken = {}, set()
    for name in names:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        base = re.sub(r"[^A-Za-z0-9_]+", "_", ascii_name).strip("_") or "v"
        if not base[0].isalpha() or base.upper() in SPSS_RESERVED:
            base = "v_" + base
        base = base[:64]
        candidate, n = base, 1
        while candidate.upper() in taken:
            n += 1
            candidate = f"{base[:64 - len(str(n)) - 1]}_{n}"
        taken.add(candidate.upper())
        result[name] = candidate
    return result


def _label(text: str, limit: int = 256) -> str:
    """SPSS keeps at most *limit* bytes of a label; cut at a whole character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _write_sav(frame, variables: list[Variable], out: Path) -> None:
    import pyreadstat

    names = spss_names(list(frame.columns))
    frame = frame.rename(columns=names)
    for column in frame.columns:  # SPSS has no date-time with a zone, nor an integer type with gaps
        if str(frame[column].dtype).startswith("datetime64") and getattr(frame[column].dt, "tz", None) is not None:
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
        elif str(frame[column].dtype) == "Int64":
            frame[column] = frame[column].astype("float64")
    labels = [_label(v.label) for v in variables]
    value_labels = {names[v.name]: {n: _label(t, 120) for n, t in v.values.items()} for v in variables if v.values}
    measure = {names[v.name]: "nominal" for v in variables if v.values}
    _replace(out, lambda partial: pyreadstat.write_sav(frame, str(partial), column_labels=labels,
                                                       variable_value_labels=value_labels, variable_measure=measure))  # fmt: skip


def _replace(out: Path, write) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")  # a failed write leaves no half file under the name
    try:
        write(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
