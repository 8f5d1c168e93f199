"""Issue 11, claims tied to logs: every metric value an analysis claims must be what the run's logs recorded.

The attack: raise every curve point and every final value of a bundled run by 0.025, consistently, in its analysis
only. It used to pass `speedrun validate` (no rule compared values with the logs) and `speedrun reproduce` (0.025 is
inside the track's 0.03 tolerance). Now `validate` fails it with `metric-log-mismatch` and `reproduce` refuses it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from speedrun.cli import cli
from validator.checker import Checker
from validator.logclaims import agrees, statements

RUNS = REPO / "runs"
BASELINE = "digits-classification/mlp-baseline"
LOGGED_RUNS = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in RUNS.glob("*/*/speedrun_analysis.json")
                     if json.loads(p.read_text(encoding="utf-8"))["files"].get("logs"))
LOG_RULES = {"metric-log-mismatch", "metric-not-in-log"}


def _copy(tmp_path: Path, run: str) -> Path:
    """runs/<track>/<run> and its track's own files (track.yaml, a frozen reference), without the other runs."""
    track, name = run.split("/")
    src = RUNS / track
    others = {p.name for p in src.iterdir() if (p / "speedrun_analysis.json").is_file() and p.name != name}
    shutil.copytree(src, tmp_path / "runs" / track,
                    ignore=lambda d, names: [n for n in names if (Path(d) == src and n in others)
                                             or n in ("__pycache__", "reproductions")])
    return tmp_path / "runs" / track / name


def _edit(run_dir: Path, fn) -> None:
    path = run_dir / "speedrun_analysis.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _raise_everything(data: dict, by: float = 0.025) -> None:
    for result in data["results"]:
        for point in result.get("curve", []):
            for key in point:
                if key != "samples":
                    point[key] = round(point[key] + by, 6)
        for key in result["final"]:
            result["final"][key] = round(result["final"][key] + by, 6)


def _validate(tmp_path: Path, run_dir: Path, monkeypatch) -> tuple[int, dict]:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["validate", "--no-flops", "--format", "json", str(run_dir.relative_to(tmp_path))])
    assert "Traceback" not in res.output, res.output
    (run,) = json.loads(res.stdout)["runs"]
    return res.exit_code, run


def _claimed_paths(data: dict) -> set[str]:
    out = set()
    for i, result in enumerate(data["results"]):
        out |= {f"$.results[{i}].curve[{j}].{k}" for j, pt in enumerate(result.get("curve", []))
                for k in pt if k != "samples"}
        out |= {f"$.results[{i}].final.{k}" for k in result["final"]}
    return out


# ------------------------------------------------------------------------------------------------------ the attack


def test_values_raised_consistently_fail_validation(tmp_path, monkeypatch):
    run_dir = _copy(tmp_path, BASELINE)
    _edit(run_dir, _raise_everything)
    code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 1 and run["valid"] is False
    errors = [e for e in run["errors"] if e["rule"] == "metric-log-mismatch"]
    assert {e["rule"] for e in run["errors"]} == {"metric-log-mismatch"}, run["errors"]
    first = next(e for e in errors if e["path"] == "$.results[0].curve[0].val_top1")
    assert first["file"].endswith("mlp-baseline/speedrun_analysis.json")
    assert "logs/seed0.log line 3" in first["message"] and "0.2876" in first["message"], first["message"]
    assert "1,024 samples" in first["message"] and first["hint"]
    data = json.loads((run_dir / "speedrun_analysis.json").read_text(encoding="utf-8"))
    assert {e["path"] for e in errors} == _claimed_paths(data), "every raised value is reported, finals too"


@pytest.mark.parametrize("run", LOGGED_RUNS)
def test_every_bundled_run_with_logs_catches_the_attack(run, tmp_path, monkeypatch):
    """Every log format in runs/ (per-seed files, settings x seeds, 4 or 6 printed decimals) ties its values."""
    run_dir = _copy(tmp_path, run)
    _edit(run_dir, _raise_everything)
    code, report = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 1
    data = json.loads((run_dir / "speedrun_analysis.json").read_text(encoding="utf-8"))
    assert {e["path"] for e in report["errors"] if e["rule"] == "metric-log-mismatch"} == _claimed_paths(data)


