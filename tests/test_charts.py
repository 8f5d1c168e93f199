"""Chart specs and the vendored Vega bundle."""

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import altair as alt
import pytest

from leaderboard import axes, charts
from leaderboard.build import gather

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return gather(ROOT / "runs")


def test_vendored_bundle_is_what_vl_convert_bundles():
    """The site ships leaderboard/vendor/<versions>.js instead of bundling at every build; it must be exactly what
    the installed vl-convert bundles. After upgrading vl-convert: python -c "import leaderboard.charts as c;
    c.vendor_bundle()" and commit the new file."""
    vendored = ROOT / "leaderboard" / "vendor" / charts.bundle_name()
    assert vendored.is_file(), f"no vendored bundle {vendored.name} for the installed vl-convert"
    assert vendored.read_text(encoding="utf-8") == charts.fresh_bundle()
    assert [p.name for p in vendored.parent.glob("*.js")] == [vendored.name]  # no stale versions left behind


def test_track_specs_are_valid_vega_lite(data):
    """Specs are built without altair's per-chart validation (it costs ~0.1 s a chart); they are validated here."""
    built = 0
    for track in data["tracks"]:
        if not track["valid"]:
            continue
        for make in (charts.curves_spec, charts.flops_spec, charts.records_spec):
            spec = make(track)
            if spec is not None:
                alt.LayerChart.from_dict(spec, validate=True)
                built += 1
    assert built >= 10


def test_run_curves_spec_is_valid_vega_lite(data):
    track = next(t for t in data["tracks"] if t["id"] == "digits-classification")
    entry = track["entries"][0]
    spec = charts.run_curves_spec(track, entry["name"], entry["curves"])
    alt.LayerChart.from_dict(spec, validate=True)


def test_curves_chart_draws_the_leading_runs_in_rank_order():
    entries = [{"name": f"r{i}", "curves": [{"points": [{"samples": 10, "m": i}, {"samples": 20, "m": i + 1}]}]}
               for i in range(15)]
    track = {"metrics": [{"id": "m", "name": "M", "direction": "higher"}], "primary_metric": "m",
             "ranking": [{"kind": "final_metric"}], "entries": entries[:12], "unranked": entries[12:]}
    spec = charts.curves_spec(track)
    runs = []
    for row in spec["data"]["values"]:
        if row["run"] not in runs:
            runs.append(row["run"])
    assert runs == [f"r{i}" for i in range(charts.MAX_CURVE_RUNS)]


def test_dense_series_are_drawn_without_markers():
    sparse = charts.curves_svg([("seed 0", [(i + 1, i) for i in range(5)])], "loss")
    dense = charts.curves_svg([("seed 0", [(i + 1, i) for i in range(500)])], "loss")
    assert sparse.count("<circle") == 5
    assert dense.count("<circle") == 0 and dense.count("<polyline") == 1


# --- readable at a glance (issue 13): specs read by structure, the static SVG from vl-convert by position ---------

METRIC = {"id": "acc", "name": "Accuracy", "direction": "higher"}
NS = "{http://www.w3.org/2000/svg}"
RED = "#c33"  # the frontier's colour


def _entry(name, flops=None, value=0.5, date="2026-11-22", group=None, curve=()):
    e = {"name": name, "claimed_flops": flops, "metrics": {"acc": {"mean": value}}, "date": date,
         "figures": [{"mean": value, "values": [value]}],
         "curves": [{"seed": 0, "points": [{"samples": s, "acc": v} for s, v in curve]}]}
    if group is not None:
        e["group"] = group
    return e


def _track(entries, records=(), ranking=None, budget=None, metric=METRIC, **extra):
    return {"metrics": [metric], "primary_metric": metric["id"],
            "ranking": ranking or [{"kind": "final_metric", "label": "Accuracy", "metric": metric["id"]}],
            "entries": entries, "unranked": [], "records": list(records), "budget": budget, "significance": None,
            **extra}


def _record(name, value, date="2026-11-22"):
    return {"date": date, "name": name, "mean": value, "p_value": None}


def _xy(el):
    m = re.search(r"translate\(([-\d.e]+),([-\d.e]+)\)", el.get("transform", ""))
    return (float(m[1]), float(m[2])) if m else (float(el.get("x", 0)), float(el.get("y", 0)))


