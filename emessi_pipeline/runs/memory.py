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
import os
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


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ReleasingFreedMemory:
    """Hands freed memory back whenever the process has grown by *growth_mb* since the last
    hand-back (a context manager; the resident size is read every *poll_s* seconds).

    Between two Whisper blocks the decoder and the diarisation thread free and allocate hundreds
    of MB in glibc's two shared arenas, and the freed pages stay with the process until handed
    back: in the 2-hour run they piled up to 0.6 GB above what was in use by a block's end, and
    that pile, not live data, set the peak. Handing back on a clock (every 5 s) kept the peak
    down but doubled the page faults, as the models take the same pages again at once (+10 %
    wall); on growth, it still costs about 5 % of the wall, so profiles leave it off (0) unless
    memory is short. Only freed memory is handed back, so results cannot change (BENCHMARKS.md,
    "Ninth round" and "Tenth round")."""

    def __init__(self, growth_mb: float, poll_s: float = 1.0):
        self.growth = growth_mb * 1e6
        self.poll_s = poll_s
        self.releases = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "ReleasingFreedMemory":
        if self.growth > 0 and sys.platform.startswith("linux") and resident_bytes() > 0:
            self._thread = threading.Thread(target=self._run, name="emessi-memory", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        low = resident_bytes()
        while not self._stop.wait(self.poll_s):
            now = resident_bytes()
            if now - low > self.growth:
                release_freed_memory()
                self.releases += 1
                low = resident_bytes()  # what is left is in use: grow from there
            else:
                low = min(low, now)  # a block's own hand-back lowered it

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
