"""The dataset functions behind the workbench: one coding, one correction, one merge at a time,
under the rules of a sheet import, with nothing deleted."""

from __future__ import annotations

import duckdb
import pytest

from emessi_pipeline.dataset import workbench
from emessi_pipeline.dataset.common import DatasetError
from emessi_pipeline.dataset.speakers import Assignment, assign

from .dataset_fixtures import CODEBOOK, DEMO, dataset_base, db, emessi, read  # noqa: F401


@pytest.fixture
def con(db):  # noqa: F811
    emessi("codebook", "import", CODEBOOK, "--db", db)
    connection = duckdb.connect(str(db))
    yield connection
    connection.close()


def first_observations(con, n=2):
    return [r[0] for r in con.execute(
        "SELECT observation_id FROM utterances WHERE recording_name = ? ORDER BY seq LIMIT ?", [DEMO, n]).fetchall()]  # fmt: skip


def test_a_coding_follows_the_sheet_rules_and_keeps_history(con):
    obs, _ = first_observations(con)
    first = workbench.code_observation(con, "anna", obs, "function", ["question"], expected=[])
    assert (first.previous, first.codes, first.changed, first.overwrote) == ([], ["question"], True, None)
    # Another tab of the same coder, which still showed no code: its write is current, both kept.
    second = workbench.code_observation(con, "anna", obs, "function", ["support"], expected=[])
    assert second.overwrote == ["question"] and second.codes == ["support"]
    assert workbench.code_observation(con, "anna", obs, "function", ["support"]).changed is False
    workbench.code_observation(con, "anna", obs, "topic", ["wellbeing", "other"])
    workbench.code_observation(con, "anna", obs, "function", [])  # cleared
    rows = con.execute("SELECT dimension, code, superseded_at IS NULL, source FROM codings WHERE coder = 'anna' "
                       "ORDER BY coded_at, code").fetchall()  # fmt: skip
    assert rows == [("function", "question", False, "workbench"), ("function", "support", False, "workbench"),
                    ("topic", "other", True, "workbench"), ("topic", "wellbeing", True, "workbench")]  # fmt: skip
    for dim, codes, said in (("function", ["question", "support"], "allows one"), ("function", ["nope"], "unknown code"),
                             ("nowhere", ["x"], "not in the codebook")):  # fmt: skip
        with pytest.raises(DatasetError, match=said):
            workbench.code_observation(con, "anna", obs, dim, codes)


def test_a_retired_code_and_a_replaced_observation_are_refused(db, tmp_path):  # noqa: F811
    smaller = tmp_path / "codebook.yaml"
    smaller.write_text(CODEBOOK.read_text().replace("      - id: technical\n", "      - id: technical_x\n"))
    emessi("codebook", "import", CODEBOOK, "--db", db)
    emessi("codebook", "import", smaller, "--db", db, "--yes")  # technical is retired
    con = duckdb.connect(str(db))
    try:
        obs, _ = first_observations(con)
        with pytest.raises(DatasetError, match="'technical' is retired"):
            workbench.code_observation(con, "anna", obs, "function", ["technical"])
        # As if re-processing had replaced the set: the observation is no longer current.
        con.execute("UPDATE observations SET set_id = 'old-set' WHERE observation_id = ?", [obs])
        with pytest.raises(DatasetError, match="replaced by a re-processing"):
            workbench.correct_text(con, "anna", obs, "new words")
        with pytest.raises(DatasetError, match="replaced by a re-processing"):
            workbench.code_observation(con, "anna", obs, "function", ["question"])
        assert con.execute("SELECT count(*) FROM text_corrections").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM codings").fetchone()[0] == 0
    finally:
        con.close()


def test_a_correction_supersedes_and_the_asr_text_withdraws_it(con):
    _, obs = first_observations(con)
    (asr,) = con.execute("SELECT asr_text FROM utterances WHERE observation_id = ?", [obs]).fetchone()
    assert workbench.correct_text(con, "anna", obs, "  First   try ").text == "First try"
    workbench.correct_text(con, "anna", obs, "Second try")
    assert con.execute("SELECT text FROM utterances WHERE observation_id = ?", [obs]).fetchone() == ("Second try",)
    workbench.correct_text(con, "anna", obs, asr)
    assert con.execute("SELECT text, corrected FROM utterances WHERE observation_id = ?", [obs]).fetchone() == (asr, False)
    assert con.execute("SELECT count(*), count(superseded_at) FROM text_corrections").fetchone() == (2, 2)
    with pytest.raises(DatasetError, match="empty text"):
        workbench.correct_text(con, "anna", obs, "  ")


