"""One real dataset for the coded-dataset tests, built once per session with the real pipeline:
the Finnish demo meeting (G1 session 3) and an AMI meeting opening with overlapping speech,
filed as G1 session 1 so the group has two sessions. Each test gets its own copy."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from .conftest import copy_to, shared

DEMO = "G1_S3_vertaismentorointi"
AMI = "G1_S1_ami"


@dataclass(frozen=True)
class Base:
    db: Path
    workspace: Path
    demo_source: Path
    # The workspace as the demo's ingest left it, before any test re-segments in `workspace`.
    demo_workspace: Path
    # The workspace as both ingests left it: the AMI clip's models' results, for test_ingest.
    ami_workspace: Path


_BUILT: dict[str, Base] = {}


@pytest.fixture(scope="session")
def dataset_base(make_ingestor, demo_dir, tmp_path_factory) -> Base:
    # Each test module imports this fixture, and pytest keeps one per module: build only once.
    if "base" not in _BUILT:
        _BUILT["base"] = _build(make_ingestor, demo_dir, tmp_path_factory)
    return _BUILT["base"]


def _build(make_ingestor, demo_dir, tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("dataset")
    db, work = root / "base.duckdb", root / "work"
    summary = make_ingestor(workspace=work, db=db).run(demo_dir / "recordings")
    assert not summary.failed
    shutil.copytree(work, root / "demo-work")
    english = root / "english"
    copy_to(shared("ami", "trn07.wav"), english, f"{AMI}.wav")
    (english / "manifest.csv").write_text(
        f"file,group,session,speakers\n{AMI}.wav,G1,1,4\n"
    )
    summary = make_ingestor(workspace=work, db=db, overrides={"asr.language": "en"}).run(english)
    assert not summary.failed
    shutil.copytree(work, root / "ami-work")
    return Base(db, work, demo_dir / "recordings" / f"{DEMO}.mp4", root / "demo-work", root / "ami-work")


@pytest.fixture
def db(dataset_base, tmp_path) -> Path:
    """A private copy of the base dataset."""
    target = tmp_path / "dataset.duckdb"
    shutil.copy(dataset_base.db, target)
    wal = dataset_base.db.with_suffix(".duckdb.wal")
    if wal.exists():
        shutil.copy(wal, target.with_suffix(".duckdb.wal"))
    return target


def snapshot(db: Path, tables=("participants", "speaker_assignments", "codebook_versions", "codebook_codes",
                               "codings", "text_corrections", "carry_log", "observations")) -> dict:
    """Every row of the human-work tables, to prove an operation left the database unchanged."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
    finally:
        con.close()


CODEBOOK = Path(__file__).resolve().parent.parent / "configs" / "codebook_example.yaml"


def emessi(*args, code=0):
    """Run the CLI in-process and insist on the exit code."""
    from typer.testing import CliRunner

    from emessi_pipeline.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def read(db: Path, sql: str, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()
