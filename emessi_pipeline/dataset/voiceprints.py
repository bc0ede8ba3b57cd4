"""Voiceprints: who each diarisation label of a new session most likely is, from the sessions a
person has already assigned.

When a person assigns a label to a participant, that participant's part of the recording is
embedded: the label's clean stretches (observations without overlap, long enough, transcribed
with confidence), the longest first up to ``max_speech_s``, one vector each, averaged after the
stretches least like the mean are left out. It is kept per (participant, recording, embedder)
in `voiceprints`, so a later unassignment, re-assignment or withdrawal takes out exactly that
session's part. A participant's voiceprint is the speech-weighted mean of their sessions' parts.

Suggesting compares each label of a recording with the voiceprints of its group's participants
(cosine), one-to-one (Hungarian assignment): two labels cannot both be one person, and a second
label that clearly prefers a person already taken is reported as possibly that person split in
two. Below ``threshold`` a label is unknown. Applying records suggestions as assignments made by
`auto` with their score; a person's assignment is never replaced.

The audio is the recording's extracted WAV in the workspace (the caller says where, see
:class:`Voices`): the dataset layer knows the stage key but not the workspace layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..config import VoiceprintConfig
from .common import DatasetError, Recording, now, resolve_recording
from .connection import transaction
from .speakers import AUTO, write_assignment


class AudioMissing(DatasetError):
    """The extracted WAV a voiceprint needs is not in the workspace."""


@dataclass
class Voices:
    """What computing voiceprints needs: the settings, where a recording's extracted WAV is (from
    the extract stage key kept with its observation set) and the embedder, loaded on first use."""

    config: VoiceprintConfig
    wav_for_key: Callable[[str], Path]
    where: str = "the workspace"  # for messages: the workspace folder
    embedder_factory: Callable[[str], object] | None = None

    @cached_property
    def embedder(self):
        if self.embedder_factory is not None:
            return self.embedder_factory(self.config.embedding)
        from ..stages.embedding import speaker_embedder

        return speaker_embedder(self.config.embedding)

    @property
    def identity(self) -> str:
        if self.embedder_factory is not None:
            return self.embedder.identity
        from ..stages.models import embedder_identity

        return embedder_identity(self.config.embedding)

    def wav(self, con, rec: Recording) -> Path:
        row = con.execute("SELECT params FROM observation_sets WHERE set_id = ?", [rec.set_id]).fetchone()
        key = json.loads(row[0] or "{}").get("stage_keys", {}).get("extract") if row else None
        path = self.wav_for_key(key) if key else None
        if path is None or not Path(path).is_file():
            raise AudioMissing(
                f"{rec.name}: its extracted audio is not in {self.where} (removed by `emessi clean`, or another "
                f"--workspace?): extract it again with `emessi extract {rec.path} -w WORKSPACE` (same profile as "
                f"its ingest), then `emessi speakers voiceprints {rec.name}`")  # fmt: skip
        return Path(path)


@dataclass
class Print:
    """A vector made of clean stretches, and how much speech went into it."""

    vector: np.ndarray | None
    speech_s: float
    stretches: int
    used: int


def clean_stretches(con, rec: Recording, labels: list[str], config: VoiceprintConfig) -> list[tuple[float, float]]:
    """The labels' clean speech in the current set, longest first, up to max_speech_s: their
    observations transcribed with confidence, less every moment another label talks too (the
    overlap-aware turns), in pieces of at least min_stretch_s."""
    rows = con.execute(
        "SELECT start_s, end_s FROM current_observations WHERE recording_id = ? AND list_contains(?, speaker_label) "
        "AND end_s - start_s >= ? AND coalesce(mean_word_prob, 0) >= ? ORDER BY seq",
        [rec.recording_id, labels, config.min_stretch_s, config.min_word_prob],
    ).fetchall()
    others = con.execute(
        "SELECT start_s, end_s FROM speaker_turns WHERE set_id = ? AND kind = 'regular' "
        "AND NOT list_contains(?, speaker_label) ORDER BY start_s",
        [rec.set_id, labels],
    ).fetchall()
    pieces = []
    for start, end in rows:
        cuts = [(max(a, start), min(b, end)) for a, b in others if b > start and a < end]
        at = start
        for a, b in cuts:
            if a > at:
                pieces.append((at, a))
            at = max(at, b)
        if end > at:
            pieces.append((at, end))
    pieces = sorted((p for p in pieces if p[1] - p[0] >= config.min_stretch_s), key=lambda p: (p[0] - p[1], p[0]))
    chosen, total = [], 0.0
    for start, end in pieces:
        if total >= config.max_speech_s:
            break
        end = min(end, start + max(config.max_speech_s - total, config.min_stretch_s))
        chosen.append((round(start, 3), round(end, 3)))
        total += end - start
    return chosen


def robust_mean(vectors: np.ndarray, weights: np.ndarray, trim_share: float) -> tuple[np.ndarray | None, int]:
    """The weighted, normalised mean of unit vectors after leaving out the *trim_share* least
    like a first mean (with five or more); rows of NaN (nothing to embed) are skipped."""
    ok = ~np.isnan(vectors).any(axis=1)
    vectors, weights = vectors[ok], weights[ok]
    if not len(vectors):
        return None, 0

    def mean(v, w):
        m = (v * w[:, None]).sum(axis=0)
        return m / (np.linalg.norm(m) or 1.0)

    first = mean(vectors, weights)
    if len(vectors) >= 5 and trim_share > 0:
        similarity = vectors @ first
        keep = similarity >= np.quantile(similarity, trim_share, method="lower")
        vectors, weights = vectors[keep], weights[keep]
        first = mean(vectors, weights)
    return first.astype(np.float32), len(vectors)


def embed_labels(con, rec: Recording, labels: list[str], voices: Voices, wav: Path | None = None) -> Print:
    """One print of the labels' clean speech in *rec* (vector None when there is none)."""
    from ..stages.audio import read_wav_span

    spans = clean_stretches(con, rec, labels, voices.config)
    if not spans:
        return Print(None, 0.0, 0, 0)
    wav = wav or voices.wav(con, rec)
    audio = [read_wav_span(wav, start, end) for start, end in spans]
    vectors = voices.embedder.embed(audio)
    weights = np.array([end - start for start, end in spans])
    vector, used = robust_mean(vectors, weights, voices.config.trim_share)
    return Print(vector, float(weights.sum()), len(spans), used)


