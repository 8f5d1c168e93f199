"""Charts. Track pages get Vega-Lite specs (built with altair, drawn by the vendored Vega bundle, with a static SVG
from vl-convert as fallback); run pages get a small SVG drawn here directly, because vl-convert costs about 90 ms a
chart and a leaderboard may have thousands of runs.
"""

from __future__ import annotations

import functools
import html
import json
import math
from importlib import resources
from pathlib import Path

import altair as alt

# The curves chart draws the leading runs: the colour scheme has ten distinct colours, so more lines would share
# colours and make the legend ambiguous (and each legend entry costs vl-convert ~5 ms of text layout). Every run's
# own page draws its curves, and every point is in the exports.
MAX_CURVE_RUNS = 10
WIDTH, HEIGHT = 640, 320


def _metric(track: dict) -> dict:
    return next(m for m in track["metrics"] if m["id"] == track["primary_metric"])


def _axis_title(metric: dict) -> str:
    return f"{metric['name']} ({'higher' if metric['direction'] == 'higher' else 'lower'} is better)"


def _threshold(track: dict) -> float | None:
    return next((r["threshold"] for r in track["ranking"] if r["kind"] == "samples_to_threshold"), None)


def curves_spec(track: dict) -> dict | None:
    """Primary metric against samples seen, mean over seeds per run, one line for each of the leading runs (in rank
    order); checkpoints marked."""
    metric = _metric(track)
    rows = []
    for e in (track["entries"] + track["unranked"])[:MAX_CURVE_RUNS]:
        by_samples: dict[int, list[float]] = {}
        for curve in e["curves"]:
            for p in curve["points"]:
                if metric["id"] in p:
                    by_samples.setdefault(p["samples"], []).append(p[metric["id"]])
        rows += [{"run": e["name"], "samples": s, "value": sum(v) / len(v)} for s, v in sorted(by_samples.items())]
    if not rows:
        return None
    log_x = all(r["samples"] > 0 for r in rows)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("samples:Q", title="samples seen", scale=alt.Scale(type="log" if log_x else "linear")),
        y=alt.Y("value:Q", title=_axis_title(metric), scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title="run", legend=alt.Legend(orient="right", labelLimit=160)),
        tooltip=["run:N", alt.Tooltip("samples:Q", format=","), alt.Tooltip("value:Q", format=".4f")],
    )
    layers = [base.mark_line(), base.mark_point(filled=True, size=30)]
    threshold = _threshold(track)
    if threshold is not None:
        layers.append(alt.Chart(alt.Data(values=[{"t": threshold}])).mark_rule(strokeDash=[4, 4], color="#888")
                      .encode(y="t:Q"))
    return _spec(alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title="Metric against samples seen"))


def _spec(chart) -> dict:
    # altair's schema validation costs ~0.1 s a chart; the specs are validated against Vega-Lite's schema in tests.
    return chart.to_dict(validate=False)


def pareto(points: list[tuple[float, float, str]], lower_is_better: bool) -> list[tuple[float, float, str]]:
    """Runs not beaten by any run with fewer or equal FLOPs: the frontier, by increasing FLOPs."""
    frontier, best = [], None
    for flops, value, name in sorted(points, key=lambda p: (p[0], p[1] if lower_is_better else -p[1])):
        if best is None or (value < best if lower_is_better else value > best):
            frontier.append((flops, value, name))
            best = value
    return frontier


def flops_spec(track: dict) -> dict | None:
    """Final primary metric against training FLOPs (recomputed where counted) on a log axis, with the frontier."""
    metric = _metric(track)
    points = []
    for e in track["entries"] + track["unranked"]:
        flops = e.get("recomputed_flops") or e.get("claimed_flops")
        value = e["metrics"].get(metric["id"], {}).get("mean")
        if flops and value is not None:
            points.append((flops, value, e["name"]))
    if not points:
        return None
    frontier = pareto(points, metric["direction"] == "lower")
    rows = [{"flops": float(f), "value": v, "run": n} for f, v, n in points]
    front = [{"flops": float(f), "value": v, "run": n} for f, v, n in frontier]
    x = alt.X("flops:Q", title="training FLOPs", scale=alt.Scale(type="log"), axis=alt.Axis(format=".1e"))
    y = alt.Y("value:Q", title=_axis_title(metric), scale=alt.Scale(zero=False))
    dots = alt.Chart(alt.Data(values=rows)).mark_point(filled=True, size=60).encode(
        x=x, y=y, tooltip=["run:N", alt.Tooltip("flops:Q", format=".3e"), alt.Tooltip("value:Q", format=".4f")])
    line = alt.Chart(alt.Data(values=front)).mark_line(interpolate="step-after", color="#c33").encode(x=x, y=y)
    return _spec(alt.layer(line, dots).properties(width=WIDTH, height=HEIGHT,
                                                  title="Metric against compute (red: Pareto frontier)"))


