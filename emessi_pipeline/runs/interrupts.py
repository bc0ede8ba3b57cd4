"""Stop cleanly on Ctrl-C or SIGTERM, but never in the middle of a database write.

DuckDB turns a KeyboardInterrupt raised inside a query into its own "Query interrupted"
error, which would look like a failed recording. So while a write is in progress the signal is
only remembered, and acted on as soon as the write's transaction has finished.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

_state = {"installed": False, "depth": 0, "pending": False}


def _handler(signum, frame) -> None:
    if _state["depth"]:
        _state["pending"] = True
        return
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM (how schedulers stop jobs) through the deferring handler."""
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    _state["installed"] = True


@contextmanager
def protected() -> Iterator[None]:
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"]:
            _state["pending"] = False
            raise KeyboardInterrupt