# ---------------------------------------------------------------- learning from assignments


@dataclass
class Learnt:
    participant_id: str
    recording: str
    speaker_labels: list[str]
    speech_s: float
    stretches: int
    status: str  # built | unchanged | removed | no_clean_speech | no_audio
    note: str = ""


def refresh(con, recording: str, voices: Voices) -> list[Learnt]:
    """Bring the recording's part of every voiceprint in line with the assignments a person made
    there: a participant assigned now gets their part (re)built from their labels, one no longer
    assigned loses it. An `auto` assignment teaches nothing until a person confirms it. Missing
    audio is reported in the result (the assignment itself stands)."""
    rec = resolve_recording(con, recording)
    wanted: dict[str, list[str]] = {}
    for label, pid in con.execute(
        "SELECT speaker_label, participant_id FROM current_speaker_assignments WHERE recording_id = ? "
        "AND participant_id IS NOT NULL AND assigned_by IS DISTINCT FROM ? ORDER BY speaker_label",
        [rec.recording_id, AUTO],
    ).fetchall():
        wanted.setdefault(pid, []).append(label)
    identity = voices.identity
    have = {pid: (set_id, list(labels)) for pid, set_id, labels in con.execute(
        "SELECT participant_id, set_id, speaker_labels FROM voiceprints WHERE recording_id = ? AND embedder = ?",
        [rec.recording_id, identity]).fetchall()}  # fmt: skip
    stale = [r[0] for r in con.execute(
        "SELECT DISTINCT participant_id FROM voiceprints WHERE recording_id = ? ORDER BY 1", [rec.recording_id]
    ).fetchall() if r[0] not in wanted]  # fmt: skip
    results = [Learnt(pid, rec.name, [], 0.0, 0, "removed") for pid in stale]
    built: dict[str, Print] = {}
    for pid, labels in wanted.items():
        if have.get(pid) == (rec.set_id, labels):
            results.append(Learnt(pid, rec.name, labels, 0.0, 0, "unchanged"))
            continue
        try:
            built[pid] = embed_labels(con, rec, labels, voices)
        except AudioMissing as missing:
            results.append(Learnt(pid, rec.name, labels, 0.0, 0, "no_audio", str(missing)))
    with transaction(con):
        for pid in stale:
            con.execute("DELETE FROM voiceprints WHERE recording_id = ? AND participant_id = ?", [rec.recording_id, pid])
        for pid, made in built.items():
            labels = wanted[pid]
            con.execute("DELETE FROM voiceprints WHERE recording_id = ? AND participant_id = ? AND embedder = ?",
                        [rec.recording_id, pid, identity])  # fmt: skip
            if made.vector is None:
                results.append(Learnt(pid, rec.name, labels, 0.0, 0, "no_clean_speech",
                                      f"{', '.join(labels)} of {rec.name} has no clean stretch (no overlap, at least "
                                      f"{voices.config.min_stretch_s:g} s, confident words) to learn {pid}'s voice from"))  # fmt: skip
                continue
            con.execute("INSERT INTO voiceprints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [pid, rec.recording_id, rec.set_id, labels, identity, made.vector.tolist(),
                         round(made.speech_s, 3), made.stretches, made.used, now()])  # fmt: skip
            results.append(Learnt(pid, rec.name, labels, round(made.speech_s, 3), made.used, "built"))
    return sorted(results, key=lambda r: r.participant_id)


