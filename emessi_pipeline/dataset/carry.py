"""Carry human work (codings, speaker assignments, corrections) from a recording's previous
observation set to its new one when the recording is re-processed, or from a recording to the
one that replaced it (its file changed at the same path; see ``load._replace_at_path``).

Nothing is deleted and nothing is dropped: every item of the old set gets one `carry_log` row
whose outcome is `carried` (copied to the new set, `carried_from` naming the original),
`already_present` (the new set has the same thing, e.g. when a recording goes back to a set it
had before), or `review` (no unambiguous match; the `carry_review` view lists these for a person,
until a person records a verdict on one: `resolve_carried`, kept in `carry_resolutions`).

Matching is by time, because labels and observation ids mean nothing across sets:
- an observation matches the one new observation that covers at least half of it and is at
  least half covered by it (mutual majority); several or none is ambiguous;
- a text correction also needs the new observation to have the same ASR text (otherwise the
  corrected wording may no longer fit it);
- a speaker correction (an observation moved to another label) needs both: the observation
  matches, and the label it was moved to matches a new label; it is then carried only when the
  new observation is not already diarised to that label (the re-processing fixed it);
- a speaker label matches the new label it shares the most exclusive-diarisation time with, when
  that is at least half of its talk time and it is also that new label's best old label.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .common import DatasetError, new_id, now
from .connection import transaction
from .speakers import write_assignment

if TYPE_CHECKING:
    from .load import LoadedRecording

MAJORITY = 0.5
POINT = 0.01  # seconds: an observation shorter than this is matched by its midpoint


@dataclass(frozen=True)
class Match:
    target: str | None
    candidates: list[dict]
    reason: str


def carry_over(con, recording_id: str, old_set_id: str | None, new_set_id: str) -> None:
    """Called inside the load transaction after *new_set_id* became the current set."""
    if not old_set_id or old_set_id == new_set_id:
        return
    _carry_assignments(con, recording_id, old_set_id, new_set_id)
    codings = [r[0] for r in con.execute(
        "SELECT c.coding_id FROM codings c JOIN observations o USING (observation_id) "
        "WHERE o.set_id = ? AND c.superseded_at IS NULL ORDER BY c.coded_at, c.coding_id", [old_set_id]).fetchall()]  # fmt: skip
    corrections = [r[0] for r in con.execute(
        "SELECT c.correction_id FROM text_corrections c JOIN observations o USING (observation_id) "
        "WHERE o.set_id = ? AND c.superseded_at IS NULL", [old_set_id]).fetchall()]  # fmt: skip
    _carry_codings(con, recording_id, old_set_id, new_set_id, codings)
    _carry_corrections(con, recording_id, old_set_id, new_set_id, corrections)
    _carry_moves(con, recording_id, old_set_id, new_set_id)


def on_load(con, item: LoadedRecording, previous_set_id: str | None, run_id: str) -> None:
    """Load hook: carry the work on the recording's previous current set to the one being loaded."""
    if previous_set_id != item.observations.set_id:
        carry_over(con, item.recording_id, previous_set_id, item.observations.set_id)


def carry_to_current(con, coding_ids: list[str], correction_ids: list[str]) -> tuple[int, int]:
    """Carry just-written codings/corrections that landed on a non-current set to the current one.

    Returns (carried, sent to review)."""
    carried = review = 0
    for kind, table, key, ids in (("coding", "codings", "coding_id", coding_ids),
                                  ("correction", "text_corrections", "correction_id", correction_ids)):  # fmt: skip
        if not ids:
            continue
        rows = con.execute(
            f"""SELECT o.recording_id, o.set_id, list(x.{key})
                FROM {table} x JOIN observations o USING (observation_id)
                WHERE list_contains(?, x.{key}) GROUP BY ALL""",
            [ids],
        ).fetchall()
        for old_recording, old_set, items in rows:
            recording_id, new_set = current_home(con, old_recording)
            if new_set is None or new_set == old_set:
                continue
            carry = _carry_codings if kind == "coding" else _carry_corrections
            outcomes = carry(con, recording_id, old_set, new_set, items)
            carried += outcomes.count("carried") + outcomes.count("already_present")
            review += outcomes.count("review")
    return carried, review


