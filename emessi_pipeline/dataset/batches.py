"""Coding batches: every import of a sheet or project, every revert, is one numbered batch, and its
items say which codings and text corrections it added and which it superseded. That is what
makes an import undoable without deleting anything (undo.py appends the rows that restore the
state before a batch) and an observation's history readable.

The codings and text_corrections tables are unchanged by this: a batch only points at their rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .common import now

KINDS = ("import", "revert")


def start_batch(con, kind: str, coder: str | None, source: str | None, file: Path | None = None,
                made_by: str | None = None, reverts: int | None = None) -> int:  # fmt: skip
    """A new batch (the caller holds the transaction); returns its number, 1, 2, …"""
    sha = hashlib.sha256(file.read_bytes()).hexdigest() if file is not None and file.is_file() else None
    (number,) = con.execute("SELECT coalesce(max(batch_no), 0) + 1 FROM coding_batches").fetchone()
    con.execute(
        "INSERT INTO coding_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        [number, kind, coder, source, sha, made_by or coder, now(), reverts],
    )
    return number


def set_counts(con, batch: int, counts: dict) -> None:
    con.execute("UPDATE coding_batches SET counts = ? WHERE batch_no = ?", [json.dumps(counts), batch])


def record_items(con, batch: int, item_kind: str, action: str, ids: list[str]) -> None:
    if ids:
        con.execute(
            "INSERT INTO coding_batch_items SELECT ?, ?, unnest(?), ?",
            [batch, item_kind, list(ids), action],
        )


def record_carried(con, batch: int, coding_ids: list[str], correction_ids: list[str]) -> None:
    """The copies carry-over just made of this batch's rows (onto a re-processed recording's
    current set) belong to the batch too: reverting it must take them back as well."""
    for kind, table, key, ids in (("coding", "codings", "coding_id", coding_ids),
                                  ("correction", "text_corrections", "correction_id", correction_ids)):  # fmt: skip
        if ids:
            copies = [r[0] for r in con.execute(
                f"SELECT {key} FROM {table} WHERE list_contains(?, carried_from)", [ids]).fetchall()]  # fmt: skip
            record_items(con, batch, kind, "added", copies)


def batch_legacy_work(con) -> int:
    """Migration to schema 5: codings imported before batches existed become batches, one per
    (source, coder, time), which is exactly one import each (an import stamps every row it
    writes and every row it supersedes with one time). Their corrections join the batch of the
    same coder and time. Returns how many batches were made; a second call makes none."""
    groups = con.execute(
        """SELECT source, coder, coded_at FROM codings c
           WHERE carried_from IS NULL AND coded_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM coding_batch_items i WHERE i.item_id = c.coding_id)
           GROUP BY ALL ORDER BY coded_at, coder, source"""
    ).fetchall()
    for source, coder, stamp in groups:
        (number,) = con.execute("SELECT coalesce(max(batch_no), 0) + 1 FROM coding_batches").fetchone()
        con.execute("INSERT INTO coding_batches VALUES (?, 'import', ?, ?, NULL, ?, ?, NULL, ?)",
                    [number, coder, source, coder, stamp, json.dumps({"made_before_batches": True})])  # fmt: skip
        for kind, sql, params in (
            ("added", "SELECT coding_id FROM codings WHERE source IS NOT DISTINCT FROM ? AND coder = ? "
                      "AND coded_at = ? AND carried_from IS NULL", [source, coder, stamp]),
            ("superseded", "SELECT coding_id FROM codings WHERE coder = ? AND superseded_at = ?", [coder, stamp]),
            ("added", "SELECT correction_id FROM text_corrections WHERE corrector = ? AND corrected_at = ? "
                      "AND carried_from IS NULL", [coder, stamp]),
            ("superseded", "SELECT correction_id FROM text_corrections WHERE superseded_at = ?", [stamp]),
        ):  # fmt: skip
            ids = [r[0] for r in con.execute(
                f"SELECT * FROM ({sql}) AS x(item_id) WHERE item_id NOT IN "
                "(SELECT item_id FROM coding_batch_items WHERE action = ?)", [*params, kind]).fetchall()]  # fmt: skip
            record_items(con, number, "coding" if "coding_id" in sql else "correction", kind, ids)
    return len(groups)
