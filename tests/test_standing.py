"""Where a run would stand on its board (speedrun/standing.py), on the real digits track and its baseline: the
would-be rank, the record and the track's significance test, as the PR report shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard.stats import two_sample
from speedrun.standing import standing
from validator.checker import Checker
from validator.standinglines import markdown_lines, text_lines

ROOT = Path(__file__).resolve().parents[1]
TRACK = ROOT / "runs" / "digits-classification"


@pytest.fixture(scope="module")
def digits():
    result = Checker().check_run(TRACK / "mlp-baseline")
    assert result.valid
    return result.analysis, result.track


def shifted(run, name: str, by: float):
    """The baseline's claim with every val accuracy moved by `by` (a better or worse run of the same shape)."""
    data = run.model_dump(mode="json")
    data["name"] = name
    for result in data["results"]:
        for point in result["curve"]:
            point["val_top1"] = min(1.0, point["val_top1"] + by)
        result["final"]["val_top1"] = result["curve"][-1]["val_top1"]
    return type(run).model_validate(data)


def test_a_better_run_would_take_the_record(digits):
    baseline, track = digits
    better = shifted(baseline, "better", 0.02)
    s = standing(better, track, {"mlp-baseline": baseline})
    assert (s["rank"], s["of"], s["beats_record"]) == (1, 2, True)
    assert s["record"]["name"] == "mlp-baseline" and round(s["record"]["mean"]) == 11421
    assert s["figures"][0]["label"] == "samples to Top-1 accuracy (val) ≥ 0.95"
    assert s["figures"][0]["mean"] < s["record"]["mean"]
    assert s["significance"]["against"] == "threshold" and s["significance"]["p_value"] < 0.05
    assert "standing: would rank 1 of 2 on digits-classification; current record mlp-baseline" in "\n".join(
        text_lines(s))
    assert "| record | current record `mlp-baseline` (11,421 ± 120 samples): beats it |" in markdown_lines(s)


def test_a_worse_run_ranks_after_the_record(digits):
    baseline, track = digits
    worse = shifted(baseline, "worse", -0.005)
    s = standing(worse, track, {"mlp-baseline": baseline})
    assert (s["rank"], s["of"], s["beats_record"]) == (2, 2, False)


def test_a_run_that_never_reaches_the_threshold_is_not_ranked(digits):
    baseline, track = digits
    s = standing(shifted(baseline, "weak", -0.2), track, {"mlp-baseline": baseline})
    assert s["rank"] is None and s["beats_record"] is False and s["figures"][0]["mean"] is None
    assert "would not be ranked" in text_lines(s)[1]


def test_against_the_record_the_test_is_welchs_on_the_ranking_figure(digits):
    baseline, track = digits
    sig = track.seeds.significance.model_copy(update={"against": "record"})
    track = track.model_copy(update={"seeds": track.seeds.model_copy(update={"significance": sig})})
    better = shifted(baseline, "better", 0.02)
    s = standing(better, track, {"mlp-baseline": baseline})
    mine = standing(better, track, {})["figures"][0]
    expected = two_sample(list(s_values(better, track)), list(s_values(baseline, track)), True, 0.05, "mlp-baseline")
    assert s["significance"]["reference"] == "mlp-baseline"
    assert s["significance"]["p_value"] == pytest.approx(expected.p_value)
    assert mine["mean"] == s["figures"][0]["mean"]
    # Alone on the board there is no record to test against.
    assert standing(better, track, {})["significance"] is None


def s_values(run, track):
    from leaderboard.ranking import figure

    return figure(track.ranking.primary, run, track).values


def test_one_seed_shows_no_spread_and_a_bug_in_ranking_costs_no_verdict(monkeypatch):
    from click.testing import CliRunner

    import speedrun.standing
    from speedrun.cli import cli

    monkeypatch.chdir(ROOT)
    single = CliRunner().invoke(cli, ["validate", "--no-flops", "runs/marin-tiny/llama_75m"])
    assert single.exit_code == 0 and "ranking: C4-EN bits per byte: 1.279 (1 seed)" in single.stdout

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a ranking bug")

    monkeypatch.setattr(speedrun.standing, "standing", broken)
    result = CliRunner().invoke(cli, ["validate", "--no-flops", "runs/digits-classification/mlp-baseline"])
    assert result.exit_code == 0, result.output
    assert "standing: not computed (ZeroDivisionError: a ranking bug)" in result.stdout
    markdown = CliRunner().invoke(cli, ["validate", "--no-flops", "--format", "markdown",
                                        "runs/digits-classification/mlp-baseline"])
    assert markdown.exit_code == 0 and "not computed" in markdown.stdout


def test_grouped_track_ranks_a_run_within_its_group():
    """MaxCLIP's unconstrained board ranks within each architecture: a ViT-B/32 entry faces the ViT-B/32 record,
    not the ViT-L/14 one, as on the site."""
    import json

    from speedrun.standing import standing
    import yaml

    from validator.models import RunAnalysis, Track

    root = Path(__file__).resolve().parents[1] / "runs" / "maxclip-open"
    track = Track.model_validate(yaml.safe_load((root / "track.yaml").read_text()))
    board = {d.name: RunAnalysis.model_validate(json.loads((d / "speedrun_analysis.json").read_text()))
             for d in root.iterdir() if (d / "speedrun_analysis.json").is_file()}
    me = board.pop("datacomp-s-vit-b32")
    s = standing(me, track, board)
    assert s["group"] == {"title": "architecture", "name": "ViT-B/32 (OpenCLIP), 224x224"}
    assert (s["rank"], s["of"]) == (2, 2)
    assert s["record"]["name"] == "datacomp-m-vit-b32"
    from validator.standinglines import rank_text
    assert rank_text(s).endswith("among runs of architecture ViT-B/32 (OpenCLIP), 224x224")
