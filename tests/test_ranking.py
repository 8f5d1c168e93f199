"""Ranking rules against hand-computed figures."""

import math

import pytest

from leaderboard.ranking import Figure, auc, interpolate, rank, samples_to_threshold
from validator.models import RunAnalysis, Track

CURVE = [(100, 0.2), (200, 0.6), (400, 0.8), (800, 0.9)]


def test_interpolate_linear_and_log():
    assert interpolate(CURVE, 300) == pytest.approx(0.7)
    # halfway in log space between 200 and 400 is sqrt(200*400)
    assert interpolate(CURVE, math.sqrt(200 * 400), axis="log") == pytest.approx(0.7)
    assert interpolate(CURVE, 50) is None
    assert interpolate(CURVE, 900) is None
    assert interpolate(CURVE, 800) == pytest.approx(0.9)


def test_samples_to_threshold_interpolates_between_checkpoints():
    # 0.7 lies halfway between (200, 0.6) and (400, 0.8)
    assert samples_to_threshold(CURVE, 0.7, "higher") == pytest.approx(300)
    assert samples_to_threshold(CURVE, 0.2, "higher") == pytest.approx(100)
    assert samples_to_threshold(CURVE, 0.95, "higher") is None


def test_samples_to_threshold_lower_is_better():
    loss = [(100, 3.0), (200, 2.0), (400, 1.5)]
    # 1.75 is halfway between 2.0 at 200 and 1.5 at 400
    assert samples_to_threshold(loss, 1.75, "lower") == pytest.approx(300)
    assert samples_to_threshold(loss, 1.0, "lower") is None


def test_auc_linear_normalised():
    curve = [(0, 0.0), (100, 1.0)]
    # triangle: mean value 0.5 over [0, 100], range [0, 1]
    assert auc(curve, 100, "linear", 0.0, 1.0) == pytest.approx(0.5)
    # range [0, 2] halves it
    assert auc(curve, 100, "linear", 0.0, 2.0) == pytest.approx(0.25)


def test_auc_log_axis_and_held_last_value():
    curve = [(10, 0.0), (100, 1.0)]
    # in log10 space [1, 2] the triangle's mean is 0.5; up to 1000 the value 1.0 is held for another decade
    assert auc(curve, 100, "log", 0, 1) == pytest.approx(0.5)
    assert auc(curve, 1000, "log", 0, 1) == pytest.approx((0.5 + 1.0) / 2)


def test_figure_mean_std_and_missing():
    f = Figure.of([1.0, 2.0, 3.0])
    assert (f.mean, f.std, f.n) == (2.0, 1.0, 3)
    assert Figure.of([1.0, None]).mean is None


def _track(direction="higher", primary=None, settings=()):
    data = {
        "schema_version": 1, "id": "t", "title": "T", "competition": {"id": "c", "title": "C"},
        "description": "d", "rules_version": "1", "task": {"kind": "classification", "description": "d"},
        "dataset": {"name": "d", "version": "1", "splits": {"train": 100}, "source": "s"},
        "metrics": [{"id": "m", "name": "M", "description": "d", "direction": direction, "split": "val",
                     "protocol": "p"}],
        "primary_metric": "m",
        "ranking": {"primary": primary or {"kind": "final_metric"}},
        "settings": [{"id": s, "title": s, "train_samples": 10} for s in settings],
    }
    return Track.model_validate(data)


def _run(name, finals, curve=None, settings=None):
    results = []
    for i, v in enumerate(finals):
        r = {"seed": i, "final": {"m": v}}
        if curve:
            r["curve"] = [{"samples": s, "m": y} for s, y in curve[i]]
        if settings:
            r["setting"] = settings[i]
        results.append(r)
    return RunAnalysis.model_validate({
        "schema_version": 1, "track": "t", "name": name, "team": name, "authors": [{"name": "a"}],
        "date": "2026-01-01", "description": "d", "task": {"description": "d"},
        "dataset": {"name": "d", "version": "1", "train_samples": 100}, "model": {"architecture": "a", "parameters": 1},
        "evaluation": {"metrics": ["m"], "protocol": "p"},
        "compute": {"samples_seen": 100, "hardware": {"accelerator": "cpu"}},
        "seeds": sorted({r["seed"] for r in results}), "results": results,
    })


