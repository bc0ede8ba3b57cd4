"""Which database a command means when none is given: ``EMESSI_DB``, else ``db`` in the nearest
``emessi.toml``, else the default name in the current folder.

The toml is looked for in the current folder and then in each folder above it (as git finds its
repository), so a project folder's ``emessi.toml`` also holds in its ``recordings/`` or
``exports/`` subfolders. Its ``db`` is relative to the folder the toml lies in::

    db = "meetings.duckdb"
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .common import DatasetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE = "emessi.toml"
DB_ENV = "EMESSI_DB"


@dataclass(frozen=True)
class DatabaseChoice:
    path: Path
    source: str  # "EMESSI_DB", the toml's path, or "default"


def find_config(start: Path) -> Path | None:
    """The nearest emessi.toml in *start* or a folder above it."""
    start = Path(start).absolute()
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def read_config(path: Path) -> Path:
    """The database an emessi.toml names, resolved against the toml's folder."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise DatasetError(f"{path}: not a readable emessi.toml ({' '.join(str(error).split())})") from None
    db = data.get("db")
    if not isinstance(db, str) or not db.strip():
        raise DatasetError(f'{path}: expected a line db = "meetings.duckdb" (the database, relative to this file)')
    return Path(path).parent / Path(db).expanduser()


def find_database(default: Path, start: Path | None = None, environ: Mapping[str, str] | None = None) -> DatabaseChoice:
    """The database to use when --db was not given (*default* when nothing else names one)."""
    environ = os.environ if environ is None else environ
    value = environ.get(DB_ENV, "").strip()
    if value:
        return DatabaseChoice(Path(value).expanduser(), DB_ENV)
    config = find_config(Path.cwd() if start is None else start)
    if config is not None:
        return DatabaseChoice(read_config(config), str(config))
    return DatabaseChoice(Path(default), "default")