def _svg(spec):
    """The static SVG parsed: visible tick labels of each axis as (text, x, y, anchor, font size), the plot's size,
    the centres of the data points and the boxes of the text marks."""
    root = ET.fromstring(charts.to_svg(spec))
    ticks = {"X": [], "Y": []}
    points, texts, red = [], [], 0
    for g in root.iter(NS + "g"):
        cls, aria = g.get("class") or "", g.get("aria-label") or ""
        if "role-axis" in cls and aria[:6] in ("X-axis", "Y-axis"):
            for sub in g.iter(NS + "g"):
                if "role-axis-label" in (sub.get("class") or ""):
                    ticks[aria[0]] += [(t.text, *_xy(t), t.get("text-anchor"), float(t.get("font-size")[:-2]))
                                       for t in sub.iter(NS + "text") if t.get("opacity") != "0" and t.text]
        elif "mark-symbol role-mark" in cls:
            for p in g.iter(NS + "path"):
                points.append(_xy(p))
                red += p.get("stroke") == RED
        elif "mark-text role-mark" in cls:
            texts += [(t.text, *_xy(t), t.get("text-anchor"), float(t.get("font-size")[:-2]))
                      for t in g.iter(NS + "text")]
    frame = next(p for p in root.iter(NS + "path") if p.get("class") == "background" and "h" in p.get("d", "")
                 and not p.get("d").startswith("M0,0h0"))
    w, h = (float(v) for v in re.match(r"M0\.5,0\.5h([\d.]+)v([\d.]+)", frame.get("d")).groups())
    return {"ticks": ticks, "points": points, "texts": texts, "red_points": red, "size": (w, h),
            "width": float(root.get("width"))}


def _x_span(text, x, anchor, size):
    w = len(text) * size * 0.6
    x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
    return x0, x0 + w


def _overlaps(labels, axis, gap=2.0):
    """Neighbouring tick labels closer than `gap` px (widths estimated at 0.6 em a character)."""
    spans = sorted(_x_span(t, x, a, s) if axis == "X" else (y - s, y) for t, x, y, a, s in labels)
    return [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1] + gap]


def _readable(svg):
    for axis in ("X", "Y"):
        labels = [t[0] for t in svg["ticks"][axis]]
        assert len(labels) >= 3, (axis, labels)
        assert len(set(labels)) == len(labels), (axis, labels)
        assert not _overlaps(svg["ticks"][axis], axis), (axis, labels)


def _inside(svg, r=4.0):
    w, h = svg["size"]
    assert svg["points"]
    for x, y in svg["points"]:
        assert r <= x <= w - r and r <= y <= h - r, ((x, y), (w, h))


def _layers(spec, mark):
    return [layer for layer in spec["layer"]
            if (layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]) == mark]


def _texts(spec):
    return [row.get("label") for layer in _layers(spec, "text") for row in layer["data"]["values"]]


DIGITS = [("mlp-baseline", [(1024, 0.27), (2048, 0.71), (4096, 0.89), (8192, 0.94), (16384, 0.962), (32768, 0.963)]),
          ("ast-20pct", [(1024, 0.74), (2048, 0.89), (4096, 0.915), (6554, 0.927)]),
          ("ast-5pct", [(1024, 0.74), (1638, 0.778)])]
THRESHOLD = [{"kind": "samples_to_threshold", "label": "samples to Accuracy ≥ 0.95", "metric": "acc", "threshold": 0.95}]
SAMPLES_BUDGET = {"kind": "samples", "limit": 32768.0}


def _digits_track(**extra):
    return _track([_entry(n, curve=c) for n, c in DIGITS], ranking=THRESHOLD, budget=SAMPLES_BUDGET, **extra)


def test_single_values_get_several_readable_ticks():
    """A record chart of one record and a compute chart of one run showed one tick, "1", for 0.6264 and 1.2703."""
    one_record = _track([_entry("clip", 4.2e10, 0.6264)], records=[_record("clip", 0.6264)],
                        ranking=[{"kind": "settings_mean", "label": "mean accuracy", "metric": "acc"}])
    one_run = _track([_entry("bytegpt", 9.99e11, 1.2703)], metric={**METRIC, "direction": "lower"})
    for spec in (charts.records_spec(one_record), charts.flops_spec(one_run), charts.flops_spec(one_record)):
        svg = _svg(spec)
        _readable(svg)
        assert all(re.fullmatch(r"0\.6[0-9]|1\.[0-9]+|[\d.]+e\d+|\w{3} \d\d", t[0])
                   for axis in ("X", "Y") for t in svg["ticks"][axis]), svg["ticks"]


