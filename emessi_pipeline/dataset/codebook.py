"""The codebook: dimensions (topic, function, …) each with codes, versioned.

Each import of a changed codebook file is a new version. Codes and dimensions are never
removed: one missing from the new version is marked `retired`, so codings that use it keep
their meaning (and `codebook_entries` keeps every version's wording).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .connection import transaction
from .common import DatasetError, now
from .sheets import read_csv_dicts

# Finnish and Swedish letters too (`työaika`): ids are what coders type into cells.
ID_PATTERN = re.compile(r"^[a-z0-9åäö][a-z0-9åäö_.-]*$")
MULTI_SEPARATOR = ";"


@dataclass(frozen=True)
class Code:
    code: str
    label: str
    description: str = ""


@dataclass(frozen=True)
class Dimension:
    dimension: str
    label: str
    description: str = ""
    multiple: bool = False
    codes: tuple[Code, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Codebook:
    name: str
    dimensions: tuple[Dimension, ...]

    def digest(self) -> str:
        data = [(d.dimension, d.label, d.description, d.multiple, [(c.code, c.label, c.description) for c in d.codes])
                for d in self.dimensions]  # fmt: skip
        return hashlib.sha256(json.dumps([self.name, data]).encode()).hexdigest()


@dataclass(frozen=True)
class ImportResult:
    version: int
    new: bool
    added: list[str]
    retired: list[str]
    changed: list[str]
    reactivated: list[str] = field(default_factory=list)
    retired_dimensions: list[str] = field(default_factory=list)


def read_codebook(path: Path) -> Codebook:
    """YAML (`dimensions: [{id, label, multiple, codes: [{id, label, description}]}]`) or CSV
    (`dimension, code, label, description[, multiple]`). Raises DatasetError listing every problem."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        book = _read_csv(path) if path.suffix.lower() == ".csv" else _read_yaml(path)
    except (yaml.YAMLError, csv.Error, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not a readable codebook: {' '.join(str(error).split())}") from None
    problems = _check(book)
    if problems:
        raise DatasetError(f"{path}: codebook not imported", problems)
    return book


def _read_yaml(path: Path) -> Codebook:
    # NFC: an editor on macOS may save 'ö' as 'o' + '¨', which would be another id.
    data = yaml.safe_load(unicodedata.normalize("NFC", path.read_text(encoding="utf-8-sig")))
    if not isinstance(data, dict) or not isinstance(data.get("dimensions"), list):
        raise DatasetError(f"{path}: expected a mapping with a 'dimensions' list")
    dims = []
    for i, d in enumerate(data["dimensions"], start=1):
        if not isinstance(d, dict):
            raise DatasetError(f"{path}: dimension #{i} is not a mapping")
        codes = tuple(
            Code(str(c.get("id", "")), str(c.get("label") or c.get("id", "")), str(c.get("description") or "").strip())
            if isinstance(c, dict) else Code("", "")
            for c in d.get("codes") or []
        )  # fmt: skip
        dims.append(Dimension(str(d.get("id", "")), str(d.get("label") or d.get("id", "")),
                              str(d.get("description") or "").strip(), bool(d.get("multiple", False)), codes))  # fmt: skip
    return Codebook(str(data.get("name") or path.stem), tuple(dims))


def _read_csv(path: Path) -> Codebook:
    rows = read_csv_dicts(path)  # Excel's ';' and Windows-1252 too
    if not rows or not {"dimension", "code"} <= set(rows[0]):
        raise DatasetError(f"{path}: expected columns dimension, code, label, description[, multiple]")
    order: dict[str, list] = {}
    multiple: dict[str, bool] = {}
    for r in rows:
        dim = (r.get("dimension") or "").strip()
        order.setdefault(dim, []).append(Code((r.get("code") or "").strip(), (r.get("label") or r.get("code") or "").strip(),
                                              (r.get("description") or "").strip()))  # fmt: skip
        multiple[dim] = multiple.get(dim, False) or (r.get("multiple") or "").strip().lower() in ("1", "true", "yes")
    dims = tuple(Dimension(d, d, "", multiple[d], tuple(codes)) for d, codes in order.items())
    return Codebook(path.stem, dims)


def _check(book: Codebook) -> list[str]:
    problems = []
    if not book.dimensions:
        problems.append("no dimensions")
    seen_dims = set()
    for d in book.dimensions:
        if not ID_PATTERN.match(d.dimension):
            problems.append(f"dimension id {d.dimension!r}: use lower-case letters (a-z, å, ä, ö), digits, '_', '-', '.'")
        if d.dimension in seen_dims:
            problems.append(f"dimension {d.dimension!r} appears twice")
        seen_dims.add(d.dimension)
        if not d.codes:
            problems.append(f"dimension {d.dimension!r} has no codes")
        seen = set()
        for c in d.codes:
            if not ID_PATTERN.match(c.code):
                problems.append(f"{d.dimension}: code id {c.code!r}: use lower-case letters (a-z, å, ä, ö), digits, '_', '-', '.'")
            if c.code in seen:
                problems.append(f"{d.dimension}: code {c.code!r} appears twice")
            seen.add(c.code)
    return problems


def plan_codebook_import(con, path: Path) -> ImportResult:
    """What importing *path* would do (codes added, changed, retired, re-activated), writing
    nothing: retiring codes is worth a question before it happens."""
    book = read_codebook(path)
    return _plan(con, book)[0]


def _plan(con, book: Codebook):
    digest = book.digest()
    latest = con.execute("SELECT version, content_sha256 FROM codebook_versions ORDER BY version DESC LIMIT 1").fetchone()
    before = {(d, c): (label, desc, retired) for d, c, label, desc, retired in
              con.execute("SELECT dimension, code, label, description, retired FROM codebook_codes").fetchall()}  # fmt: skip
    incoming = {(d.dimension, c.code): (c, d) for d in book.dimensions for c in d.codes}
    if latest and latest[1] == digest:
        return ImportResult(latest[0], False, [], [], []), before, incoming
    version = (latest[0] + 1) if latest else 1
    gone = [key for key, value in before.items() if key not in incoming and not value[2]]
    changed = [f"{d}/{c}" for (d, c), (code, _) in incoming.items()
               if (d, c) in before and before[(d, c)][:2] != (code.label, code.description)]  # fmt: skip
    kept_dims = {d.dimension for d in book.dimensions}
    dims_gone = [d for (d,) in con.execute(
        "SELECT dimension FROM codebook_dimensions WHERE NOT retired ORDER BY position").fetchall() if d not in kept_dims]  # fmt: skip
    result = ImportResult(
        version, True, sorted(f"{d}/{c}" for d, c in incoming if (d, c) not in before),
        sorted(f"{d}/{c}" for d, c in gone), sorted(changed),
        sorted(f"{d}/{c}" for d, c in incoming if (d, c) in before and before[(d, c)][2]), dims_gone,
    )  # fmt: skip
    return result, before, incoming


def import_codebook(con, path: Path) -> ImportResult:
    """Read, check and store a codebook as a new version (nothing happens if it is unchanged).
    Codes and dimensions the file leaves out are retired: ask first (:func:`plan_codebook_import`)."""
    book = read_codebook(path)
    result, before, incoming = _plan(con, book)
    if not result.new:
        return result
    version, digest = result.version, book.digest()
    with transaction(con):
        con.execute("INSERT INTO codebook_versions VALUES (?, ?, ?, ?, ?)", [version, book.name, str(path), digest, now()])
        for position, d in enumerate(book.dimensions):
            con.execute(
                """INSERT INTO codebook_dimensions VALUES (?, ?, ?, ?, ?, ?, false, ?)
                   ON CONFLICT (dimension) DO UPDATE SET label = excluded.label,
                       description = excluded.description, multiple = excluded.multiple,
                       last_version = excluded.last_version, retired = false,
                       position = excluded.position""",
                [d.dimension, d.label, d.description, d.multiple, version, version, position],
            )
        for position, ((dim, code), (c, d)) in enumerate(incoming.items()):
            con.execute(
                """INSERT INTO codebook_codes VALUES (?, ?, ?, ?, ?, ?, false, ?)
                   ON CONFLICT (dimension, code) DO UPDATE SET label = excluded.label,
                       description = excluded.description, last_version = excluded.last_version,
                       retired = false, position = excluded.position""",
                [dim, code, c.label, c.description, version, version, position],
            )
            con.execute("INSERT INTO codebook_entries VALUES (?, ?, ?, ?, ?, ?)",
                        [version, dim, code, c.label, c.description, d.multiple])  # fmt: skip
        gone = [key for key, value in before.items() if key not in incoming and not value[2]]
        for dim, code in gone:
            con.execute("UPDATE codebook_codes SET retired = true WHERE dimension = ? AND code = ?", [dim, code])
        kept_dims = [d.dimension for d in book.dimensions]
        con.execute(
            "UPDATE codebook_dimensions SET retired = true WHERE NOT list_contains(?, dimension)", [kept_dims]
        )
    return result


@dataclass(frozen=True)
class ActiveCodebook:
    version: int | None
    dimensions: dict[str, bool]  # dimension -> allows several codes
    codes: dict[str, dict[str, bool]]  # dimension -> code -> retired
    retired_dimensions: set[str]


def load_active(con) -> ActiveCodebook:
    latest = con.execute("SELECT max(version) FROM codebook_versions").fetchone()[0]
    dims = con.execute("SELECT dimension, multiple, retired FROM codebook_dimensions ORDER BY retired, position, dimension").fetchall()
    codes: dict[str, dict[str, bool]] = {}
    for dim, code, retired in con.execute("SELECT dimension, code, retired FROM codebook_codes ORDER BY dimension, retired, position, code").fetchall():
        codes.setdefault(dim, {})[code] = retired
    return ActiveCodebook(
        latest, {d: bool(m) for d, m, r in dims if not r}, codes, {d for d, m, r in dims if r}
    )
