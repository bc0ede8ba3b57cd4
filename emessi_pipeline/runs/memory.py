"""Keep the C allocator from inflating memory when the model threads run side by side.

glibc gives each thread that allocates its own arena (up to 8 per core) and rarely hands freed
arena memory back; with transcription and diarisation running in parallel threads that cost about
200 MB on a 10-minute recording (1.69 GB → 1.47 GB peak RSS with two arenas, same speed).

It also raises its mmap threshold to the size of each large block freed (up to 32 MB), so later
blocks of tens of MB (Silero VAD's and the spectrogram's buffers at each Whisper block) come from
the heap and stay there when freed. Fixing the threshold returns them but costs several times the
system time; handing the free heap back once per Whisper block (`release_freed_memory`) costs a
few milliseconds and lowers the level the next block's transients start from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading

M_ARENA_MAX = -8  # from glibc's malloc.h


@functools.cache  # find_library runs ldconfig; the hand-back is called at every Whisper block
def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def limit_malloc_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas; a no-op elsewhere. Call before the model threads start."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(_libc().mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False


def release_freed_memory() -> bool:
    """Hand the free pages of every malloc arena back to the system (glibc's malloc_trim).

    Only memory already freed is returned, so results cannot change; a no-op off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(_libc().malloc_trim(0))
    except (OSError, AttributeError):
        return False


class ReleasingFreedMemory:
    """Hands freed memory back every *interval* seconds while the models run (a context manager).

    Between two Whisper blocks, the decoder and the diarisation thread free and allocate hundreds
    of MB in glibc's two shared arenas; the freed pages stay with the process until a hand-back.
    In the 2-hour run they piled up to 0.6 GB above what was in use by the end of a block, and
    that pile, not live data, set the peak. What is handed back is only what is already free, so
    results cannot change; reusing it costs page faults (BENCHMARKS.md, "Ninth round")."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "ReleasingFreedMemory":
        if self.interval > 0 and sys.platform.startswith("linux"):
            self._thread = threading.Thread(target=self._run, name="emessi-memory", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            release_freed_memory()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