def test_rank_higher_is_better_with_shared_rank():
    track = _track("higher")
    entries = rank({"a": _run("a", [0.5]), "b": _run("b", [0.9]), "c": _run("c", [0.9]), "d": _run("d", [0.1])}, track)
    assert [(e.name, e.rank) for e in entries] == [("b", 1), ("c", 1), ("a", 3), ("d", 4)]


def test_rank_lower_is_better_uses_seed_mean():
    track = _track("lower")
    entries = rank({"a": _run("a", [1.0, 3.0]), "b": _run("b", [1.5, 1.5])}, track)
    assert [e.name for e in entries] == ["b", "a"]
    assert entries[1].figures[0].mean == pytest.approx(2.0)


def test_rank_threshold_not_reached_is_last_and_unranked():
    track = _track("higher", primary={"kind": "samples_to_threshold", "threshold": 0.8})
    fast = _run("fast", [0.9], curve=[[(100, 0.5), (200, 0.9)]])  # crosses 0.8 at 175
    slow = _run("slow", [0.85], curve=[[(100, 0.3), (200, 0.85)]])  # crosses at 100 + 0.5/0.55*100
    never = _run("never", [0.7], curve=[[(100, 0.5), (200, 0.7)]])
    entries = rank({"never": never, "slow": slow, "fast": fast}, track)
    assert [e.name for e in entries] == ["fast", "slow", "never"]
    assert entries[0].figures[0].mean == pytest.approx(175)
    assert entries[1].figures[0].mean == pytest.approx(100 + 0.5 / 0.55 * 100)
    assert entries[2].rank is None


def test_rank_settings_mean_excludes_incomplete_runs():
    track = _track("higher", primary={"kind": "settings_mean"}, settings=("small", "large"))
    full = _run("full", [0.2, 0.6], settings=["small", "large"])
    # give both results seed 0 so they are one seed with two settings
    full = full.model_copy(update={"results": [r.model_copy(update={"seed": 0}) for r in full.results], "seeds": [0]})
    partial = _run("partial", [0.9], settings=["small"])
    entries = rank({"full": full, "partial": partial}, track)
    assert entries[0].name == "full" and entries[0].figures[0].mean == pytest.approx(0.4)
    assert entries[1].name == "partial" and entries[1].rank is None


# --- appended: more rules against hand-computed figures ---------------------------------------------------------------

from validator.models.run import Baseline  # noqa: E402


def _track_with(direction="higher", primary=None, tie_breakers=()):
    """_track with tie-breakers added."""
    data = _track(direction, primary).model_dump(mode="json")
    data["ranking"]["tie_breakers"] = list(tie_breakers)
    return Track.model_validate(data)


def _with_baseline(run, baseline, track=None):
    return run.model_copy(update={"baseline": Baseline(run=baseline, track=track)})


def test_metric_at_budget_interpolates_between_checkpoints():
    track = _track("higher", primary={"kind": "metric_at_budget", "samples": 300})
    # 300 lies halfway between 200 and 400: (0.6 + 0.8) / 2 = 0.7
    a = _run("a", [0.9], curve=[[(100, 0.2), (200, 0.6), (400, 0.8), (800, 0.9)]])
    # 300 lies a quarter of the way between 200 and 600: 0.5 + 0.25 * (0.9 - 0.5) = 0.6
    b = _run("b", [0.95], curve=[[(200, 0.5), (600, 0.9), (800, 0.95)]])
    # two seeds: 0.7 and 0.75 (halfway between 0.7 and 0.8) -> mean 0.725
    c = _run("c", [0.8, 0.8], curve=[[(100, 0.5), (300, 0.7), (500, 0.8)], [(200, 0.7), (400, 0.8), (500, 0.8)]])
    entries = rank({"a": a, "b": b, "c": c}, track)
    assert [(e.name, e.rank) for e in entries] == [("c", 1), ("a", 2), ("b", 3)]
    figs = {e.name: e.figures[0] for e in entries}
    assert figs["a"].mean == pytest.approx(0.7)
    assert figs["b"].mean == pytest.approx(0.6)
    assert figs["c"].mean == pytest.approx(0.725)
    assert figs["c"].values == pytest.approx((0.7, 0.75))