def group_prints(con, group_id: str | None, identity: str, without_recording: str | None = None) -> dict[str, tuple[np.ndarray, int, float]]:
    """Each participant of the group (in force) with a voiceprint of this embedder: the
    speech-weighted mean of their sessions' parts, the number of sessions and seconds."""
    rows = con.execute(
        "SELECT v.participant_id, v.vector, v.speech_s FROM voiceprints v JOIN participants p USING (participant_id) "
        "WHERE p.group_id IS NOT DISTINCT FROM ? AND p.renamed_to IS NULL AND v.embedder = ? "
        "AND v.recording_id IS DISTINCT FROM ? ORDER BY v.participant_id, v.recording_id",
        [group_id, identity, without_recording],
    ).fetchall()
    parts: dict[str, list[tuple[np.ndarray, float]]] = {}
    for pid, vector, seconds in rows:
        parts.setdefault(pid, []).append((np.asarray(vector, dtype=np.float64), float(seconds or 0.0)))
    prints = {}
    for pid, items in parts.items():
        total = sum(w for _, w in items) or 1.0
        mean = sum(v * (w / total) for v, w in items)
        prints[pid] = (mean / (np.linalg.norm(mean) or 1.0), len(items), round(sum(w for _, w in items), 3))
    return prints


# ---------------------------------------------------------------- suggesting


@dataclass
class Suggestion:
    speaker_label: str
    participant: str | None  # None: unknown
    score: float | None  # cosine with that participant's voiceprint (best one when unknown)
    candidates: list[dict] = field(default_factory=list)  # the closest participants, best first
    split_with: str | None = None  # another label that looks like the same person
    assigned: str | None = None  # the assignment in force: participant,
    assigned_by: str | None = None  # and who made it (`auto` for an applied suggestion)
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def suggest(con, recording: str, voices: Voices) -> list[Suggestion]:
    """Per label of the recording's current set, the participant of its group it most likely is."""
    from scipy.optimize import linear_sum_assignment

    config = voices.config
    rec = resolve_recording(con, recording)
    labels = [r[0] for r in con.execute(
        "SELECT speaker_label FROM speakers WHERE set_id = ? ORDER BY speaker_label", [rec.set_id]).fetchall()]  # fmt: skip
    current = {label: (pid, by) for label, pid, by in con.execute(
        "SELECT speaker_label, participant_id, assigned_by FROM current_speaker_assignments WHERE recording_id = ?",
        [rec.recording_id]).fetchall()}  # fmt: skip
    prints = group_prints(con, rec.group_id, voices.identity, rec.recording_id)
    if not prints:
        raise DatasetError(f"{rec.name}: no participant of group {rec.group_id or '(none)'} has a voiceprint of "
                           f"{voices.identity} yet; assign the labels of another session of the group first "
                           "(`emessi speakers assign`)")  # fmt: skip
    # Participants a person assigned in this recording are taken: the others compete for the rest.
    fixed = {label: pid for label, (pid, by) in current.items() if pid and by != AUTO}
    people = [p for p in sorted(prints) if p not in fixed.values()]
    wav = voices.wav(con, rec)
    vectors = {label: embed_labels(con, rec, [label], voices, wav).vector for label in labels}
    matrix = np.stack([prints[p][0] for p in sorted(prints)]) if prints else np.zeros((0, 1))
    everyone = sorted(prints)
    scores = {label: (matrix @ v if v is not None else None) for label, v in vectors.items()}
    open_labels = [lab for lab in labels if lab not in fixed and scores[lab] is not None]
    chosen: dict[str, tuple[str, float]] = {}
    if open_labels and people:
        cost = np.array([[scores[lab][everyone.index(p)] for p in people] for lab in open_labels])
        rows, cols = linear_sum_assignment(cost, maximize=True)
        chosen = {open_labels[r]: (people[c], float(cost[r, c])) for r, c in zip(rows, cols)}
    out = []
    for label in labels:
        assigned, by = current.get(label, (None, None))
        s = scores[label]
        if s is None:
            out.append(Suggestion(label, None, None, [], None, assigned, by,
                                  "no clean speech to compare (every stretch overlaps, is short or unsure)"))
            continue
        order = np.argsort(-s, kind="stable")
        candidates = [{"participant": everyone[i], "score": round(float(s[i]), 4)} for i in order[:3]]
        if label in fixed:
            pid = fixed[label]
            score = round(float(s[everyone.index(pid)]), 4) if pid in everyone else None
            out.append(Suggestion(label, pid, score, candidates, None, assigned, by, "assigned by a person"))
            continue
        pid, score = chosen.get(label, (None, None))
        if pid is not None and score < config.threshold:
            note, pid = f"unknown: best {pid} at {score:.2f}, below the threshold {config.threshold:g}", None
        else:
            note = ""
        best, best_score = everyone[order[0]], float(s[order[0]])
        split = None
        if best != pid and best_score >= config.threshold:
            other = next((lab for lab, (p, sc) in chosen.items() if p == best and sc >= config.threshold), None)
            other = other or next((lab for lab, p in fixed.items() if p == best), None)
            if other and (score is None or pid is None or best_score > score + config.split_margin):
                split = other
                note = f"possibly one person split in two: {best} ({best_score:.2f}) is also {other}"
        out.append(Suggestion(label, pid, round(score, 4) if score is not None else round(best_score, 4),
                              candidates, split, assigned, by, note))  # fmt: skip
    return out


