"""Small SVG charts (stacked horizontal bars, lines) drawn from numbers, with no plotting library.

Every chart is a complete SVG document (width and height set, text in a generic font), so it
renders alike inlined as a data URI in report.html and as a file next to report.md.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#4e79a7", "#e15759", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" {FONT} font-size="12">'
            f'<rect width="{width}" height="{height}" fill="white"/>'
            f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>'
            + "".join(body) + "</svg>")


def _legend(names: list[str], colors: dict[str, str], x: float, y: float) -> list[str]:
    parts = []
    for name in names:
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colors[name]}"/>'
                     f'<text x="{x + 14:.1f}" y="{y:.1f}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _number(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def stacked_bars(title: str, rows: list[tuple[str, dict[str, float]]], series: list[str],
                 width: int = 760, unit: str = "") -> str:
    """One horizontal bar per row, split into ``series`` segments; the row's total is printed after it."""
    label_width = 16 + 7 * max((len(label) for label, _ in rows), default=10)
    bar_height, top = 22, 50
    plot_width = width - label_width - 90
    height = top + len(rows) * (bar_height + 10) + 10
    largest = max((sum(values.values()) for _, values in rows), default=0) or 1
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    body = _legend(series, colors, label_width, 38)
    for index, (label, values) in enumerate(rows):
        y = top + index * (bar_height + 10)
        body.append(f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        x = float(label_width)
        for name in series:
            value = values.get(name, 0)
            if value <= 0:
                continue
            segment = value / largest * plot_width
            tooltip = f"{escape(label)}: {escape(name)} {value:,.0f}{escape(unit)}"
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{max(segment, 1):.1f}" height="{bar_height}" '
                        f'fill="{colors[name]}"><title>{tooltip}</title></rect>')
            x += segment
        body.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{sum(values.values()):,.0f}{escape(unit)}</text>')
    return _svg(width, height, body, title)


def line_chart(title: str, lines: dict[str, list[tuple[float, float]]], x_label: str, y_label: str,
               width: int = 760, height: int = 320) -> str:
    """Lines over a shared x axis; a line of one point is drawn as a dot."""
    left, right, top, bottom = 64, 20, 50, 44
    points = [point for line in lines.values() for point in line]
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    y_step = _nice_step(y_high - y_low)
    y_low, y_high = math.floor(y_low / y_step) * y_step, math.ceil(y_high / y_step) * y_step
    if y_high == y_low:
        y_high = y_low + y_step
    x_high = x_high if x_high > x_low else x_low + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def place(x: float, y: float) -> tuple[float, float]:
        return left + (x - x_low) / (x_high - x_low) * plot_w, top + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    tick = y_low
    while tick <= y_high + 1e-9:
        _, y = place(x_low, tick)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(round(tick, 6))}</text>')
        tick += y_step
    x_step = _nice_step(x_high - x_low)
    tick = math.ceil(x_low / x_step) * x_step
    while tick <= x_high + 1e-9:
        x, _ = place(tick, y_low)
        body.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_number(tick)}</text>')
        tick += x_step
    body.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>'
                f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>')
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(lines)}
    for name, line in lines.items():
        placed = [place(x, y) for x, y in line]
        if len(placed) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in placed)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colors[name]}" stroke-width="2"/>')
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colors[name]}"/>' for x, y in placed]
    body += _legend(list(lines), colors, left, 38)
    return _svg(width, height, body, title)
