"""ELAN .eaf: one tier per speaker (its pseudonymous id; names only with *with_names*), linked to the
recording's media, written with pympi-ling."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from .lines import lines


def write_eaf(con, recording: str, out_dir: Path, with_names: bool = False) -> Path:
    from pympi.Elan import Eaf

    rec, items = lines(con, recording, with_names)
    eaf = Eaf(author="emessi-pipeline")
    eaf.remove_tier("default")  # pympi starts every document with an empty tier
    media = Path(rec.path).resolve()
    mime = mimetypes.guess_type(media.name)[0] or "video/mp4"
    eaf.add_linked_file(media.as_uri(), relpath=media.name, mimetype=mime)
    for item in items:
        tier = item.participant_id or item.speaker_label
        if tier not in eaf.tiers:
            eaf.add_tier(tier, part=item.speaker, ann=item.role)
        start, end = int(round(item.start_s * 1000)), int(round(item.end_s * 1000))
        eaf.add_annotation(tier, start, max(end, start + 1), item.text)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{rec.name}.eaf"
    eaf.to_file(str(target))
    return target
