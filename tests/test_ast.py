"""Adaptive Sparse Training: the seed plan's experiment-tracking template importer, and the four AST runs of the
digits track (`ast-activation-sweep`) checked against their own files and the baseline's."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from validator.checker import Checker
from validator.importers.ast_template import ast_template_command, convert, write
from validator.problems import InvalidInput, SpeedrunError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "ast"
FIXTURE_TRACK = "digits-unconstrained"
FILLED = FIXTURES / "filled-template.yaml"
UNFILLED = FIXTURES / "imagenet-plan-template.md"  # the seed plan's template section, verbatim
SEED = ROOT.parent / "shared" / "seeds" / "003_d9c71a6d0611518f.txt"
DIGITS = ROOT / "runs" / "digits-classification"
AST_RUNS = {"ast-5pct": 0.05, "ast-10pct": 0.10, "ast-15pct": 0.15, "ast-20pct": 0.20}
LOG_SAMPLES = re.compile(r"\bsamples(?:_seen)?[=: ]\s*(\d[\d,]*)")  # what the validator's logs_agree rule reads


# ------------------------------------------------------------------------------------------------ template importer

@pytest.fixture
def runs_dir(tmp_path) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / "tracks", runs)
    return runs


def _template(tmp_path: Path, edit) -> Path:
    """The filled fixture, parsed, changed by `edit`, written back as YAML."""
    data = yaml.safe_load(FILLED.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_filled_template_converts_and_validates(runs_dir):
    run_dir = write(FILLED, runs_dir, FIXTURE_TRACK, "ast-digits-10pct")
    assert run_dir == runs_dir / FIXTURE_TRACK / "ast-digits-10pct"
    analysis = json.loads((run_dir / "speedrun_analysis.json").read_text(encoding="utf-8"))

    report = Checker(flops=True).check_paths([run_dir])
    (result,) = report.runs
    assert result.valid, [p.line() for p in result.problems]
    assert not result.warnings

    # self-reported: a citation, no script, no training section; the raw record kept verbatim
    assert analysis["source"]["url"].startswith("https://") and "Self-reported" in analysis["source"]["title"]
    assert analysis["files"]["script"] is None and "training" not in analysis
    assert analysis["notes"].startswith("Self-reported")
    raw = yaml.safe_load(FILLED.read_text(encoding="utf-8"))
    raw["Date"] = raw["Date"].isoformat()
    assert analysis["extra"]["ast_template"]["record"] == raw
    # the figures, read from the template
    assert analysis["results"] == [{"seed": 0, "final": {"val_top1": 0.892}}]
    assert analysis["method"]["data_selection"] is True
    assert analysis["method"]["params"] == {"target_activation": 0.1, "kp": 0.1, "ki": 0.005, "ema_alpha": 0.3,
                                            "batch_size": 64, "epochs": 32}
    parsed = analysis["extra"]["ast_template"]["parsed"]
    assert parsed["accuracy_delta"] == pytest.approx(0.892 - 0.963)
    assert parsed["speedup"] == 2.9 and parsed["training_time_baseline_s"] == 11.6
    # samples from the track's split: 32 epochs x 1,024 candidates, x 9.96 % activation
    assert analysis["compute"]["forward_only_samples"] == 32 * 1024
    assert analysis["compute"]["samples_seen"] == round(32 * 1024 * 0.0996)
    assert (run_dir / "README.md").is_file()


def test_convert_without_a_track_keeps_the_templates_dataset():
    analysis = convert(FILLED, "some-track", "x", runs_dir=None)
    assert analysis["dataset"] == {"name": "sklearn-digits",
                                   "version": "as recorded in the AST experiment-tracking template"}
    assert analysis["compute"]["samples_seen"] == 0 and "unknown" in analysis["notes"]


def test_write_refuses_to_overwrite(runs_dir):
    write(FILLED, runs_dir, FIXTURE_TRACK, "once")
    before = (runs_dir / FIXTURE_TRACK / "once" / "speedrun_analysis.json").read_bytes()
    with pytest.raises(SpeedrunError, match="exists"):
        write(FILLED, runs_dir, FIXTURE_TRACK, "once")
    assert (runs_dir / FIXTURE_TRACK / "once" / "speedrun_analysis.json").read_bytes() == before


@pytest.mark.parametrize("source", [UNFILLED, SEED], ids=["template-section", "seed-plan"])
def test_the_seeds_unfilled_template_is_refused(source):
    if not source.is_file():
        pytest.skip(f"{source} is not available here")
    with pytest.raises(InvalidInput) as err:
        convert(source, FIXTURE_TRACK, "x", runs_dir=FIXTURES / "tracks")
    message = str(err.value)
    assert str(source) in message and "$.Date" in message and "'2025-01-XX'" in message and "'XX'" in message


@pytest.mark.parametrize(("edit", "where", "says"), [
    (lambda d: d["Results"].__setitem__("AST accuracy", "XX.X%"), "$.Results['AST accuracy']", "'XX.X'"),
    (lambda d: d["Results"].__setitem__("Speedup", "XX√ó"), "$.Results.Speedup", "'XX'"),
    (lambda d: d["Notes"][1].__setitem__("Convergence", ["stable/unstable"]), "$.Notes[1].Convergence",
     "'[stable/unstable]'"),
    (lambda d: d["Notes"][0].__setitem__("Threshold range", "X.XX - X.XX"), "$.Notes[0]['Threshold range']",
     "'X.XX'"),
    (lambda d: d["Results"].__setitem__("AST accuracy", "120%"), "$.Results['AST accuracy']", "out of range"),
    (lambda d: d["Results"].__setitem__("Energy savings", "-3%"), "$.Results['Energy savings']", "out of range"),
    (lambda d: d.__setitem__("Target activation", "0%"), "$['Target activation']", "out of range"),
    (lambda d: d.__setitem__("Target activation", 0.1), "$['Target activation']", "not a percentage"),
    (lambda d: d["PI Controller"].pop("Ki"), "$['PI Controller'].Ki", "'Ki' of the AST experiment-tracking template"),
    (lambda d: d.pop("Hardware"), "$.Hardware", "'Hardware' of the AST experiment-tracking template is missing"),
    (lambda d: d.__setitem__("Seed", 3), "$.Seed", "'Seed' is not a key of the AST experiment-tracking template"),
    (lambda d: d["PI Controller"].__setitem__("EMA alpha", 1.5), "$['PI Controller']['EMA alpha']", "out of range"),
    (lambda d: d.__setitem__("Date", "January 2025"), "$.Date", "not a date"),
])
def test_bad_templates_name_file_and_key(tmp_path, edit, where, says):
    path = _template(tmp_path, edit)
    with pytest.raises(InvalidInput) as err:
        convert(path, FIXTURE_TRACK, "x", runs_dir=None)
    message = str(err.value)
    assert message.startswith(f"{path}::{where}:"), message
    assert says in message, message


def test_placeholder_detection_spares_real_words(tmp_path):
    path = _template(tmp_path, lambda d: d.update(Architecture="ResNeXt50 (32x4d)", Hardware="RTX 4090",
                                                  Experiment="AST_XL_run"))
    analysis = convert(path, FIXTURE_TRACK, "x", runs_dir=None)
    assert analysis["model"]["architecture"] == "ResNeXt50 (32x4d)"


def test_command(runs_dir):
    runner = CliRunner()
    args = ["--track", FIXTURE_TRACK, "--name", "ast-cli", "--runs", str(runs_dir)]
    refused = runner.invoke(ast_template_command, [str(UNFILLED), *args])
    assert refused.exit_code == 1 and "'2025-01-XX'" in refused.output
    assert not (runs_dir / FIXTURE_TRACK / "ast-cli").exists()
    done = runner.invoke(ast_template_command, [str(FILLED), *args, "--url", "https://example.org/ast-report"])
    assert done.exit_code == 0, done.output
    analysis = json.loads((runs_dir / FIXTURE_TRACK / "ast-cli" / "speedrun_analysis.json").read_text())
    assert analysis["source"]["url"] == "https://example.org/ast-report"
    again = runner.invoke(ast_template_command, [str(FILLED), *args])
    assert again.exit_code == 2 and "exists" in again.output


# ---------------------------------------------------------------------------------------------------- the AST runs

def _load(name: str) -> dict:
    return json.loads((DIGITS / name / "speedrun_analysis.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def baseline() -> dict:
    return _load("mlp-baseline")


@pytest.mark.parametrize("name", sorted(AST_RUNS))
def test_ast_run_accounting(name, baseline):
    run, target = _load(name), AST_RUNS[name]
    batch = run["training"]["batch"]
    assert (batch["micro_batch"], batch["accumulation"], batch["world_size"]) == (64, 1, 1)
    steps, seen = run["training"]["steps"], run["compute"]["samples_seen"]
    assert seen == steps * 64 == round(target * 32768 / 64) * 64
    assert run["compute"]["forward_only_samples"] == 32768
    assert all(r.get("samples_seen") in (None, seen) for r in run["results"])
    # the logs: each seed took `steps` steps and scored every candidate; the largest "samples N" is samples seen
    for rel in run["files"]["logs"]:
        log = (DIGITS / name / rel).read_text(encoding="utf-8")
        done = re.search(r"done in [\d.]+s steps (\d+) candidates (\d+) ", log)
        assert done and (int(done.group(1)), int(done.group(2))) == (steps, 32768)
        assert max(int(m.group(1).replace(",", "")) for m in LOG_SAMPLES.finditer(log)) == seen
    # curves: every checkpoint reached, then the end of training
    checkpoints = [1024 * m for m in (1, 2, 4, 8, 16, 32)]
    for r in run["results"]:
        assert [p["samples"] for p in r["curve"]] == [c for c in checkpoints if c < seen] + [seen]
    # same model and FLOPs convention as the baseline: training FLOPs x trained + forward FLOPs x scored
    assert run["model"] == {**baseline["model"]}
    per_train = run["compute"]["flops"]["per_sample_training"]
    assert per_train == baseline["compute"]["flops"]["per_sample_training"]
    spec = importlib.util.spec_from_file_location(f"ast_run_{name.replace('-', '_')}", DIGITS / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.TARGET == target
    train_flops, forward_flops = module.flops_per_sample()
    assert train_flops == per_train
    assert run["compute"]["flops"]["claimed"] == train_flops * seen + forward_flops * 32768


@pytest.mark.parametrize("name", sorted(AST_RUNS))
def test_ast_run_against_baseline(name, baseline):
    run = _load(name)
    assert run["baseline"] == {"run": "mlp-baseline"}
    assert run["method"]["name"] == "Adaptive Sparse Training" and run["method"]["data_selection"] is True
    params = run["method"]["params"]
    assert params["target_activation"] == AST_RUNS[name]
    assert {"kp", "ki", "ema_alpha"} <= set(params)
    # the accuracy delta, from the files, is the one the README states
    mine = statistics.fmean(r["final"]["val_top1"] for r in run["results"])
    theirs = statistics.fmean(r["final"]["val_top1"] for r in baseline["results"])
    delta = mine - theirs
    assert -0.5 < delta < 0.05
    readme = (DIGITS / name / "README.md").read_text(encoding="utf-8")
    assert f"(**{delta:+.4f}**)" in readme
    assert f"{mine:.4f} ± {statistics.stdev(r['final']['val_top1'] for r in run['results']):.4f}" in readme
    # the activation trace: every seed, both controller signals, at most 400 points, near the target at the end
    for r in run["results"]:
        trace = r["trace"]
        assert set(trace) == {"activation_rate", "threshold"}
        rate = trace["activation_rate"]
        assert 100 <= len(rate) <= 400 and len(trace["threshold"]) == len(rate)
        assert all(0.0 <= v <= 1.0 for v in rate + trace["threshold"])
        second_half = statistics.fmean(rate[len(rate) // 2:])
        assert abs(second_half - params["target_activation"]) < 0.2 * params["target_activation"]


def test_ast_runs_form_one_experiment():
    experiments = {name: _load(name)["experiment"] for name in AST_RUNS}
    assert {e["id"] for e in experiments.values()} == {"ast-activation-sweep"}
    assert {e["parameter"] for e in experiments.values()} == {"target_activation"}
    assert {name: e["value"] for name, e in experiments.items()} == AST_RUNS


def test_ast_runs_validate():
    report = Checker().check_paths([DIGITS / name for name in AST_RUNS])
    assert len(report.runs) == len(AST_RUNS)
    for result in report.runs:
        assert result.valid, [p.line() for p in result.problems]


def test_ast_run_scripts_differ_only_in_target():
    scripts = {name: (DIGITS / name / "run.py").read_text(encoding="utf-8").splitlines() for name in AST_RUNS}
    reference = scripts["ast-10pct"]
    for name, lines in scripts.items():
        assert len(lines) == len(reference)
        differing = [(a, b) for a, b in zip(lines, reference) if a != b]
        assert all(a.startswith("TARGET = ") for a, _ in differing), (name, differing)
