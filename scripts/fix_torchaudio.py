"""Make torchaudio importable beside a torch it was not built for.

torchaudio 2.11's compiled extensions are built for a CUDA torch and fail to load beside the
CPU torch 2.13 wheel. pyannote.audio uses only torchaudio's pure-Python parts, and torchaudio
skips extensions that are absent, so the unloadable libraries are removed.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path


def importable() -> bool:
    return subprocess.run([sys.executable, "-c", "import torchaudio"], capture_output=True).returncode == 0


spec = importlib.util.find_spec("torchaudio")
if spec is None:
    sys.exit("torchaudio is not installed")
if importable():
    print("torchaudio imports: nothing to fix")
    sys.exit(0)
lib = Path(spec.origin).parent / "lib"
for so in lib.glob("*.so"):
    so.unlink()
    print(f"removed {so.name} (built for another torch)")
if not importable():
    sys.exit("torchaudio still fails to import")