def test_log_axes_have_few_spaced_compact_labels():
    """'40,00050,000' on the samples axis and '4.0e+85.0e+8' on the FLOPs axis: labels ran into each other."""
    curves = charts.curves_spec(_digits_track())
    flops = charts.flops_spec(_track([_entry(f"r{i}", f, v) for i, (f, v) in enumerate(
        [(6.88e8, 0.778), (7.53e8, 0.892), (8.2e8, 0.906), (8.85e8, 0.927), (1.3254e9, 0.963)])]))
    for spec in (curves, flops):
        _readable(_svg(spec))
        x = spec["layer"][0]["encoding"]["x"]
        assert 3 <= len(x["axis"]["values"]) <= 7
    labels = [t[0] for t in _svg(flops)["ticks"]["X"]]
    assert all(re.fullmatch(r"\d(\.\d)?e\d+", s) for s in labels), labels  # "7.0e8", not "7.0e+8"
    wide = charts.flops_spec(_track([_entry("a", 1e9, 0.5), _entry("b", 3e17, 0.7)]))
    assert [t[0] for t in _svg(wide)["ticks"]["X"]] == ["1e10", "1e12", "1e14", "1e16"]  # every other decade


def test_curves_x_domain_ends_at_the_budget_or_the_last_point():
    """The curves chart ran to 100,000 samples on a 32,768-sample budget."""
    spec = charts.curves_spec(_digits_track())
    lo, hi = spec["layer"][0]["encoding"]["x"]["scale"].get("domain", (0, math.inf))
    assert 32768 <= hi <= 32768 * 1.15 and 1024 / 1.15 <= lo <= 1024
    assert spec["layer"][0]["encoding"]["x"]["scale"]["nice"] is False
    past = charts.curves_spec(_track([_entry("r", curve=[(1000, 0.1), (10000, 0.5)])], budget={"kind": "samples",
                                                                                              "limit": 8192.0}))
    lo, hi = past["layer"][0]["encoding"]["x"]["scale"]["domain"]
    assert 10000 <= hi <= 11500
    svg = _svg(spec)
    assert max(x for x, _ in svg["points"]) > 0.9 * svg["size"][0]  # the last point is near the right edge
    _inside(svg)


def test_compute_points_are_named_without_overlap():
    """The compute chart's points carried no names; ten points must still read."""
    points = [(6.9e8, 0.78), (7.5e8, 0.89), (8.2e8, 0.906), (8.9e8, 0.927), (1.33e9, 0.963), (7.6e8, 0.80),
              (9.5e8, 0.91), (1.1e9, 0.93), (1.2e9, 0.95), (8.0e8, 0.85)]
    track = _track([_entry(f"run-{i:02d}", f, v) for i, (f, v) in enumerate(points)])
    spec = charts.flops_spec(track)
    named = set(_texts(spec))
    frontier = {n for _, _, n in charts.pareto([(f, v, f"run-{i:02d}") for i, (f, v) in enumerate(points)], False)}
    assert frontier <= named and len(named & {f"run-{i:02d}" for i in range(10)}) >= 8
    svg = _svg(spec)
    boxes = [(*_x_span(t, x, a, s), y - s / 2, y + s / 2) for t, x, y, a, s in svg["texts"]]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]), (a, b)
    _inside(svg)


@pytest.mark.parametrize("points", [[(4.2e10, 0.626), (4.2e10, 0.507)], [(4.2e10, 0.626)],
                                    [(1e9, 0.5), (1e9, 0.6), (1e9, 0.7)]])
def test_frontier_is_drawn_when_points_share_flops(points):
    """'red: Pareto frontier' was promised but nothing was drawn when the frontier was one point."""
    spec = charts.flops_spec(_track([_entry(f"r{i}", f, v) for i, (f, v) in enumerate(points)]))
    red = [layer for layer in spec["layer"] if isinstance(layer["mark"], dict)
           and layer["mark"].get("color") == RED]
    assert red and all(layer["data"]["values"] for layer in red)
    line = next(layer for layer in red if layer["mark"]["type"] == "line")
    assert len(line["data"]["values"]) >= 2  # a one-point line draws nothing
    assert _svg(spec)["red_points"] == 1  # the frontier point is ringed


def test_points_stay_inside_the_plot():
    """Runs counted just under a 1e12 FLOPs budget sat on the right edge, half clipped."""
    track = _track([_entry("a", 999284539392.0, 1.27), _entry("b", 999113521024.0, 1.339),
                    _entry("c", 999284539392.0, 1.542)], budget={"kind": "flops", "limit": 1e12},
                   metric={**METRIC, "direction": "lower"})
    spec = charts.flops_spec(track)
    _inside(_svg(spec))
    assert "budget 1e12" in _texts(spec)
    lo, hi = spec["layer"][0]["encoding"]["x"]["scale"]["domain"]
    assert lo < 999113521024.0 and hi > 1e12