def test_metric_at_budget_outside_the_curve_is_not_ranked():
    track = _track("higher", primary={"kind": "metric_at_budget", "samples": 300})
    ok = _run("ok", [0.5], curve=[[(300, 0.5)]])  # exactly at the budget
    short = _run("short", [0.99], curve=[[(100, 0.9), (200, 0.99)]])  # stops before 300
    late = _run("late", [0.99], curve=[[(400, 0.95), (800, 0.99)]])  # starts after 300
    # one seed reaches the budget, the other stops before it: the run has no figure
    mixed = _run("mixed", [0.9, 0.9], curve=[[(100, 0.5), (400, 0.9)], [(100, 0.5), (200, 0.9)]])
    entries = rank({"short": short, "late": late, "ok": ok, "mixed": mixed}, track)
    assert entries[0].name == "ok" and entries[0].rank == 1 and entries[0].figures[0].mean == pytest.approx(0.5)
    assert [e.name for e in entries[1:]] == ["late", "mixed", "short"]  # unranked, by name
    assert all(e.rank is None and e.figures[0].mean is None for e in entries[1:])
    assert entries[2].figures[0].values == pytest.approx((0.5 + 0.4 * 200 / 300, None))


def test_auc_lower_is_better_ranks_lower_area_first():
    track = _track("lower", primary={"kind": "auc", "sample_limit": 400, "axis": "linear"})
    # trapezoids over [100, 400]; no metric range, so the figure is the mean value
    steep = _run("steep", [1.0], curve=[[(100, 2.0), (200, 1.0), (400, 1.0)]])  # (100*1.5 + 200*1.0) / 300 = 7/6
    linear = _run("linear", [1.0], curve=[[(100, 2.0), (400, 1.0)]])  # 1.5
    slow = _run("slow", [1.0], curve=[[(100, 3.0), (400, 1.0)]])  # 2.0
    # stops at 200: 1.0 is held to 400 -> (100*2.5 + 200*1.0) / 300 = 1.5 (ties with linear: name decides)
    held = _run("held", [1.0], curve=[[(100, 4.0), (200, 1.0)]])
    entries = rank({"slow": slow, "linear": linear, "steep": steep, "held": held}, track)
    assert [(e.name, e.rank) for e in entries] == [("steep", 1), ("held", 2), ("linear", 2), ("slow", 4)]
    figs = {e.name: e.figures[0].mean for e in entries}
    assert figs == pytest.approx({"steep": 7 / 6, "held": 1.5, "linear": 1.5, "slow": 2.0})


def test_auc_with_metric_range_is_normalised():
    data = _track("lower", primary={"kind": "auc", "sample_limit": 400}).model_dump(mode="json")
    data["metrics"][0].update(min=1.0, max=3.0)
    track = Track.model_validate(data)
    # mean 1.5 mapped onto [1, 3]: (1.5 - 1) / 2 = 0.25
    entries = rank({"r": _run("r", [1.0], curve=[[(100, 2.0), (400, 1.0)]])}, track)
    assert entries[0].figures[0].mean == pytest.approx(0.25)


def test_baseline_delta_against_the_named_baseline():
    track = _track_with("higher", primary={"kind": "baseline_delta"})
    base = _run("base", [0.80, 0.82])  # mean 0.81
    better = _with_baseline(_run("better", [0.85, 0.87]), "base")  # deltas 0.04, 0.06: mean 0.05, std sqrt(2)/100
    worse = _with_baseline(_run("worse", [0.79]), "base")  # delta -0.02
    lost = _with_baseline(_run("lost", [0.99]), "missing")  # baseline not on the track
    elsewhere = _with_baseline(_run("elsewhere", [0.99]), "base", track="other-track")  # not compared here
    entries = rank({"base": base, "better": better, "worse": worse, "lost": lost, "elsewhere": elsewhere}, track)
    assert [(e.name, e.rank) for e in entries] == [
        ("better", 1), ("worse", 2), ("base", None), ("elsewhere", None), ("lost", None)]
    fig = entries[0].figures[0]
    assert fig.mean == pytest.approx(0.05)
    assert fig.values == pytest.approx((0.04, 0.06))
    assert fig.std == pytest.approx(math.sqrt(2) / 100)
    assert entries[1].figures[0].mean == pytest.approx(-0.02)


def test_baseline_delta_lower_is_better():
    track = _track_with("lower", primary={"kind": "baseline_delta"})
    base = _run("base", [3.30, 3.26])  # mean 3.28
    a = _with_baseline(_run("a", [3.20]), "base")  # -0.08
    b = _with_baseline(_run("b", [3.25, 3.27]), "base")  # -0.03, -0.01: mean -0.02
    entries = rank({"base": base, "a": a, "b": b}, track)
    assert [(e.name, e.rank) for e in entries][:2] == [("a", 1), ("b", 2)]
    assert entries[0].figures[0].mean == pytest.approx(-0.08)
    assert entries[1].figures[0].mean == pytest.approx(-0.02)


