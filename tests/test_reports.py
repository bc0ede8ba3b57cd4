"""The commands people reach for, on the real dataset: `emessi recordings`, the database from
EMESSI_DB or emessi.toml, recording prefixes and "did you mean", agreement with Krippendorff's
alpha, confusion matrices and disagreements, and `emessi report` checked against the views."""

from __future__ import annotations

import csv
import json
import stat
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image

from .dataset_fixtures import AMI, CODEBOOK, DEMO, dataset_base, db, emessi, read  # noqa: F401

pytestmark = pytest.mark.slow

FUNCTIONS = ["question", "answer_advice", "experience", "support", "steering"]
TOPICS = ["managing_work", "wellbeing", "frame_of_work"]


def _code(db: Path, tmp_path: Path, coder: str, function, topic) -> list[dict]:
    """Export *coder*'s sheet for the demo, fill row i with function(i) and topic(i), import it."""
    sheet = tmp_path / f"{coder}.csv"
    emessi("coding", "export", "--coder", coder, "--recording", DEMO, "--out", sheet, "--db", db)
    with open(sheet, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        row["function"], row["topic"] = function(i), topic(i)
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    emessi("coding", "import", sheet, "--coder", coder, "--new-coder", "--db", db)
    return rows


@pytest.fixture
def coded(db, tmp_path):
    """Demo speakers assigned, the AMI clip's loudest label too; anna, ben and eve code the demo
    (ben differs from anna on the second half of function, eve leaves the last rows uncoded).
    Participants have names, which no report may show."""
    for label, participant, role in [("SPEAKER_00", "G1-P01", "leader"), ("SPEAKER_01", "G1-P02", "facilitator"),
                                     ("SPEAKER_02", "G1-P03", "participant"), ("SPEAKER_03", "G1-P04", "participant")]:  # fmt: skip
        emessi("speakers", "assign", DEMO, label, "--participant", participant, "--role", role,
               "--name", f"Ainoliisa{participant[-1]}", "--db", db)
    label = read(db, "SELECT speaker_label FROM talk_per_speaker WHERE recording_name = ? ORDER BY talk_s DESC LIMIT 1", [AMI])[0][0]
    emessi("speakers", "assign", AMI, label, "--participant", "G1-P01", "--role", "leader", "--db", db)
    emessi("codebook", "import", CODEBOOK, "--db", db)
    n = read(db, "SELECT count(*) FROM current_observations WHERE recording_name = ?", [DEMO])[0][0]
    _code(db, tmp_path, "anna", lambda i: FUNCTIONS[i % 5], lambda i: TOPICS[i % 3])
    _code(db, tmp_path, "ben", lambda i: FUNCTIONS[i % 5] if i < n // 2 else FUNCTIONS[(i + 1) % 5],
          lambda i: TOPICS[i % 3] if i % 4 else "wellbeing;working_time")  # fmt: skip
    _code(db, tmp_path, "eve", lambda i: FUNCTIONS[(i // 2) % 5] if i < n - 3 else "",
          lambda i: TOPICS[i % 3] if i < n - 3 else "")  # fmt: skip
    return db


# ---------------------------------------------------------------- where the database is


def test_the_database_comes_from_emessi_toml_or_emessi_db_and_db_wins(db, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "recordings" / "more").mkdir(parents=True)
    (project / "emessi.toml").write_text(f'db = "../{db.name}"\n')  # relative to the toml's folder
    monkeypatch.delenv("EMESSI_DB", raising=False)
    monkeypatch.chdir(project / "recordings" / "more")  # found by walking up
    names = {r["name"] for r in json.loads(emessi("recordings", "--json").stdout)}
    assert names == {DEMO, AMI}

    monkeypatch.setenv("EMESSI_DB", str(tmp_path / "elsewhere.duckdb"))  # the environment beats the toml
    missing = emessi("recordings", code=2).output
    assert "elsewhere.duckdb (from EMESSI_DB): no such database" in missing and len(missing.strip().splitlines()) == 1
    assert {r["name"] for r in json.loads(emessi("recordings", "--json", "--db", db).stdout)} == names  # --db wins

    monkeypatch.delenv("EMESSI_DB")
    (project / "emessi.toml").write_text('db = "nowhere.duckdb"\n')
    said = emessi("speakers", "list", DEMO, code=2).output
    assert f"{project / 'nowhere.duckdb'} (from {project / 'emessi.toml'}): no such database" in said
    (project / "emessi.toml").write_text("database = 'x'\n")
    said = emessi("recordings", code=2).output
    assert "emessi.toml: expected a line db = " in said and "Traceback" not in said


# ---------------------------------------------------------------- recordings and prefixes


def test_recordings_list_counts_as_the_views_do(coded):
    rows = {r["name"]: r for r in json.loads(emessi("recordings", "--json", "--db", coded).stdout)}
    assert list(rows) == [AMI, DEMO]  # G1 session 1, then session 3
    for name, row in rows.items():
        observations, speakers = read(coded, "SELECT count(*), count(DISTINCT speaker) FROM utterances WHERE recording_name = ?", [name])[0]
        duration, session = read(coded, "SELECT duration_s, session_no FROM recordings WHERE name = ?", [name])[0]
        assert (row["observations"], row["speakers"], row["duration_s"], row["session_no"]) == (observations, speakers, duration, session)
        flagged = json.loads(emessi("review", name, "--json", "--db", coded).stdout)
        assert row["review_items"] == len(flagged)
    n = rows[DEMO]["observations"]
    assert rows[DEMO]["coded"] == {"anna": n, "ben": n, "eve": n - 3} and rows[AMI]["coded"] == {}
    table = emessi("recordings", "--db", coded).output
    assert "eve" in table and f"{n - 3}/{n}" in table  # (a narrow terminal folds the cell)


def test_a_recording_is_found_by_a_unique_prefix_and_a_typo_gets_did_you_mean(db):
    full = json.loads(emessi("speakers", "list", DEMO, "--json", "--db", db).stdout)
    short = json.loads(emessi("speakers", "list", "g1_s3", "--json", "--db", db).stdout)  # any case
    assert short == full and short["recording"] == DEMO
    both = emessi("speakers", "list", "G1_S", "--db", db, code=2).output
    assert "names several recordings" in both and DEMO in both and AMI in both
    typo = emessi("export", "transcript", "G1_S3_vertaismentorointti", "--out", db.parent / "t", "--db", db, code=2).output
    assert f"no recording 'G1_S3_vertaismentorointti'; did you mean {DEMO}?" in typo and "Traceback" not in typo
    assert "did you mean" not in emessi("speakers", "list", "zzzz", "--db", db, code=2).output


# ---------------------------------------------------------------- agreement


def _alpha_by_hand(units: list[dict]) -> float:
    """Nominal Krippendorff's alpha from the coincidence matrix (Krippendorff 2011, section C)."""
    o = Counter()
    for unit in units:
        values = list(unit.values())
        if len(values) < 2:
            continue
        for i, j in combinations(range(len(values)), 2):
            o[values[i], values[j]] += 1 / (len(values) - 1)
            o[values[j], values[i]] += 1 / (len(values) - 1)
    n_c = Counter()
    for (c, _), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    observed = sum(v for (c, k), v in o.items() if c != k)
    expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n - 1)
    return 1 - observed / expected


def test_agreement_of_three_coders_alpha_kappa_confusion_and_disagreements(coded):
    from sklearn.metrics import cohen_kappa_score

    rows = json.loads(emessi("coding", "agreement", "--coders", "anna,ben,eve", "--db", coded, "--json").stdout)
    codes = read(coded, "SELECT observation_id, coder, dimension, string_agg(code, ';' ORDER BY code) FROM current_codings "
                        "GROUP BY ALL")  # fmt: skip
    by = {}
    for oid, coder, dim, value in codes:
        by.setdefault(dim, {}).setdefault(oid, {})[coder] = value
    assert {(r["dimension"], r["coder_a"], r["coder_b"]) for r in rows} == {
        (d, a, b) for d in ("topic", "function") for a, b in combinations(["anna", "ben", "eve"], 2)}
    for r in rows:
        units = by[r["dimension"]]
        assert r["alpha"] == pytest.approx(_alpha_by_hand(list(units.values())))
        shared = [(u[r["coder_a"]], u[r["coder_b"]]) for u in units.values() if r["coder_a"] in u and r["coder_b"] in u]
        assert r["shared"] == len(shared) and r["agreed"] == sum(a == b for a, b in shared)
        assert r["kappa"] == pytest.approx(cohen_kappa_score(*zip(*shared)))
        labels, counts = r["confusion"]["labels"], r["confusion"]["counts"]
        pairs = Counter(shared)
        assert counts == [[pairs[a, b] for b in labels] for a in labels] and sum(map(sum, counts)) == len(shared)
        assert sorted(d["observation_id"] for d in r["disagreements"]) == sorted(
            oid for oid, u in units.items() if r["coder_a"] in u and r["coder_b"] in u and u[r["coder_a"]] != u[r["coder_b"]])
    assert any(r["disagreements"] for r in rows)

    text = emessi("coding", "agreement", "--coders", "anna,ben", "--db", coded).output
    disagreeing = sum(1 for u in by["function"].values() if u["anna"] != u["ben"]) + \
        sum(1 for u in by["topic"].values() if u["anna"] != u["ben"])
    assert "alpha" in text and "function: anna (rows) × ben (columns)" in text and f"{disagreeing} disagreements" in text
    assert "no codings by 'nobody'" in emessi("coding", "agreement", "--coders", "anna,nobody", "--db", coded, code=2).output
    assert "two or more coders" in emessi("coding", "agreement", "--coders", "anna", "--db", coded, code=2).output


# ---------------------------------------------------------------- reports


def test_reports_show_the_views_numbers(coded):
    def report(*args):
        return json.loads(emessi("report", *args, "--db", coded, "--json").stdout)

    talk = {(r["recording"], r["speaker"]): (r["talk_s"], r["turns"], r["share"]) for r in report("talk", "--group", "G1")}
    assert talk == {(n, s): (t, k, h) for n, s, t, k, h in read(coded, "SELECT recording_name, speaker, talk_s, turns, share FROM talk_per_participant")}

    turns = {(r["recording"], r["speaker"]): (r["responses"], r["median_latency_s"]) for r in report("turns")}
    for name, speaker, responses, median in read(coded, "SELECT recording_name, speaker, responses, median_latency_s FROM response_latency"):
        assert turns[name, speaker] == (responses, pytest.approx(median))

    matrix = report("matrix", "--recording", DEMO)
    cells = {(row["from \\ to"], to): n for row in matrix for to, n in row.items() if to != "from \\ to"}
    expected = dict(((f, t), n) for f, t, n in read(coded, "SELECT from_speaker, to_speaker, transitions FROM turn_transitions "
                                                         "WHERE recording_name = ?", [DEMO]))  # fmt: skip
    assert {k: v for k, v in cells.items() if v} == expected and all(cells[s, s] == 0 for s in ("G1-P01", "G1-P02"))
    # Over the group, participants add up across sessions; an unassigned label keeps its recording.
    group = {row["from \\ to"]: row for row in report("matrix", "--group", "G1")}
    ami_from_p01 = sum(n for (n,) in read(coded, "SELECT transitions FROM turn_transitions WHERE recording_name = ? AND from_speaker = 'G1-P01'", [AMI]))
    assert sum(v for k, v in group["G1-P01"].items() if k != "from \\ to") == sum(expected.get(("G1-P01", t), 0) for t in ("G1-P02", "G1-P03", "G1-P04")) + ami_from_p01
    assert any(k.startswith(f"{AMI}:SPEAKER_") for k in group)

    codes = {(r["coder"], r["dimension"], r["code"], r["role"]): (r["codings"], r["share_in_role"]) for r in report("codes")}
    assert codes == {(c, d, k, r): (n, s) for c, d, k, r, n, s in read(coded, "SELECT coder, dimension, code, role, codings, share_in_role FROM codes_by_role")}
    assert {r["coder"] for r in report("codes", "--coder", "eve")} == {"eve"}


def test_report_files_csv_xlsx_and_png(coded, tmp_path):
    talk = json.loads(emessi("report", "talk", "--db", coded, "--json").stdout)
    csv_file = tmp_path / "talk.csv"
    emessi("report", "talk", "--format", "csv", "--out", csv_file, "--db", coded)
    with open(csv_file, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["speaker"], float(r["share"])) for r in rows] == [(r["speaker"], r["share"]) for r in talk]
    assert "Ainoliisa" not in csv_file.read_text()  # ids, never names

    matrix = json.loads(emessi("report", "matrix", "--recording", DEMO, "--db", coded, "--json").stdout)
    xlsx = tmp_path / "matrix.xlsx"
    emessi("report", "matrix", "--recording", DEMO, "--format", "xlsx", "--out", xlsx, "--db", coded)
    sheet = list(load_workbook(xlsx).active.values)
    assert list(sheet[0]) == list(matrix[0]) and [list(r) for r in sheet[1:]] == [list(r.values()) for r in matrix]

    for kind in ("talk", "turns", "matrix", "codes"):
        png = tmp_path / f"{kind}.png"
        emessi("report", kind, "--group", "G1", "--format", "png", "--out", png, "--db", coded)
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 200
        assert stat.S_IMODE(png.stat().st_mode) == 0o600  # owner-only, as every export
        assert not list(tmp_path.glob(f".{kind}.png.partial"))


def test_report_mistakes_are_one_line_errors(coded, tmp_path):
    assert "no group 'G2'; did you mean G1?" in emessi("report", "talk", "--group", "G2", "--db", coded, code=2).output
    assert "did you mean talk?" in emessi("report", "tlak", "--db", coded, code=2).output
    assert "use table, csv, xlsx, png" in emessi("report", "talk", "--format", "pdf", "--db", coded, code=2).output
    assert "no codings by 'ev'" in emessi("report", "codes", "--coder", "ev", "--db", coded, code=2).output


@pytest.mark.parametrize("command", [["recordings"], ["report"], ["coding", "agreement"]], ids=" ".join)
def test_new_commands_have_help_with_an_example(command):
    result = emessi(*command, "--help")
    assert "Example" in result.output and f"emessi {' '.join(command)}" in result.output
