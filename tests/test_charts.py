"""Chart specs and the vendored Vega bundle."""

from pathlib import Path

import altair as alt
import pytest

from leaderboard import charts
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
