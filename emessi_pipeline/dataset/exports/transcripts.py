"""Readable per-recording transcripts (Markdown) and subtitles (SRT, WebVTT) with speaker names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..common import Recording, clock, resolve_recording


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
        """Display name: the participant's name, else the pseudonymous id, else the label."""
        return self.participant_name or self.participant_id or self.speaker_label

    @property
    def speaker_long(self) -> str:
        ident = self.participant_id or self.speaker_label
        return f"{self.speaker} ({ident}, {self.role})" if self.speaker != ident else f"{ident} ({self.role})"


def lines(con, recording: str) -> tuple[Recording, list[Line]]:
    rec = resolve_recording(con, recording)
    rows = con.execute(
        """SELECT observation_id, seq, start_s, end_s, speaker_label, participant_id, participant_name, role, text
           FROM utterances WHERE recording_id = ? ORDER BY seq""",
        [rec.recording_id],
    ).fetchall()
    return rec, [Line(*r) for r in rows]


def markdown(con, recording: str) -> str:
    rec, items = lines(con, recording)
    meta = con.execute("SELECT session_date, duration_s FROM recordings WHERE recording_id = ?", [rec.recording_id]).fetchone()
    out = [f"# {rec.name}", ""]
    facts = [("group", rec.group_id), ("session", rec.session_no), ("date", meta[0]),
             ("duration", clock(meta[1] or 0)[:-4]), ("recording id", rec.recording_id)]  # fmt: skip
    out += [f"- {k}: {v}" for k, v in facts if v is not None] + ["", "| speaker | id | role |", "|---|---|---|"]
    seen = {}
    for item in items:
        seen.setdefault(item.speaker, item)
    out += [f"| {s.speaker} | {s.participant_id or s.speaker_label} | {s.role} |" for s in seen.values()]
    out.append("")
    for item in items:
        out.append(f"**[{clock(item.start_s)[:-4]}] {item.speaker_long}:** {item.text}")
        out.append("")
    return "\n".join(out)


def srt(con, recording: str) -> str:
    _, items = lines(con, recording)
    cues = [f"{i}\n{clock(x.start_s, ',')} --> {clock(x.end_s, ',')}\n{x.speaker}: {x.text}\n" for i, x in enumerate(items, 1)]
    return "\n".join(cues)


def webvtt(con, recording: str) -> str:
    _, items = lines(con, recording)
    cues = [
        f"{x.observation_id}\n{clock(x.start_s)} --> {clock(x.end_s)}\n<v {_vtt_escape(x.speaker)}>{_vtt_escape(x.text)}\n"
        for x in items
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "→")


FORMATS = {"md": markdown, "srt": srt, "vtt": webvtt}


def write_transcript(con, recording: str, fmt: str, out_dir: Path) -> Path:
    if fmt == "eaf":
        from .elan import write_eaf

        return write_eaf(con, recording, out_dir)
    rec = resolve_recording(con, recording)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{rec.name}.{fmt}"
    target.write_text(FORMATS[fmt](con, recording), encoding="utf-8")
    return target
