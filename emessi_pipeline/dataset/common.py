"""Shared pieces of the coded-dataset modules: errors that list every problem, recording look-up."""

from __future__ import annotations

import datetime as dt
import difflib
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from ..stages.audio import OUTPUT_MARKER, mark_as_output


def arrow_column(values, kind):
    """*values* (a list) as an Arrow array of type *kind*, for a bulk insert. Arrow infers the
    type and casts: given the type up front, pyarrow 26 converts floats one at a time (70× slower)."""
    import pyarrow as pa  # not for every command: only loads build columns

    array = pa.array(values)
    return array if array.type == kind else array.cast(kind)


# Columns of records kept while a load runs (see kept_word_columns), by the id of the records' tuple.
_KEPT_WORDS: dict[int, tuple] = {}


@contextmanager
def kept_word_columns(*sequences):
    """While the block runs, `word_column` takes each field of the records in each of *sequences*
    (a set's words, its observations) from the record objects once and hands the same list to
    every caller: the load's columns and the review rules read the same few fields of a set's
    ~10,000 words and ~1,000 observations. Only for a tuple (immutable); nothing is kept after."""
    kept = []
    for records in sequences:
        if isinstance(records, tuple) and id(records) not in _KEPT_WORDS:
            _KEPT_WORDS[id(records)] = (records, [], {})  # the tuple itself, so its id stays its own
            kept.append(records)
    try:
        yield
    finally:
        for records in kept:
            del _KEPT_WORDS[id(records)]


def word_column(words, field: str) -> list:
    """*field* of every word (or other record), as a list (not to be changed: it may be shared,
    see kept_word_columns)."""
    kept = _KEPT_WORDS.get(id(words))
    if kept is None or kept[0] is not words:
        return list(map(attrgetter(field), words))
    _, rows, columns = kept
    if field not in columns:
        if not rows:
            # The fields of a pydantic record are its __dict__: a dict look-up per word is about
            # half the cost of an attribute look-up (BaseModel's __getattr__ keeps Python from
            # specialising attribute access on these classes).
            rows.extend(map(vars, words))
        columns[field] = [row[field] for row in rows]
    return columns[field]


def index_column(count: int):
    """0 … count-1 as an Arrow int32 column: from numpy, since Arrow converts a Python range
    one integer at a time (6 ms for a recording's 10,000 words)."""
    import numpy as np
    import pyarrow as pa

    return pa.array(np.arange(count, dtype=np.int32))


def insert_columns(con, table: str, set_id: str, rid: str, columns: dict) -> None:
    """One bulk insert of a set's rows of *table*, from Arrow columns (DuckDB reads them without
    copying; a pandas frame of Python objects cost a third of the load). The set and recording
    ids, the same on every row, come in as parameters rather than a column each.

    *con* must be the DuckDB connection itself: DuckDB finds the local `emessi_rows` by name in
    the frame that calls execute (a replacement scan); registering and unregistering a view
    instead costs two catalog changes per table, about 3 ms a recording."""
    import pyarrow as pa

    emessi_rows = pa.table(columns)
    if not len(emessi_rows):
        return
    con.execute(f"INSERT INTO {table} BY NAME SELECT ?::VARCHAR AS set_id, ?::VARCHAR AS recording_id, * "
                "FROM emessi_rows", [set_id, rid])  # fmt: skip


