"""The workbench's plots as inline SVG, drawn from the rows of the dataset's views.

Plain SVG text rather than a plotting library: four chart shapes, each a few dozen lines, that
render in any browser with no script, scale with the page, and cost nothing at import (the page
draws them per request).
"""

from __future__ import annotations

from html import escape

PALETTE = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#332288"]
ROLE_COLOURS = {"leader": "#aa3377", "facilitator": "#ccbb44", "participant": "#4477aa", "unknown": "#bbbbbb"}


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'role="img" aria-label="{escape(title)}" class="plot">' + "".join(body) + "</svg>")  # fmt: skip


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 12, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {extra}>{escape(str(text))}</text>'


def bars(items: list[tuple[str, float]], title: str, unit: str = "s", colours: dict[str, str] | None = None) -> str:
    """Horizontal bars, one per (label, value), largest first as given."""
    if not items:
        return f'<p class="empty">{escape(title)}: nothing to show yet</p>'
    left, width, row = 170, 560, 22
    top = 24
    height = top + row * len(items) + 8
    peak = max(v for _, v in items) or 1.0
    body = [_text(0, 14, title, size=13, extra='font-weight="bold"')]
    for i, (label, value) in enumerate(items):
        y = top + i * row
        w = (width - left - 70) * value / peak
        colour = (colours or {}).get(label, PALETTE[i % len(PALETTE)])
        body.append(_text(left - 6, y + 14, label, "end"))
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{colour}">'
                    f"<title>{escape(label)}: {value:g} {unit}</title></rect>")  # fmt: skip
        body.append(_text(left + w + 4, y + 14, f"{value:g} {unit}".strip()))
    return _svg(width, height, body, title)


def timeline(turns: list[tuple[str, float, float]], overlaps: list[tuple[float, float]], duration: float, title: str) -> str:
    """One lane per speaker with their turns, and the overlapping stretches marked below."""
    if not turns:
        return f'<p class="empty">{escape(title)}: nothing to show yet</p>'
    speakers = sorted({s for s, _, _ in turns})
    left, width, lane = 170, 900, 20
    top = 24
    height = top + lane * (len(speakers) + 1) + 24
    span = duration or max(e for _, _, e in turns) or 1.0
    scale = (width - left - 10) / span
    body = [_text(0, 14, title, size=13, extra='font-weight="bold"')]
    for i, speaker in enumerate(speakers):
        y = top + i * lane
        body.append(_text(left - 6, y + 14, speaker, "end"))
        colour = PALETTE[i % len(PALETTE)]
        body += [f'<rect x="{left + s * scale:.1f}" y="{y + 3}" width="{max((e - s) * scale, 0.5):.1f}" '
                 f'height="{lane - 6}" fill="{colour}"/>' for who, s, e in turns if who == speaker]  # fmt: skip
    y = top + len(speakers) * lane
    body.append(_text(left - 6, y + 14, "overlap", "end", extra='fill="#cc3311"'))
    body += [f'<rect x="{left + s * scale:.1f}" y="{y + 3}" width="{max((e - s) * scale, 0.5):.1f}" '
             f'height="{lane - 6}" fill="#cc3311"/>' for s, e in overlaps]  # fmt: skip
    ticks = 6
    for k in range(ticks + 1):
        t = span * k / ticks
        body.append(_text(left + t * scale, height - 4, f"{int(t // 60)}:{int(t % 60):02d}", "middle", 10))
    return _svg(width, height, body, title)


def heatmap(cells: dict[tuple[str, str], int], title: str) -> str:
    """Who speaks after whom: rows the speaker who stops, columns the one who takes the turn."""
    if not cells:
        return f'<p class="empty">{escape(title)}: nothing to show yet</p>'
    names = sorted({a for a, _ in cells} | {b for _, b in cells})
    left, top, cell = 170, 110, 44
    width, height = left + cell * len(names) + 10, top + cell * len(names) + 10
    peak = max(cells.values()) or 1
    body = [_text(0, 14, title, size=13, extra='font-weight="bold"'),
            _text(0, 30, "rows: from, columns: to", size=10)]  # fmt: skip
    for j, name in enumerate(names):
        x = left + j * cell + cell / 2
        body.append(_text(x, top - 6, name, "start", 11, f'transform="rotate(-45 {x:.1f} {top - 6})"'))
    for i, a in enumerate(names):
        y = top + i * cell
        body.append(_text(left - 6, y + cell / 2 + 4, a, "end"))
        for j, b in enumerate(names):
            n = cells.get((a, b), 0)
            shade = int(255 - 200 * n / peak)
            body.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                        f'fill="rgb({shade},{shade},255)"><title>{escape(a)} → {escape(b)}: {n}</title></rect>')  # fmt: skip
            body.append(_text(left + j * cell + cell / 2, y + cell / 2 + 4, n, "middle", 11,
                              'fill="#fff"' if n > peak / 2 else ""))  # fmt: skip
    return _svg(width, height, body, title)


def stacked(rows: list[tuple[str, str, float]], title: str, colours: dict[str, str] | None = None) -> str:
    """One bar per category (a code), split by series (a role): (category, series, value)."""
    if not rows:
        return f'<p class="empty">{escape(title)}: nothing to show yet</p>'
    categories = list(dict.fromkeys(c for c, _, _ in rows))
    series = sorted({s for _, s, _ in rows})
    colours = colours or {}
    left, width, row = 170, 560, 22
    top = 24
    height = top + row * len(categories) + 30
    totals = {c: sum(v for k, _, v in rows if k == c) for c in categories}
    peak = max(totals.values()) or 1
    scale = (width - left - 60) / peak
    body = [_text(0, 14, title, size=13, extra='font-weight="bold"')]
    for i, category in enumerate(categories):
        y, x = top + i * row, left
        body.append(_text(left - 6, y + 14, category, "end"))
        for k, s in enumerate(series):
            v = sum(val for c, ss, val in rows if c == category and ss == s)
            if v:
                body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{v * scale:.1f}" height="{row - 6}" '
                            f'fill="{colours.get(s, PALETTE[k % len(PALETTE)])}"><title>{escape(category)}, '
                            f'{escape(s)}: {v:g}</title></rect>')  # fmt: skip
                x += v * scale
        body.append(_text(x + 4, y + 14, f"{totals[category]:g}"))
    y = top + row * len(categories) + 16
    for k, s in enumerate(series):
        body.append(f'<rect x="{left + k * 110}" y="{y - 10}" width="12" height="12" '
                    f'fill="{colours.get(s, PALETTE[k % len(PALETTE)])}"/>')  # fmt: skip
        body.append(_text(left + k * 110 + 16, y, s))
    return _svg(width, height, body, title)
