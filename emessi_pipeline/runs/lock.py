"""One emessi run at a time per workspace and per database.

An advisory ``flock`` on a lock file: the kernel drops it when the holding process dies, even
by SIGKILL, so a killed run never leaves a lock that blocks the next night's run. The file
keeps the holder's pid and start time for the message.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from pathlib import Path


class LockedError(RuntimeError):
    """Another run holds the lock."""


class RunLock:
    def __init__(self, path: Path, what: str, shared: bool = False):
        self.path = Path(path)
        self.what = what
        self.shared = shared  # shards of one batch share the workspace; a whole run excludes them
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"another emessi run is using this {self.what} ({self.path.parent if self.what == 'workspace' else self.path.with_suffix('')}; "
                f"held by {holder}); wait for it to finish"
            ) from None
        if not self.shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {dt.datetime.now():%Y-%m-%d %H:%M:%S}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            if not self.shared:
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
