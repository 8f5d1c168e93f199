"""Charts. Track pages get Vega-Lite specs (built with altair, drawn by the vendored Vega bundle, with a static SVG
from vl-convert as fallback); run pages get a small SVG drawn here directly, because vl-convert costs about 90 ms a
chart and a leaderboard may have thousands of runs.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

import altair as alt

from . import axes, stats

# The curves chart draws the leading runs: the colour scheme has ten distinct colours, so more lines would share
# colours and make the legend ambiguous (and each legend entry costs vl-convert ~5 ms of text layout). Every run's
# own page draws its curves, and every point is in the exports.
MAX_CURVE_RUNS = 10
# Plot area; with the axes and a legend the chart stays within ~760 px, the page's column.
WIDTH, HEIGHT = 540, 300
FRONTIER = "#c33"
MUTED = "#666"


def _metric(track: dict) -> dict:
    return next(m for m in track["metrics"] if m["id"] == track["primary_metric"])


def _axis_title(metric: dict) -> str:
    return f"{metric['name']} ({'higher' if metric['direction'] == 'higher' else 'lower'} is better)"


def _threshold(track: dict) -> float | None:
    return next((r["threshold"] for r in track["ranking"] if r["kind"] == "samples_to_threshold"), None)


def _budget(track: dict, kind: str) -> float | None:
    budget = track.get("budget") or {}
    return budget.get("limit") if budget.get("kind") == kind else None


def _quant(field: str, title: str, values: list[float], size: float, log: bool = False, flip: bool = False,
           frac: float = 0.05, mark: float | None = None) -> tuple[alt.X | alt.Y, axes.Scale | None]:
    """A quantitative position channel with its domain fitted to `values` and explicit ticks (see axes), and the
    matching pixel scale for placing labels; Vega's defaults where the values overflow a float. `mark` (the budget)
    gets a tick of its own where it is clear of the others."""
    channel = alt.X if not flip else alt.Y
    domain = axes.log_domain(values, frac) if log else axes.linear_domain(values, frac)
    if domain is None:
        return channel(field, title=title, scale=alt.Scale(type="log") if log else alt.Scale(zero=False)), None
    ticks = axes.log_ticks(*domain) if log else axes.linear_ticks(*domain)
    pixels = axes.Scale(domain, size, log, flip)
    if mark is not None and domain[0] <= mark <= domain[1] and all(
            abs(pixels.px(t) - pixels.px(mark)) > 50 for t in ticks):
        ticks = sorted(ticks + [mark])
    axis = alt.Axis(values=ticks, labelExpr=axes.label_expr(ticks, axes.tick_labels(ticks)), labelOverlap="greedy",
                    labelFlush=True)
    scale = alt.Scale(type="log", domain=list(domain), nice=False) if log else \
        alt.Scale(type="linear", domain=list(domain), nice=False, zero=False)
    return channel(field, title=title, scale=scale, axis=axis), pixels


def _text_layers(labels: list[tuple[str, float, float, str]], sx: axes.Scale, sy: axes.Scale, x, y) -> list:
    """Placed labels (see axes.place_labels) as text marks, one layer per alignment, in data coordinates."""
    layers = []
    for align in ("left", "right", "center"):
        rows = [{x.shorthand.split(":")[0]: sx.value(px), y.shorthand.split(":")[0]: sy.value(py), "label": text}
                for a, px, py, text in labels if a == align]
        if rows:
            layers.append(alt.Chart(alt.Data(values=rows)).mark_text(
                align=align, baseline="middle", fontSize=10, color="#333").encode(x=x, y=y, text="label:N"))
    return layers


def _threshold_layers(track: dict, metric: dict, x, y, x_values: list[float], sx: axes.Scale | None) -> list:
    """The dashed rule at the ranking threshold, labelled at its left end: above it when higher is better (curves
    start below it there), below it otherwise."""
    threshold = _threshold(track)
    if threshold is None:
        return []
    xf, yf = x.shorthand.split(":")[0], y.shorthand.split(":")[0]
    left = sx.value(0) if sx else min(x_values)
    above = metric["direction"] == "higher"
    label = {xf: left, yf: threshold, "label": f"threshold {axes.value_label(threshold)}"}
    return [alt.Chart(alt.Data(values=[{yf: threshold}])).mark_rule(strokeDash=[4, 4], color="#888").encode(y=y),
            alt.Chart(alt.Data(values=[label])).mark_text(
                align="left", baseline="bottom" if above else "top", dx=4, dy=-3 if above else 3, fontSize=10,
                color=MUTED).encode(x=x, y=y, text="label:N")]


def _curve_layers(track: dict, rows: list[dict], color, width: int, height: int, size: float = 30) -> list:
    metric = _metric(track)
    xs = [r["samples"] for r in rows]
    log_x = all(v > 0 for v in xs)
    budget = _budget(track, "samples")
    # The x axis ends at the budget or the last point, whichever is larger: no padding out to the next decade.
    x, sx = _quant("samples:Q", "samples seen" + (" (log)" if log_x else ""), xs + ([budget] if budget else []),
                   width, log=log_x, frac=0.02, mark=budget)
    threshold = _threshold(track)
    y, _ = _quant("value:Q", _axis_title(metric), [r["value"] for r in rows] + ([threshold] if threshold else []),
                  height, flip=True)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=x, y=y, color=color,
        tooltip=[color.shorthand, alt.Tooltip("samples:Q", format=","), alt.Tooltip("value:Q", format=".4f")])
    return [base.mark_line(), base.mark_point(filled=True, size=size),
            *_threshold_layers(track, metric, x, y, xs, sx)]


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
        # each term divided first: the sum of two values near 1.8e308 would overflow to inf, which JSON cannot hold
        rows += [{"run": e["name"], "samples": s, "value": sum(x / len(v) for x in v)}
                 for s, v in sorted(by_samples.items())]
    if not rows:
        return None
    color = alt.Color("run:N", title="run", sort=None, legend=alt.Legend(orient="right", labelLimit=120))
    return _spec(alt.layer(*_curve_layers(track, rows, color, WIDTH, HEIGHT)).properties(
        width=WIDTH, height=HEIGHT, title="Metric against samples seen"))


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


def _group_color(track: dict, default: str = "#4c78a8"):
    group_by = track.get("group_by")
    if not group_by:
        return alt.value(default)
    return alt.Color("group:N", title=group_by, legend=alt.Legend(orient="right", labelLimit=120))


def _group(entry: dict) -> str:
    return entry.get("group") or "other"


def flops_spec(track: dict) -> dict | None:
    """Final primary metric against training FLOPs (recomputed where counted) on a log axis, each point named, the
    frontier ringed and joined in red, the FLOPs budget as a rule."""
    metric = _metric(track)
    points = []
    for e in track["entries"] + track["unranked"]:
        flops = e.get("recomputed_flops") or e.get("claimed_flops")
        value = e["metrics"].get(metric["id"], {}).get("mean")
        if flops and value is not None:
            points.append((float(flops), value, e["name"], _group(e)))
    if not points:
        return None
    frontier = pareto([p[:3] for p in points], metric["direction"] == "lower")
    budget = _budget(track, "flops")
    x, sx = _quant("flops:Q", "training FLOPs (log)", [p[0] for p in points] + ([budget] if budget else []), WIDTH,
                   log=True)
    y, sy = _quant("value:Q", _axis_title(metric), [p[1] for p in points], HEIGHT, flip=True)
    rows = [{"flops": f, "value": v, "run": n, "group": g} for f, v, n, g in points]
    front = [{"flops": f, "value": v, "run": n} for f, v, n in frontier]
    # The frontier's step line runs on to the right edge: the best figure stands for any larger budget, and a
    # frontier of one point (all runs at one FLOPs figure) still shows as a line.
    right = sx.value(WIDTH) if sx else max(p[0] for p in points)
    line_rows = front + ([{**front[-1], "flops": right}] if right > front[-1]["flops"] else [])
    color = _group_color(track)
    layers = [alt.Chart(alt.Data(values=line_rows)).mark_line(interpolate="step-after", color=FRONTIER)
              .encode(x=x, y=y),
              alt.Chart(alt.Data(values=front)).mark_point(size=180, color=FRONTIER, strokeWidth=1.5)
              .encode(x=x, y=y),
              alt.Chart(alt.Data(values=rows)).mark_point(filled=True, size=60, opacity=1).encode(
                  x=x, y=y, color=color, tooltip=["run:N", alt.Tooltip("flops:Q", format=".3e"),
                                                  alt.Tooltip("value:Q", format=".4f")]
                  + (["group:N"] if track.get("group_by") else []))]
    taken = axes.step_boxes([(sx.px(r["flops"]), sy.px(r["value"])) for r in line_rows]) if sx and sy else []
    if budget and sx:
        label = f"budget {axes.value_label(budget)}"
        layers += [alt.Chart(alt.Data(values=[{"flops": budget}])).mark_rule(strokeDash=[2, 3], color=MUTED)
                   .encode(x=x),
                   alt.Chart(alt.Data(values=[{"flops": budget, "value": sy.value(0), "label": label}])).mark_text(
                       align="right", baseline="top", dx=-3, dy=3, fontSize=10, color=MUTED)
                   .encode(x=x, y=y, text="label:N")]
        taken.append(axes.label_box("right", sx.px(budget) - 3, 3 + axes.LINE_H / 2, label))
    if sx and sy:
        on_front = {n for _, _, n in frontier}
        labels = axes.place_labels([(sx.px(f), sy.px(v), n, n in on_front) for f, v, n, _ in points],
                                   WIDTH, HEIGHT, taken)
        layers += _text_layers(labels, sx, sy, x, y)
    return _spec(alt.layer(*layers).properties(width=WIDTH, height=HEIGHT,
                                               title="Metric against compute (red: Pareto frontier)"))


def _lower_is_better(track: dict) -> bool:
    rule = track["ranking"][0]
    if rule["kind"] == "samples_to_threshold":
        return True
    metric_id = rule.get("metric") or track["primary_metric"]
    return next((m["direction"] for m in track["metrics"] if m["id"] == metric_id), "lower") == "lower"


def _record_series(track: dict) -> list[tuple[str | None, list[dict]]]:
    """(group, records) for each group of a grouped board, each group's own history; else the track's history."""
    if not track.get("group_by"):
        return [(None, track.get("records") or [])]
    groups: dict[str, list[dict]] = {}
    for e in track["entries"]:
        groups.setdefault(_group(e), []).append(e)
    sig = track.get("significance") or {}
    return [(g, [r.__dict__ for r in stats.record_history(members, _lower_is_better(track), sig.get("alpha"),
                                                          sig.get("against"))])
            for g, members in sorted(groups.items())]


def records_spec(track: dict) -> dict | None:
    """The standing record over time as a step line running on to the right edge, each record a named point; one
    series per group on a grouped board."""
    rows, lines = [], []
    for group, records in _record_series(track):
        series = [{"t": ms, "date": r["date"], "value": r["mean"], "run": r["name"], "group": group}
                  for r in records if (ms := axes.date_ms(r["date"])) is not None and r["mean"] is not None]
        rows += series
        lines.append(series)
    if not rows:
        return None
    lo, hi = axes.date_domain([r["t"] for r in rows])
    ticks, fmt = axes.date_ticks(lo, hi)
    x = alt.X("t:T", title="date", scale=alt.Scale(type="utc", domain=[lo, hi], nice=False),
              axis=alt.Axis(values=ticks, labelExpr=f"utcFormat(datum.value, '{fmt}')", labelOverlap="greedy",
                            labelFlush=True))
    height = HEIGHT * 2 // 3
    y, sy = _quant("value:Q", track["ranking"][0]["label"], [r["value"] for r in rows], height, flip=True, frac=0.1)
    line_rows = [row for s in lines if s for row in s + [{**s[-1], "t": hi}]]
    color = _group_color(track)
    layers = [alt.Chart(alt.Data(values=line_rows)).mark_line(interpolate="step-after").encode(
                  x=x, y=y, color=color, detail="group:N"),
              alt.Chart(alt.Data(values=rows)).mark_point(filled=True, size=60, opacity=1).encode(
                  x=x, y=y, color=color,
                  tooltip=["run:N", "date:N", alt.Tooltip("value:Q", format=",.4g")]
                  + (["group:N"] if track.get("group_by") else []))]
    if sy:
        sx = axes.Scale((lo, hi), WIDTH)
        newest_first = sorted(rows, key=lambda r: -r["t"])
        steps = [box for s in lines if s for box in axes.step_boxes(
            [(sx.px(r["t"]), sy.px(r["value"])) for r in s + [{**s[-1], "t": hi}]])]
        labels = axes.place_labels([(sx.px(r["t"]), sy.px(r["value"]), r["run"], i == 0)
                                    for i, r in enumerate(newest_first)], WIDTH, height, steps)
        layers += _text_layers(labels, sx, sy, x, y)
    return _spec(alt.layer(*layers).properties(width=WIDTH, height=height, title="Record progression"))


def run_curves_spec(track: dict, name: str, curves: list[dict]) -> dict | None:
    """One run's per-seed curves of the primary metric (for a PR comment's PNG)."""
    metric = _metric(track)
    rows = [{"seed": f"seed {c['seed']}" + (f" ({c['setting']})" if c.get("setting") else ""), "samples": p["samples"],
             "value": p[metric["id"]]} for c in curves for p in c["points"] if metric["id"] in p]
    if not rows:
        return None
    layers = _curve_layers(track, rows, alt.Color("seed:N"), 480, 240, size=20)
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


# Run pages draw their own SVG (runsvg.py); render.py reaches it through here.
from .runsvg import MAX_MARKED_POINTS, curves_svg  # noqa: E402,F401
