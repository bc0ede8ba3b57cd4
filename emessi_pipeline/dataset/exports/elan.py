"""ELAN .eaf: one tier per speaker (its pseudonymous id; names only with *with_names*), linked to the
recording's media, written with pympi-ling."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from ..common import output_folder
from .lines import lines


def write_eaf(con, recording: str, out_dir: Path, with_names: bool = False) -> Path:
    from pympi.Elan import Eaf

    rec, items = lines(con, recording, with_names)
    eaf = Eaf(author="emessi-pipeline")
    eaf.remove_tier("default")  # pympi starts every document with an empty tier
    # Paths are stored absolute; abspath (not resolve) keeps a git-annex file's own name.
    media = Path(os.path.abspath(rec.path))
    mime = mimetypes.guess_type(media.name)[0] or "video/mp4"
    # ELAN tries the absolute link first, then the relative one: moving the transcripts and the
    # recordings together keeps the link.
    relative = Path(os.path.relpath(media, os.path.abspath(out_dir))).as_posix()
    eaf.add_linked_file(media.as_uri(), relpath=relative, mimetype=mime)
    for item in items:
        tier = item.participant_id or item.speaker_label
        if tier not in eaf.tiers:
            eaf.add_tier(tier, part=item.speaker, ann=item.role)
        start, end = int(round(item.start_s * 1000)), int(round(item.end_s * 1000))
        eaf.add_annotation(tier, start, max(end, start + 1), item.text)
    output_folder(out_dir, "transcripts")
    target = out_dir / f"{rec.name}.eaf"
    eaf.to_file(str(target))
    return target
