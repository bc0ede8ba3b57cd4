"""Undo and history of the coding work: the batches (imports and reverts), one observation's
history, and reverting a batch.

Nothing is deleted. Reverting batch B appends a new batch that sets every cell B touched
(observation × coder × dimension, and the observation's corrected text) back to what was in force
just before B: codings B added are superseded, codings B superseded are written again as new rows.
A cell that a later batch changed again is a conflict: the revert is refused, listing them, unless
forced (then those later changes are undone too, for the cells B touched). Reverting a revert
brings the batch back.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from .batches import record_items, set_counts, start_batch
from .coding import apply_change, plan_change
from .common import DatasetError, new_id, now, resolve_observation
from .connection import transaction


@dataclass(frozen=True)
class Batch:
    batch_no: int
    kind: str
    coder: str | None
    source: str | None
    file_sha256: str | None
    made_by: str | None
    made_at: object
    reverts: int | None
    counts: dict
    reverted_by: list[int]

    def to_dict(self) -> dict:
        return asdict(self) | {"made_at": str(self.made_at)}


def list_batches(con, coder: str | None = None) -> list[Batch]:
    rows = con.execute(
        """SELECT b.batch_no, b.kind, b.coder, b.source, b.file_sha256, b.made_by, b.made_at, b.reverts, b.counts,
                  (SELECT list(r.batch_no ORDER BY r.batch_no) FROM coding_batches r WHERE r.reverts = b.batch_no)
           FROM coding_batches b WHERE ? IS NULL OR list_contains(string_split(b.coder, ','), ?)
           ORDER BY b.batch_no""",
        [coder, coder],
    ).fetchall()
    return [Batch(*r[:8], json.loads(r[8]) if r[8] else {}, r[9] or []) for r in rows]


def get_batch(con, number: int) -> Batch:
    found = [b for b in list_batches(con) if b.batch_no == number]
    if not found:
        last = con.execute("SELECT max(batch_no) FROM coding_batches").fetchone()[0]
        raise DatasetError(f"no batch {number} (" + (f"batches are 1–{last}; " if last else "no imports yet; ")
                           + "`emessi coding imports` lists them)")  # fmt: skip
    return found[0]


# ---------------------------------------------------------------- row states


@dataclass
class _Row:
    """One codings or text_corrections row, with the batches that added and superseded it."""

    item_id: str
    cell: tuple  # (observation, coder, dimension) or (observation,) for a correction
    value: str
    written_at: object
    superseded_at: object
    added_in: int | None
    superseded_in: int | None
    carried_from: str | None
    source: str | None = None

    def in_force_before(self, batch: Batch) -> bool:
        existed = self.added_in < batch.batch_no if self.added_in is not None else self.written_at < batch.made_at
        if self.superseded_in is not None:
            gone = self.superseded_in < batch.batch_no
        else:
            gone = self.superseded_at is not None and self.superseded_at < batch.made_at
        return existed and not gone


_ITEM_BATCHES = """
    (SELECT min(batch_no) FROM coding_batch_items i WHERE i.item_id = x.{key} AND i.action = 'added') AS added_in,
    (SELECT min(batch_no) FROM coding_batch_items i WHERE i.item_id = x.{key} AND i.action = 'superseded') AS superseded_in"""


def _coding_rows(con, where: str, params: list) -> list[_Row]:
    rows = con.execute(
        f"""SELECT x.coding_id, x.observation_id, x.coder, x.dimension, x.code, x.coded_at, x.superseded_at,
                   {_ITEM_BATCHES.format(key="coding_id")}, x.carried_from, x.source
            FROM codings x WHERE {where} ORDER BY x.coded_at, x.code""",
        params,
    ).fetchall()
    return [_Row(r[0], (r[1], r[2], r[3]), r[4], *r[5:]) for r in rows]


def _correction_rows(con, where: str, params: list) -> list[_Row]:
    rows = con.execute(
        f"""SELECT x.correction_id, x.observation_id, x.corrector, x.text, x.corrected_at, x.superseded_at,
                   {_ITEM_BATCHES.format(key="correction_id")}, x.carried_from
            FROM text_corrections x WHERE {where} ORDER BY x.corrected_at""",
        params,
    ).fetchall()
    return [_Row(r[0], (r[1],), r[3], *r[4:], source=r[2]) for r in rows]  # source: the corrector


# ---------------------------------------------------------------- revert


@dataclass(frozen=True)
class CellChange:
    """What a revert does to one cell: *current* codes (or corrected text) become *restored*."""

    observation_id: str
    recording: str
    seq: int
    coder: str | None  # None for a text correction
    dimension: str  # "text" for a text correction
    current: list[str]
    restored: list[str]


@dataclass
class RevertPlan:
    batch: Batch
    changes: list[CellChange] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    carried_away: int = 0  # the batch's codings that a later ingest carried to a re-processed set

    def to_dict(self) -> dict:
        return {"batch": self.batch.to_dict(), "changes": [asdict(c) for c in self.changes],
                "conflicts": self.conflicts, "carried_away": self.carried_away}  # fmt: skip


def plan_revert(con, number: int) -> RevertPlan:
    """What reverting batch *number* would change, and which cells later batches changed again."""
    batch = get_batch(con, number)
    plan = RevertPlan(batch)
    in_batch = "x.{key} IN (SELECT item_id FROM coding_batch_items WHERE batch_no = ? AND item_kind = '{kind}')"
    coding_cells = ("EXISTS (SELECT 1 FROM codings c JOIN coding_batch_items i ON c.coding_id = i.item_id "
                    "WHERE i.batch_no = ? AND i.item_kind = 'coding' AND c.observation_id = x.observation_id "
                    "AND c.coder = x.coder AND c.dimension = x.dimension)")  # fmt: skip
    text_cells = ("x.observation_id IN (SELECT c.observation_id FROM text_corrections c JOIN coding_batch_items i "
                  "ON c.correction_id = i.item_id AND i.batch_no = ? AND i.item_kind = 'correction')")  # fmt: skip
    codings, corrections = _coding_rows(con, coding_cells, [number]), _correction_rows(con, text_cells, [number])
    places = {o: (n, s) for o, n, s in con.execute(
        "SELECT o.observation_id, r.name, o.seq FROM observations o JOIN recordings r USING (recording_id) "
        "WHERE list_contains(?, o.observation_id)", [sorted({r.cell[0] for r in codings + corrections})]).fetchall()}  # fmt: skip
    sources = dict(con.execute("SELECT batch_no, coalesce(source, kind) FROM coding_batches").fetchall())
    for rows, dimension_of in ((codings, lambda cell: cell[2]), (corrections, lambda cell: "text")):
        by_cell: dict[tuple, list[_Row]] = defaultdict(list)
        for row in rows:
            by_cell[row.cell].append(row)
        for cell, cell_rows in sorted(by_cell.items()):
            name, seq = places.get(cell[0], ("?", 0))
            coder = cell[1] if len(cell) > 1 else None
            later = sorted({b for r in cell_rows for b in (r.added_in, r.superseded_in) if b is not None and b > number})
            if later:
                plan.conflicts.append(f"{name} #{seq} {(coder + ' ') if coder else ''}{dimension_of(cell)}: changed again by "
                                      + ", ".join(f"batch {b} ({sources.get(b)})" for b in later))  # fmt: skip
            current = sorted(r.value for r in cell_rows if r.superseded_at is None)
            restored = sorted(r.value for r in cell_rows if r.in_force_before(batch))
            if current != restored:
                plan.changes.append(CellChange(cell[0], name, seq, coder, dimension_of(cell), current, restored))
    plan.carried_away = con.execute(
        f"""SELECT count(*) FROM codings x WHERE x.superseded_at IS NULL
              AND x.carried_from IN (SELECT x.coding_id FROM codings x WHERE {in_batch.format(key='coding_id', kind='coding')})
              AND NOT {in_batch.format(key='coding_id', kind='coding')}""",
        [number, number],
    ).fetchone()[0]  # fmt: skip
    return plan


def revert_batch(con, number: int, force: bool = False, made_by: str | None = None,
                 dry_run: bool = False) -> tuple[RevertPlan, int | None]:  # fmt: skip
    """Revert batch *number* by appending a revert batch; returns the plan and the new batch's
    number (None for a dry run or when nothing is left to change). Refuses (DatasetError) when a
    later batch changed the same cells, unless *force*, and when a later ingest carried the batch's
    codings to a re-processed recording (those copies are not its cells)."""
    plan = plan_revert(con, number)
    if plan.carried_away:
        raise DatasetError(f"batch {number}: {plan.carried_away} of its codings were carried to a re-processed "
                           "recording by a later ingest, and a revert changes only the cells the batch wrote; "
                           "import a sheet that sets those cells instead")  # fmt: skip
    if plan.conflicts and not force:
        raise DatasetError(f"batch {number} not reverted: {len(plan.conflicts)} of its cells were changed again later "
                           "(--force reverts them anyway, undoing those later changes there)", plan.conflicts)  # fmt: skip
    if dry_run or not plan.changes:
        return plan, None
    with transaction(con):
        revert = start_batch(con, "revert", plan.batch.coder, f"revert of batch {number}", made_by=made_by, reverts=number)
        wanted: dict[str, dict[tuple[str, str], set[str]]] = defaultdict(dict)
        texts = []
        for change in plan.changes:
            if change.coder is None:
                texts.append(change)
            else:
                wanted[change.coder][(change.observation_id, change.dimension)] = set(change.restored)
        added = superseded = 0
        for coder, cells in wanted.items():
            change = plan_change(con, coder, cells, [])
            apply_change(con, change, f"revert:{number}", coder, revert, carry=False)
            added, superseded = added + len(change.add), superseded + len(change.supersede)
        for change in texts:
            _restore_text(con, revert, change, made_by)
        set_counts(con, revert, {"added": added, "superseded": superseded, "corrections": len(texts),
                                 "cells": len(plan.changes)})  # fmt: skip
    return plan, revert


def _restore_text(con, batch: int, change: CellChange, corrector: str | None) -> None:
    stamp = now()
    current = [r[0] for r in con.execute(
        "SELECT correction_id FROM text_corrections WHERE observation_id = ? AND superseded_at IS NULL",
        [change.observation_id]).fetchall()]  # fmt: skip
    if current:
        con.execute("UPDATE text_corrections SET superseded_at = ? WHERE list_contains(?, correction_id)", [stamp, current])
        record_items(con, batch, "correction", "superseded", current)
    if change.restored:
        correction_id = new_id()
        con.execute("INSERT INTO text_corrections VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                    [correction_id, change.observation_id, corrector, change.restored[0], stamp])  # fmt: skip
        record_items(con, batch, "correction", "added", [correction_id])


# ---------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryEvent:
    """One change to one cell of an observation: *codes* in force after it, *was* before."""

    at: object
    coder: str | None
    dimension: str  # "text" for the corrected text
    action: str  # coded, changed, cleared, reverted, carried
    codes: list[str]
    was: list[str]
    batch: int | None
    source: str | None

    def to_dict(self) -> dict:
        return asdict(self) | {"at": str(self.at)}


def coding_history(con, observation: str) -> tuple[tuple, list[HistoryEvent]]:
    """Every coding, clear, revert and carry-over of one observation's cells (and of its corrected
    text), oldest first; returns (observation_id, recording, seq, set_id) and the events."""
    found = resolve_observation(con, observation)
    obs = found[0]
    batches = {b.batch_no: b for b in list_batches(con)}
    carried_at = dict(con.execute(
        "SELECT item_id, max(logged_at) FROM carry_log WHERE new_target = ? AND outcome = 'carried' GROUP BY 1",
        [obs]).fetchall())  # fmt: skip
    origin_batch = dict(con.execute(
        "SELECT item_id, min(batch_no) FROM coding_batch_items WHERE action = 'added' GROUP BY 1").fetchall())
    events: dict[tuple, dict] = {}

    def event(key, at, coder, dimension, batch, source, kind):
        return events.setdefault(key, {"at": at, "coder": coder, "dimension": dimension, "batch": batch,
                                       "source": source, "kind": kind, "added": [], "removed": []})  # fmt: skip

    rows = [(r, r.cell[1], r.cell[2]) for r in _coding_rows(con, "x.observation_id = ?", [obs])]
    # One corrected text per observation, whoever wrote it: its cell has no coder.
    rows += [(r, None, "text") for r in _correction_rows(con, "x.observation_id = ?", [obs])]
    for row, coder, dimension in rows:
        if row.added_in is not None:
            b = batches[row.added_in]
            event((row.added_in, coder, dimension), b.made_at, coder, dimension, b.batch_no, b.source,
                  b.kind)["added"].append(row.value)  # fmt: skip
        else:  # copied here when its recording was re-processed (or written before batches existed)
            at = carried_at.get(row.carried_from, row.written_at)
            kind = "carried" if row.carried_from else "import"
            event((kind, at, coder, dimension), at, coder, dimension, origin_batch.get(row.carried_from),
                  f"from {row.carried_from}" if row.carried_from else row.source, kind)["added"].append(row.value)  # fmt: skip
        if row.superseded_in is not None:
            b = batches[row.superseded_in]
            event((row.superseded_in, coder, dimension), b.made_at, coder, dimension, b.batch_no, b.source,
                  b.kind)["removed"].append(row.value)  # fmt: skip
        elif row.superseded_at is not None:
            event(("superseded", row.superseded_at, coder, dimension), row.superseded_at, coder, dimension, None,
                  None, "import")["removed"].append(row.value)  # fmt: skip
    state: dict[tuple, set[str]] = defaultdict(set)
    history = []
    for e in sorted(events.values(), key=lambda e: (e["at"], e["batch"] or 0, e["dimension"], e["coder"] or "")):
        key = (e["coder"], e["dimension"])
        was = set(state[key])
        state[key] = (was - set(e["removed"])) | set(e["added"])
        if e["kind"] == "revert":
            action = "reverted"
        elif e["kind"] == "carried":
            action = "carried"
        elif not state[key]:
            action = "cleared"
        else:
            action = "coded" if not was else "changed"
        coder = e["coder"] or (batches[e["batch"]].coder if e["batch"] in batches else None)
        history.append(HistoryEvent(e["at"], coder, e["dimension"], action, sorted(state[key]), sorted(was),
                                    e["batch"], e["source"]))  # fmt: skip
    return found, history
