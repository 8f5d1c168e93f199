"""Axis ticks, tick labels, domains and text-label placement for the charts. They are computed here rather than left
to Vega's defaults, which show a single tick for a single value or a span inside one "nice" step, print overlapping
labels on log axes and pad a domain out to the next decade. The run pages' hand-drawn SVG uses the same helpers, so
both kinds of chart follow one set of tick rules.

Every helper returns None or [] for a span that overflows a float (values near ±1.8e308 are legal): the chart then
keeps Vega's own axis.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

MIN_TICKS, MAX_TICKS = 3, 7
DAY_MS = 86_400_000


def finite(values) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _ok(lo: float, hi: float) -> bool:
    return math.isfinite(lo) and math.isfinite(hi) and hi > lo


def linear_domain(values: list[float], frac: float = 0.05) -> tuple[float, float] | None:
    """The values' range with a margin of `frac` of it each side (so marks at the ends stay inside the plot); a single
    value, or a span too thin for distinct ticks, is widened to ±5 % of its size."""
    values = finite(values)
    if not values:
        return None
    lo, hi = min(values), max(values)
    size = max(abs(lo), abs(hi))
    if hi - lo <= size * 1e-6:
        half = size * 0.05 or 1.0
        mid = (lo + hi) / 2
        lo, hi = mid - half, mid + half
    else:
        pad = (hi - lo) * frac
        lo, hi = lo - pad, hi + pad
    return (lo, hi) if _ok(lo, hi) else None


def log_domain(values: list[float], frac: float = 0.03, min_ratio: float = 1.5) -> tuple[float, float] | None:
    """Like linear_domain in log space: spans under `min_ratio` (points at one FLOPs figure) are widened to it."""
    values = [v for v in finite(values) if v > 0]
    if not values:
        return None
    a, b = math.log10(min(values)), math.log10(max(values))
    if b - a < math.log10(min_ratio):
        mid, half = (a + b) / 2, math.log10(min_ratio) / 2
        a, b = mid - half, mid + half
    else:
        pad = (b - a) * frac
        a, b = a - pad, b + pad
    try:
        lo, hi = 10.0 ** a, 10.0 ** b
    except OverflowError:
        return None
    return (lo, hi) if _ok(lo, hi) and lo > 0 else None


def _clean(v: float) -> float:
    return float(f"{v:.12g}")  # 3 * 0.1 is 0.30000000000000004: ticks and labels must be the plain number


def linear_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Multiples of a 1-2-5 step inside [lo, hi]: between MIN_TICKS and MAX_TICKS of them, as near n as possible."""
    if not (_ok(lo, hi) and math.isfinite(hi - lo) and (hi - lo) / n > 0):  # a few subnormals' span divides to 0
        return []
    exp = math.floor(math.log10((hi - lo) / n))
    best = None
    for e in range(exp - 1, exp + 2):
        for m in (1, 2, 5):
            step = m * 10.0 ** e
            if step == 0 or not math.isfinite(step):
                continue
            k0, k1 = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
            if MIN_TICKS <= k1 - k0 + 1 <= MAX_TICKS:
                ticks = sorted({_clean(k * step) for k in range(k0, k1 + 1)})
                if len(ticks) == k1 - k0 + 1 and (best is None or abs(len(ticks) - n) < abs(len(best) - n)):
                    best = ticks
    return best or []


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 per decade, or decades, or every k-th decade, whichever gives at most MAX_TICKS; a span too short for
    three of those gets linear 1-2-5 ticks (a short log span is nearly linear)."""
    if not (_ok(lo, hi) and lo > 0):
        return []
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1, 2, 5), (1,)):
        ticks = [t for e in range(e0, e1 + 1) for m in mantissas if lo <= (t := float(f"{m}e{e}")) <= hi]
        if len(ticks) < MIN_TICKS:
            return linear_ticks(lo, hi)
        if len(ticks) <= MAX_TICKS:
            return ticks
    stride = math.ceil(len(ticks) / MAX_TICKS)
    return [t for t in ticks if round(math.log10(t)) % stride == 0]


def _exp(v: float, p: int) -> str:
    if v == 0:
        return "0"
    mantissa, e = f"{v:.{p}e}".split("e")
    return f"{mantissa}e{int(e)}"


def _kilo(v: float, p: int) -> str:
    return "0" if v == 0 else f"{v / 1000:,.{p}f}k"


def _fixed(v: float, p: int) -> str:
    return f"{v:,.{p}f}"


def tick_labels(ticks: list[float]) -> list[str]:
    """The shortest labels that tell the ticks apart and read back as their values: "0.62", "2,000", "32k", "4e8"."""
    if not ticks:
        return []
    big = max(abs(t) for t in ticks)
    if big >= 1e6 or 0 < big < 1e-3:
        styles = [(_exp, p) for p in range(10)]
    elif big >= 1e4:
        styles = [(_kilo, 0)] + [(_fixed, p) for p in range(10)]
    else:
        styles = [(_fixed, p) for p in range(10)]
    for style, p in styles:
        labels = [style(t, p) for t in ticks]
        values = [float(s.replace(",", "")[:-1]) * 1000 if s.endswith("k") else float(s.replace(",", ""))
                  for s in labels]
        if len(set(labels)) == len(labels) and all(abs(v - t) <= big * 1e-9 for v, t in zip(values, ticks)):
            return labels
    return [f"{t:.6g}" for t in ticks]


def value_label(v: float) -> str:
    """One number for a label on the chart: whole numbers below a million in full ("32,768"), else as a tick."""
    if v == int(v) and abs(v) < 1e6:
        return f"{v:,.0f}"
    return tick_labels([v])[0] if abs(v) >= 1e4 or abs(v) < 1e-3 else f"{v:.4g}"


def label_expr(ticks: list[float], labels: list[str]) -> str:
    """A Vega expression giving each explicit tick value its label (Vega's d3 formats cannot write "32k" or "4e8")."""
    expr = "''"
    for t, s in reversed(list(zip(ticks, labels))):
        expr = f"datum.value === {t!r} ? {s!r} : {expr}"
    return expr


# --- dates -------------------------------------------------------------------------------------------------------

def date_ms(text: str) -> int | None:
    """Midnight UTC of an ISO date (or the instant of an ISO date-time), in milliseconds since the epoch."""
    try:
        d = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp() * 1000)