def current_home(con, recording_id: str) -> tuple[str, str | None]:
    """The recording that stands for *recording_id* now (itself, or the one that replaced it
    when its file changed, followed to the last) and that recording's current set."""
    seen = set()
    while recording_id not in seen:
        seen.add(recording_id)
        replaced_by, current_set = con.execute(
            "SELECT replaced_by, current_set_id FROM recordings WHERE recording_id = ?", [recording_id]
        ).fetchone()
        if replaced_by is None:
            return recording_id, current_set
        recording_id = replaced_by
    return recording_id, None  # a cycle (cannot be made by a load): leave the work where it is


def _log(con, recording_id, old_set, new_set, kind, item_id, old_target, outcome, match: Match) -> str:
    con.execute(
        "INSERT INTO carry_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [recording_id, old_set, new_set, kind, item_id, old_target, outcome, match.target,
         json.dumps(match.candidates), match.reason, now()],
    )  # fmt: skip
    return outcome


def match_observations(con, old_set: str, new_set: str, observation_ids: list[str]) -> dict[str, Match]:
    """For each old observation, its unambiguous counterpart in *new_set* (or None, with why)."""
    if not observation_ids:
        return {}
    spans = {
        oid: (start, end)
        for oid, start, end in con.execute(
            "SELECT observation_id, start_s, end_s FROM observations WHERE list_contains(?, observation_id)",
            [observation_ids],
        ).fetchall()
    }
    overlaps = defaultdict(list)
    for old_id, new_id_, start, end, overlap in con.execute(
        """SELECT o.observation_id, n.observation_id, n.start_s, n.end_s,
                  least(o.end_s, n.end_s) - greatest(o.start_s, n.start_s)
           FROM observations o JOIN observations n
             ON n.set_id = ? AND n.end_s >= o.start_s AND n.start_s <= o.end_s
           WHERE o.set_id = ? AND list_contains(?, o.observation_id)""",
        [new_set, old_set, observation_ids],
    ).fetchall():
        overlaps[old_id].append((new_id_, start, end, max(overlap, 0.0)))
    result = {}
    for oid in observation_ids:
        start, end = spans[oid]
        found = overlaps.get(oid, [])
        candidates = [{"observation_id": n, "overlap_s": round(ov, 3)} for n, _, _, ov in found if ov > 0 or end - start < POINT]
        if end - start < POINT:
            mid = (start + end) / 2
            hits = [n for n, s, e, _ in found if s <= mid <= e]
        else:
            hits = [n for n, s, e, ov in found if ov >= MAJORITY * (end - start) and ov >= MAJORITY * max(e - s, POINT)]
        if len(hits) == 1:
            result[oid] = Match(hits[0], candidates, "time overlap: mutual majority")
        elif not candidates:
            result[oid] = Match(None, candidates, "no observation of the new set overlaps it")
        else:
            result[oid] = Match(None, candidates, "split or merged: no single observation covers most of it")
    return result


def _carry_codings(con, recording_id, old_set, new_set, coding_ids: list[str]) -> list[str]:
    if not coding_ids:
        return []
    rows = con.execute(
        "SELECT coding_id, observation_id, coder, dimension, code, codebook_version, source, coded_at "
        "FROM codings WHERE list_contains(?, coding_id) ORDER BY coded_at, coding_id",
        [coding_ids],
    ).fetchall()
    matches = match_observations(con, old_set, new_set, sorted({r[1] for r in rows}))
    multiple = dict(con.execute("SELECT dimension, multiple FROM codebook_dimensions").fetchall())
    outcomes = []
    for coding_id, obs, coder, dim, code, version, source, coded_at in rows:
        match = matches[obs]
        if match.target is None:
            outcomes.append(_log(con, recording_id, old_set, new_set, "coding", coding_id, obs, "review", match))
            continue
        there = [r[0] for r in con.execute(
            "SELECT code FROM codings WHERE observation_id = ? AND coder = ? AND dimension = ? AND superseded_at IS NULL",
            [match.target, coder, dim]).fetchall()]  # fmt: skip
        if code in there:
            outcomes.append(_log(con, recording_id, old_set, new_set, "coding", coding_id, obs, "already_present", match))
        elif there and not multiple.get(dim, False):
            conflict = Match(None, match.candidates, f"{match.target} already has {dim}={there[0]} by {coder}")
            outcomes.append(_log(con, recording_id, old_set, new_set, "coding", coding_id, obs, "review", conflict))
        else:
            con.execute(
                "INSERT INTO codings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [new_id(), match.target, coder, dim, code, version, source, coded_at, coding_id],
            )
            outcomes.append(_log(con, recording_id, old_set, new_set, "coding", coding_id, obs, "carried", match))
    return outcomes