def records_spec(track: dict) -> dict | None:
    if not track.get("records"):
        return None
    rows = [{"date": r["date"], "value": r["mean"], "run": r["name"]} for r in track["records"]]
    label = track["ranking"][0]["label"]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("date:T", title="date"), y=alt.Y("value:Q", title=label, scale=alt.Scale(zero=False)),
        tooltip=["run:N", "date:T", alt.Tooltip("value:Q", format=",.4g")])
    return _spec(alt.layer(base.mark_line(interpolate="step-after"), base.mark_point(filled=True, size=60)).properties(
        width=WIDTH, height=HEIGHT // 1.5, title="Record progression"))


def run_curves_spec(track: dict, name: str, curves: list[dict]) -> dict | None:
    """One run's per-seed curves of the primary metric (for a PR comment's PNG)."""
    metric = _metric(track)
    rows = [{"seed": f"seed {c['seed']}" + (f" ({c['setting']})" if c.get("setting") else ""), "samples": p["samples"],
             "value": p[metric["id"]]} for c in curves for p in c["points"] if metric["id"] in p]
    if not rows:
        return None
    log_x = all(r["samples"] > 0 for r in rows)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("samples:Q", title="samples seen", scale=alt.Scale(type="log" if log_x else "linear")),
        y=alt.Y("value:Q", title=_axis_title(metric), scale=alt.Scale(zero=False)), color=alt.Color("seed:N"))
    layers = [base.mark_line(), base.mark_point(filled=True)]
    threshold = _threshold(track)
    if threshold is not None:
        layers.append(alt.Chart(alt.Data(values=[{"t": threshold}])).mark_rule(strokeDash=[4, 4], color="#888")
                      .encode(y="t:Q"))
    return _spec(alt.layer(*layers).properties(width=480, height=240, title=f"{name}: {metric['name']}"))


def to_png(spec: dict, scale: float = 2.0) -> bytes:
    return _runtime().vegalite_to_png(spec, scale=scale)


@functools.lru_cache(maxsize=1)
def _vlc():
    import vl_convert

    return vl_convert


# Set once vl-convert's JavaScript runtime (and its threads) may be running in this process: a process forked from
# here could not use it. Reading versions does not start it.
runtime_started = False


def _runtime():
    global runtime_started
    runtime_started = True
    return _vlc()


def to_svg(spec: dict) -> str:
    return _runtime().vegalite_to_svg(spec)


def bundle_name() -> str:
    """File name of the vendored Vega + Vega-Lite + vega-embed bundle, with their versions. Reading the versions does
    not start vl-convert's JavaScript runtime, so a build may still fork workers afterwards."""
    vlc = _vlc()
    return (f"vega-{vlc.get_vega_version()}-lite-{vlc.get_vegalite_versions()[-1]}"
            f"-embed-{vlc.get_vega_embed_version()}.js")


def bundle_content() -> str:
    """The bundle's text: the copy vendored in this package when it has the installed versions (bundling takes
    vl-convert two seconds), else freshly bundled. tests/test_charts.py holds the vendored copy to vl-convert's
    output."""
    vendored = resources.files("leaderboard").joinpath("vendor", bundle_name())
    if vendored.is_file():
        return vendored.read_text(encoding="utf-8")
    return fresh_bundle()


def fresh_bundle() -> str:
    # A classic script wrapped in a function so its top-level names stay private; it sets window.vegaEmbed.
    return "(function(){\n" + _runtime().javascript_bundle() + "\n})();\n"


def vendor_bundle() -> Path:
    """Write the bundle for the installed vl-convert into leaderboard/vendor/ (replacing older ones)."""
    folder = Path(__file__).with_name("vendor")
    folder.mkdir(exist_ok=True)
    for old in folder.glob("vega-*.js"):
        old.unlink()
    target = folder / bundle_name()
    target.write_text(fresh_bundle(), encoding="utf-8")
    return target


def spec_json(spec: dict) -> str:
    """JSON safe to put inside <script type="application/json">."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":")).replace("<", "\\u003c")


# --- direct SVG for run pages -------------------------------------------------------------------------------------

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(hi - lo):  # values near ±1.8e308 (legal floats) overflow the span: no sensible ticks
        return []
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


MAX_MARKED_POINTS = 40  # a series with more points (a per-step trace) is drawn as a line only


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
    xs, ys = [fx(x) for x, _ in pts], [y for _, y in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = width - left - right, height - top - bottom
    kx, ky = pw / (x1 - x0), ph / (y1 - y0)

    def sx(v: float) -> float:
        return left + (fx(v) - x0) * kx

    def sy(v: float) -> float:
        return top + (y1 - v) * ky

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="curve-chart" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{html.escape(y_label)} against samples seen">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{_fmt(t)}</text>')
    if log:
        # decades, and 2x/5x steps when the curve spans fewer than three of them
        steps = (1,) if x1 - x0 >= 3 else (1, 2, 5)
        xticks = [m * 10 ** k for k in range(math.floor(x0), math.ceil(x1) + 1) for m in steps
                  if x0 - 1e-9 <= math.log10(m * 10 ** k) <= x1 + 1e-9]
    else:
        xticks = _ticks(x0, x1)
    for t in xticks:
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11">{_fmt(t)}</text>')
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
