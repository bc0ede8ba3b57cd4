"""Archives from outside (a REFI-QDA project, an XLSX sheet) are zips a person was sent: before
anything is decompressed, their directory is checked against sizes no real sheet or project
reaches, so a zip bomb is a one-line error and not the machine running out of memory.

The sizes are the ones each member declares; Python's zipfile stops a member at its declared
size while reading, so a member cannot decompress to more than it claims.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from .common import DatasetError

MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 512 * 2**20  # one sheet or project.qde decompressed
MAX_TOTAL_BYTES = 1 * 2**30  # everything that is read, decompressed
MAX_RATIO = 200  # XML compresses 5-50x; zeros or repeated text made to fill memory >1000x
RATIO_FROM_BYTES = 2**20  # small members (empty styles, a one-line XML) may compress better


def check_archive(path: Path, kind: str, read: Callable[[str], bool] = lambda name: True) -> None:
    """Refuse *path* if its zip directory promises more than a real *kind* would hold. *read*
    says which members will be decompressed (a project's media are never unpacked here). A file
    that is not a zip passes, for the reader to say so in its own words."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return
    if len(members) > MAX_MEMBERS:
        raise DatasetError(f"{path}: {len(members)} members in one {kind} (at most {MAX_MEMBERS}); not read")
    total = 0
    for member in members:
        if not read(member.filename):
            continue
        size, packed = member.file_size, max(member.compress_size, 1)
        total += size
        if size > MAX_MEMBER_BYTES:
            raise DatasetError(f"{path}: member {member.filename} would unpack to {_mib(size)} "
                               f"(at most {_mib(MAX_MEMBER_BYTES)} in a {kind}); not read")  # fmt: skip
        if size > RATIO_FROM_BYTES and size / packed > MAX_RATIO:
            raise DatasetError(f"{path}: member {member.filename} unpacks {size // packed}x its size "
                               f"({_mib(packed)} to {_mib(size)}; a {kind} is at most {MAX_RATIO}x): "
                               f"a zip bomb? not read")  # fmt: skip
    if total > MAX_TOTAL_BYTES:
        raise DatasetError(f"{path}: would unpack to {_mib(total)} in all (at most {_mib(MAX_TOTAL_BYTES)} "
                           f"in a {kind}); not read")  # fmt: skip


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
