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
