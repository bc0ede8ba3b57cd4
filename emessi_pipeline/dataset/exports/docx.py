"""A transcript as a Word document (python-docx): the recording's facts, the speakers, and a table
of turns (time, speaker, text, and the codes each coder gave, one column per coder), which Word
and LibreOffice keep aligned when the text wraps and which prints as it looks."""

from __future__ import annotations

import os
from pathlib import Path

from ..common import clock
from .codes import turn_codes
from .lines import lines


def write_docx(con, recording: str, target: Path, with_names: bool = False, coders: list[str] | None = None) -> Path:
    from docx import Document
    from docx.shared import Pt

    rec, items = lines(con, recording, with_names)
    coders = coders or []
    codes = turn_codes(con, rec.recording_id, coders)
    meta = con.execute("SELECT session_date, duration_s FROM recordings WHERE recording_id = ?", [rec.recording_id]).fetchone()
    doc = Document()
    doc.core_properties.title = rec.name
    doc.core_properties.author = "emessi"  # not the machine's user name, which python-docx leaves empty anyway
    doc.add_heading(rec.name, level=1)
    facts = [("group", rec.group_id), ("session", rec.session_no), ("date", meta[0]),
             ("duration", clock(meta[1] or 0)[:-4]), ("recording id", rec.recording_id)]  # fmt: skip
    for key, value in facts:
        if value is not None:
            doc.add_paragraph(f"{key}: {value}", style="List Bullet")
    seen = {}
    for item in items:
        seen.setdefault(item.speaker, item)
    speakers = doc.add_table(rows=1, cols=3)
    speakers.style = "Table Grid"
    for cell, text in zip(speakers.rows[0].cells, ("speaker", "id", "role")):
        cell.text = text
    for s in seen.values():
        for cell, text in zip(speakers.add_row().cells, (s.speaker, s.participant_id or s.speaker_label, s.role)):
            cell.text = text
    doc.add_paragraph()
    turns = doc.add_table(rows=1, cols=3 + len(coders))
    turns.style = "Table Grid"
    for cell, text in zip(turns.rows[0].cells, ("time", "speaker", "text", *coders)):
        cell.text = text
        cell.paragraphs[0].runs[0].bold = True
    for item in items:
        given = codes.get(item.observation_id, {})
        values = (clock(item.start_s)[:-4], item.speaker, item.text, *(given.get(c, "") for c in coders))
        for cell, text in zip(turns.add_row().cells, values):
            cell.text = text
    for row in turns.rows:
        for cell in row.cells:
            for run in cell.paragraphs[0].runs:
                run.font.size = Pt(9)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")  # a failed write leaves no half file under the name
    try:
        doc.save(str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
