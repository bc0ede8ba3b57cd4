"""The C allocator's settings for the model threads (runs/memory.py): large blocks go back to the
system when freed, instead of staying in the heap once glibc has raised its mmap threshold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys
import numpy as np
from emessi_pipeline.runs import memory
if sys.argv[1] == "set":
    assert memory.limit_malloc_arenas()
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) * 1024
big = np.ones(30 << 20, np.uint8)
del big  # left to itself, glibc now serves blocks up to 30 MB from the heap
blocks, pins = [], []
for _ in range(20):
    blocks.append(np.ones(8 << 20, np.uint8))
    pins.append(np.ones(1 << 14, np.uint8))  # small blocks in between keep the heap from shrinking at its top
before = rss()
del blocks
print((before - rss()) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_large_blocks_go_back_to_the_system():
    def returned(mode: str) -> int:  # MB, from a fresh process, whose allocator is untouched
        run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parents[1])  # this checkout's package
        return int(run.stdout)

    assert returned("default") < 40  # the pattern the setting is for: 160 MB freed, most of it kept
    assert returned("set") >= 150