def test_threshold_rule_is_labelled():
    for spec in (charts.curves_spec(_digits_track()),
                 charts.run_curves_spec(_digits_track(), "mlp-baseline", [{"seed": 0, "points": [
                     {"samples": s, "acc": v} for s, v in DIGITS[0][1]]}])):
        assert _layers(spec, "rule")
        assert "threshold 0.95" in _texts(spec)
        assert "threshold 0.95" in [t[0] for t in _svg(spec)["texts"]]


@pytest.mark.parametrize("records", [[_record("only", 11421.2)],
                                     [_record("l-b16", 0.631, "2023-04-27"), _record("xl-l14", 0.792, "2023-04-27")],
                                     [_record("a", 1.40, "2025-05-19"), _record("b", 1.28, "2025-05-19"),
                                      _record("c", 1.17, "2026-01-10")]])
def test_record_progression_with_few_records_reads(records):
    """One or two records drew one point on one date tick and one value tick."""
    track = _track([], records=records, ranking=THRESHOLD)
    spec = charts.records_spec(track)
    svg = _svg(spec)
    _readable(svg)
    _inside(svg)
    assert {r["name"] for r in records} <= set(_texts(spec))
    line = _layers(spec, "line")[0]
    assert line["mark"]["interpolate"] == "step-after" and len(line["data"]["values"]) >= 2
    lo, hi = spec["layer"][0]["encoding"]["x"]["scale"]["domain"]
    assert hi - lo >= 28 * 86_400_000


def _run_svg_labels(svg):
    root = ET.fromstring(svg)
    texts = [(t.text, float(t.get("x")), float(t.get("y")), t.get("text-anchor"), 11.0) for t in root.iter(NS + "text")
             if t.get("font-size") == "11"]
    return ([t for t in texts if t[3] == "middle"], [t for t in texts if t[3] == "end"])


@pytest.mark.parametrize("series", [[("seed 0", [(1020, 0.81), (2048, 0.87), (3300, 0.89)])],
                                    [("seed 0", [(4096, 0.5)])],
                                    [("seed 0", [(0, 0.1), (100, 0.1004)])],
                                    [("seed 0", [(i + 1, 1 / (i + 1)) for i in range(500)])]])
def test_run_page_svg_follows_the_tick_rules(series):
    """The run page's curves showed one x tick ("2,000") over 1,020 to 3,300 samples."""
    xs, ys = _run_svg_labels(charts.curves_svg(series, "loss"))
    for labels, axis in ((xs, "X"), (ys, "Y")):
        assert len(labels) >= 3 and len({t[0] for t in labels}) == len(labels), labels
        assert not _overlaps(labels, axis), labels


def test_run_page_svg_survives_overflowing_spans():
    assert "<polyline" in charts.curves_svg([("s", [(1, 1.7e308), (2, -1.7e308)])], "x")


def _grouped_track():
    entries = [_entry("vit-l", 9e9, 0.79, "2023-04-27", "ViT-L"), _entry("vit-b16", 3e9, 0.63, "2023-04-27", "ViT-B"),
               _entry("vit-b32-m", 1e9, 0.30, "2023-04-20", "ViT-B/32"),
               _entry("vit-b32-l", 2e9, 0.45, "2023-05-20", "ViT-B/32")]
    return _track(entries, records=[_record("vit-l", 0.79, "2023-04-27")], group_by="architecture")


def test_grouped_boards_colour_by_group():
    track = _grouped_track()
    for spec in (charts.flops_spec(track), charts.records_spec(track)):
        colours = [layer["encoding"]["color"] for layer in spec["layer"] if "color" in layer.get("encoding", {})]
        assert colours and all(c.get("field") == "group" and c.get("title") == "architecture" for c in colours)
        alt.LayerChart.from_dict(spec, validate=True)
    records = charts.records_spec(track)
    points = _layers(records, "point")[0]["data"]["values"]
    # one progression per group: ViT-B/32's two records, the other groups' one each
    assert sorted((r["group"], r["run"]) for r in points) == [("ViT-B", "vit-b16"), ("ViT-B/32", "vit-b32-l"),
                                                              ("ViT-B/32", "vit-b32-m"), ("ViT-L", "vit-l")]
    assert {r["group"] for r in _layers(records, "line")[0]["data"]["values"]} == {"ViT-B", "ViT-B/32", "ViT-L"}
    # without the keys (or with group_by None) nothing is coloured by group
    for plain in (_track(track["entries"]), {**track, "group_by": None}):
        spec = charts.flops_spec(plain)
        assert all(layer["encoding"].get("color", {}).get("field") != "group" for layer in spec["layer"])


