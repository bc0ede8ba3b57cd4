"""What the browser workbench (`emessi serve`) reads and writes, one observation or label at a time.

The writes go through the same rules as a sheet import (``coding.plan_change`` and
``coding.apply_change``): retired or unknown codes are refused, a dimension that allows one code
gets one, a change supersedes the codings it replaces (kept), nothing is deleted. Each write is
one short transaction on a writer the caller opens for just that write.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .batches import record_items, start_batch
from .codebook import MULTI_SEPARATOR, load_active
from .coding import CodingChange, apply_change, parse_cell, plan_change
from .common import DatasetError, all_recordings, now, resolve_recording
from .connection import transaction
from .speakers import AUTO, write_assignment

SOURCE = "workbench"


@dataclass(frozen=True)
class CodeResult:
    observation_id: str
    dimension: str
    previous: list[str]
    codes: list[str]
    changed: bool
    # The codes in force differed from what the page showed: another tab or session of this
    # coder changed them meanwhile. Both stay in the history; this write is now current.
    overwrote: list[str] | None = None


@dataclass(frozen=True)
class CorrectionResult:
    observation_id: str
    previous: str
    text: str
    changed: bool


@dataclass
class RecordingView:
    recording_id: str
    name: str
    path: str
    group_id: str | None
    session_no: int | None
    video: bool
    duration_s: float | None
    rows: list[dict]
    dimensions: list[dict]  # {dimension, label, multiple, codes: [{code, label, key}]}
    labels: list[dict] = field(default_factory=list)


def _current_observation(con, observation_id: str) -> tuple[str, str, str]:
    """(recording id, ASR text, text in force) of a current observation, else a DatasetError that
    says it was replaced (the page was opened before a re-processing)."""
    row = con.execute(
        "SELECT recording_id, asr_text, text FROM utterances WHERE observation_id = ?", [observation_id]
    ).fetchone()
    if row:
        return row
    if con.execute("SELECT 1 FROM observations WHERE observation_id = ?", [observation_id]).fetchone():
        raise DatasetError(f"observation {observation_id} was replaced by a re-processing of its recording; "
                           "reload the page (work done on it was carried over or listed for review)")  # fmt: skip
    raise DatasetError(f"no observation {observation_id!r}")


def code_observation(con, coder: str, observation_id: str, dimension: str, codes: list[str],
                     expected: list[str] | None = None) -> CodeResult:  # fmt: skip
    """Make *codes* this coder's whole answer for one observation and dimension (empty: none).

    *expected*: the codes the caller believed in force; when they differ the result says which
    codes this write replaced (both versions stay in the history)."""
    coder = (coder or "").strip()
    if not coder:
        raise DatasetError("choose a coder first")
    _current_observation(con, observation_id)
    book = load_active(con)
    if book.version is None:
        raise DatasetError("no codebook yet: run `emessi codebook import FILE` first")
    if dimension not in book.dimensions:
        retired = dimension in book.retired_dimensions
        raise DatasetError(f"dimension {dimension!r} is {'retired in' if retired else 'not in'} the codebook")
    wanted, errors = parse_cell(MULTI_SEPARATOR.join(codes), dimension, book)
    if errors:
        raise DatasetError("; ".join(errors))
    previous = current_codes(con, coder, observation_id, dimension)
    change = plan_change(con, coder, {(observation_id, dimension): wanted}, [])
    if not wanted:  # the sheet's empty cell leaves codings alone; here it clears them
        change.supersede += [cid for cid, in con.execute(
            "SELECT coding_id FROM codings WHERE coder = ? AND observation_id = ? AND dimension = ? "
            "AND superseded_at IS NULL", [coder, observation_id, dimension]).fetchall()]  # fmt: skip
    changed = bool(change.add or change.supersede)
    if changed:
        with transaction(con):
            apply_change(con, change, SOURCE, coder)
    overwrote = previous if expected is not None and sorted(expected) != previous else None
    return CodeResult(observation_id, dimension, previous, sorted(wanted), changed, overwrote)


def current_codes(con, coder: str, observation_id: str, dimension: str) -> list[str]:
    return [c for c, in con.execute(
        "SELECT code FROM codings WHERE coder = ? AND observation_id = ? AND dimension = ? "
        "AND superseded_at IS NULL ORDER BY code", [coder, observation_id, dimension]).fetchall()]  # fmt: skip


def correct_text(con, corrector: str, observation_id: str, text: str) -> CorrectionResult:
    """Store *text* as the observation's corrected text (the earlier correction is superseded,
    kept). Writing back the ASR text withdraws the correction: the observation reads as transcribed."""
    corrector = (corrector or "").strip()
    if not corrector:
        raise DatasetError("choose a coder first")
    text = " ".join((text or "").split())
    if not text:
        raise DatasetError("an empty text is no correction (press Esc to leave the text as it was)")
    _, asr_text, previous = _current_observation(con, observation_id)
    if text == previous:
        return CorrectionResult(observation_id, previous, text, False)
    with transaction(con):
        if text == asr_text:
            # A batch of its own too, so history shows the withdrawal and a revert restores it.
            withdrawn = [r[0] for r in con.execute(
                "SELECT correction_id FROM text_corrections WHERE observation_id = ? AND superseded_at IS NULL",
                [observation_id]).fetchall()]  # fmt: skip
            batch = start_batch(con, "import", corrector, SOURCE)
            con.execute("UPDATE text_corrections SET superseded_at = ? WHERE list_contains(?, correction_id)",
                        [now(), withdrawn])  # fmt: skip
            record_items(con, batch, "correction", "superseded", withdrawn)
        else:
            apply_change(con, CodingChange(corrections=[(observation_id, text)]), SOURCE, corrector)
    return CorrectionResult(observation_id, previous, text, True)


def merge_labels(con, recording: str, label: str, into: str, merged_by: str | None = None) -> int:
    """Say that *label* is the same person as *into* (one person split in two by diarisation):
    *label* gets *into*'s participant and role. The labels stay as the diarisation made them;
    every view that counts by participant counts them as one. Returns 1, or 0 if already so."""
    rec = resolve_recording(con, recording)
    labels = {r for r, in con.execute("SELECT speaker_label FROM speakers WHERE set_id = ?", [rec.set_id]).fetchall()}
    for given in (label, into):
        if given not in labels:
            raise DatasetError(f"{rec.name} has no speaker {given!r} (it has {', '.join(sorted(labels))})")
    if label == into:
        raise DatasetError(f"{label} cannot be merged into itself")
    target = con.execute(
        "SELECT participant_id, role FROM current_speaker_assignments WHERE recording_id = ? AND speaker_label = ?",
        [rec.recording_id, into],
    ).fetchone()
    if not target or not target[0]:
        raise DatasetError(f"assign {into} to a participant first: a merge gives {label} the participant of {into}")
    with transaction(con):
        return write_assignment(con, rec, label, target[0], target[1], merged_by, None)


def recordings_overview(con, group: str | None = None) -> list[dict]:
    """One row per current recording: what it is, how far coding and review have come."""
    recs = [r for r in all_recordings(con) if group is None or r.group_id == group]
    if not recs:
        return []
    ids = [r.recording_id for r in recs]

    def by_recording(sql: str) -> dict:
        return {r[0]: r[1:] for r in con.execute(sql, [ids]).fetchall()}

    meta = by_recording("SELECT recording_id, session_date, duration_s FROM recordings WHERE list_contains(?, recording_id)")
    speakers = by_recording("SELECT recording_id, count(*) FROM current_speakers WHERE list_contains(?, recording_id) GROUP BY 1")
    observations = by_recording("SELECT recording_id, count(*) FROM current_observations "
                                "WHERE list_contains(?, recording_id) GROUP BY 1")  # fmt: skip
    review = by_recording("SELECT recording_id, count(DISTINCT observation_id) FROM current_review "
                          "WHERE list_contains(?, recording_id) GROUP BY 1")  # fmt: skip
    carried = by_recording("SELECT recording_id, count(*) FROM carry_review WHERE list_contains(?, recording_id) GROUP BY 1")
    coded: dict[str, dict[str, int]] = defaultdict(dict)
    for rid, coder, n in con.execute(
        "SELECT recording_id, coder, count(DISTINCT observation_id) FROM current_codings "
        "WHERE list_contains(?, recording_id) GROUP BY 1, 2 ORDER BY 2", [ids]).fetchall():  # fmt: skip
        coded[rid][coder] = n
    rows = []
    for r in recs:
        date, duration = meta.get(r.recording_id, (None, None))
        rows.append({
            "recording_id": r.recording_id, "name": r.name, "group_id": r.group_id, "session_no": r.session_no,
            "session_date": date, "duration_s": duration, "speakers": speakers.get(r.recording_id, (0,))[0],
            "observations": observations.get(r.recording_id, (0,))[0], "coded": coded.get(r.recording_id, {}),
            "review": review.get(r.recording_id, (0,))[0], "carry_review": carried.get(r.recording_id, (0,))[0],
        })  # fmt: skip
    return rows


def codebook_for_keys(con) -> list[dict]:
    """The active dimensions and their active codes, each code with the key that applies it
    (1–9, then 0, in the codebook's order)."""
    keys = "1234567890"
    dims = con.execute(
        "SELECT dimension, label, multiple FROM codebook_dimensions WHERE NOT retired ORDER BY position"
    ).fetchall()
    result = []
    for dim, label, multiple in dims:
        codes = con.execute(
            "SELECT code, label FROM codebook_codes WHERE dimension = ? AND NOT retired ORDER BY position", [dim]
        ).fetchall()
        result.append({"dimension": dim, "label": label, "multiple": bool(multiple),
                       "codes": [{"code": c, "label": lab, "key": keys[i] if i < len(keys) else ""}
                                 for i, (c, lab) in enumerate(codes)]})  # fmt: skip
    return result


def recording_view(con, recording: str, coder: str | None = None, labels: bool = False) -> RecordingView:
    """The transcript of a recording's current set as the workbench shows it: each observation
    with its speaker (participant id and role when assigned, else the label), text in force,
    this coder's codes per dimension and the review reasons (and with *labels*, the speaker
    labels' summaries, which cost a pass over the talk views)."""
    rec = resolve_recording(con, recording)
    duration = con.execute("SELECT duration_s FROM recordings WHERE recording_id = ?", [rec.recording_id]).fetchone()[0]
    codes: dict[tuple[str, str], list[str]] = defaultdict(list)
    if coder:
        for obs, dim, code in con.execute(
            "SELECT observation_id, dimension, code FROM current_codings WHERE recording_id = ? AND coder = ? "
            "ORDER BY code", [rec.recording_id, coder]).fetchall():  # fmt: skip
            codes[(obs, dim)].append(code)
    flags: dict[str, list[str]] = defaultdict(list)
    for obs, reason in con.execute(
        "SELECT observation_id, reason FROM current_review WHERE recording_id = ? ORDER BY priority", [rec.recording_id]
    ).fetchall():
        flags[obs].append(reason)
    dimensions = codebook_for_keys(con)
    rows = []
    for oid, seq, start, end, label, pid, role, text, corrected in con.execute(
        "SELECT observation_id, seq, start_s, end_s, speaker_label, participant_id, role, text, corrected "
        "FROM utterances WHERE recording_id = ? ORDER BY seq", [rec.recording_id]).fetchall():  # fmt: skip
        rows.append({"id": oid, "seq": seq, "start": start, "end": end, "label": label, "participant": pid,
                     "role": role, "text": text, "corrected": corrected, "flags": flags.get(oid, []),
                     "codes": {d["dimension"]: codes.get((oid, d["dimension"]), []) for d in dimensions}})  # fmt: skip
    return RecordingView(rec.recording_id, rec.name, rec.path, rec.group_id, rec.session_no,
                         bool(rec.video_streams), duration, rows, dimensions,
                         speaker_labels(con, rec.recording_id) if labels else [])  # fmt: skip


def speaker_labels(con, recording_id: str, first: int = 3) -> list[dict]:
    """Per label of the current set: who it is, talk time, its longest observation (to listen
    to) and its first lines."""
    rows = con.execute(
        """SELECT s.speaker_label, s.participant_id, s.role, s.talk_s, s.turns, s.observations
           FROM talk_per_speaker s WHERE s.recording_id = ? ORDER BY s.speaker_label""",
        [recording_id],
    ).fetchall()
    longest = {label: (start, end) for label, start, end in con.execute(
        "SELECT speaker_label, start_s, end_s FROM current_observations WHERE recording_id = ? "
        "QUALIFY row_number() OVER (PARTITION BY speaker_label ORDER BY duration_s DESC, seq) = 1",
        [recording_id]).fetchall()}  # fmt: skip
    # Who made each assignment: an `auto` one (from voiceprints) waits for a person to confirm it.
    made = {label: (by, score) for label, by, score in con.execute(
        "SELECT speaker_label, assigned_by, score FROM current_speaker_assignments WHERE recording_id = ?",
        [recording_id]).fetchall()}  # fmt: skip
    lines: dict[str, list[str]] = defaultdict(list)
    for label, text in con.execute(
        "SELECT speaker_label, text FROM utterances WHERE recording_id = ? "
        "QUALIFY row_number() OVER (PARTITION BY speaker_label ORDER BY seq) <= ? ORDER BY seq",
        [recording_id, first]).fetchall():  # fmt: skip
        lines[label].append(text)
    return [{"label": label, "participant": pid, "role": role, "talk_s": talk, "turns": turns,
             "observations": n, "longest": longest.get(label), "lines": lines.get(label, []),
             "auto": made.get(label, (None,))[0] == AUTO, "score": made.get(label, (None, None))[1]}
            for label, pid, role, talk, turns, n in rows]  # fmt: skip


def disagreements(con, coder_a: str, coder_b: str, recording_id: str | None = None) -> list[dict]:
    """Observations both coders coded in a dimension, with different codes (each code set as
    `agreement` compares them)."""
    rows = con.execute(
        f"""WITH c AS (SELECT observation_id, recording_id, recording_name, seq, start_s, end_s, speaker,
                              coder, dimension, string_agg(code, '{MULTI_SEPARATOR}' ORDER BY code) AS codes
                       FROM current_codings WHERE coder IN (?, ?) AND (? IS NULL OR recording_id = ?)
                       GROUP BY ALL)
            SELECT a.recording_id, a.recording_name, a.observation_id, a.seq, a.start_s, a.end_s, a.speaker,
                   a.dimension, a.codes, b.codes, u.text
            FROM c a JOIN c b ON a.observation_id = b.observation_id AND a.dimension = b.dimension
             AND a.coder = ? AND b.coder = ?
            JOIN utterances u ON u.observation_id = a.observation_id
            WHERE a.codes <> b.codes ORDER BY a.recording_name, a.seq, a.dimension""",
        [coder_a, coder_b, recording_id, recording_id, coder_a, coder_b],
    ).fetchall()
    keys = ("recording_id", "recording", "observation_id", "seq", "start_s", "end_s", "speaker", "dimension",
            "codes_a", "codes_b", "text")  # fmt: skip
    return [dict(zip(keys, r)) for r in rows]


def coders(con) -> list[str]:
    return [c for c, in con.execute("SELECT DISTINCT coder FROM codings ORDER BY 1").fetchall()]


def media_path(con, recording_id: str) -> str | None:
    """The file the database names for a recording (None for an id it does not know)."""
    row = con.execute("SELECT path FROM recordings WHERE recording_id = ?", [recording_id]).fetchone()
    return row[0] if row else None
