"""What a run ran on, recorded with it: the same file, settings and package versions give the same
dataset on one machine, but CTranslate2 and torch pick other kernels on another processor type
(AVX-512 or not, Intel or AMD) or a GPU, and the words can then differ. This says which."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from ..config import Profile
from ..version import __version__

PACKAGES = ("faster-whisper", "ctranslate2", "pyannote.audio", "torch", "onnxruntime", "numpy", "duckdb")
# The instruction sets that decide which kernels CTranslate2 and torch dispatch to on x86.
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def _cpu() -> dict:
    info = {"machine": platform.machine(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            fields = dict(line.split(":", 1) for line in handle.read().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return info | {"model": platform.processor() or None}
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return info | {"model": fields.get("model name"), "vendor": fields.get("vendor_id"),
                   "flags": [f for f in CPU_FLAGS if f in flags]}  # fmt: skip


def describe(profile: Profile) -> dict:
    versions = {"emessi-pipeline": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu(),
        "os": f"{platform.system()} {platform.release()}",
        "packages": versions,
        "devices": {"asr": profile.asr.device, "diarization": profile.diarization.device},
        # CT2_FORCE_CPU_ISA and friends change CTranslate2's kernels without changing a setting.
        "env": {k: v for k, v in os.environ.items() if k.startswith(("CT2_", "OPENBLAS_", "OMP_", "MKL_"))},
    }
