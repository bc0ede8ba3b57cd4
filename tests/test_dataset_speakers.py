"""Participants, speaker assignments (single and bulk CSV, all or none), the label overview with
talk time and first utterances, listening samples, and --help for every dataset command."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emessi_pipeline.cli import Exit, app

from .dataset_fixtures import AMI, DEMO, dataset_base, db, snapshot, read as _read, emessi  # noqa: F401

runner = CliRunner()

COMMANDS = [
    ["speakers", "list"], ["speakers", "assign"], ["speakers", "import"], ["participants", "add"],
    ["participants", "list"], ["codebook", "import"], ["codebook", "show"], ["coding", "export"],
    ["coding", "import"], ["coding", "agreement"], ["coding", "review"], ["export", "table"],
    ["export", "transcript"], ["export", "qdpx"], ["coding", "coders"], ["coding", "coders", "add"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_dataset_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"emessi {' '.join(command)}" in result.output


@pytest.mark.slow
def test_speakers_list_shows_talk_time_turns_and_first_utterances(db):
    import json

    data = json.loads(emessi("speakers", "list", DEMO, "-n", "2", "--json", "--db", db).stdout)
    expected = _read(db, "SELECT speaker_label, sum(duration_s), count(*) FROM current_observations "
                         "WHERE recording_name = ? GROUP BY 1 ORDER BY 1", [DEMO])  # fmt: skip
    assert [s["speaker_label"] for s in data["speakers"]] == [e[0] for e in expected]
    for s, (label, talk, n) in zip(data["speakers"], expected):
        assert s["talk_s"] == pytest.approx(talk, abs=1e-3) and 1 <= s["turns"] <= n
        first = _read(db, "SELECT text FROM current_observations WHERE recording_name = ? AND speaker_label = ? "
                          "ORDER BY seq LIMIT 2", [DEMO, label])  # fmt: skip
        assert [u.split("] ", 1)[1] for u in s["first_utterances"]] == [f[0] for f in first]


@pytest.mark.slow
def test_listening_samples_are_cut_per_label_from_the_source(db, tmp_path):
    import json

    data = json.loads(emessi("speakers", "list", AMI, "--samples", tmp_path, "--seconds", "3", "--json", "--db", db).stdout)
    labels = {s["speaker_label"] for s in data["speakers"]}
    assert labels and {Path(s["sample"]).name for s in data["speakers"]} == {f"{AMI}_{label}.wav" for label in labels}
    for s in data["speakers"]:
        with wave.open(s["sample"]) as w:
            seconds = w.getnframes() / w.getframerate()
        longest = _read(db, "SELECT max(duration_s) FROM current_observations WHERE recording_name = ? AND speaker_label = ?",
                        [AMI, s["speaker_label"]])[0][0]  # fmt: skip
        assert seconds == pytest.approx(min(3.0, longest), abs=0.05)


@pytest.mark.slow
def test_assign_registers_the_participant_in_the_recordings_group_and_re_assign_keeps_history(db):
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P03", "--role", "leader", "--db", db)
    assert _read(db, "SELECT participant_id, group_id FROM participants") == [("G1-P03", "G1")]
    assert _read(db, "SELECT speaker_label, participant_id, role FROM current_speaker_assignments") == [("SPEAKER_00", "G1-P03", "leader")]
    assert "already so" in emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P03", "--role", "leader", "--db", db).output
    emessi("speakers", "assign", DEMO, "SPEAKER_00", "--participant", "G1-P03", "--role", "facilitator", "--db", db)
    history = _read(db, "SELECT role, superseded_at IS NULL FROM speaker_assignments ORDER BY assigned_at")
    assert history == [("leader", False), ("facilitator", True)]
    # a participant of another group is refused
    emessi("participants", "add", "G2-P01", "--group", "G2", "--db", db)
    before = snapshot(db)
    result = emessi("speakers", "assign", DEMO, "SPEAKER_01", "--participant", "G2-P01", "--db", db, code=Exit.USAGE)
    assert "belongs to group G2" in result.output and snapshot(db) == before


@pytest.mark.slow
def test_bulk_csv_goes_in_whole_or_not_at_all(db, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("recording,speaker_label,participant,role,name\n"
                    f"{DEMO},SPEAKER_00,G1-P01,leader,Aino\n{DEMO},SPEAKER_01,G1-P02,facilitator,\n"
                    f"{AMI},SPEAKER_00,G1-P04,participant,\n")  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text() + f"{DEMO},SPEAKER_77,G1-P05,participant,\nnosuch,SPEAKER_00,G1-P06,chair,\n")
    before = snapshot(db)
    result = emessi("speakers", "import", bad, "--db", db, code=Exit.USAGE)
    text = " ".join(result.output.split())
    assert "row 4:" in text and "SPEAKER_77" in text and "row 5:" in text and "no recording 'nosuch'" in text
    assert snapshot(db) == before
    assert "3 assignments changed" in emessi("speakers", "import", good, "--db", db).output
    rows = _read(db, "SELECT a.recording_id = r.recording_id, speaker_label, participant_id, role, participant_name "
                     "FROM current_speaker_assignments a JOIN recordings r ON r.name = ? ORDER BY 2, 3", [DEMO])  # fmt: skip
    assert (True, "SPEAKER_00", "G1-P01", "leader", "Aino") in rows


def test_commands_on_a_missing_database_fail_cleanly(tmp_path):
    result = emessi("speakers", "list", "x", "--db", tmp_path / "none.duckdb", code=Exit.USAGE)
    assert "no such database" in " ".join(result.output.split()) and not (tmp_path / "none.duckdb").exists()
