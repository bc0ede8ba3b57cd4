"""A participant's withdrawal from the study, and the removal of a whole recording.

Withdrawal removes what a person said, not that someone spoke: every observation assigned to
them keeps its times as a speaker-less `withdrawn` row (so the turns, latencies and shares of
the others are computed as before), or goes entirely with *drop_turns*. Their words, texts,
corrections, codings, review flags, assignments, name and voiceprint are deleted (the speaker
embeddings of diarisation live only in memory; `voiceprints` holds the only stored ones).

What was theirs is recorded as time spans of the recording in `withdrawals` (times, no words),
and a load hook blanks the same spans in any set loaded later, so re-processing the recording
does not bring their words back. A removed recording is remembered by its content hash in
`removed_recordings`, and a load of the same content is refused. Each action leaves one
`privacy_log` row: what kind, when, by whom and how many rows, never any content.

DuckDB keeps deleted values in freed blocks of the file; :func:`rewrite` copies the live data
into a new file that replaces the old one, so the words are gone from the file's bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from .common import DatasetError, new_id, now, resolve_recording
from .connection import transaction
from .participant_changes import participant_aliases
from .voiceprints import forget_prints

WITHDRAWN = "withdrawn"


@dataclass
class Removal:
    """What a forget removes (or, for a dry run, would remove): counts and where, no content."""

    kind: str  # participant | recording
    subject: str
    recordings: list[str] = field(default_factory=list)  # names
    observations: int = 0  # blanked (or dropped with --drop-turns; all of a removed recording)
    words: int = 0
    codings: int = 0
    corrections: int = 0
    review_flags: int = 0
    assignments: int = 0
    voiceprints: int = 0  # sessions a voiceprint had learnt from
    name: bool = False
    drop_turns: bool = False
    # Workspace look-up: per recording id, its sets' stage keys and the withdrawn spans.
    stage_keys: dict[str, list[str]] = field(default_factory=dict)
    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # Names (glob patterns) of the listening samples `emessi speakers list --samples` cut of them.
    samples: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        data = asdict(self)
        for key in ("stage_keys", "spans", "subject", "samples"):
            data.pop(key)
        return data


def forget_participant(con, participant_id: str, by: str | None, drop_turns: bool = False,
                       dry_run: bool = False) -> Removal:  # fmt: skip
    """Withdraw *participant_id*: one transaction, rolled back when *dry_run* (the counts stay)."""
    known = con.execute("SELECT name IS NOT NULL FROM participants WHERE participant_id = ?", [participant_id]).fetchone()
    assigned = con.execute(
        "SELECT count(*) FROM speaker_assignments WHERE participant_id = ?", [participant_id]
    ).fetchone()[0]
    if known is None and not assigned:
        raise DatasetError(f"no participant {participant_id!r} (`emessi participants list` lists them)")
    removal = Removal("participant", participant_id, name=bool(known and known[0]), drop_turns=drop_turns,
                      assignments=assigned)  # fmt: skip
    with transaction(con, commit=not dry_run):
        labels = con.execute(
            "SELECT DISTINCT recording_id, set_id, speaker_label FROM speaker_assignments "
            "WHERE participant_id = ? AND superseded_at IS NULL",
            [participant_id],
        ).fetchall()
        action = new_id()
        for recording_id, set_id, label in labels:
            rec_name = con.execute("SELECT name FROM recordings WHERE recording_id = ?", [recording_id]).fetchone()
            if rec_name and f"{rec_name[0]}_{label}.wav" not in removal.samples:
                removal.samples.append(f"{rec_name[0]}_{label}.wav")
            con.execute(
                "INSERT INTO withdrawals SELECT ?, recording_id, start_s, end_s, ?, ? FROM observations "
                "WHERE set_id = ? AND speaker_label = ?",
                [action, drop_turns, now(), set_id, label],
            )
            # Times only, but named by a label that pointed to them: the label goes too.
            if drop_turns:
                con.execute("DELETE FROM speaker_turns WHERE set_id = ? AND speaker_label = ?", [set_id, label])
            else:
                con.execute("UPDATE speaker_turns SET speaker_label = ? WHERE set_id = ? AND speaker_label = ?",
                            [WITHDRAWN, set_id, label])  # fmt: skip
            con.execute("DELETE FROM speakers WHERE set_id = ? AND speaker_label = ?", [set_id, label])
        for recording_id in sorted({r[0] for r in labels}):
            _describe(con, removal, recording_id)
            _add(removal, scrub(con, recording_id))
        # The ids they had before a rename (participant_changes.py) name the same person.
        aliases = sorted(participant_aliases(con, participant_id))
        removal.voiceprints = forget_prints(con, participant_ids=aliases)
        con.execute("DELETE FROM speaker_assignments WHERE list_contains(?, participant_id)", [aliases])
        con.execute("DELETE FROM participants WHERE list_contains(?, participant_id)", [aliases])
        con.execute("DELETE FROM participant_history WHERE list_contains(?, participant_id) "
                    "OR list_contains(?, new_value)", [aliases, aliases])  # fmt: skip
        _audit(con, action, removal, by)
    return removal


def scrub(con, recording_id: str) -> dict[str, int]:
    """Blank (or drop) every observation of the recording, in any set, that lies at least half in a
    withdrawn span, and delete every word whose midpoint lies in one, with the human work on those
    observations. Runs inside the caller's transaction; returns the counts."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE withdrawn_observations AS
           SELECT o.observation_id, bool_or(w.drop_turns) AS drop_turns
           FROM observations o JOIN withdrawals w ON o.recording_id = w.recording_id
           WHERE o.recording_id = ?
           GROUP BY o.observation_id, o.start_s, o.end_s
           HAVING CASE WHEN o.end_s - o.start_s < 0.01
                       THEN bool_or((o.start_s + o.end_s) / 2 BETWEEN w.start_s AND w.end_s)
                       ELSE sum(greatest(0, least(o.end_s, w.end_s) - greatest(o.start_s, w.start_s)))
                            >= 0.5 * (o.end_s - o.start_s) END""",
        [recording_id],
    )
    gone = "(SELECT observation_id FROM withdrawn_observations)"
    counts = {}
    con.execute(
        f"""DELETE FROM carry_log WHERE old_target IN {gone} OR new_target IN {gone}
            OR item_id IN (SELECT coding_id FROM codings WHERE observation_id IN {gone})
            OR item_id IN (SELECT correction_id FROM text_corrections WHERE observation_id IN {gone})"""
    )
    for key, table in (("codings", "codings"), ("corrections", "text_corrections"), ("review_flags", "review_flags")):
        counts[key] = _count(con.execute(f"DELETE FROM {table} WHERE observation_id IN {gone}"))
    counts["words"] = _count(con.execute(
        f"""DELETE FROM words WHERE recording_id = ? AND (observation_id IN {gone} OR EXISTS (
                SELECT 1 FROM withdrawals w WHERE w.recording_id = words.recording_id
                AND (words.start_s + words.end_s) / 2 BETWEEN w.start_s AND w.end_s))""",
        [recording_id],
    ))  # fmt: skip
    # An ASR segment's text spans speakers: rebuilt from the words that remain.
    con.execute(
        """UPDATE asr_segments SET text = coalesce((
               SELECT string_agg(w.text, ' ' ORDER BY w.word_index) FROM words w
               WHERE w.set_id = asr_segments.set_id AND w.asr_segment = asr_segments.segment_index), '')
           WHERE recording_id = ? AND EXISTS (
               SELECT 1 FROM withdrawals w WHERE w.recording_id = asr_segments.recording_id
               AND w.start_s < asr_segments.end_s AND w.end_s > asr_segments.start_s)""",
        [recording_id],
    )
    dropped = _count(con.execute(
        "DELETE FROM observations WHERE observation_id IN (SELECT observation_id FROM withdrawn_observations WHERE drop_turns)"))  # fmt: skip
    blanked = con.execute(
        f"""UPDATE observations SET text = NULL, speaker_label = ?, word_count = NULL, mean_word_prob = NULL
            WHERE observation_id IN {gone} AND (text IS NOT NULL OR speaker_label <> ?)""",
        [WITHDRAWN, WITHDRAWN],
    )
    counts["observations"] = dropped + _count(blanked)
    con.execute("DROP TABLE withdrawn_observations")
    return counts


def forget_recording(con, recording: str, by: str | None, dry_run: bool = False) -> Removal:
    """Remove a recording and everything on it from the database; its content hash is kept so
    that the same file is not loaded again."""
    rec = resolve_recording(con, recording)
    rid = rec.recording_id
    removal = Removal("recording", rid, samples=[f"{rec.name}_*.wav"])
    _describe(con, removal, rid)
    with transaction(con, commit=not dry_run):
        action = new_id()
        observations = f"(SELECT observation_id FROM observations WHERE recording_id = '{rid}')"
        removal.codings = _count(con.execute(f"DELETE FROM codings WHERE observation_id IN {observations}"))
        removal.corrections = _count(con.execute(f"DELETE FROM text_corrections WHERE observation_id IN {observations}"))
        removal.review_flags = _count(con.execute("DELETE FROM review_flags WHERE recording_id = ?", [rid]))
        removal.assignments = _count(con.execute("DELETE FROM speaker_assignments WHERE recording_id = ?", [rid]))
        removal.voiceprints = forget_prints(con, recording_id=rid)
        removal.words = _count(con.execute("DELETE FROM words WHERE recording_id = ?", [rid]))
        removal.observations = _count(con.execute("DELETE FROM observations WHERE recording_id = ?", [rid]))
        paths = [r[0] for r in con.execute("SELECT path FROM recording_files WHERE recording_id = ?", [rid]).fetchall()]
        con.execute("DELETE FROM failures WHERE recording_id = ? OR list_contains(?, path)", [rid, [*paths, rec.path]])
        for table in ("asr_segments", "speaker_turns", "speakers", "carry_log", "review_sets", "observation_sets",
                      "recording_files", "withdrawals"):  # fmt: skip
            con.execute(f"DELETE FROM {table} WHERE recording_id = ?", [rid])
        sha = con.execute("SELECT content_sha256 FROM recordings WHERE recording_id = ?", [rid]).fetchone()[0]
        con.execute("DELETE FROM recordings WHERE recording_id = ?", [rid])
        con.execute("INSERT INTO removed_recordings VALUES (?, ?, ?, ?)", [rid, sha, now(), action])
        _audit(con, action, removal, by)
    return removal


def removed_on(con, recording_id: str):
    """When the recording with this id was removed by `emessi forget --recording`, else None."""
    row = con.execute("SELECT removed_at FROM removed_recordings WHERE recording_id = ?", [recording_id]).fetchone()
    return row[0] if row else None


def on_load(con, item, previous_set_id: str | None, run_id: str) -> None:
    """Load hook: keep withdrawn speech withdrawn in a re-processed set; refuse a removed recording."""
    # One statement (a load costs a millisecond for each), a row per table: scalar subqueries
    # cost DuckDB twice as much.
    found = dict(con.execute(
        "SELECT 'removed', removed_at FROM removed_recordings WHERE recording_id = $rid "
        "UNION ALL (SELECT 'withdrawn', NULL FROM withdrawals WHERE recording_id = $rid LIMIT 1)",
        {"rid": item.recording_id},
    ).fetchall())
    when, withdrawn = found.get("removed"), "withdrawn" in found
    if when is not None:
        raise DatasetError(f"{item.path}: this recording was removed from the dataset on {when:%Y-%m-%d} "
                           "(emessi forget --recording); take the file out of the folder")  # fmt: skip
    if withdrawn:
        scrub(con, item.recording_id)


def rewrite(path: Path) -> None:
    """Copy the database's live rows into a fresh file and put it in the old one's place, so no
    deleted value survives in a freed block. Needs the only connection to the file."""
    path = Path(path)
    fresh = path.with_name(f".{path.name}.rewrite")
    fresh.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
        name = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"ATTACH '{_quote(fresh)}' AS emessi_fresh")
        con.execute(f'COPY FROM DATABASE "{name}" TO emessi_fresh')
        con.execute("DETACH emessi_fresh")
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.replace(fresh, path)
    Path(f"{path}.wal").unlink(missing_ok=True)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _describe(con, removal: Removal, recording_id: str) -> None:
    name = con.execute("SELECT name FROM recordings WHERE recording_id = ?", [recording_id]).fetchone()
    if name and name[0] not in removal.recordings:
        removal.recordings.append(name[0])
    keys = []
    for (params,) in con.execute("SELECT params FROM observation_sets WHERE recording_id = ?", [recording_id]).fetchall():
        keys += [k for k in json.loads(params or "{}").get("stage_keys", {}).values() if k not in keys]
    removal.stage_keys[recording_id] = keys
    removal.spans[recording_id] = [tuple(r) for r in con.execute(
        "SELECT start_s, end_s FROM withdrawals WHERE recording_id = ? ORDER BY 1", [recording_id]).fetchall()]  # fmt: skip


def _add(removal: Removal, counts: dict[str, int]) -> None:
    for key, value in counts.items():
        setattr(removal, key, getattr(removal, key) + value)


def _count(result) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0


def _audit(con, action: str, removal: Removal, by: str | None) -> None:
    con.execute("INSERT INTO privacy_log VALUES (?, ?, ?, ?, ?, ?)",
                [action, removal.kind, removal.subject, now(), by, json.dumps(removal.counts())])  # fmt: skip
