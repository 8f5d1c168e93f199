"""The run pages' curve charts, drawn here as SVG text rather than by vl-convert (about 90 ms a chart, and a
leaderboard may have thousands of runs); the axes follow the track charts' tick rules (axes.py)."""

from __future__ import annotations

import html
import math

from . import axes

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"]
MAX_MARKED_POINTS = 40  # a series with more points (a per-step trace) is drawn as a line only


def _fallback(values: list[float]) -> tuple[float, float]:
    # Spans that overflow a float get no ticks; the lines are still written (Vega-free pages must not fail).
    lo, hi = min(values), max(values)
    return lo, hi if hi > lo else lo + 1


def curves_svg(series: list[tuple[str, list[tuple[float, float]]]], y_label: str, width: int = 560,
               height: int = 260) -> str:
    """Lines (log x when all x > 0) for each (label, points), with axes and a legend; points are marked unless a
    series is dense. Every run page has one or more of these, so this is written for speed."""
    pts = [p for _, s in series for p in s]
    if not pts:
        return ""
    left, right, top, bottom = 64, 110, 12, 40
    log = all(x > 0 for x, _ in pts)
    fx = math.log10 if log else float
    xdom = (axes.log_domain if log else axes.linear_domain)([x for x, _ in pts], 0.02)
    ydom = axes.linear_domain([y for _, y in pts])
    xticks = (axes.log_ticks if log else axes.linear_ticks)(*xdom) if xdom else []
    yticks = axes.linear_ticks(*ydom) if ydom else []
    x0, x1 = (fx(xdom[0]), fx(xdom[1])) if xdom else _fallback([fx(x) for x, _ in pts])
    y0, y1 = ydom or _fallback([y for _, y in pts])
    pw, ph = width - left - right, height - top - bottom
    # a span that is 0 or inf in floats (1.7e308 + 1 == 1.7e308) draws everything at one edge rather than failing
    kx = pw / (x1 - x0) if x1 > x0 else 0.0
    ky = ph / (y1 - y0) if y1 > y0 else 0.0

    def sx(v: float) -> float:
        return left + (fx(v) - x0) * kx

    def sy(v: float) -> float:
        return top + (y1 - v) * ky

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="curve-chart" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{html.escape(y_label)} against samples seen">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for t, label in zip(yticks, axes.tick_labels(yticks)):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{label}</text>')
    for t, label in zip(xticks, axes.tick_labels(xticks)):
        out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>'
                   f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11">{label}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="12">samples seen'
               f'{" (log)" if log else ""}</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})" text-anchor="middle" '
               f'font-size="12">{html.escape(y_label)}</text>')
    for i, (label, s) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        coords = [f"{left + (fx(x) - x0) * kx:.1f},{top + (y1 - y) * ky:.1f}" for x, y in s]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}"/>')
        if len(coords) <= MAX_MARKED_POINTS:
            for c in coords:
                cx, cy = c.split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        out.append(f'<text x="{left + pw + 8}" y="{top + 14 + 16 * i}" font-size="12" fill="{color}">'
                   f'{html.escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