class DatasetError(ValueError):
    """Bad input for the dataset; *problems* lists every one found (nothing was written)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        head = super().__str__()
        return head + "".join(f"\n  {p}" for p in self.problems)


@dataclass(frozen=True)
class Recording:
    """*name* is the file stem, made unique (see ``_NAMED``): exports name their files by it."""

    recording_id: str
    name: str
    path: str
    set_id: str
    group_id: str | None
    session_no: int | None
    video_streams: int | None


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> dt.datetime:
    """The time to store: timezone-aware UTC, so rows written on machines in other zones (or
    across a change to summer time) order and compare correctly."""
    return dt.datetime.now(dt.timezone.utc)


# Two folders may hold the same file name (G1/S1.mp4, G2/S1.mp4), and exports, transcripts and
# listening samples are files named after the recording: the first loaded keeps its plain name,
# so a single folder's names (and exports written before a second S1 came) never change, and each
# later one is NAME_<first 8 of its id>. A recording no longer current gives way to a current one.
_NAMED = """
    WITH named AS (
        SELECT *, CASE WHEN row_number() OVER (PARTITION BY name
                            ORDER BY (current_set_id IS NULL OR replaced_by IS NOT NULL), first_loaded_at,
                                     recording_id) = 1
                       THEN name ELSE name || '_' || left(recording_id, 8) END AS unique_name
        FROM recordings)
    SELECT recording_id, unique_name, path, current_set_id, group_id, session_no, video_streams, name,
           replaced_by IS NOT NULL AS replaced
    FROM named"""


def resolve_recording(con, ref: str) -> Recording:
    """A recording by its id, its unique name, or its name (file stem) when no other recording has
    that name; else by the start of a name or id (case-insensitive) when only one recording's
    begins so. Every command that takes a recording goes through here, so all accept the same;
    a reference that matches nothing is answered with the nearest names ("did you mean")."""
    ref = ref.strip()
    rows = con.execute(
        f"{_NAMED} WHERE recording_id = ? OR name = ? OR unique_name = ? "
        "OR starts_with(lower(recording_id), lower(?)) OR starts_with(lower(unique_name), lower(?)) "
        "OR starts_with(lower(name), lower(?)) ORDER BY 1",
        [ref, ref, ref, ref, ref, ref],
    ).fetchall() if ref else []
    exact = [r for r in rows if ref in (r[0], r[1], r[7])]
    rows = exact or rows
    # A name also names the earlier versions of its file (replaced, kept): it means the current one.
    rows = [r for r in rows if r[0] == ref or not r[8]] or rows
    if not rows:
        raise DatasetError(f"no recording {ref!r}{_did_you_mean(con, ref)} (`emessi recordings` lists them)")
    if len({r[0] for r in rows}) > 1:
        raise DatasetError(f"{ref!r} names several recordings: " + ", ".join(f"{r[1]} ({r[0]}, {r[2]})" for r in rows)
                           + " (give more of the name)")  # fmt: skip
    return Recording(*rows[0][:7])


def _did_you_mean(con, ref: str) -> str:
    names = [r[0] for r in con.execute(f"SELECT unique_name FROM ({_NAMED}) WHERE NOT replaced ORDER BY 1").fetchall()]
    by_lower = {n.lower(): n for n in names}
    # The nearest whole names, and names the typed text is close to the start of (a typo in a prefix).
    close = difflib.get_close_matches(ref.lower(), list(by_lower), n=3, cutoff=0.6)
    if not close and ref:
        heads = {n.lower()[: len(ref)]: n for n in names}
        close = [heads[h].lower() for h in difflib.get_close_matches(ref.lower(), list(heads), n=3, cutoff=0.6)]
    return f"; did you mean {' or '.join(by_lower[c] for c in close)}?" if close else ""


def all_recordings(con) -> list[Recording]:
    rows = con.execute(
        f"{_NAMED} WHERE current_set_id IS NOT NULL AND replaced_by IS NULL ORDER BY group_id, session_no, unique_name"
    ).fetchall()
    return [Recording(*r[:7]) for r in rows]


def output_folder(folder: Path, kind: str) -> Path:
    """Create *folder* for exported files and mark it as emessi's output, so that `emessi ingest`
    over a folder holding it never takes a listening sample for a recording. Only a new or empty
    folder (or one marked before) is marked: a folder that holds other files may be the recordings
    folder itself, which a marker would hide from ingest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not any(p.name != OUTPUT_MARKER for p in folder.iterdir()):
        mark_as_output(folder, kind)
    return folder


def clock(seconds: float, sep: str = ".", hours: bool = True) -> str:
    """00:01:02.345 (sep ',' for SRT)."""
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return (f"{h:02d}:" if hours else "") + f"{m:02d}:{s:02d}{sep}{ms:03d}"


def resolve_observation(con, ref: str) -> tuple[str, str, int, str]:
    """An observation by its id or a unique start of it (any set, current or not):
    (observation_id, recording name, seq, set_id)."""
    ref = (ref or "").strip()
    rows = con.execute(
        "SELECT o.observation_id, r.name, o.seq, o.set_id FROM observations o JOIN recordings r USING (recording_id) "
        "WHERE o.observation_id = ? OR (length(?) >= 4 AND starts_with(o.observation_id, ?)) ORDER BY 1 LIMIT 3",
        [ref, ref, ref],
    ).fetchall()
    exact = [r for r in rows if r[0] == ref]
    rows = exact or rows
    if not rows:
        raise DatasetError(f"no observation {ref!r} (its id is in the coding sheet's observation_id column, "
                           "in `emessi review --json` and in the utterances view)")  # fmt: skip
    if len(rows) > 1:
        raise DatasetError(f"{ref!r} starts several observation ids ({', '.join(r[0] for r in rows[:2])}, …): give more of it")
    return rows[0]