def test_charts_fit_the_page_column():
    """With a legend of ten long run names the curves chart was ~800 px wide; the page column is ~760 px."""
    entries = [_entry(f"a-rather-long-run-name-number-{i}", curve=[(1000, i / 20), (4000, i / 10)]) for i in range(10)]
    for spec in (charts.curves_spec(_track(entries)), charts.flops_spec(_grouped_track()),
                 charts.records_spec(_grouped_track())):
        assert _svg(spec)["width"] <= 760


def test_synthetic_specs_are_valid_vega_lite():
    for spec in (charts.curves_spec(_digits_track()), charts.flops_spec(_grouped_track()),
                 charts.records_spec(_track([], records=[_record("only", 0.6)])),
                 charts.flops_spec(_track([_entry("a", 1e12, 1.27)], budget={"kind": "flops", "limit": 1e12}))):
        alt.LayerChart.from_dict(spec, validate=True)


def test_overflowing_values_fall_back_to_vega_axes():
    """Values near ±1.8e308 are legal: no Infinity may reach the spec's JSON."""
    track = _track([_entry("a", 1e300, 1.7e308), _entry("b", 1e10, -1.7e308)],
                   records=[_record("a", 1.7e308), _record("b", -1.7e308, "2026-12-01")])
    for spec in (charts.flops_spec(track), charts.records_spec(track)):
        assert "Infinity" not in charts.spec_json(spec) and "NaN" not in charts.spec_json(spec)


def test_tick_helpers_over_many_spans():
    """3-7 ticks inside the domain with distinct labels, for spans from a hair to many decades."""
    import random

    rng = random.Random(13)
    for _ in range(2000):
        lo = rng.choice([-1, 1]) * 10 ** rng.uniform(-6, 15)
        values = [lo, lo + abs(lo) * 10 ** rng.uniform(-8, 3) * rng.random()]
        domain = axes.linear_domain(values)
        ticks = axes.linear_ticks(*domain)
        labels = axes.tick_labels(ticks)
        assert 3 <= len(ticks) <= 7 and all(domain[0] <= t <= domain[1] for t in ticks), (values, ticks)
        assert len(set(labels)) == len(labels), (ticks, labels)
        positive = [abs(v) or 1.0 for v in values]
        domain = axes.log_domain(positive)
        ticks = axes.log_ticks(*domain)
        assert 3 <= len(ticks) <= 7 and all(domain[0] <= t <= domain[1] for t in ticks), (positive, ticks)
        assert len(set(axes.tick_labels(ticks))) == len(ticks)


def test_a_crowded_compute_chart_names_a_bounded_number_of_runs():
    track = _track([_entry(f"run-{i}", 1e9 * (1 + i % 97), (i * 7919 % 1000) / 1000) for i in range(2000)])
    assert 1 <= len(_texts(charts.flops_spec(track))) <= axes.MAX_LABELS


EXTREMES = [0.0, 5e-324, 1e-300, 1.0, 2.0 ** 53, 1e308, -1.7e308, 1.7e308]


@pytest.mark.parametrize("a", EXTREMES)
def test_extreme_values_never_fail_a_chart(a):
    """Legal floats at the ends of the range (subnormals, ±1.7e308, spans that overflow or underflow) must neither
    raise nor put Infinity/NaN into a spec's JSON; the axes fall back to Vega's."""
    for b in EXTREMES:
        charts.curves_svg([("s", [(abs(a) or 1, a), (abs(b) + 1, b)])], "y")
        charts.curves_svg([("s", [(a, b), (b, a)])], "y")
        track = _track([_entry("x", abs(a) or 1.0, b, curve=[(abs(a), b), (abs(b), a)]),
                        _entry("y", abs(b) or 2.0, a, curve=[(abs(a), b)])],
                       records=[_record("x", a), _record("y", b, "2027-01-01")],
                       budget={"kind": "samples", "limit": abs(b)})
        for make in (charts.flops_spec, charts.records_spec, charts.curves_spec):
            text = charts.spec_json(make(track))
            assert "Infinity" not in text and "NaN" not in text, (make.__name__, a, b)
