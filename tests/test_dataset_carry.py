"""Re-processing never loses coding: after a re-ingest with other segmentation, every coding,
speaker assignment and text correction of the old set is carried to the new one or listed for
review — zero lost — and the old set stays queryable."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


from .dataset_fixtures import CODEBOOK, DEMO, dataset_base, db, read as _read, emessi  # noqa: F401

pytestmark = pytest.mark.slow
FUNCTIONS = ["question", "answer_advice", "experience", "support", "steering", "technical"]


def _code_everything(db: Path, tmp_path: Path, coder: str) -> Path:
    sheet = tmp_path / f"{coder}.csv"
    emessi("coding", "export", "--coder", coder, "--recording", DEMO, "--out", sheet, "--db", db)
    with open(sheet, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        row["function"] = FUNCTIONS[(i + len(coder)) % len(FUNCTIONS)]
        row["topic"] = "wellbeing;change_crisis" if i % 2 else "managing_work"
        row["corrected_text"] = f"korjattu {i}" if i % 4 == 0 else ""
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    emessi("coding", "import", sheet, "--coder", coder, "--new-coder", "--db", db)
    return sheet


def _reingest(dataset_base, make_ingestor, db: Path, max_pause: float | None):
    overrides = {"segment.max_pause": max_pause} if max_pause is not None else None
    ingestor = make_ingestor(workspace=dataset_base.workspace, db=db, overrides=overrides)
    summary = ingestor.run(dataset_base.demo_source)
    assert not summary.failed
    return summary


@pytest.fixture
def reprocessed(dataset_base, make_ingestor, db, tmp_path):
    """Demo coded by two coders, speakers assigned, then re-ingested with max_pause 0.2."""
    emessi("codebook", "import", CODEBOOK, "--db", db)
    for label, participant, role in [("SPEAKER_00", "G1-P01", "leader"), ("SPEAKER_01", "G1-P02", "participant"),
                                     ("SPEAKER_02", "G1-P03", "facilitator")]:  # fmt: skip
        emessi("speakers", "assign", DEMO, label, "--participant", participant, "--role", role, "--db", db)
    sheets = [_code_everything(db, tmp_path, coder) for coder in ("anna", "ben")]
    old_set = _read(db, "SELECT current_set_id FROM recordings WHERE name = ?", [DEMO])[0][0]
    before = {
        "codings": _read(db, "SELECT c.coding_id, c.observation_id, c.coder, c.dimension, c.code FROM codings c "
                             "JOIN observations o USING (observation_id) WHERE o.set_id = ? AND c.superseded_at IS NULL", [old_set]),  # fmt: skip
        "assignments": _read(db, "SELECT assignment_id, speaker_label, participant_id, role FROM speaker_assignments WHERE set_id = ?", [old_set]),
        "corrections": _read(db, "SELECT correction_id, observation_id, c.text FROM text_corrections c "
                                 "JOIN observations o USING (observation_id) WHERE o.set_id = ?", [old_set]),  # fmt: skip
    }
    _reingest(dataset_base, make_ingestor, db, 0.2)
    new_set = _read(db, "SELECT current_set_id FROM recordings WHERE name = ?", [DEMO])[0][0]
    assert new_set != old_set
    return db, old_set, new_set, before, sheets


def test_every_coding_is_carried_or_listed_for_review_zero_lost(reprocessed):
    db, old_set, new_set, before, _ = reprocessed
    assert len(before["codings"]) > 0
    log = {r[0]: r[1:] for r in _read(db, "SELECT item_id, outcome, new_target, old_target FROM carry_log "
                                          "WHERE kind = 'coding' AND new_set_id = ?", [new_set])}  # fmt: skip
    lost = [c for c in before["codings"] if c[0] not in log]
    assert lost == []
    assert len(log) == len(before["codings"])
    carried = {r[0]: r[1:] for r in _read(db, "SELECT carried_from, observation_id, coder, dimension, code FROM codings "
                                              "WHERE carried_from IS NOT NULL")}  # fmt: skip
    outcomes = {"carried": 0, "review": 0}
    for coding_id, obs, coder, dim, code in before["codings"]:
        outcome, target, old_target = log[coding_id]
        assert old_target == obs
        outcomes[outcome] += 1
        if outcome == "carried":
            assert carried[coding_id] == (target, coder, dim, code)
    assert outcomes["carried"] > 0  # most observations are not split by a shorter pause
    in_review = _read(db, "SELECT count(*) FROM carry_review WHERE kind = 'coding' AND new_set_id = ?", [new_set])[0][0]
    assert in_review == outcomes["review"]
    # carried codings sit on new-set observations that overlap the original in time
    bad = _read(db, """SELECT count(*) FROM codings c JOIN codings old ON c.carried_from = old.coding_id
                       JOIN observations n ON c.observation_id = n.observation_id
                       JOIN observations o ON old.observation_id = o.observation_id
                       WHERE n.set_id <> ? OR n.end_s <= o.start_s OR n.start_s >= o.end_s""", [new_set])  # fmt: skip
    assert bad == [(0,)]
    print(f"\ncarry after max_pause 0.2: {outcomes}")


def test_the_old_set_and_its_codings_stay_queryable(reprocessed):
    db, old_set, _, before, _ = reprocessed
    still = _read(db, "SELECT count(*) FROM codings c JOIN observations o USING (observation_id) "
                      "WHERE o.set_id = ? AND c.superseded_at IS NULL", [old_set])  # fmt: skip
    assert still == [(len(before["codings"]),)]
    per_set = dict(_read(db, "SELECT set_id, count(*) FROM observations WHERE recording_id = "
                             "(SELECT recording_id FROM recordings WHERE name = ?) GROUP BY 1", [DEMO]))  # fmt: skip
    assert len(per_set) == 2 and all(per_set.values())


def test_speaker_assignments_and_corrections_are_carried_or_reviewed(reprocessed):
    db, _, new_set, before, _ = reprocessed
    logged = dict(_read(db, "SELECT item_id, outcome FROM carry_log WHERE kind IN ('assignment', 'correction') AND new_set_id = ?", [new_set]))
    assert {a[0] for a in before["assignments"]} | {c[0] for c in before["corrections"]} == set(logged)
    # only the segmentation changed, so the diarisation and its labels are the same: all carried
    assert all(logged[a[0]] == "carried" for a in before["assignments"])
    now = set(_read(db, "SELECT speaker_label, participant_id, role FROM current_speaker_assignments"))
    assert {a[1:] for a in before["assignments"]} <= now
    carried_text = {r[0] for r in _read(db, "SELECT text FROM current_corrections")}
    for correction_id, _, text in before["corrections"]:
        assert logged[correction_id] == "review" or text in carried_text


def test_going_back_to_the_first_segmentation_duplicates_nothing(reprocessed, dataset_base, make_ingestor):
    db, old_set, _, before, _ = reprocessed
    _reingest(dataset_base, make_ingestor, db, None)
    assert _read(db, "SELECT current_set_id FROM recordings WHERE name = ?", [DEMO])[0][0] == old_set
    active = _read(db, "SELECT observation_id, coder, dimension, code, count(*) FROM codings c "
                       "JOIN observations o USING (observation_id) WHERE o.set_id = ? AND c.superseded_at IS NULL "
                       "GROUP BY ALL HAVING count(*) > 1", [old_set])  # fmt: skip
    assert active == []
    mine = _read(db, "SELECT count(*) FROM current_codings WHERE recording_name = ? AND carried_from IS NULL", [DEMO])
    assert mine == [(len(before["codings"]),)]


def _rewrite(sheet: Path, target: Path, coder_function: str) -> Path:
    with open(sheet, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["function"], row["topic"], row["corrected_text"] = coder_function, "", ""
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def test_a_sheet_exported_before_the_reingest_still_lands_on_the_current_set(reprocessed, tmp_path):
    db, old_set, new_set, _, sheets = reprocessed
    # carl codes on a sheet of the old set's observations: his work is carried to the new set
    late = _rewrite(sheets[0], tmp_path / "carl.csv", "support")
    summary = json.loads(emessi("coding", "import", late, "--coder", "carl", "--new-coder", "--db", db, "--json").stdout)
    assert summary["added"] > 0 and summary["carried"] > 0
    assert summary["carried"] + summary["for_review"] == summary["added"]
    current = _read(db, "SELECT count(*) FROM current_codings WHERE coder = 'carl' AND code = 'support'")[0][0]
    assert current == summary["carried"]
    # anna revising her old sheet collides with her carried codings: those go to review, not over them
    revised = _rewrite(sheets[0], tmp_path / "anna-late.csv", "technical")
    summary = json.loads(emessi("coding", "import", revised, "--coder", "anna", "--new-coder", "--db", db, "--json").stdout)
    assert summary["added"] > 0 and summary["carried"] + summary["for_review"] == summary["added"]
    reasons = [r[0] for r in _read(db, "SELECT reason FROM carry_review WHERE kind = 'coding' AND reason LIKE '%already has function=%'")]
    assert len(reasons) > 0


def test_carried_items_to_review_are_resolved_so_the_list_shrinks_and_their_verdicts_stay(reprocessed):
    db, _, new_set, _, _ = reprocessed
    listed = json.loads(emessi("coding", "review", "--recording", DEMO, "--db", db, "--json").stdout)
    assert listed and all(i["resolution"] is None for i in listed)
    first, second = listed[0]["item_id"], listed[-1]["item_id"]

    said = emessi("coding", "review", "--resolve", first[:12], "--as", "placed", "--note", "coded by hand",
                  "--by", "anna", "--db", db).output  # fmt: skip
    assert first in said and "resolved as placed" in said
    emessi("coding", "review", "--resolve", second, "--as", "dismissed", "--db", db)
    after = json.loads(emessi("coding", "review", "--recording", DEMO, "--db", db, "--json").stdout)
    assert [i["item_id"] for i in after] == [i["item_id"] for i in listed if i["item_id"] not in (first, second)]
    assert _read(db, "SELECT count(*) FROM carry_review")[0][0] == len(after)
    every = {i["item_id"]: i for i in json.loads(emessi("coding", "review", "--all", "--db", db, "--json").stdout)}
    assert (every[first]["resolution"], every[first]["resolved_by"]) == ("placed", "anna")
    assert every[second]["resolution"] == "dismissed"

    # Back on the list on purpose; every verdict stays in the table.
    emessi("coding", "review", "--reopen", first, "--db", db)
    reopened = json.loads(emessi("coding", "review", "--recording", DEMO, "--db", db, "--json").stdout)
    assert first in {i["item_id"] for i in reopened} and second not in {i["item_id"] for i in reopened}
    assert _read(db, "SELECT outcome FROM carry_resolutions WHERE item_id = ? ORDER BY resolved_at", [first]) == [
        ("placed",), ("reopened",)]

    # Mistakes: one line, exit 2, nothing written.
    for args, words in ((["--resolve", second, "--as", "placed"], "already resolved"),
                        (["--resolve", first, "--as", "maybe"], "use one of placed, dismissed"),
                        (["--resolve", "no-such-item", "--as", "placed"], "no carried item"),
                        (["--resolve", first], "--as placed|dismissed")):  # fmt: skip
        result = emessi("coding", "review", *args, "--db", db, code=2)
        assert words in result.output and "Traceback" not in result.output
    assert _read(db, "SELECT count(*) FROM carry_resolutions")[0][0] == 3
