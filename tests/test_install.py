"""A real install: the wheel built from this checkout, installed into a clean environment, has
every module and every profile, and `emessi` loads the default profile far from the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from emessi_pipeline.cli import Exit
from emessi_pipeline.config import load_profile

from .conftest import REPO

pytestmark = pytest.mark.slow  # a wheel build and a venv: about half a minute


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with only the wheel in it (--no-deps); the heavy dependencies are borrowed from
    the running environment by a path entry, never the checkout."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy: building in the checkout would leave build/ behind
    source.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / item, source / item)
    for folder in ("emessi_pipeline", "configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source)
    (wheel,) = (root / "dist").glob("emessi_pipeline-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "borrowed-dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    return wheel


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def test_the_wheel_holds_every_module_and_profile(installed):
    names = set(zipfile.ZipFile(installed).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "emessi_pipeline").rglob("*.py")}
    assert modules - names == set()  # a new subpackage missing from pyproject's list fails here
    profiles = {f"emessi_pipeline/configs/{p.name}" for p in (REPO / "configs").glob("*.yaml")}
    assert {"emessi_pipeline/configs/default.yaml"} <= profiles <= names
    web = {p.relative_to(REPO).as_posix() for folder in ("templates", "static")
           for p in (REPO / "emessi_pipeline" / "serve" / folder).iterdir()}  # fmt: skip
    assert web and web <= names  # the workbench's pages, script and style


def test_the_installed_package_loads_the_default_profile_outside_the_checkout(installed, tmp_path):
    venv = installed.parent.parent / "venv"
    script = ("import json, emessi_pipeline, emessi_pipeline.config as c; "
              "print(json.dumps([emessi_pipeline.__file__, str(c.CONFIG_DIR), c.load_profile('default').model_dump(mode='json')]))")  # fmt: skip
    where, config_dir, profile = json.loads(_run(venv / "bin" / "python", "-c", script, cwd=tmp_path, env=_env()).stdout)
    assert Path(where).is_relative_to(venv) and Path(config_dir).is_relative_to(venv)
    assert profile == load_profile("default").model_dump(mode="json")
    models = subprocess.run([venv / "bin" / "emessi", "models", "list", "--json"], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert models.returncode in (Exit.OK, Exit.NOTHING_DONE), models.stderr
    assert {row["role"] for row in json.loads(models.stdout)} == {"asr", "segmentation", "embedding"}
