"""Acceptance tests: every fixture run under tests/fixtures/runs/ is judged as its folder says.

valid/<case>/    must check valid with no errors (and no warnings);
invalid/<case>/  must report the rule (and JSON path) named in its expect.yaml, and only that rule.

Rules that need a whole runs/ tree (track files, symlinks, folders inside tracks) are exercised on temporary trees
below, so that together the two cover every rule id in `validator.rules.CATALOG`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import FIXTURE_TRACKS, INVALID_DIR, VALID_DIR, case_dirs, expectation
from speedrun.cli import cli
import validator.checker as checker_mod
from validator import loader
from validator.checker import Checker
from validator.rules import CATALOG

VALID_CASES = case_dirs(VALID_DIR)
INVALID_CASES = case_dirs(INVALID_DIR)


def _checker() -> Checker:
    return Checker(tracks_root=FIXTURE_TRACKS)


def _summary(problems) -> list[str]:
    return [f"{p.severity} {p.rule} {p.path}: {p.message}" for p in problems]


# ------------------------------------------------------------------------------------------------------ fixtures


def test_fixture_tree_is_big_enough():
    assert len(VALID_CASES) >= 4
    assert len(INVALID_CASES) >= 25
    rules = {expectation(c)["rule"] for c in INVALID_CASES}
    assert len(rules) >= 25, sorted(rules)


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda p: p.name)
def test_expectation_file_is_well_formed(case: Path):
    expect = expectation(case)
    assert set(expect) <= {"rule", "path", "why"}
    assert expect["rule"] in CATALOG, f"{case.name}: expect.yaml names unknown rule {expect['rule']!r}"
    assert isinstance(expect.get("why"), str) and expect["why"].strip() and "\n" not in expect["why"].strip()


@pytest.mark.parametrize("case", VALID_CASES, ids=lambda p: p.name)
def test_valid_case_is_valid(case: Path):
    result = _checker().check_run(case)
    assert result.errors == [], _summary(result.errors)
    assert result.warnings == [], _summary(result.warnings)
    assert result.valid
    assert result.analysis is not None and result.track is not None
    assert result.analysis.name == case.name
    assert result.track_id == result.analysis.track == result.track.id


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda p: p.name)
def test_invalid_case_reports_its_rule(case: Path):
    expect = expectation(case)
    result = _checker().check_run(case)
    assert not result.valid
    rules = [p.rule for p in result.errors]
    assert expect["rule"] in rules, _summary(result.problems)
    if "path" in expect:
        paths = [p.path for p in result.errors if p.rule == expect["rule"]]
        assert expect["path"] in paths, _summary(result.problems)
    for p in result.problems:
        assert p.rule in CATALOG, f"{case.name}: rule {p.rule!r} is not in the catalog"
        assert p.message and p.path.startswith("$")


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda p: p.name)
def test_invalid_case_trips_only_its_rule(case: Path):
    """A fixture that breaks several rules at once would hide a regression in any of them."""
    result = _checker().check_run(case)
    assert {p.rule for p in result.errors} == {expectation(case)["rule"]}, _summary(result.problems)


def test_cli_reports_every_invalid_case(at_repo_root):
    rel = [os.path.relpath(c, at_repo_root) for c in INVALID_CASES]
    res = CliRunner().invoke(cli, ["validate", "--no-flops", "--tracks", "tests/fixtures/runs/tracks", "--format", "json", *rel])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    payload = json.loads(res.stdout)
    assert payload["valid"] is False
    by_path = {r["path"]: r for r in payload["runs"]}
    assert sorted(by_path) == sorted(rel), "every case is checked, even after others failed"
    for case, path in zip(INVALID_CASES, rel):
        run = by_path[path]
        assert run["valid"] is False
        assert expectation(case)["rule"] in {e["rule"] for e in run["errors"]}, (case.name, run["errors"])


def test_cli_text_reports_every_invalid_case(at_repo_root):
    rel = [os.path.relpath(c, at_repo_root) for c in INVALID_CASES]
    res = CliRunner().invoke(cli, ["validate", "--no-flops", "--tracks", "tests/fixtures/runs/tracks", *rel])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    for case, path in zip(INVALID_CASES, rel):
        assert f"{path} (" in res.stdout
        assert f"[{expectation(case)['rule']}]" in res.stdout
    assert f"{len(rel)} run(s) checked: 0 valid, {len(rel)} invalid" in res.stdout


def test_cli_valid_cases_exit_0(at_repo_root):
    rel = [os.path.relpath(c, at_repo_root) for c in VALID_CASES]
    res = CliRunner().invoke(cli, ["validate", "--no-flops", "--tracks", "tests/fixtures/runs/tracks", *rel])
    assert res.exit_code == 0, res.output
    assert f"{len(rel)} run(s) checked: {len(rel)} valid, 0 invalid" in res.stdout


def test_cli_mixed_valid_and_invalid_exits_1(at_repo_root):
    paths = ["tests/fixtures/runs/valid/plain", "tests/fixtures/runs/invalid/final-mismatch"]
    res = CliRunner().invoke(cli, ["validate", "--no-flops", "--tracks", "tests/fixtures/runs/tracks", "--format", "json", *paths])
    assert res.exit_code == 1
    valid = {r["path"]: r["valid"] for r in json.loads(res.stdout)["runs"]}
    assert valid == {paths[0]: True, paths[1]: False}


def test_fixture_tracks_are_valid():
    report = Checker().check_paths([FIXTURE_TRACKS / t for t in ("digits-mini", "digits-settings", "digits-flops",
                                                                 "digits-cited")])
    assert [t.track_id for t in report.tracks] == ["digits-mini", "digits-settings", "digits-flops", "digits-cited"]
    for t in report.tracks:
        assert t.valid, _summary(t.problems)
    assert report.runs == []


# ------------------------------------------------------------------------------ rules that need a runs/ tree

def _tree(tmp_path: Path, *runs: str, track: str = "digits-mini") -> Path:
    """tmp/runs/<track>/track.yaml plus copies of valid fixture runs inside the track folder."""
    root = tmp_path / "runs"
    shutil.copytree(FIXTURE_TRACKS / track, root / track)
    for name in runs:
        shutil.copytree(VALID_DIR / name, root / track / name)
    return root


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _edit_yaml(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _rules(problems) -> set[str]:
    return {p.rule for p in problems}


def scenario_track_id_mismatch(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    (root / "digits-mini").rename(root / "digits-renamed")
    report = Checker().check_paths([root])
    (track,) = report.tracks
    assert [(p.rule, p.path) for p in track.errors] == [("track-id-mismatch", "$.id")]
    return track.problems


def scenario_missing_track_file(tmp_path, monkeypatch):
    root = _tree(tmp_path, "plain")
    shutil.copytree(VALID_DIR / "plain", root / "orphan-track" / "plain")
    report = Checker().check_paths([root])
    orphan = next(t for t in report.tracks if t.track_id == "orphan-track")
    assert not report.valid and not orphan.valid
    assert [r.valid for r in report.runs] == [True], "runs of good tracks are still judged"
    return orphan.problems


def scenario_track_mismatch(tmp_path, monkeypatch):
    root = _tree(tmp_path, "plain")
    _edit_json(root / "digits-mini" / "plain" / "speedrun_analysis.json", track="digits-flops")
    (run,) = Checker().check_paths([root]).runs
    assert [(p.rule, p.path) for p in run.errors] == [("track-mismatch", "$.track")]
    return run.problems


def scenario_track_invalid(tmp_path, monkeypatch):
    root = _tree(tmp_path, "plain")
    _edit_yaml(root / "digits-mini" / "track.yaml", primary_metric="val_top5")
    report = Checker().check_paths([root])
    (track,) = report.tracks
    (run,) = report.runs
    assert [p.rule for p in track.errors] == ["invalid-model"]
    assert "val_top5" in track.errors[0].message
    assert [(p.rule, p.path) for p in run.errors] == [("track-invalid", "$.track")]
    return track.problems + run.problems


def scenario_symlink_escape(tmp_path, monkeypatch):
    root = _tree(tmp_path, "plain")
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the run\n", encoding="utf-8")
    run_dir = root / "digits-mini" / "plain"
    try:
        (run_dir / "logs" / "leak.log").symlink_to(outside)
    except OSError:
        pytest.skip("symlinks are not supported here")
    result = Checker().check_run(run_dir)
    assert [(p.rule, p.path) for p in result.errors] == [("path-escape", "$files['logs/leak.log']")]
    return result.problems


def scenario_file_too_large(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_DOCUMENT_BYTES", 100)
    result = _checker().check_run(VALID_DIR / "plain")
    assert [(p.rule, p.path) for p in result.errors] == [("file-too-large", "$")]
    return result.problems


def scenario_unreadable(tmp_path, monkeypatch):
    run_dir = tmp_path / "looped-run"
    run_dir.mkdir()
    os.symlink("speedrun_analysis.json", run_dir / "speedrun_analysis.json")  # a link to itself: ELOOP
    result = _checker().check_run(run_dir)
    assert [(p.rule, p.path) for p in result.errors] == [("unreadable", "$")]
    return result.problems


def scenario_missing_setting(tmp_path, monkeypatch):
    run_dir = tmp_path / "settings-all"
    shutil.copytree(VALID_DIR / "settings-all", run_dir)
    path = run_dir / "speedrun_analysis.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["results"] = [r for r in data["results"] if not (r["seed"] == 1 and r["setting"] == "large")]
    path.write_text(json.dumps(data), encoding="utf-8")
    result = _checker().check_run(run_dir)
    assert result.valid, "a missing setting is listed, not rejected"
    assert [(p.rule, p.path, p.severity) for p in result.problems] == [("missing-setting", "$.results", "warning")]
    return result.problems


SCENARIOS = {
    "track-id-mismatch": scenario_track_id_mismatch,
    "missing-track-file": scenario_missing_track_file,
    "track-mismatch": scenario_track_mismatch,
    "track-invalid": scenario_track_invalid,
    "invalid-model": scenario_track_invalid,
    "path-escape": scenario_symlink_escape,
    "file-too-large": scenario_file_too_large,
    "unreadable": scenario_unreadable,
    "missing-setting": scenario_missing_setting,
}


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_tree_scenario(rule, tmp_path, monkeypatch):
    problems = SCENARIOS[rule](tmp_path, monkeypatch)
    assert rule in _rules(problems)
    assert _rules(problems) <= set(CATALOG)


def _is_compute_rule(rule: str) -> bool:
    """Rules of compute accounting (validator/compute/), judged by recounting FLOPs in a sandbox, and of the track's
    environment, judged while installing it or in the sandbox; tested there (test_compute.py, test_environments.py,
    test_jax.py for the jax- rules of XLA's count, test_model_config.py for a config the validator will not build)."""
    return rule.startswith(("flops-", "sandbox-", "env-", "jax-")) or rule in ("parameters-mismatch",
                                                                               "model-config-invalid")


# changes-missing and placeholder-text are judged by `speedrun validate` (a pull request's new run; what `speedrun new`
# left), not by the checker alone that these fixtures go through.
POLICY_PREFIXES = ("pr-", "frozen-", "zip-", "rate-limit", "changes-missing", "placeholder-text")


def test_every_catalog_rule_is_exercised():
    covered = {expectation(c)["rule"] for c in INVALID_CASES} | set(SCENARIOS)
    # Rules about a pull request, frozen code or ZIPs need git histories and archives: tests/test_policy.py and
    # tests/test_zipimport.py play them.
    policy_tests = "".join((Path(__file__).parent / name).read_text(encoding="utf-8")
                           for name in ("test_policy.py", "test_zipimport.py"))
    # Files that are links, FIFOs, bombs or too deep need a file system more than a fixture folder can hold.
    hostile = "".join((Path(__file__).parent / name).read_text(encoding="utf-8")
                      for name in ("test_hostile_files.py", "test_build_isolation.py"))
    covered |= {rule for rule in CATALOG if f'"{rule}"' in hostile}
    for rule in CATALOG:
        if rule.startswith(POLICY_PREFIXES):
            assert f'"{rule}"' in policy_tests or f"'{rule}'" in policy_tests, f"{rule} is not played in a policy test"
            covered.add(rule)
    assert sorted(r for r in set(CATALOG) - covered if not _is_compute_rule(r)) == []


def test_valid_cases_pass_the_flops_recount():
    """The fixtures' run.py really builds the model the analyses describe, so the sandboxed recount agrees."""
    checker = Checker(tracks_root=FIXTURE_TRACKS, flops=True)
    for name in ("plain", "flops-claim"):
        result = checker.check_run(VALID_DIR / name)
        assert result.valid and result.problems == [], (name, _summary(result.problems))
        assert result.compute["verdict"] == "pass"
        assert result.compute["parameters"] == result.analysis.model.parameters
    assert result.compute["claim_ratio"] == pytest.approx(1.0)


def test_flops_track_without_entrypoint(tmp_path):
    run_dir = tmp_path / "flops-claim"
    shutil.copytree(VALID_DIR / "flops-claim", run_dir)
    path = run_dir / "speedrun_analysis.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["model"]["entrypoint"]
    path.write_text(json.dumps(data), encoding="utf-8")
    assert _checker().check_run(run_dir).valid, "without the recount, an entrypoint is not needed"
    result = Checker(tracks_root=FIXTURE_TRACKS, flops=True).check_run(run_dir)
    assert [(p.rule, p.path) for p in result.errors] == [("flops-no-entrypoint", "$.model.entrypoint")]


def test_runs_inside_their_track_with_a_baseline(tmp_path):
    """The ordinary layout: runs/<track>/<run>/, discovered from runs/, with one run naming another as baseline."""
    root = _tree(tmp_path, "plain", "data-selection")
    _edit_json(root / "digits-mini" / "data-selection" / "speedrun_analysis.json", baseline={"run": "plain"})
    report = Checker().check_paths([root])
    assert [t.track_id for t in report.tracks] == ["digits-mini"]
    assert [(r.name, r.valid) for r in report.runs] == [("data-selection", True), ("plain", True)]
    assert report.valid


def test_track_file_is_checked_once(tmp_path, monkeypatch):
    root = _tree(tmp_path, "plain", "data-selection", "yaml-analysis")
    calls = []
    original = checker_mod.load_validated

    def counting(path, name, problems):
        calls.append((path.name, name))
        return original(path, name, problems)

    monkeypatch.setattr(checker_mod, "load_validated", counting)
    Checker().check_paths([root])
    assert calls.count(("track.yaml", "track")) == 1
