"""The reference tracks and runs (digits-reconstruction, marin-local TINY/SMALL/MEDIUM) stay valid and say what their
own logs say. Nothing here retrains (tests/test_bundled_runs.py style reruns take minutes); the FLOPs recount of the
language-model run is the one sandboxed step."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from leaderboard.ranking import better_is_lower, figure, rank
from speedrun.cli import cli
from validator.models import RunAnalysis, Track

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
RECON = RUNS / "digits-reconstruction"
LM_TRACKS = [RUNS / f"marin-local-{size}" for size in ("tiny", "small", "medium")]
LM_RUNS = [RUNS / "marin-local-tiny" / "bytegpt-tiny", RUNS / "marin-local-small" / "bytegpt-small"]
LOG_EVAL = re.compile(r"^seed (\d+) step (\d+) samples (\d+) train_loss \S+ val_loss_nats ([\d.]+) bpb ([\d.]+)", re.M)


def _track(folder: Path) -> Track:
    return Track.model_validate(yaml.safe_load((folder / "track.yaml").read_text(encoding="utf-8")))


def _run(folder: Path) -> RunAnalysis:
    return RunAnalysis.model_validate_json((folder / "speedrun_analysis.json").read_text(encoding="utf-8"))


def test_tracks_and_runs_validate(monkeypatch):
    monkeypatch.chdir(ROOT)
    paths = [str(p.relative_to(ROOT)) for p in [RECON, *LM_TRACKS]]
    result = CliRunner().invoke(cli, ["validate", *paths, "--no-flops", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"]
    assert {t["track"] for t in report["tracks"]} >= {"digits-reconstruction", "marin-local-tiny",
                                                     "marin-local-small", "marin-local-medium"}
    assert all(t["valid"] for t in report["tracks"])
    runs = {r["path"]: r for r in report["runs"]}
    for folder in [RECON / "autoencoder-baseline", *LM_RUNS]:
        entry = runs[str(folder.relative_to(ROOT))]
        assert entry["valid"] and not entry["errors"] and not entry["warnings"], entry


def test_marin_local_tracks_share_one_scale_factor_and_corpus():
    marin = {"tiny": 3e18, "small": 6e18, "medium": 3e19}
    tracks = {p.name.rsplit("-", 1)[1]: _track(p) for p in LM_TRACKS}
    factors = {size: marin[size] / t.budget.limit for size, t in tracks.items()}
    assert len({round(f) for f in factors.values()}) == 1, factors
    factor = factors["tiny"]
    for t in tracks.values():
        assert t.competition.id == "marin-local" and t.competition.title == "Marin Speedrun (scaled to a CPU)"
        assert t.budget.kind == "flops" and t.budget.counts.training and not t.budget.counts.evaluation
        assert f"{factor:.0e}".replace("+0", "") in t.description  # the factor is stated, e.g. "3e6"
        assert t.metric("bpb").direction == "lower" and t.metric("bpb").min == 0
        assert t.ranking.primary.kind == "final_metric" and t.board == "standard" and t.seeds.minimum == 1
        assert t.dataset.checksum == tracks["tiny"].dataset.checksum
    copies = {(run / "corpus.py").read_bytes() for run in LM_RUNS}
    assert len(copies) == 1, "every run ships corpus.py unchanged"


def test_corpus_is_the_tracks_checksum():
    """The corpus is generated, not downloaded: regenerating it must give the bytes the tracks pin."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("marin_local_corpus", LM_RUNS[0] / "corpus.py")
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    train, val, checksum = corpus.corpus()
    assert checksum == _track(LM_TRACKS[0]).dataset.checksum
    assert checksum == "sha256:" + hashlib.sha256(train + val).hexdigest()
    assert (len(train), len(val)) == (4 * 2**20, 2**15 + 1)
    assert max(train) < 128 and b"\n\n" in val and b". " in val  # ASCII paragraphs of sentences


def test_lm_flops_recount_within_claim_and_budget(monkeypatch):
    monkeypatch.chdir(ROOT)
    run_dir = LM_RUNS[0]
    result = CliRunner().invoke(cli, ["flops", str(run_dir.relative_to(ROOT)), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    analysis, track = _run(run_dir), _track(run_dir.parent)
    assert report["verdict"] == "pass", report
    assert abs(report["claim_ratio"] - 1) <= 0.05
    assert report["total_training_flops"] <= track.budget.limit
    assert report["samples_seen"] == analysis.compute.samples_seen
    assert report["per_sample_training_flops"] == analysis.compute.flops.per_sample_training
    assert report["parameters"] == analysis.model.parameters


@pytest.mark.parametrize("run_dir", LM_RUNS, ids=lambda p: p.name)
def test_lm_bpb_is_the_logged_loss_over_ln2(run_dir):
    analysis = _run(run_dir)
    assert len(analysis.seeds) == 3
    b = analysis.training.batch
    assert analysis.compute.samples_seen == analysis.training.steps * b.micro_batch * b.accumulation * b.world_size
    for result in analysis.results:
        log = (run_dir / "logs" / f"seed{result.seed}.log").read_text(encoding="utf-8")
        logged = {int(m[3]): (float(m[4]), float(m[5])) for m in LOG_EVAL.finditer(log) if int(m[1]) == result.seed}
        assert [p.samples for p in result.curve] == sorted(logged), "every curve point comes from a logged evaluation"
        for point in result.curve:
            nats, bpb = logged[point.samples]
            assert math.isclose(nats / math.log(2), bpb, abs_tol=2e-6)
            assert math.isclose(point.model_extra["bpb"], bpb, abs_tol=1e-6)
        assert result.final["bpb"] == result.curve[-1].model_extra["bpb"]
        assert result.curve[-1].samples == analysis.compute.samples_seen
        assert "==== run.py ====" in log and "==== corpus.py ====" in log and "torch " in log
    # Bits per byte of a trained model: well under 8 (no model) and the 4.4 of byte frequencies alone.
    assert all(1.0 < r.final["bpb"] < 2.0 for r in analysis.results)


def _shifted(run: RunAnalysis, delta: float, name: str) -> RunAnalysis:
    data = json.loads(run.model_dump_json())
    data["name"] = name
    for result in data["results"]:
        for point in result["curve"]:
            point["val_mse"] = max(0.0, point["val_mse"] + delta)
        result["final"]["val_mse"] = result["curve"][-1]["val_mse"]
    return RunAnalysis.model_validate(data)


def test_reconstruction_ranks_lower_mse_first():
    track, base = _track(RECON), _run(RECON / "autoencoder-baseline")
    metric = track.metric("val_mse")
    assert metric.direction == "lower" and metric.min == 0 and track.task.kind == "reconstruction"
    assert track.ranking.primary.kind == "samples_to_threshold"
    assert all(better_is_lower(rule, track) for rule in [track.ranking.primary, *track.ranking.tie_breakers])

    # The baseline reaches the threshold on every seed, between checkpoints.
    reached = figure(track.ranking.primary, base, track)
    assert reached.mean is not None and all(1024 < v < 32768 for v in reached.values)

    better, worse = _shifted(base, -0.002, "better"), _shifted(base, +0.002, "worse")
    never = _shifted(base, +0.05, "never")  # never gets down to the threshold: ranked last, without a rank
    order = rank({"worse": worse, "never": never, "autoencoder-baseline": base, "better": better}, track)
    assert [e.name for e in order] == ["better", "autoencoder-baseline", "worse", "never"]
    assert [e.rank for e in order] == [1, 2, 3, None]
    finals = [e.metrics["val_mse"].mean for e in order]
    assert finals == sorted(finals)
