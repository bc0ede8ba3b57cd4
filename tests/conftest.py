"""Shared fixtures: real models, loaded once per test session, and the shared recordings."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from emessi_pipeline import Ingestor, load_profile
from emessi_pipeline.runs.demo import build_demo
from emessi_pipeline.runs import ModelCache

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):  # CI always has ../shared: a miss there is a broken setup
            pytest.fail(f"shared test data missing: {path}")
        pytest.skip(f"shared test data missing: {path}")
    return path


@pytest.fixture(scope="session")
def model_cache() -> ModelCache:
    return ModelCache()


@pytest.fixture(scope="session")
def make_ingestor(model_cache, tmp_path_factory):
    """Ingestor factory sharing loaded models; each call gets its own workspace unless given."""

    def make(workspace: Path | None = None, db: Path | None = None, overrides: dict | None = None, **kwargs):
        root = tmp_path_factory.mktemp("ingest")
        return Ingestor(
            load_profile("default", overrides),
            workspace=workspace or root / "work",
            database_path=db or root / "test.duckdb",
            model_cache=model_cache,
            **kwargs,
        )

    return make


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo meeting: a Finnish 4-voice video with its reference timeline and text."""
    return build_demo(tmp_path_factory.mktemp("demo")).parent


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def copy_to(src: Path, folder: Path, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or src.name)
    shutil.copy(src, target)
    return target
