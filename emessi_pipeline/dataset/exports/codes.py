"""The codes given to each transcript line, for transcripts that show them beside the turns."""

from __future__ import annotations

from ..common import DatasetError


def turn_codes(con, recording_id: str, coders: list[str]) -> dict[str, dict[str, str]]:
    """{observation: {coder: "function: question; topic: wellbeing, working_time"}}, dimensions
    and codes in codebook order. A coder with no codings at all is refused (a misspelt name would
    otherwise print an uncoded transcript)."""
    if not coders:
        return {}
    known = {r[0] for r in con.execute("SELECT DISTINCT coder FROM current_codings").fetchall()}
    unknown = [c for c in coders if c not in known]
    if unknown:
        raise DatasetError(f"no codings by {', '.join(unknown)} (coders: {', '.join(sorted(known)) or 'none yet'})")
    rows = con.execute(
        """SELECT c.observation_id, c.coder, c.dimension, string_agg(c.code, ', ' ORDER BY k.position, c.code)
           FROM current_codings c
           LEFT JOIN codebook_codes k USING (dimension, code)
           LEFT JOIN codebook_dimensions d USING (dimension)
           WHERE c.recording_id = ? AND list_contains(?, c.coder)
           GROUP BY c.observation_id, c.coder, c.dimension, d.position
           ORDER BY d.position, c.dimension""",
        [recording_id, coders],
    ).fetchall()
    result: dict[str, dict[str, list[str]]] = {}
    for obs, coder, dim, codes in rows:
        result.setdefault(obs, {}).setdefault(coder, []).append(f"{dim}: {codes}")
    return {obs: {coder: "; ".join(parts) for coder, parts in by.items()} for obs, by in result.items()}
