"""The recordings in a dataset, one line each: what they are and how far their coding is."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from .common import all_recordings
from .review import review_list


@dataclass
class RecordingSummary:
    name: str  # unique name (file stem): what every recording argument accepts
    recording_id: str
    group_id: str | None
    session_no: int | None
    session_date: str | None
    duration_s: float | None
    speakers: int  # who spoke in the current set: participants, unassigned labels counted apiece
    observations: int
    coded: dict[str, int] = field(default_factory=dict)  # coder -> observations with a code of theirs
    review_items: int = 0  # flagged observations in the review list (`emessi review`)

    def to_dict(self) -> dict:
        return asdict(self)


def list_recordings(con) -> list[RecordingSummary]:
    """Every current recording, by group, session and name."""
    recs = all_recordings(con)
    facts = {r[0]: r[1:] for r in con.execute(
        """SELECT r.recording_id, r.session_date::VARCHAR, r.duration_s,
                  count(DISTINCT u.speaker), count(u.observation_id)
           FROM recordings r LEFT JOIN utterances u USING (recording_id)
           GROUP BY ALL""").fetchall()}  # fmt: skip
    coded: dict[str, dict[str, int]] = {}
    for rid, coder, n in con.execute(
        "SELECT recording_id, coder, count(DISTINCT observation_id) FROM current_codings GROUP BY ALL ORDER BY coder"
    ).fetchall():
        coded.setdefault(rid, {})[coder] = n
    # The review list itself, not the flags table: whatever it leaves out (resolved items) is not open.
    flagged = Counter(item.recording_id for item in review_list(con))
    return [
        RecordingSummary(r.name, r.recording_id, r.group_id, r.session_no, *facts[r.recording_id][:2],
                         facts[r.recording_id][2], facts[r.recording_id][3], coded.get(r.recording_id, {}),
                         flagged[r.recording_id])  # fmt: skip
        for r in recs
    ]
