"""Check, before any work starts, that a profile asking for CUDA can have it.

Without this, a batch on a machine whose CUDA libraries are missing or mismatched would fail
file after file, or fall over minutes in, once the first model is loaded. CTranslate2 (under
faster-whisper) is built against CUDA 12 and loads cuBLAS 12 and cuDNN 9 at run time; torch
(under pyannote.audio) brings its own CUDA libraries but may be a CPU-only build.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sysconfig

# The libraries CTranslate2 4.x opens at run time for CUDA, with the pip wheels that carry them.
CTRANSLATE2_LIBS = {
    "libcublas.so.12": "CUDA 12 cuBLAS; pip install nvidia-cublas-cu12",
    "libcudnn.so.9": "cuDNN 9 for CUDA 12; pip install nvidia-cudnn-cu12",
}


class DeviceError(RuntimeError):
    """The profile asks for a device this machine cannot provide."""


def require(profile, until: str = "load") -> None:
    problems = []
    if profile.asr.device == "cuda":
        problems += [f"transcription: {p}" for p in ctranslate2_cuda_problems()]
    if profile.diarization.device == "cuda" and until != "transcribe":
        problems += [f"diarisation: {p}" for p in torch_cuda_problems()]
    if problems:
        raise DeviceError(
            "CUDA was asked for (device: cuda) but cannot be used here: " + "; ".join(problems)
            + ". Use --device cpu (or a CPU profile), or install the missing pieces"
        )


def ctranslate2_cuda_problems() -> list[str]:
    import ctranslate2

    problems = [f"{name} ({what}) not found" for name, what in CTRANSLATE2_LIBS.items() if not _loadable(name)]
    try:
        devices = ctranslate2.get_cuda_device_count()
    except Exception as error:  # noqa: BLE001 - any failure means no usable device
        devices, problems = 0, problems + [f"CTranslate2 cannot query CUDA ({error})"]
    if devices == 0:
        problems.insert(0, "CTranslate2 sees no CUDA device (no NVIDIA GPU or driver)")
    return problems


def torch_cuda_problems() -> list[str]:
    import torch

    if torch.version.cuda is None:
        return [f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"]
    if not torch.cuda.is_available():
        return [f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device (no NVIDIA GPU or driver)"]
    return []


def _loadable(name: str) -> bool:
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        pass
    # The nvidia-* wheels put their libraries under site-packages/nvidia/*/lib, which the
    # loader does not search unless LD_LIBRARY_PATH names them. Loading one here by its full
    # path also lets CTranslate2's later dlopen by name find it already loaded.
    site = sysconfig.get_paths()["purelib"]
    for candidate in glob.glob(os.path.join(site, "nvidia", "*", "lib", name)):
        try:
            ctypes.CDLL(candidate)
            return True
        except OSError:
            continue
    return False
