"""The CLI as users and cron jobs meet it: help, exit codes, JSON, errors, no network."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emessi_pipeline.cli import Exit, app

from .conftest import REPO, copy_to, ffmpeg, shared

runner = CliRunner()

def _all_commands(group=None, prefix=()) -> list[list[str]]:
    """Every command and subcommand the CLI registers, so a new one cannot skip its example."""
    import typer.main

    group = group or typer.main.get_command(app)
    found = []
    for name, command in group.commands.items():
        path = [*prefix, name]
        found.append(path)
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            found += _all_commands(command, tuple(path))
    return found


COMMANDS = _all_commands()


def test_the_command_list_is_complete():
    names = {" ".join(c) for c in COMMANDS}
    assert {"ingest", "status", "clean", "query", "models list", "coding import", "export qdpx"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_a_runnable_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    assert f"emessi {command[0]}" in result.output


def test_top_level_help_shows_an_example():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "emessi ingest recordings/" in result.output


def test_unknown_profile_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["ingest", str(tmp_path), "--profile", "nosuch"])
    assert result.exit_code == Exit.USAGE
    assert "nosuch" in result.output and "Traceback" not in result.output


def test_empty_folder_means_no_recordings(tmp_path):
    result = runner.invoke(app, ["ingest", str(tmp_path), "--db", str(tmp_path / "x.duckdb"), "--json",
                                 "-w", str(tmp_path / "w")])  # fmt: skip
    assert result.exit_code == Exit.NOTHING_TO_DO
    assert json.loads(result.stdout)["recordings"] == 0


def test_missing_model_is_one_clear_message_not_a_traceback(tmp_path):
    copy_to(shared("picovoice_falcon_test", "test.wav"), tmp_path / "rec")
    # --device cpu: without it this machine stops earlier, at the CUDA check (tests/test_scale.py)
    result = runner.invoke(app, ["ingest", str(tmp_path / "rec"), "--profile", "workstation", "--device", "cpu",
                                 "--db", str(tmp_path / "x.duckdb"), "-w", str(tmp_path / "w")])  # fmt: skip
    assert result.exit_code == Exit.NOTHING_DONE
    assert "large-v3" in result.output and "--allow-downloads" in result.output
    assert "Traceback" not in result.output


def test_models_list_shows_the_default_profile_present():
    result = runner.invoke(app, ["models", "list", "--json"])
    rows = json.loads(result.stdout)
    assert result.exit_code == 0
    assert {r["model"] for r in rows} == {"whisper-base", "pyannote-segmentation-v2", "resemblyzer-ge2e"}
    assert all(r["present"] for r in rows)


@pytest.mark.slow
def test_ingest_json_exit_codes_and_query(tmp_path):
    folder = tmp_path / "rec"
    copy_to(shared("picovoice_falcon_test", "test.wav"), folder, "falcon.wav")
    (folder / "broken.mkv").write_bytes(b"\x00" * 100)
    db, work = tmp_path / "m.duckdb", tmp_path / "w"
    args = ["ingest", str(folder), "--db", str(db), "-w", str(work), "--language", "en", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == Exit.SOME_FAILED, first.output
    data = json.loads(first.stdout)
    assert (data["done"], data["failed"]) == (1, 1)
    assert data["results"][0]["stage"] == "extract" and "broken.mkv" in data["results"][0]["message"]
    assert data["speakers"] == 3  # falcon: three voices, count estimated
    query = runner.invoke(app, ["query", "SELECT count(*) AS n FROM current_observations", "--db", str(db), "-f", "json"])
    assert query.exit_code == 0 and json.loads(query.stdout)[0]["n"] == data["observations"] > 0
    (folder / "broken.mkv").unlink()
    again = runner.invoke(app, args)
    assert again.exit_code == Exit.NOTHING_TO_DO and json.loads(again.stdout)["unchanged"] == 1


def test_query_is_read_only(tmp_path):
    import duckdb

    db = tmp_path / "q.duckdb"
    duckdb.connect(str(db)).execute("CREATE TABLE t (x INT)").close()
    result = runner.invoke(app, ["query", "INSERT INTO t VALUES (1)", "--db", str(db)])
    assert result.exit_code == Exit.USAGE and "read-only" in result.output.lower()


@pytest.mark.slow
def test_ingest_opens_no_network_connection(tmp_path):
    """Run a full ingest in a fresh interpreter that records every socket operation."""
    # The first 6 s of the 18.6-s clip: every model still loads and runs on speech (as in
    # test_private_reads' namespace test), on a third of the audio.
    (tmp_path / "rec").mkdir()
    ffmpeg("-i", str(shared("picovoice_falcon_test", "test.wav")), "-t", "6", str(tmp_path / "rec" / "test.wav"))
    log = tmp_path / "sockets.log"
    script = textwrap.dedent(
        f"""
        import sys
        seen = []
        def hook(event, args):
            if event.startswith("socket.") and event not in ("socket.__new__", "socket.bind"):
                seen.append(f"{{event}} {{args!r}}")
        sys.addaudithook(hook)
        from emessi_pipeline.cli import app
        try:
            app(["ingest", {str(tmp_path / "rec")!r}, "--db", {str(tmp_path / "n.duckdb")!r},
                 "-w", {str(tmp_path / "w")!r}, "--language", "en", "--json"])
        except SystemExit as done:
            code = done.code
        import socket
        try:  # a canary, to prove the hook sees connections at all
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        except OSError:
            pass
        open({str(log)!r}, "w").write("\\n".join(seen))
        sys.exit(code)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["done"] == 1
    seen = Path(log).read_text().splitlines()
    assert len(seen) >= 1 and all("('127.0.0.1', 9" in line for line in seen), seen