def test_tie_breaker_orders_runs_tied_on_the_primary():
    track = _track_with("higher", tie_breakers=[{"kind": "metric_at_budget", "samples": 200}])
    # equal finals (0.9); at 200 samples "aa" has 0.5 and "zz" 0.7: the tie-breaker, not the name, decides
    aa = _run("aa", [0.9], curve=[[(100, 0.4), (200, 0.5), (400, 0.9)]])
    zz = _run("zz", [0.9], curve=[[(100, 0.4), (200, 0.7), (400, 0.9)]])
    top = _run("top", [0.95], curve=[[(100, 0.1), (200, 0.2), (400, 0.95)]])  # primary wins despite the tie-breaker
    entries = rank({"aa": aa, "zz": zz, "top": top}, track)
    assert [(e.name, e.rank) for e in entries] == [("top", 1), ("zz", 2), ("aa", 3)]


def test_tie_breaker_threshold_prefers_fewer_samples_on_a_lower_metric():
    track = _track_with("lower", tie_breakers=[{"kind": "samples_to_threshold", "threshold": 2.0}])
    # equal final losses; "b" reaches 2.0 at 150 samples, "a" at 300: fewer samples ranks first
    a = _run("a", [1.0], curve=[[(100, 3.0), (200, 2.5), (400, 1.5), (500, 1.0)]])
    b = _run("b", [1.0], curve=[[(100, 3.0), (200, 1.0), (500, 1.0)]])
    entries = rank({"a": a, "b": b}, track)
    assert [(e.name, e.rank) for e in entries] == [("b", 1), ("a", 2)]
    assert entries[0].figures[1].mean == pytest.approx(150)
    assert entries[1].figures[1].mean == pytest.approx(300)


def test_missing_tie_breaker_figure_ranks_after_one_with_it():
    track = _track_with("higher", tie_breakers=[{"kind": "metric_at_budget", "samples": 300}])
    has = _run("zz", [0.9], curve=[[(100, 0.5), (400, 0.9)]])
    lacks = _run("aa", [0.9], curve=[[(100, 0.5), (200, 0.9)]])  # no point at or after 300
    entries = rank({"aa": lacks, "zz": has}, track)
    assert [(e.name, e.rank) for e in entries] == [("zz", 1), ("aa", 2)]


def test_shared_rank_after_a_tie_on_all_rules():
    track = _track_with("higher", tie_breakers=[{"kind": "metric_at_budget", "samples": 200}])
    curve = [[(100, 0.5), (200, 0.7), (400, 0.9)]]
    entries = rank({
        "b": _run("b", [0.9], curve=curve),
        "a": _run("a", [0.9], curve=curve),
        "c": _run("c", [0.9], curve=[[(100, 0.5), (200, 0.6), (400, 0.9)]]),  # loses the tie-breaker
        "d": _run("d", [0.8], curve=[[(100, 0.5), (200, 0.8), (400, 0.8)]]),
    }, track)
    # a and b tie on both rules: they share rank 1 (listed by name) and the next run is 3rd, not 2nd
    assert [(e.name, e.rank) for e in entries] == [("a", 1), ("b", 1), ("c", 3), ("d", 4)]


def test_seeds_disagreeing_on_the_threshold_are_not_ranked():
    track = _track("higher", primary={"kind": "samples_to_threshold", "threshold": 0.8})
    # seed 0 reaches 0.8 at 150 samples, seed 1 never does: no mean over seeds, so the run is not ranked
    split = _run("split", [0.9, 0.75], curve=[[(100, 0.7), (200, 0.9)], [(100, 0.7), (200, 0.75)]])
    # slower, but both seeds reach it: 175 and 200 -> 187.5
    steady = _run("steady", [0.9, 0.8], curve=[[(100, 0.5), (200, 0.9)], [(100, 0.6), (200, 0.8)]])
    entries = rank({"split": split, "steady": steady}, track)
    assert [(e.name, e.rank) for e in entries] == [("steady", 1), ("split", None)]
    assert entries[0].figures[0].mean == pytest.approx(187.5)
    fig = entries[1].figures[0]
    assert fig.mean is None and fig.n == 2
    assert fig.values[0] == pytest.approx(150) and fig.values[1] is None
