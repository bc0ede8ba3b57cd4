"""Group-dynamics views checked against the same numbers computed here in Python from the
observations and diarisation turns the real pipeline loaded."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from emessi_pipeline.cli import app

from .dataset_fixtures import AMI, DEMO, dataset_base, db  # noqa: F401

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture
def assigned(db: Path) -> duckdb.DuckDBPyConnection:
    """Demo speakers assigned (two labels to one participant, to test merging); read-only connection."""
    for label, participant, role in [("SPEAKER_00", "G1-P01", "leader"), ("SPEAKER_01", "G1-P02", "facilitator"),
                                     ("SPEAKER_02", "G1-P03", "participant"), ("SPEAKER_03", "G1-P03", "participant")]:  # fmt: skip
        result = runner.invoke(app, ["speakers", "assign", DEMO, label, "--participant", participant, "--role", role, "--db", str(db)])
        assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True)
    yield con
    con.close()


def _observations(con, name: str):
    return con.execute(
        "SELECT u.seq, u.speaker, u.role, u.start_s, u.end_s, u.duration_s FROM utterances u "
        "WHERE recording_name = ? ORDER BY seq", [name]).fetchall()  # fmt: skip


def _turns(rows):
    turns = []
    for seq, speaker, role, start, end, duration in rows:
        if turns and turns[-1]["speaker"] == speaker:
            turns[-1]["end"], turns[-1]["speech"] = end, turns[-1]["speech"] + duration
        else:
            turns.append({"speaker": speaker, "role": role, "start": start, "end": end, "speech": duration})
    return turns


def test_talk_time_turns_and_shares_per_participant_and_role(assigned):
    con = assigned
    turns = _turns(_observations(con, DEMO))
    talk, count = defaultdict(float), Counter()
    for t in turns:
        talk[t["speaker"]] += t["speech"]
        count[t["speaker"]] += 1
    total = sum(talk.values())
    rows = con.execute("SELECT speaker, talk_s, turns, mean_turn_s, share FROM talk_per_participant "
                       "WHERE recording_name = ?", [DEMO]).fetchall()  # fmt: skip
    assert {r[0] for r in rows} == {"G1-P01", "G1-P02", "G1-P03"}  # two labels merged into G1-P03
    for speaker, talk_s, n, mean, share in rows:
        assert talk_s == pytest.approx(talk[speaker], abs=1e-3) and n == count[speaker]
        assert mean == pytest.approx(talk[speaker] / count[speaker], abs=1e-3)
        assert share == pytest.approx(talk[speaker] / total, abs=1e-4)
    lead = con.execute("SELECT leader_share, facilitator_share FROM leadership_share WHERE recording_name = ?", [DEMO]).fetchone()
    assert lead == pytest.approx((talk["G1-P01"] / total, talk["G1-P02"] / total), abs=1e-4)
    roles = dict(con.execute("SELECT role, talk_s FROM talk_per_role WHERE recording_name = ?", [DEMO]).fetchall())
    assert roles["participant"] == pytest.approx(talk["G1-P03"], abs=1e-3)
    labels = dict(con.execute("SELECT speaker_label, talk_s FROM talk_per_speaker WHERE recording_name = ?", [DEMO]).fetchall())
    assert labels["SPEAKER_02"] + labels["SPEAKER_03"] == pytest.approx(talk["G1-P03"], abs=1e-3)


def test_group_views_add_up_the_sessions(assigned, db):
    con = assigned
    label, ami_talk = con.execute("SELECT speaker_label, talk_s FROM talk_per_speaker WHERE recording_name = ? "
                                  "ORDER BY talk_s DESC LIMIT 1", [AMI]).fetchone()  # fmt: skip
    con.close()  # the same participant speaks in the AMI session too
    result = runner.invoke(app, ["speakers", "assign", AMI, label, "--participant", "G1-P01", "--role", "leader", "--db", str(db)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True)
    per_recording = dict(con.execute("SELECT recording_name, talk_s FROM talk_per_participant WHERE speaker = 'G1-P01'").fetchall())
    assert set(per_recording) == {DEMO, AMI} and per_recording[AMI] == pytest.approx(ami_talk, abs=1e-3)
    row = con.execute("SELECT talk_s, sessions, turns FROM group_talk_per_participant WHERE group_id = 'G1' AND speaker = 'G1-P01'").fetchone()
    turns = con.execute("SELECT sum(turns) FROM talk_per_participant WHERE speaker = 'G1-P01'").fetchone()[0]
    assert row[0] == pytest.approx(sum(per_recording.values()), abs=1e-2) and row[1] == 2 and row[2] == turns
    shares = con.execute("SELECT sum(share) FROM group_talk_per_role WHERE group_id = 'G1'").fetchone()[0]
    assert shares == pytest.approx(1.0, abs=1e-3)
    balance = con.execute("SELECT speakers FROM group_participation_balance WHERE group_id = 'G1'").fetchone()[0]
    assert balance == con.execute("SELECT count(*) FROM group_talk_per_participant WHERE group_id = 'G1'").fetchone()[0]
    con.close()


def test_turn_taking_matrix_and_latencies(assigned):
    con = assigned
    turns = _turns(_observations(con, DEMO))
    pairs = Counter((a["speaker"], b["speaker"]) for a, b in zip(turns, turns[1:]))
    matrix = {(f, t): n for f, t, n in con.execute(
        "SELECT from_speaker, to_speaker, transitions FROM turn_transitions WHERE recording_name = ?", [DEMO]).fetchall()}  # fmt: skip
    assert matrix == dict(pairs)
    assert all(f != t for f, t in matrix)  # a turn change is always to someone else
    gaps = defaultdict(list)
    for a, b in zip(turns, turns[1:]):
        gaps[b["speaker"]].append(b["start"] - a["end"])
    for speaker, n, mean in con.execute("SELECT speaker, responses, mean_latency_s FROM response_latency "
                                        "WHERE recording_name = ?", [DEMO]).fetchall():  # fmt: skip
        assert n == len(gaps[speaker]) and mean == pytest.approx(np.mean(gaps[speaker]), abs=1e-3)
    pivot = con.execute("PIVOT (SELECT from_speaker, to_speaker, transitions FROM turn_transitions "
                        f"WHERE recording_name = '{DEMO}') ON to_speaker USING sum(transitions)").fetchall()  # fmt: skip
    assert len(pivot) == len({f for f, _ in matrix})


def test_gini_of_talk_time(assigned):
    con = assigned
    for name in (DEMO, AMI):
        talk = np.array([r[0] for r in con.execute("SELECT talk_s FROM talk_per_participant WHERE recording_name = ?", [name]).fetchall()])
        expected = np.abs(talk[:, None] - talk[None, :]).sum() / (2 * len(talk) ** 2 * talk.mean())
        gini = con.execute("SELECT gini FROM participation_balance WHERE recording_name = ?", [name]).fetchone()[0]
        assert gini == pytest.approx(expected, abs=1e-4)
        assert 0.0 <= gini < 1.0


def test_overlaps_and_interruptions_on_a_real_meeting(assigned):
    con = assigned
    turns = con.execute("SELECT speaker, start_s, end_s FROM current_regular_turns WHERE recording_name = ?", [AMI]).fetchall()
    started, interrupted = Counter(), Counter()
    for a_speaker, a_start, a_end in turns:
        for b_speaker, b_start, b_end in turns:
            if a_speaker != b_speaker and a_start < b_start < a_end:
                started[b_speaker] += 1
                interrupted[b_speaker] += a_end < b_end
    assert sum(started.values()) > 0  # AMI openings overlap
    rows = con.execute("SELECT speaker, overlaps_started, interruptions_made, overlapped_by_others FROM overlaps_per_speaker "
                       "WHERE recording_name = ?", [AMI]).fetchall()  # fmt: skip
    for speaker, n_started, n_interrupt, _ in rows:
        assert (n_started, n_interrupt) == (started[speaker], interrupted[speaker])
        assert n_interrupt <= n_started
    assert sum(r[1] for r in rows) == sum(r[3] for r in rows)  # every overlap is started by one, suffered by another


def test_limit_holds_through_every_view_filtered_on_every_column(db: Path):
    """DuckDB 2.0's optimiser can drop a LIMIT when a view LEFT JOINs an empty table and the query
    filters on a column coalesced from it (it did for current_observations' speaker moves). The
    fixture has no codings, corrections, moves or assignments: every such join is empty here."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        views = [v for (v,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
        assert len(views) >= 20
        dropped = []
        for view in views:
            columns = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                  "AND data_type IN ('VARCHAR', 'INTEGER', 'BIGINT', 'BOOLEAN') ORDER BY ordinal_position",
                                  [view]).fetchall()  # fmt: skip
            for (column,) in columns:
                value = con.execute(f'SELECT "{column}" FROM "{view}" WHERE "{column}" IS NOT NULL LIMIT 1').fetchone()
                if value is None:
                    continue
                rows = con.execute(f'SELECT * FROM "{view}" WHERE "{column}" = ? ORDER BY ALL LIMIT 1', [value[0]]).fetchall()
                if len(rows) != 1:
                    dropped.append((view, column, len(rows)))
        assert dropped == []
    finally:
        con.close()