def test_merging_gives_a_label_the_other_labels_participant(con):
    with pytest.raises(DatasetError, match="assign SPEAKER_00 to a participant first"):
        workbench.merge_labels(con, DEMO, "SPEAKER_03", "SPEAKER_00")
    assign(con, [Assignment(DEMO, "SPEAKER_00", "G1-P07", "facilitator")], "anna")
    assert workbench.merge_labels(con, DEMO, "SPEAKER_03", "SPEAKER_00", "anna") == 1
    assert workbench.merge_labels(con, DEMO, "SPEAKER_03", "SPEAKER_00", "anna") == 0
    with pytest.raises(DatasetError, match="has no speaker 'SPEAKER_99'"):
        workbench.merge_labels(con, DEMO, "SPEAKER_99", "SPEAKER_00")
    talk = con.execute("SELECT speaker, role FROM talk_per_participant WHERE recording_name = ? AND speaker = 'G1-P07'",
                       [DEMO]).fetchall()  # fmt: skip
    assert talk == [("G1-P07", "facilitator")]  # one person in the views
    labels = con.execute("SELECT speaker_label FROM current_speaker_assignments WHERE participant_id = 'G1-P07' "
                         "ORDER BY 1").fetchall()  # fmt: skip
    assert labels == [("SPEAKER_00",), ("SPEAKER_03",)]


def test_the_overview_counts_coding_and_review(con):
    obs, other = first_observations(con)
    workbench.code_observation(con, "anna", obs, "function", ["question"])
    workbench.code_observation(con, "anna", other, "topic", ["other"])
    workbench.code_observation(con, "ben", obs, "function", ["support"])
    rows = {r["name"]: r for r in workbench.recordings_overview(con)}
    demo = rows[DEMO]
    assert demo["coded"] == {"anna": 2, "ben": 1}
    assert demo["observations"] == con.execute("SELECT count(*) FROM utterances WHERE recording_name = ?", [DEMO]).fetchone()[0]
    assert demo["review"] == con.execute("SELECT count(DISTINCT observation_id) FROM current_review "
                                         "WHERE recording_name = ?", [DEMO]).fetchone()[0]  # fmt: skip
    assert [d["observation_id"] for d in workbench.disagreements(con, "anna", "ben")] == [obs]


def test_an_observation_moved_to_another_speaker_counts_for_it_and_keeps_history(con):
    from emessi_pipeline.dataset.speakers import move_observation

    obs, _ = first_observations(con)
    (label,) = con.execute("SELECT speaker_label FROM utterances WHERE observation_id = ?", [obs]).fetchone()
    other = con.execute("SELECT min(speaker_label) FROM talk_per_speaker WHERE recording_name = ? AND speaker_label <> ?",
                        [DEMO, label]).fetchone()[0]  # fmt: skip
    talk = lambda lab: con.execute("SELECT observations FROM talk_per_speaker WHERE recording_name = ? "  # noqa: E731
                                   "AND speaker_label = ?", [DEMO, lab]).fetchone()[0]  # fmt: skip
    before = (talk(label), talk(other))
    moved = move_observation(con, obs, other, "anna", "the leader's voice")
    assert (moved.previous, moved.label, moved.changed) == (label, other, True)
    assert con.execute("SELECT speaker_label FROM utterances WHERE observation_id = ?", [obs]).fetchone() == (other,)
    assert (talk(label), talk(other)) == (before[0] - 1, before[1] + 1)
    assert move_observation(con, obs, other).changed is False
    with pytest.raises(DatasetError, match="has no speaker 'SPEAKER_99'"):
        move_observation(con, obs, "SPEAKER_99")
    # Back to the diarised label: the move is superseded (kept), the observation reads as diarised.
    move_observation(con, obs, label, "anna")
    assert con.execute("SELECT speaker_label FROM utterances WHERE observation_id = ?", [obs]).fetchone() == (label,)
    assert con.execute("SELECT speaker_label, moved_by, note, superseded_at IS NOT NULL FROM speaker_corrections").fetchall() == \
        [(other, "anna", "the leader's voice", True)]  # fmt: skip


def test_speakers_move_on_the_command_line_and_a_version_5_database_upgrades(db):  # noqa: F811
    (obs, label), = read(db, "SELECT observation_id, speaker_label FROM utterances WHERE recording_name = ? AND seq = 2", [DEMO])
    to = "SPEAKER_00" if label != "SPEAKER_00" else "SPEAKER_01"
    result = emessi("speakers", "move", obs, "--to", to, "--by", "anna", "--db", db)
    assert f"#2: {label} → {to}" in result.output
    assert read(db, "SELECT speaker_label FROM utterances WHERE observation_id = ?", [obs]) == [(to,)]
    bad = emessi("speakers", "move", obs, "--to", "SPEAKER_99", "--db", db, code=2)
    assert "has no speaker 'SPEAKER_99'" in bad.output and "Traceback" not in bad.output
    # A database schema 5 made: no speaker_corrections table; `emessi upgrade` adds it.
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE speaker_corrections")
    con.execute("UPDATE schema_info SET value = '5' WHERE key = 'schema_version'")
    con.close()
    assert "brought up to date (schema 7)" in emessi("upgrade", "--db", db).output
    assert read(db, "SELECT count(*) FROM speaker_corrections") == [(0,)]
    assert read(db, "SELECT speaker_label FROM utterances WHERE observation_id = ?", [obs]) == [(label,)]
