"""The coders registry: who codes, so a name typed differently (`Anna`, `anna `) is the same
coder and a typo is not silently a new one.

A name is matched case-insensitively and without surrounding spaces; the registry keeps it as
first typed. A coder is added only on purpose (`emessi coding coders add`, `coding import
--new-coder`); the codings a database held before the registry existed register their coders in
the migration. Two spellings that differ only in case can both be there from before: the exact
spelling then picks one, and any other spelling is refused as ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import DatasetError, now

# ',' separates the two coders of `coding agreement --coders A,B`; ';' separates codes in a cell.
FORBIDDEN = (",", ";")


@dataclass(frozen=True)
class Coder:
    coder: str
    added_at: object
    source: str | None
    codings: int


def find_coder(con, name: str) -> str | None:
    """The registered spelling of *name*, or None when no coder has it."""
    wanted = (name or "").strip()
    rows = [r[0] for r in con.execute(
        "SELECT coder FROM coders WHERE lower(coder) = lower(?) ORDER BY coder", [wanted]).fetchall()]  # fmt: skip
    if wanted in rows:
        return wanted
    if len(rows) > 1:
        raise DatasetError(f"coder {wanted!r} matches several coders ({', '.join(rows)}): type one exactly")
    return rows[0] if rows else None


def require_coder(con, name: str, new: bool = False) -> tuple[str, bool]:
    """The registered spelling of *name* and whether it is still to be registered (only with
    *new*: the caller registers it with :func:`add_coder` when it writes). Nothing is written."""
    found = find_coder(con, name)
    if found is not None:
        return found, False
    wanted = check_name(name)
    if not new:
        known = names(con)
        raise DatasetError(
            f"no coder {wanted!r} yet (coders: {', '.join(known) or 'none'}); to add one on purpose, "
            f"give --new-coder or run `emessi coding coders add {wanted}`"
        )
    return wanted, True


def check_name(name: str) -> str:
    wanted = (name or "").strip()
    if not wanted:
        raise DatasetError("give the coder's name (--coder NAME)")
    bad = [c for c in FORBIDDEN if c in wanted]
    if bad:
        raise DatasetError(f"coder name {wanted!r}: no {' or '.join(repr(c) for c in bad)} in a name")
    return wanted


def add_coder(con, name: str, source: str) -> tuple[str, bool]:
    """Register *name* (caller holds the transaction); returns the registered spelling and
    whether it was added now (False: a coder of that name, in any case, was there)."""
    found = find_coder(con, name)
    if found is not None:
        return found, False
    wanted = check_name(name)
    con.execute("INSERT INTO coders VALUES (?, ?, ?)", [wanted, now(), source])
    return wanted, True


def names(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT coder FROM coders ORDER BY lower(coder), coder").fetchall()]


def list_coders(con) -> list[Coder]:
    """Every registered coder with the number of codings in force on current observations."""
    rows = con.execute(
        """SELECT k.coder, k.added_at, k.source, count(c.coding_id)
           FROM coders k LEFT JOIN current_codings c ON c.coder = k.coder
           GROUP BY k.coder, k.added_at, k.source ORDER BY lower(k.coder), k.coder"""
    ).fetchall()
    return [Coder(*r) for r in rows]


def register_existing(con) -> None:
    """Migration: the coders of codings written before the registry, each as they spelt it."""
    con.execute(
        """INSERT INTO coders
           SELECT coder, min(coded_at), 'codings before the registry' FROM codings
           WHERE coder NOT IN (SELECT coder FROM coders) GROUP BY coder"""
    )
