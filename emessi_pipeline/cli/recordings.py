"""`emessi recordings`: the recordings in the dataset and how far each one's coding is."""

from __future__ import annotations

import json

import typer

from .common import DEFAULT_DB, AsJson, Db, dataset, print_table


def register(app: typer.Typer) -> None:
    app.command("recordings")(recordings)


def recordings(db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """List the recordings: name, group, session, date, duration, speakers, observations, coding
    progress per coder (observations with at least one code of theirs) and open review items.

    Any command that takes a recording accepts its name, or the start of it when no other name
    starts so (G1_S3 for G1_S3_vertaismentorointi).

    Example:

      emessi recordings --db meetings.duckdb
    """
    from ..dataset.common import clock
    from ..dataset.recordings import list_recordings

    with dataset(db) as con:
        rows = list_recordings(con)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    print_table(
        ["recording", "group", "session", "date", "duration", "speakers", "observations", "coded", "review"],
        [(r.name, r.group_id, r.session_no, r.session_date, None if r.duration_s is None else clock(r.duration_s, hours=r.duration_s >= 3600)[:-4],
          r.speakers, r.observations,
          ", ".join(f"{coder} {n}/{r.observations}" for coder, n in r.coded.items()) or "-", r.review_items)
         for r in rows],
    )  # fmt: skip