def _carry_corrections(con, recording_id, old_set, new_set, correction_ids: list[str]) -> list[str]:
    if not correction_ids:
        return []
    rows = con.execute(
        "SELECT c.correction_id, c.observation_id, c.corrector, c.text, c.corrected_at, o.text "
        "FROM text_corrections c JOIN observations o USING (observation_id) WHERE list_contains(?, c.correction_id)",
        [correction_ids],
    ).fetchall()
    matches = match_observations(con, old_set, new_set, sorted({r[1] for r in rows}))
    outcomes = []
    for correction_id, obs, corrector, text, corrected_at, asr_text in rows:
        match = matches[obs]
        if match.target is not None:
            new_text = con.execute("SELECT text FROM observations WHERE observation_id = ?", [match.target]).fetchone()[0]
            if new_text != asr_text:
                match = Match(None, match.candidates, f"{match.target} has other ASR text; check the correction by hand")
        if match.target is None:
            outcomes.append(_log(con, recording_id, old_set, new_set, "correction", correction_id, obs, "review", match))
            continue
        current = con.execute(
            "SELECT text FROM text_corrections WHERE observation_id = ? AND superseded_at IS NULL", [match.target]
        ).fetchone()
        if current and current[0] == text:
            outcomes.append(_log(con, recording_id, old_set, new_set, "correction", correction_id, obs, "already_present", match))
            continue
        if current:
            conflict = Match(None, match.candidates, f"{match.target} already has another correction")
            outcomes.append(_log(con, recording_id, old_set, new_set, "correction", correction_id, obs, "review", conflict))
            continue
        con.execute("INSERT INTO text_corrections VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    [new_id(), match.target, corrector, text, corrected_at, correction_id])  # fmt: skip
        outcomes.append(_log(con, recording_id, old_set, new_set, "correction", correction_id, obs, "carried", match))
    return outcomes


def _label_overlaps(con, old_set: str, new_set: str) -> dict[tuple[str, str], float]:
    """Seconds each old label shares with each new label (exclusive diarisation; observations
    when a set has no turns)."""
    query = """
        WITH spans AS (
            SELECT set_id, speaker_label, start_s, end_s FROM speaker_turns
            WHERE kind = 'exclusive' AND set_id IN (?, ?)
            UNION ALL
            SELECT set_id, speaker_label, start_s, end_s FROM observations
            WHERE set_id IN (?, ?) AND set_id NOT IN (SELECT set_id FROM speaker_turns WHERE kind = 'exclusive'))
        SELECT a.speaker_label, b.speaker_label,
               sum(greatest(least(a.end_s, b.end_s) - greatest(a.start_s, b.start_s), 0))
        FROM spans a JOIN spans b ON a.set_id = ? AND b.set_id = ?
         AND b.end_s > a.start_s AND b.start_s < a.end_s
        GROUP BY 1, 2"""
    rows = con.execute(query, [old_set, new_set, old_set, new_set, old_set, new_set]).fetchall()
    return {(a, b): s for a, b, s in rows}


def _carry_assignments(con, recording_id, old_set, new_set) -> list[str]:
    rows = con.execute(
        "SELECT assignment_id, speaker_label, participant_id, role, assigned_by, score FROM speaker_assignments "
        "WHERE set_id = ? AND superseded_at IS NULL ORDER BY speaker_label",
        [old_set],
    ).fetchall()
    if not rows:
        return []
    labels = _label_map(con, old_set, new_set)
    outcomes = []
    for assignment_id, label, participant, role, by, score in rows:
        match = labels.get(label) or Match(None, [], "the label shares no time with any label of the new set")
        if match.target is None:
            outcomes.append(_log(con, recording_id, old_set, new_set, "assignment", assignment_id, label, "review", match))
            continue
        current = con.execute(
            "SELECT participant_id, role FROM speaker_assignments WHERE set_id = ? AND speaker_label = ? AND superseded_at IS NULL",
            [new_set, match.target],
        ).fetchone()
        if current == (participant, role):
            outcomes.append(_log(con, recording_id, old_set, new_set, "assignment", assignment_id, label, "already_present", match))
        elif current:
            conflict = Match(None, match.candidates, f"{match.target} is already assigned to {current[0]} ({current[1]})")
            outcomes.append(_log(con, recording_id, old_set, new_set, "assignment", assignment_id, label, "review", conflict))
        else:
            write_assignment(con, recording_id, match.target, participant, role, by, assignment_id, set_id=new_set,
                             score=score)
            outcomes.append(_log(con, recording_id, old_set, new_set, "assignment", assignment_id, label, "carried", match))
    return outcomes


def _label_map(con, old_set: str, new_set: str) -> dict[str, Match]:
    """Each old label's new label: the mutual best by shared exclusive-diarisation time, as
    assignments are carried."""
    shared = _label_overlaps(con, old_set, new_set)
    talk = defaultdict(float)
    best_old: dict[str, tuple[float, str]] = {}
    for (old, new), seconds in shared.items():
        talk[old] += seconds
        if seconds > best_old.get(new, (0.0, ""))[0]:
            best_old[new] = (seconds, old)
    result = {}
    for old in {o for o, _ in shared}:
        options = sorted(((s, new) for (o, new), s in shared.items() if o == old), reverse=True)
        candidates = [{"speaker_label": new, "shared_s": round(s, 3)} for s, new in options]
        if options[0][0] < MAJORITY * talk[old] or best_old.get(options[0][1], (0.0, None))[1] != old:
            result[old] = Match(None, candidates, "no new label shares most of this label's time (and it theirs)")
        else:
            result[old] = Match(options[0][1], candidates, "exclusive diarisation overlap: mutual best")
    return result


def _carry_moves(con, recording_id, old_set, new_set) -> list[str]:
    rows = con.execute(
        "SELECT c.correction_id, c.observation_id, c.speaker_label, c.moved_by, c.moved_at, c.note "
        "FROM speaker_corrections c JOIN observations o USING (observation_id) "
        "WHERE o.set_id = ? AND c.superseded_at IS NULL ORDER BY c.moved_at", [old_set]).fetchall()  # fmt: skip
    if not rows:
        return []
    matches = match_observations(con, old_set, new_set, sorted({r[1] for r in rows}))
    labels = _label_map(con, old_set, new_set)
    outcomes = []
    for correction_id, obs, label, by, at, note in rows:
        match = matches[obs]
        to = labels.get(label, Match(None, [], f"{label} shares no time with any label of the new set"))
        if match.target is not None and to.target is None:
            match = Match(None, to.candidates, f"moved to {label}, which has no unambiguous label in the new set: {to.reason}")
        if match.target is None:
            outcomes.append(_log(con, recording_id, old_set, new_set, "speaker_move", correction_id, obs, "review", match))
            continue
        (diarised,) = con.execute("SELECT speaker_label FROM observations WHERE observation_id = ?", [match.target]).fetchone()
        current = con.execute("SELECT speaker_label FROM speaker_corrections WHERE observation_id = ? "
                              "AND superseded_at IS NULL", [match.target]).fetchone()  # fmt: skip
        if (current[0] if current else diarised) == to.target:
            outcomes.append(_log(con, recording_id, old_set, new_set, "speaker_move", correction_id, obs, "already_present", match))
            continue
        if current:
            conflict = Match(None, match.candidates, f"{match.target} was already moved to {current[0]}")
            outcomes.append(_log(con, recording_id, old_set, new_set, "speaker_move", correction_id, obs, "review", conflict))
            continue
        con.execute("INSERT INTO speaker_corrections VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    [new_id(), match.target, to.target, by, at, note, correction_id])  # fmt: skip
        outcomes.append(_log(con, recording_id, old_set, new_set, "speaker_move", correction_id, obs, "carried", match))
    return outcomes


CARRY_OUTCOMES = ("placed", "dismissed")  # placed by hand where it belongs; not wanted any more
REOPENED = "reopened"


def resolve_carried(con, item_id: str, outcome: str, note: str | None = None, resolved_by: str | None = None) -> tuple:
    """Record a person's verdict on one item of `carry_review` (or, with `reopened`, put a
    resolved one back); earlier verdicts stay in `carry_resolutions`. *item_id* is the coding,
    correction, assignment or move id the list shows, or a unique start of one.
    Returns (recording_id, kind, item_id)."""
    if outcome not in (*CARRY_OUTCOMES, REOPENED):
        raise DatasetError(f"--as {outcome}: use one of {', '.join(CARRY_OUTCOMES)}")
    logged = con.execute(
        "SELECT DISTINCT recording_id, new_set_id, kind, item_id FROM carry_log "
        "WHERE outcome = 'review' AND starts_with(item_id, ?)", [item_id]).fetchall()  # fmt: skip
    if not logged:
        raise DatasetError(f"{item_id}: no carried item to review has this id (emessi coding review --all lists them)")
    if len({row[3] for row in logged}) > 1:
        raise DatasetError(f"{item_id}: starts {len(logged)} items' ids; give more of it")
    recording_id, new_set_id, kind, item = logged[-1]
    open_now = con.execute("SELECT 1 FROM carry_review WHERE item_id = ?", [item]).fetchone() is not None
    if outcome == REOPENED and open_now:
        raise DatasetError(f"{item} is not resolved: nothing to reopen")
    if outcome != REOPENED and not open_now:
        raise DatasetError(f"{item} is already resolved (reopen it first with --reopen)")
    with transaction(con):
        con.execute("INSERT INTO carry_resolutions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [new_id(), recording_id, new_set_id, kind, item, outcome, note, resolved_by, now()])  # fmt: skip
    return recording_id, kind, item


def carried_for_review(con, recording_id: str | None = None, resolved: bool = False) -> list[dict]:
    """The carry_review list (oldest first); with *resolved*, the resolved items too, each with
    the verdict in force."""
    source = "carry_log WHERE outcome = 'review'" if resolved else "carry_review"
    rows = con.execute(
        f"""WITH verdict AS (
                SELECT item_id, arg_max(outcome, resolved_at) AS verdict, arg_max(resolved_by, resolved_at) AS resolved_by
                FROM carry_resolutions GROUP BY item_id)
            SELECT c.recording_id, c.kind, c.item_id, c.old_target, c.reason, c.candidates, c.old_set_id,
                   c.new_set_id, c.logged_at, CASE WHEN v.verdict = 'reopened' THEN NULL ELSE v.verdict END,
                   CASE WHEN v.verdict = 'reopened' THEN NULL ELSE v.resolved_by END
            FROM (SELECT * FROM {source}) c LEFT JOIN verdict v USING (item_id)
            WHERE ? IS NULL OR c.recording_id = ?
            ORDER BY c.logged_at, c.kind, c.item_id""", [recording_id, recording_id]).fetchall()  # fmt: skip
    keys = ("recording_id", "kind", "item_id", "old_target", "reason", "candidates", "old_set_id", "new_set_id",
            "logged_at", "resolution", "resolved_by")  # fmt: skip
    return [dict(zip(keys, row)) for row in rows]
