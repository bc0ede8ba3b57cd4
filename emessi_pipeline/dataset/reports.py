"""Built-in reports over the group-dynamics views: talk shares, turn-taking per speaker, the
turn-taking matrix (who answers whom) and codes by role, as a table, CSV, XLSX or PNG chart.

Each report reads the views of the schema (``talk_per_participant``, ``response_latency``,
``overlaps_per_speaker``, ``turn_transitions``, the formula of ``codes_by_role``) with an optional
group, recording or coder filter, so its numbers are the views' numbers; `emessi report` and the
workbench both call :func:`build_report`. Speakers are participant ids (else diarisation labels),
never names.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from .cells import append_text_row, csv_safe_frame
from .common import DatasetError, resolve_recording

KINDS = ("talk", "turns", "matrix", "codes")
FORMATS = ("table", "csv", "xlsx", "png")


@dataclass
class Report:
    kind: str
    title: str
    frame: pd.DataFrame  # the rows a table, CSV or XLSX shows


@dataclass(frozen=True)
class Scope:
    group: str | None = None
    recording_id: str | None = None
    recording: str | None = None  # its name, for titles
    coder: str | None = None

    def where(self, group_col: str = "group_id", recording_col: str = "recording_id") -> tuple[str, list]:
        return (f"(? IS NULL OR {group_col} = ?) AND (? IS NULL OR {recording_col} = ?)",
                [self.group, self.group, self.recording_id, self.recording_id])  # fmt: skip

    def describe(self) -> str:
        return self.recording or (f"group {self.group}" if self.group else "all recordings")


def scope(con, group: str | None = None, recording: str | None = None, coder: str | None = None) -> Scope:
    """A checked filter: a group that has no recording, or an unknown coder, is a mistake to name."""
    if group is not None:
        groups = [r[0] for r in con.execute("SELECT DISTINCT group_id FROM current_observations "
                                            "WHERE group_id IS NOT NULL ORDER BY 1").fetchall()]  # fmt: skip
        if group not in groups:
            close = difflib.get_close_matches(group, groups, n=3, cutoff=0.5)
            raise DatasetError(f"no group {group!r}" + (f"; did you mean {' or '.join(close)}?" if close else "")
                               + f" (groups: {', '.join(groups) or 'none'})")  # fmt: skip
    if coder is not None:
        coders = [r[0] for r in con.execute("SELECT DISTINCT coder FROM current_codings ORDER BY 1").fetchall()]
        if coder not in coders:
            close = difflib.get_close_matches(coder, coders, n=3, cutoff=0.5)
            raise DatasetError(f"no codings by {coder!r}" + (f"; did you mean {' or '.join(close)}?" if close else "")
                               + f" (coders: {', '.join(coders) or 'none'})")  # fmt: skip
    rec = resolve_recording(con, recording) if recording else None
    return Scope(group, rec.recording_id if rec else None, rec.name if rec else None, coder)


def build_report(con, kind: str, where: Scope = Scope()) -> Report:
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        raise DatasetError(f"no report {kind!r}" + (f"; did you mean {close[0]}?" if close else "")
                           + f" (reports: {', '.join(KINDS)})")  # fmt: skip
    return {"talk": talk, "turns": turns, "matrix": matrix, "codes": codes}[kind](con, where)


def talk(con, where: Scope = Scope()) -> Report:
    """Talk time, turns and share of talk per speaker in each recording (``talk_per_participant``)."""
    sql, params = where.where()
    frame = con.execute(
        f"""SELECT recording_name AS recording, group_id AS "group", session_no AS session, speaker, role,
                   talk_s, turns, mean_turn_s, words, share
            FROM talk_per_participant WHERE {sql}
            ORDER BY "group", session, recording, talk_s DESC, speaker""", params).df()  # fmt: skip
    return Report("talk", f"Share of talk time per speaker ({where.describe()})", frame)


def turns(con, where: Scope = Scope()) -> Report:
    """Per speaker in each recording: turns and their mean length (``talk_per_participant``), how
    often and how fast they took the floor after someone else (``response_latency``), and overlaps
    (``overlaps_per_speaker``)."""
    sql, params = where.where("t.group_id", "t.recording_id")
    frame = con.execute(
        f"""SELECT t.recording_name AS recording, t.group_id AS "group", t.session_no AS session, t.speaker,
                   t.role, t.turns, t.mean_turn_s, coalesce(r.responses, 0) AS responses,
                   r.median_latency_s, coalesce(o.overlaps_started, 0) AS overlaps_started,
                   coalesce(o.interruptions_made, 0) AS interruptions_made,
                   coalesce(o.interrupted_by_others, 0) AS interrupted_by_others
            FROM talk_per_participant t
            LEFT JOIN response_latency r ON t.recording_id = r.recording_id AND t.speaker = r.speaker
            LEFT JOIN overlaps_per_speaker o ON t.recording_id = o.recording_id AND t.speaker = o.speaker
            WHERE {sql}
            ORDER BY "group", session, recording, t.turns DESC, t.speaker""", params).df()  # fmt: skip
    return Report("turns", f"Turns per speaker ({where.describe()})", frame)


def matrix(con, where: Scope = Scope()) -> Report:
    """Who takes the floor after whom: one row per previous speaker, one column per next speaker,
    the number of turn changes summed over the recordings in scope (``turn_transitions``)."""
    sql, params = where.where()
    # A diarisation label means nothing outside its recording: over several recordings an
    # unassigned SPEAKER_00 is named with its recording, and only participants add up.
    long = con.execute(
        f"""WITH t AS (SELECT * FROM turn_transitions WHERE {sql}),
                 several AS (SELECT count(DISTINCT recording_id) > 1 AS yes FROM t),
                 named AS (
                     SELECT CASE WHEN several.yes AND from_speaker NOT IN (SELECT participant_id FROM participants)
                                 THEN recording_name || ':' || from_speaker ELSE from_speaker END AS from_speaker,
                            CASE WHEN several.yes AND to_speaker NOT IN (SELECT participant_id FROM participants)
                                 THEN recording_name || ':' || to_speaker ELSE to_speaker END AS to_speaker,
                            transitions
                     FROM t, several)
            SELECT from_speaker, to_speaker, sum(transitions)::INTEGER AS n FROM named GROUP BY ALL""",
        params).df()  # fmt: skip
    speakers = sorted(set(long["from_speaker"]) | set(long["to_speaker"]))
    wide = long.pivot_table(index="from_speaker", columns="to_speaker", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(index=speakers, columns=speakers, fill_value=0).astype(int)
    frame = wide.reset_index().rename(columns={"from_speaker": "from \\ to"})
    frame.columns.name = None
    return Report("matrix", f"Turn-taking: who speaks after whom ({where.describe()})", frame)


def codes(con, where: Scope = Scope()) -> Report:
    """Codings per code and role, and each code's share of the role's codings in its dimension
    (the formula of ``codes_by_role``, restricted to the scope)."""
    sql, params = where.where()
    frame = con.execute(
        f"""SELECT coder, dimension, code, any_value(code_label) AS code_label, role, count(*) AS codings,
                   round(count(*) / sum(count(*)) OVER (PARTITION BY coder, dimension, role), 4) AS share_in_role
            FROM current_codings WHERE {sql} AND (? IS NULL OR coder = ?)
            GROUP BY coder, dimension, code, role
            ORDER BY coder, dimension, role, codings DESC, code""",
        [*params, where.coder, where.coder]).df()  # fmt: skip
    return Report("codes", f"Codes by role ({where.describe()}{', coder ' + where.coder if where.coder else ''})", frame)


# ---------------------------------------------------------------- files


def write_report(report: Report, out: Path, fmt: str) -> Path:
    """Write *report* as csv, xlsx or png to *out*; a failed write leaves no half file."""
    if fmt not in FORMATS[1:]:
        raise DatasetError(f"--format {fmt}: use {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        if fmt == "csv":
            csv_safe_frame(report.frame).to_csv(partial, index=False, encoding="utf-8")
        elif fmt == "xlsx":
            _xlsx(report, partial)
        else:
            _png(report, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def _xlsx(report: Report, path: Path) -> None:
    import pandas as pd  # imported where used: every command's start would pay for it

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = report.kind
    append_text_row(sheet, [str(c) for c in report.frame.columns])
    for row in report.frame.itertuples(index=False):
        append_text_row(sheet, [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row])
    sheet.freeze_panes = "B2" if report.kind == "matrix" else "A2"
    with open(path, "wb") as handle:
        book.save(handle)


def _png(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in a job
    import matplotlib.pyplot as plt

    frame = report.frame
    if frame.empty:
        raise DatasetError(f"nothing to draw: the {report.kind} report has no rows ({report.title})")
    figure = {"talk": _talk_chart, "turns": _turns_chart, "matrix": _matrix_chart, "codes": _codes_chart}[report.kind](plt, report)
    try:
        figure.savefig(path, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)


def _recording_label(row) -> str:
    import pandas as pd  # imported where used: every command's start would pay for it

    session = "" if pd.isna(row.session) else f" S{int(row.session)}"
    return f"{row.group or ''}{session} {row.recording}".strip()


def _talk_chart(plt, report: Report):
    """One horizontal bar per recording, split into its speakers' shares of the talk time."""
    frame = report.frame
    recordings = list(dict.fromkeys(frame["recording"]))
    labels = {r.recording: _recording_label(r) for r in frame.itertuples()}
    speakers = sorted(set(frame["speaker"]))
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.6 * len(recordings)))
    left = {r: 0.0 for r in recordings}
    for i, speaker in enumerate(speakers):
        rows = frame[frame["speaker"] == speaker]
        ys = [recordings.index(r) for r in rows["recording"]]
        widths = list(rows["share"] * 100)
        starts = [left[r] for r in rows["recording"]]
        bars = ax.barh(ys, widths, left=starts, color=colours(i % 20), label=speaker, edgecolor="white")
        for bar, width in zip(bars, widths):
            if width >= 6:
                ax.text(bar.get_x() + width / 2, bar.get_y() + bar.get_height() / 2, f"{width:.0f}%",
                        ha="center", va="center", fontsize=8)  # fmt: skip
        for r, w in zip(rows["recording"], widths):
            left[r] += w
    ax.set_yticks(range(len(recordings)), [labels[r] for r in recordings])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of talk time (%)")
    ax.set_title(report.title)
    ax.legend(title="speaker", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    return fig


def _turns_chart(plt, report: Report):
    """Turns per speaker, one bar each, grouped by recording."""
    frame = report.frame
    names = [f"{_recording_label(r)} · {r.speaker}" for r in frame.itertuples()]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.35 * len(frame)))
    colours = plt.get_cmap("tab10")
    recordings = list(dict.fromkeys(frame["recording"]))
    ax.barh(range(len(frame)), frame["turns"], color=[colours(recordings.index(r) % 10) for r in frame["recording"]])
    for y, n in enumerate(frame["turns"]):
        ax.text(n, y, f" {n}", va="center", fontsize=8)
    ax.set_yticks(range(len(frame)), names, fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.get_major_locator().set_params(integer=True)  # counts: no 2.5 turns on the axis
    ax.set_xlabel("turns")
    ax.set_title(report.title)
    return fig


def _matrix_chart(plt, report: Report):
    """A heat map: rows the speaker before, columns the speaker after, each cell its count."""
    frame = report.frame.set_index("from \\ to")
    values = frame.to_numpy()
    size = max(4.0, 0.7 * len(frame) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(values, cmap="Blues")
    top = values.max() if values.size else 0
    for (y, x), n in ((yx, v) for yx, v in np.ndenumerate(values)):
        ax.text(x, y, str(n), ha="center", va="center", fontsize=9, color="white" if top and n > top / 2 else "black")
    ax.set_xticks(range(len(frame.columns)), frame.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(frame.index)), frame.index)
    ax.set_xlabel("next speaker (answers)")
    ax.set_ylabel("previous speaker")
    ax.set_title(report.title)
    bar = fig.colorbar(image, ax=ax, label="turn changes", shrink=0.8)
    bar.locator = plt.MaxNLocator(integer=True)
    bar.update_ticks()
    return fig


def _codes_chart(plt, report: Report):
    """Per dimension, a heat map of each code's share of a role's codings (all coders in scope)."""
    frame = report.frame.groupby(["dimension", "code", "role"], as_index=False)["codings"].sum()
    dims = list(dict.fromkeys(frame["dimension"]))
    fig, axes = plt.subplots(len(dims), 1, figsize=(8, sum(1.2 + 0.4 * frame[frame.dimension == d].code.nunique() for d in dims)),
                             squeeze=False)  # fmt: skip
    for ax, dim in zip(axes[:, 0], dims):
        table = frame[frame.dimension == dim].pivot_table(index="code", columns="role", values="codings", aggfunc="sum", fill_value=0)
        share = table / table.sum(axis=0)
        ax.imshow(share.to_numpy(), cmap="Oranges", vmin=0, vmax=1, aspect="auto")
        for (y, x), v in np.ndenumerate(share.to_numpy()):
            ax.text(x, y, f"{v:.0%}\n({table.iloc[y, x]})", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(share.columns)), share.columns)
        ax.set_yticks(range(len(share.index)), share.index)
        ax.set_title(f"{dim}: share of the role's codings")
    fig.suptitle(report.title)
    fig.tight_layout()
    return fig
