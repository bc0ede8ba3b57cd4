"""Keep recordings and their traces on this machine, readable by their owner only.

pyannote.audio 4 reports usage to a remote server unless told not to, and Hugging Face
libraries look things up on the hub. Both are switched off before either is imported.

Everything a run writes (WAVs, artifacts, the database, logs) holds speech of named people, so it
is created with a 077 umask: folders 0700, files 0600. The CLI sets it for the whole process; the
Python API sets it only while a run lasts, because a library must not change the umask of the
notebook or service that imports it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

OWNER_ONLY = 0o077


def lock_down(allow_downloads: bool = False) -> None:
    os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["DO_NOT_TRACK"] = "1"
    offline = "0" if allow_downloads else "1"
    os.environ["HF_HUB_OFFLINE"] = offline
    os.environ["TRANSFORMERS_OFFLINE"] = offline
    try:  # already imported: its constant was read at import time
        import huggingface_hub.constants as constants

        constants.HF_HUB_OFFLINE = not allow_downloads
    except ImportError:
        pass


def owner_only() -> None:
    """From now on this process creates folders 0700 and files 0600 (never looser than before)."""
    os.umask(os.umask(OWNER_ONLY) | OWNER_ONLY)


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created inside the block are the owner's only; the umask is restored after."""
    before = os.umask(OWNER_ONLY)
    os.umask(before | OWNER_ONLY)
    try:
        yield
    finally:
        os.umask(before)