def test_reproduce_refuses_a_claim_its_logs_contradict(tmp_path, monkeypatch):
    run_dir = _copy(tmp_path, BASELINE)
    _edit(run_dir, _raise_everything)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["reproduce", str(run_dir.relative_to(tmp_path)), "--seeds", "0", "--record"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert "metric-log-mismatch" in res.output and "$.results[0].curve[0].val_top1" in res.output
    assert "is not rerun" in res.output and "verdict" not in res.output and "training" not in res.output
    assert not (run_dir / "reproductions").exists()


# ------------------------------------------------------------------------------------------- what stays valid


def test_bundled_runs_stay_valid_and_every_logged_value_is_found():
    report = Checker().check_paths([RUNS])
    assert report.runs
    for result in report.runs:
        assert not {p.rule for p in result.problems} & LOG_RULES, [p.line() for p in result.problems]
    # not vacuous: each run with logs has a logged line for each value it claims
    from validator.logclaims import find

    for result in report.runs:
        if result.analysis.files.logs:
            texts = [(rel, (result.path / rel).read_text(encoding="utf-8")) for rel in result.analysis.files.logs]
            found = find(result.analysis, result.track, texts)
            assert found and all(s is not None for _claim, s in found), result.display


def test_runs_without_logs_are_not_checked(tmp_path, monkeypatch):
    """Cited and imported results (Marin, MaxCLIP-open) name no logs: nothing to tie them to, no new rule."""
    run_dir = _copy(tmp_path, "marin-tiny/llama_75m")
    _edit(run_dir, _raise_everything)
    _code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert not {e["rule"] for e in run["errors"]} & LOG_RULES


# ------------------------------------------------------------------------------------------- which seed's log


def test_another_seeds_values_do_not_count(tmp_path, monkeypatch):
    """Seed 1's claim carries seed 0's numbers: every one of them is in the logs, but under seed 0."""
    run_dir = _copy(tmp_path, BASELINE)

    def swap(data):
        r0, r1 = data["results"][0], data["results"][1]
        r0["curve"], r1["curve"] = r1["curve"], r0["curve"]
        r0["final"], r1["final"] = r1["final"], r0["final"]

    _edit(run_dir, swap)
    code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 1
    paths = {e["path"] for e in run["errors"] if e["rule"] == "metric-log-mismatch"}
    assert "$.results[0].final.test_top1" in paths and "$.results[1].curve[5].val_top1" in paths
    assert not any(p.startswith("$.results[2]") for p in paths)


def test_a_seeds_lines_in_another_seeds_file_do_not_count(tmp_path, monkeypatch):
    """Right values, right `seed 0` prefix, but in logs/seed1.log: the file's name says whose log it is."""
    run_dir = _copy(tmp_path, BASELINE)
    logs = run_dir / "logs"
    seed0 = logs / "seed0.log"
    moved = [ln for ln in seed0.read_text(encoding="utf-8").splitlines(keepends=True) if ln.startswith("seed 0 ")]
    seed0.write_text("".join(ln for ln in seed0.read_text(encoding="utf-8").splitlines(keepends=True)
                             if ln not in moved), encoding="utf-8")
    (logs / "seed1.log").write_text((logs / "seed1.log").read_text(encoding="utf-8") + "".join(moved),
                                    encoding="utf-8")
    code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 1
    missing = [e for e in run["errors"] if e["rule"] == "metric-not-in-log"]
    assert {e["path"] for e in missing} == {p for p in _claimed_paths(_load(run_dir)) if p.startswith("$.results[0]")}
    assert all("logs/seed1.log" in e["message"] for e in missing), missing[0]["message"]


def _load(run_dir: Path) -> dict:
    return json.loads((run_dir / "speedrun_analysis.json").read_text(encoding="utf-8"))


def test_one_combined_log_with_seed_prefixes_is_enough(tmp_path, monkeypatch):
    run_dir = _copy(tmp_path, BASELINE)
    combined = "".join((run_dir / "logs" / f"seed{s}.log").read_text(encoding="utf-8") for s in (0, 1, 2))
    shutil.rmtree(run_dir / "logs")
    (run_dir / "train.log").write_text(combined, encoding="utf-8")
    _edit(run_dir, lambda d: d["files"].update(logs=["train.log"]))
    code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 0, run["errors"]


# ---------------------------------------------------------------------------------------- a value not logged


def test_a_claimed_value_no_log_states(tmp_path, monkeypatch):
    run_dir = _copy(tmp_path, BASELINE)
    log = run_dir / "logs" / "seed2.log"
    log.write_text(re.sub(r"^seed 2 done in .*\n", "", log.read_text(encoding="utf-8"), flags=re.M), encoding="utf-8")
    code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 1
    (error,) = run["errors"]
    assert (error["rule"], error["path"]) == ("metric-not-in-log", "$.results[2].final.test_top1")
    assert "logs/seed2.log" in error["message"] and "test_top1" in error["hint"]


def test_a_log_that_states_no_metric_at_all(tmp_path, monkeypatch):
    """Logs named but silent about every value: each claimed value is reported, none is taken on trust."""
    run_dir = _copy(tmp_path, BASELINE)
    for s in (0, 1, 2):
        (run_dir / "logs" / f"seed{s}.log").write_text(f"seed {s} trained; samples 32768\n", encoding="utf-8")
    code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 1
    assert {e["rule"] for e in run["errors"]} == {"metric-not-in-log"}
    assert {e["path"] for e in run["errors"]} == _claimed_paths(_load(run_dir))


def test_an_unreadable_log_is_left_to_the_file_rules(tmp_path, monkeypatch):
    run_dir = _copy(tmp_path, BASELINE)
    (run_dir / "logs" / "seed1.log").unlink()
    _code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert [(e["rule"], e["path"]) for e in run["errors"]] == [("file-missing", "$.files.logs[1]")]


# ------------------------------------------------------------------------------------------------- precision


@pytest.mark.parametrize("claimed, printed, ok", [
    (0.287565, "0.2876", True),     # the bundled baseline: 6 digits claimed, 4 printed
    (0.28764, "0.2876", True),
    (0.28755, "0.2876", True),      # half a unit of the last printed digit
    (0.28754, "0.2876", False),
    (0.28766, "0.2876", False),
    (0.28770, "0.2876", False),     # one unit off
    (0.287650, "0.2877", True),     # 0.2876504 rounded twice: to 6 digits, and to 4 in the log
    (0.29, "0.2876", False),        # an analysis rounded coarser than its log gains nothing
    (0.2876, "0.2876", True),
    (0.0, "0", True),
    (0.4, "0", True),
    (0.6, "0", False),
    (0.00123, "1.23e-03", True),
    (0.00124, "1.23e-03", False),
    (0.151972, "0.151972", True),
    (0.151973, "0.151972", False),
    (2.802785, "2.802785", True),
    (-0.5, "-0.5000", True),
    (0.3125, "0.3125", True),
])
def test_match_at_the_printed_precision(claimed, printed, ok):
    assert agrees(claimed, printed) is ok


def test_an_edit_below_the_printed_precision_passes_and_one_above_fails(tmp_path, monkeypatch):
    run_dir = _copy(tmp_path, BASELINE)
    # seed 0's first point is logged as 0.2876 and claimed as 0.287565
    _edit(run_dir, lambda d: d["results"][0]["curve"][0].update(val_top1=0.28764))
    assert _validate(tmp_path, run_dir, monkeypatch)[0] == 0
    _edit(run_dir, lambda d: d["results"][0]["curve"][0].update(val_top1=0.2877))
    code, run = _validate(tmp_path, run_dir, monkeypatch)
    assert code == 1 and [(e["rule"], e["path"]) for e in run["errors"]] == [
        ("metric-log-mismatch", "$.results[0].curve[0].val_top1")]


# ---------------------------------------------------------------------------------------------- the log format


def test_statements_read_the_documented_forms():
    text = "\n".join([
        "python 3.11 torch 2.13 val_top1 0.5",                      # not a seed line: ignored
        "seed 3 step 16 samples 1,024 loss 2.2568 val_top1 0.2876",
        "seed=3 samples=2048 val_top1=0.7098",
        "seed: 3 setting large samples: 4096 val_top1: 0.8886",
        "seed 3 done in 5.07s test_top1 0.9483",
        "    seed 3 samples 1 val_top1 0.1",                        # indented (a script's source): ignored
        "seed 3 best_val_top1 0.99 val_top1_ema 0.98 val_top1 95%",  # other names, a percentage: nothing stated
        "seeds 3 samples 1 val_top1 0.1",
    ])
    found = statements("logs/seed3.log", text, ["val_top1", "test_top1"])
    assert [(s.line, s.seed, s.setting, s.samples, s.values) for s in found] == [
        (2, 3, None, 1024, {"val_top1": "0.2876"}),
        (3, 3, None, 2048, {"val_top1": "0.7098"}),
        (4, 3, "large", 4096, {"val_top1": "0.8886"}),
        (5, 3, None, None, {"test_top1": "0.9483"}),
    ]
