"""Keep recordings and their traces on this machine.

pyannote.audio 4 reports usage to a remote server unless told not to, and Hugging Face
libraries look things up on the hub. Both are switched off before either is imported.
"""

from __future__ import annotations

import os


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
