"""Time tracks: the time_to_target and metric_under_time_limit rules rank real run models by each seed's training
time; a standard board ranks only reproduced times; the site writes times as durations."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from leaderboard.presentation import duration, figure_text, mean_std, rule_header
from leaderboard.ranking import rank
from validator.models import RunAnalysis, Track

ROOT = Path(__file__).resolve().parent
TRACK = yaml.safe_load((ROOT / "fixtures/runs/tracks/digits-mini/track.yaml").read_text(encoding="utf-8"))
RUN = json.loads((ROOT / "fixtures/runs/valid").glob("*/speedrun_analysis.json").__next__().read_text(encoding="utf-8"))
HARDWARE = {"accelerator": "NVIDIA H100 80GB HBM3", "count": 8}


def _track(primary: dict, **over) -> Track:
    data = copy.deepcopy(TRACK) | {"ranking": {"primary": primary}, "hardware": HARDWARE} | over
    return Track.model_validate(data)


def _run(name: str, times: list[float], finals: list[float]) -> RunAnalysis:
    data = copy.deepcopy(RUN) | {"name": name, "seeds": list(range(len(times)))}
    data["results"] = [{"seed": i, "final": {"val_top1": f, "test_top1": f}, "train_time_seconds": t,
                        "curve": [{"samples": 256, "val_top1": f - 0.1, "train_time_seconds": t / 2},
                                  {"samples": 1024, "val_top1": f, "train_time_seconds": t}]}
                       for i, (t, f) in enumerate(zip(times, finals))]
    return RunAnalysis.model_validate(data)


def test_a_time_rule_needs_reference_hardware():
    with pytest.raises(ValidationError, match="reference 'hardware'"):
        Track.model_validate(copy.deepcopy(TRACK) | {"ranking": {"primary": {"kind": "time_to_target", "target": 0.9}}})


def test_time_to_target_ranks_by_mean_time_when_the_mean_final_metric_reaches_the_target():
    track = _track({"kind": "time_to_target", "metric": "val_top1", "target": 0.9})
    runs = {"fast": _run("fast", [100.0, 110.0], [0.91, 0.92]),
            "slow": _run("slow", [200.0, 220.0], [0.95, 0.95]),
            # one seed below the target, the mean above: modded-nanogpt's "mean val loss" convention counts it
            "mixed": _run("mixed", [150.0, 150.0], [0.89, 0.93]),
            "short": _run("short", [50.0, 50.0], [0.85, 0.86])}
    entries = rank(runs, track)
    assert [(e.name, e.rank, e.figures[0].mean) for e in entries] == [
        ("fast", 1, 105.0), ("mixed", 2, 150.0), ("slow", 3, 210.0), ("short", None, None)]


def test_first_reached_interpolates_on_the_curve_in_training_time():
    track = _track({"kind": "time_to_target", "metric": "val_top1", "target": 0.9, "timing": "first_reached"})
    # curve: (50 s, 0.85) -> (100 s, 0.95): 0.9 is reached half-way, at 75 s
    entry = rank({"r": _run("r", [100.0], [0.95])}, track)[0]
    assert entry.figures[0].mean == pytest.approx(75.0)


def test_metric_under_time_limit_does_not_rank_a_run_over_the_limit():
    track = _track({"kind": "metric_under_time_limit", "metric": "val_top1", "seconds": 600})
    runs = {"within": _run("within", [590.0, 599.0], [0.9, 0.92]), "over": _run("over", [590.0, 601.0], [0.99, 0.99])}
    entries = rank(runs, track)
    assert [(e.name, e.rank) for e in entries] == [("within", 1), ("over", None)]
    assert entries[0].figures[0].mean == pytest.approx(0.91)


def test_times_not_counted_leave_the_run_valid_but_unranked_with_the_reason():
    track = _track({"kind": "time_to_target", "metric": "val_top1", "target": 0.9})
    runs = {"a": _run("a", [100.0], [0.95]), "b": _run("b", [200.0], [0.95])}
    entries = rank(runs, track, {"a": "time not reproduced"})
    assert [(e.name, e.rank, e.unranked_why) for e in entries] == [("b", 1, None), ("a", None, "time not reproduced")]


def test_times_read_as_durations():
    track = {"primary_metric": "val_loss", "metrics": [{"id": "val_loss", "name": "Val loss", "direction": "lower"}]}
    rule = {"kind": "time_to_target", "target": 3.28, "label": "x"}
    assert duration(179.527) == "2.992 min" and duration(73.536) == "73.5 s" and duration(20880) == "5.80 h"
    assert mean_std({"mean": 179.527, "std": 0.31, "n": 4}, "time_to_target") == "2.992 min ± 0.31 s"
    assert figure_text({"mean": 87.9, "std": None, "n": 1}, rule, track) == "87.9 s"
    assert mean_std({"mean": None}, "time_to_target") == "not reached"
    assert rule_header(rule, track) == "Time to ≤ 3.28"
    assert rule_header({"kind": "metric_under_time_limit", "seconds": 600, "label": "x"}, track) == "Val loss in 10.000 min"