@dataclass
class Applied:
    speaker_label: str
    participant: str
    role: str
    score: float
    outcome: str  # assigned | unchanged | kept_persons


def apply(con, recording: str, suggestions: list[Suggestion], min_score: float) -> list[Applied]:
    """Record the suggestions scoring at least *min_score* as assignments by `auto`, with their
    score. A label with a person's assignment in force keeps it. The role is the one a person
    last gave that participant (``participant`` when none)."""
    rec = resolve_recording(con, recording)
    done = []
    with transaction(con):
        for s in suggestions:
            if s.participant is None or s.score is None or s.score < min_score:
                continue
            row = con.execute(
                "SELECT participant_id, role, assigned_by, score FROM speaker_assignments "
                "WHERE set_id = ? AND speaker_label = ? AND superseded_at IS NULL",
                [rec.set_id, s.speaker_label],
            ).fetchone()
            if row and row[2] != AUTO:
                done.append(Applied(s.speaker_label, s.participant, row[1], s.score, "kept_persons"))
                continue
            role = con.execute(
                "SELECT role FROM speaker_assignments WHERE participant_id = ? AND assigned_by IS DISTINCT FROM ? "
                "AND role <> 'unknown' ORDER BY assigned_at DESC LIMIT 1", [s.participant, AUTO]).fetchone()  # fmt: skip
            role = role[0] if role else "participant"
            changed = write_assignment(con, rec, s.speaker_label, s.participant, role, AUTO, None, score=s.score)
            done.append(Applied(s.speaker_label, s.participant, role, s.score, "assigned" if changed else "unchanged"))
    return done


def forget_prints(con, participant_ids: list[str] | None = None, recording_id: str | None = None) -> int:
    """Delete voiceprint parts of these participants, or learnt from this recording (the caller
    holds the transaction); returns how many."""
    if participant_ids is not None:
        result = con.execute("DELETE FROM voiceprints WHERE list_contains(?, participant_id)", [participant_ids])
    else:
        result = con.execute("DELETE FROM voiceprints WHERE recording_id = ?", [recording_id])
    row = result.fetchone()
    return int(row[0]) if row else 0


def summary(con, group_id: str | None = None) -> list[dict]:
    """Every participant's voiceprint: embedder, sessions and seconds of speech (no vectors)."""
    rows = con.execute(
        "SELECT v.participant_id, p.group_id, v.embedder, count(*), round(sum(v.speech_s), 3), "
        "string_agg(r.name, ', ' ORDER BY r.name) FROM voiceprints v LEFT JOIN participants p USING (participant_id) "
        "LEFT JOIN recordings r USING (recording_id) WHERE ? IS NULL OR p.group_id = ? GROUP BY ALL ORDER BY 1, 3",
        [group_id, group_id],
    ).fetchall()
    keys = ("participant_id", "group_id", "embedder", "sessions", "speech_s", "recordings")
    return [dict(zip(keys, r)) for r in rows]