def date_domain(ms: list[int], min_days: int = 28) -> tuple[int, int]:
    lo, hi = min(ms), max(ms)
    if hi - lo < min_days * DAY_MS:  # one or two record dates: a month around them, so the axis has several ticks
        mid = (lo + hi) // 2
        lo, hi = mid - min_days * DAY_MS // 2, mid + min_days * DAY_MS // 2
    pad = (hi - lo) // 20
    return lo - pad, hi + pad


def _months(d: datetime, n: int) -> datetime:
    m = d.month - 1 + n
    return d.replace(year=d.year + m // 12, month=m % 12 + 1, day=1)


def date_ticks(lo: int, hi: int) -> tuple[list[int], str]:
    """UTC midnights inside [lo, hi] at a step of days, months or years giving at most MAX_TICKS, and the utcFormat
    pattern for them."""
    start = datetime.fromtimestamp(lo / 1000, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    end = datetime.fromtimestamp(hi / 1000, timezone.utc)
    for days in (1, 2, 7, 14):
        first = start + timedelta(days=1)
        if days == 7:
            first += timedelta(days=(7 - first.weekday()) % 7)  # Mondays
        ticks = []
        while first <= end and len(ticks) <= MAX_TICKS:
            ticks.append(first)
            first += timedelta(days=days)
        if len(ticks) <= MAX_TICKS:
            return [int(t.timestamp() * 1000) for t in ticks], "%b %d" if start.year == end.year else "%b %d, %Y"
    for months in (1, 2, 3, 6, 12, 24, 60, 120, 240, 600):
        first = _months(start, 1)
        while months >= 12 and (first.month != 1 or first.year % (months // 12)):
            first = _months(first, 1)
        while months < 12 and (first.month - 1) % months:
            first = _months(first, 1)
        ticks = []
        while first <= end and len(ticks) <= MAX_TICKS:
            ticks.append(first)
            first = _months(first, months)
        if len(ticks) <= MAX_TICKS:
            return [int(t.timestamp() * 1000) for t in ticks], "%Y" if months >= 12 else "%b %Y"
    return [], "%Y"


# --- text labels next to points ----------------------------------------------------------------------------------

class Scale:
    """A position scale as Vega draws it with a fixed domain and no nice rounding: data value <-> pixel."""

    def __init__(self, domain: tuple[float, float], size: float, log: bool = False, flip: bool = False):
        self.f = math.log10 if log else float
        self.inv_f = (lambda v: 10.0 ** v) if log else float
        self.a, self.b = self.f(domain[0]), self.f(domain[1])
        self.size, self.flip = size, flip

    def px(self, v: float) -> float:
        r = (self.f(v) - self.a) / (self.b - self.a)
        return self.size * (1 - r if self.flip else r)

    def value(self, p: float) -> float:
        r = p / self.size
        return self.inv_f(self.a + (1 - r if self.flip else r) * (self.b - self.a))


# GAP clears the ring drawn round a frontier point (size 180: radius 7.6 px).
CHAR_W, LINE_H, GAP, DOT = 6.0, 12.0, 10.0, 6.0
MAX_LABELS = 25  # a board of thousands of runs names its frontier and leaders; the tooltips name the rest
# Where a label may go relative to its point (text alignment, dx, dy): right, left, above, below, the diagonals,
# then all of those twice as far out.
CANDIDATES = tuple((align, k * dx, k * dy) for k in (1, 2) for align, dx, dy in (
    ("left", GAP, 0), ("right", -GAP, 0), ("center", 0, -LINE_H), ("center", 0, LINE_H),
    ("left", GAP, -LINE_H), ("right", -GAP, -LINE_H), ("left", GAP, LINE_H), ("right", -GAP, LINE_H)))


def label_box(align: str, x: float, y: float, text: str) -> tuple[float, float, float, float]:
    """The box a 10 px label anchored at (x, y) with baseline middle covers, its width estimated per character."""
    w = len(text) * CHAR_W
    x0 = x if align == "left" else x - w if align == "right" else x - w / 2
    return x0, y - LINE_H / 2, x0 + w, y + LINE_H / 2


def step_boxes(points: list[tuple[float, float]]) -> list[tuple[float, float, float, float]]:
    """Thin boxes along a step-after line through pixel points, for place_labels to keep labels off it."""
    out = []
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        out.append((min(x0, x1), y0 - 2, max(x0, x1), y0 + 2))
        out.append((x1 - 2, min(y0, y1), x1 + 2, max(y0, y1)))
    return out


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Grid:
    """Obstacle boxes bucketed in 40 px cells: a chart of thousands of points must not cost a check against each."""

    CELL = 40.0

    def __init__(self):
        self.cells: dict[tuple[int, int], list] = {}

    def _keys(self, box):
        c = self.CELL
        return [(i, j) for i in range(math.floor(box[0] / c), math.floor(box[2] / c) + 1)
                for j in range(math.floor(box[1] / c), math.floor(box[3] / c) + 1)]

    def add(self, box) -> None:
        for k in self._keys(box):
            self.cells.setdefault(k, []).append(box)

    def clashes(self, box) -> int:
        return len({id(o): o for k in self._keys(box) for o in self.cells.get(k, ()) if _overlaps(box, o)})


def place_labels(points: list[tuple[float, float, str, bool]], width: float, height: float,
                 taken: list[tuple[float, float, float, float]] = ()) -> list[tuple[str, float, float, str]]:
    """Greedy placement of a text label next to (x px, y px, text, must) points, `must` ones (the frontier) first,
    then in the order given, MAX_LABELS at most: the first candidate spot inside the plot that overlaps no point,
    no label already placed and nothing `taken`. A label with nowhere free is left out unless `must`: it then takes
    the least crowded spot. Returns (align, x px, y px, text) of each label."""
    grid = _Grid()
    for box in list(taken) + [(x - DOT, y - DOT, x + DOT, y + DOT) for x, y, _, _ in points if math.isfinite(x + y)]:
        grid.add(box)
    out = []
    for x, y, text, must in sorted(points, key=lambda p: not p[3])[:MAX_LABELS]:
        if not math.isfinite(x + y):
            continue
        best = None
        for align, dx, dy in CANDIDATES:
            box = label_box(align, x + dx, y + dy, text)
            if box[0] < 0 or box[2] > width or box[1] < 0 or box[3] > height:
                continue
            clashes = grid.clashes(box)
            if best is None or clashes < best[0]:
                best = (clashes, align, x + dx, y + dy, box)
            if not clashes:
                break
        if best is not None and (best[0] == 0 or must):
            grid.add(best[4])
            out.append((best[1], best[2], best[3], text))
    return out
