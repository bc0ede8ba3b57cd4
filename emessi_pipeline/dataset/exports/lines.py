"""A recording's current observations as transcript lines: who said what, when, named by
pseudonymous participant id or diarisation label, with the role. Every export that writes a
transcript (Markdown, subtitles, ELAN, REFI-QDA) reads them from here.

Names stay in the `participants` table: a file that leaves the dataset is passed on, mailed and
uploaded, so it carries a name only when the caller asks (*with_names*, `--with-names`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import Recording, resolve_recording


@dataclass(frozen=True)
class Line:
    observation_id: str
    seq: int
    start_s: float
    end_s: float
    speaker_label: str
    participant_id: str | None
    participant_name: str | None
    role: str
    text: str

    @property
    def speaker(self) -> str:
        """Display name: the participant's name (only when asked for), else the pseudonymous id,
        else the label."""
        return self.participant_name or self.participant_id or self.speaker_label

    @property
    def speaker_long(self) -> str:
        ident = self.participant_id or self.speaker_label
        return f"{self.speaker} ({ident}, {self.role})" if self.speaker != ident else f"{ident} ({self.role})"


def lines(con, recording: str, with_names: bool = False) -> tuple[Recording, list[Line]]:
    rec = resolve_recording(con, recording)
    rows = con.execute(
        """SELECT observation_id, seq, start_s, end_s, speaker_label, participant_id,
                  CASE WHEN ? THEN participant_name END, role, text
           FROM utterances WHERE recording_id = ? ORDER BY seq""",
        [with_names, rec.recording_id],
    ).fetchall()
    return rec, [Line(*r) for r in rows]
