"""The `speedrun` command line, driven through click's CliRunner with the working directory at the repo root."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import INVALID_DIR, REPO
from speedrun.cli import cli
from validator.reporter import COMMENT_MARKER
from validator.schemas import generated_files

TRACKS = "tests/fixtures/runs/tracks"
INVALID = "tests/fixtures/runs/invalid"


@pytest.fixture(autouse=True)
def _at_repo_root(at_repo_root):
    """Every CLI test runs from the repo root: `validate` with no paths means runs/."""


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("SPEEDRUN_DEBUG", raising=False)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


# -------------------------------------------------------------------------------------------------------- validate


def test_validate_bundled_runs():
    result = invoke("validate", "--no-flops", "runs/")
    assert result.exit_code == 0, result.output
    assert "runs/digits-classification/mlp-baseline (digits-classification): valid" in result.stdout
    assert " 0 invalid" in result.stdout


def _all_valid(stdout: str) -> bool:
    """The summary line says every checked run is valid (the bundled tracks gain runs over time)."""
    import re

    m = re.search(r"(\d+) run\(s\) checked: (\d+) valid, 0 invalid", stdout)
    return bool(m) and m.group(1) == m.group(2) and int(m.group(1)) >= 1


def test_validate_recounts_flops_by_default():
    result = invoke("validate", "runs/digits-classification/mlp-baseline")
    assert result.exit_code == 0, result.output
    assert "compute: pass" in result.stdout, "the default recounts FLOPs in the sandbox"
    assert "1 run(s) checked: 1 valid, 0 invalid" in result.stdout


def test_validate_defaults_to_runs():
    result = invoke("validate", "--no-flops")
    assert result.exit_code == 0, result.output
    assert "mlp-baseline" in result.stdout


@pytest.mark.parametrize(
    "target",
    ["runs/digits-classification", "runs/digits-classification/mlp-baseline",
     "runs/digits-classification/mlp-baseline/speedrun_analysis.json", "runs/digits-classification/track.yaml"],
)
def test_validate_accepts_every_kind_of_path(target):
    result = invoke("validate", "--no-flops", target)
    assert result.exit_code == 0, result.output
    assert _all_valid(result.stdout), result.stdout
    assert "runs/digits-classification/mlp-baseline (digits-classification): valid" in result.stdout


def test_json_format_shape():
    result = invoke("validate", "--no-flops", "--format", "json", "--tracks", TRACKS,
                    "runs/digits-classification/mlp-baseline", f"{INVALID}/final-mismatch")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert isinstance(payload["runs"], list) and len(payload["runs"]) == 2
    for run in payload["runs"]:
        assert {"path", "track", "valid", "errors", "warnings"} <= set(run)
        assert isinstance(run["valid"], bool)
        for problem in run["errors"] + run["warnings"]:
            assert {"rule", "path", "message"} <= set(problem)
            assert all(isinstance(problem[k], str) for k in ("rule", "path", "message"))
    by_path = {r["path"]: r for r in payload["runs"]}
    good = by_path["runs/digits-classification/mlp-baseline"]
    assert good == {**good, "track": "digits-classification", "valid": True, "errors": [], "warnings": []}
    bad = by_path[f"{INVALID}/final-mismatch"]
    assert bad["track"] == "digits-mini" and bad["valid"] is False
    assert [(e["rule"], e["path"]) for e in bad["errors"]] == [("final-mismatch", "$.results[0].final.val_top1")]


def test_json_format_valid_tree():
    payload = json.loads(invoke("validate", "--no-flops", "--format", "json").stdout)
    assert payload["valid"] is True
    assert all(r["valid"] for r in payload["runs"]) and payload["runs"]


def test_markdown_format():
    result = invoke("validate", "--no-flops", "--format", "markdown", "--tracks", TRACKS, "runs/digits-classification",
                    f"{INVALID}/dataset-mismatch")
    assert result.exit_code == 1
    assert result.stdout.startswith(COMMENT_MARKER)
    assert "<!-- speedrun-report -->" in result.stdout
    assert "`dataset-mismatch`" in result.stdout
    assert "❌" in result.stdout


def test_markdown_format_valid():
    result = invoke("validate", "--no-flops", "--format", "markdown", "runs/")
    assert result.exit_code == 0
    assert COMMENT_MARKER in result.stdout
    assert "All submissions are valid" in result.stdout
    assert "digits-classification rules v1.0" in result.stdout


def _fake_account(run_dir, run, track, problems, limits=None, fvcore=True, cache_dir=None, **_more):
    """What compute accounting returns, without the sandbox: the test is about who vouches for the count."""
    total = float(run.compute.flops.claimed) if run.compute.flops else 1e12
    return {"per_sample_forward_flops": 1.0, "per_sample_training_flops": 3.0, "total_training_flops": total,
            "claimed_flops": total, "claim_ratio": 1.0, "verdict": "pass", "by_module": {}, "device": "meta",
            "notes": [], "evaluation_flops": 0.0, "samples_seen": run.compute.samples_seen,
            "forward_only_samples": 0, "counters": {}, "parameters": run.model.parameters,
            "source": "config" if run.model.entrypoint is None and run.model.config is not None else "entrypoint"}


def test_report_says_who_counted_the_flops(monkeypatch):
    """A count from a submitted entrypoint is unverified; one trusted code made from a run's model.config (a Marin
    run's Llama-equivalent config) is marked as counted from the config."""
    import validator.checker

    monkeypatch.setattr(validator.checker, "account", _fake_account)
    runs = ["runs/digits-classification/mlp-baseline", "runs/marin-tiny/llama_75m"]
    text = invoke("validate", *runs).stdout
    entrypoint = ("FLOPs counted from the submitted entrypoint: unverified until a maintainers' reproduction "
                  "confirms it")
    config = "FLOPs counted by trusted code from the model config"
    digits, marin = text.split("runs/marin-tiny/llama_75m (")
    assert entrypoint in digits and config not in digits
    assert config in marin and entrypoint not in marin
    payload = json.loads(invoke("validate", "--format", "json", *runs).stdout)
    assert [r["compute"].get("source") for r in payload["runs"]] == ["entrypoint", "config"]
    markdown = invoke("validate", "--format", "markdown", *runs).stdout
    assert markdown.count(entrypoint + ".") == 1 and markdown.count(config + ".") == 1


def test_an_invalid_run_never_shows_a_passing_verdict_above_its_errors():
    """The recount passes (FLOPs within the claim and the budget) but the run is invalid: the report says invalid
    first, then the errors, and the recount's verdict is labelled as the compute's, never a bare `verdict: pass`."""
    result = invoke("validate", "--tracks", TRACKS, f"{INVALID}/final-mismatch")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{INVALID}/final-mismatch (digits-mini): invalid")
    assert not any(line.strip().startswith("verdict:") for line in lines), result.stdout
    first_error = next(i for i, line in enumerate(lines) if line.strip().startswith("error:"))
    compute = next(i for i, line in enumerate(lines) if line.strip() == "compute: pass")
    assert first_error < compute
    markdown = invoke("validate", "--format", "markdown", "--tracks", TRACKS, f"{INVALID}/final-mismatch").stdout
    assert "Verdict: **pass**" not in markdown and "Compute: **pass**" in markdown


def test_text_report_shows_where_a_valid_run_would_stand():
    text = invoke("validate", "--no-flops", "runs/digits-classification/ast-5pct").stdout
    assert "ranking: samples to Top-1 accuracy (val) ≥ 0.95: not reached; Top-1 accuracy (val): 0.7781 ± 0.017" in text
    assert "current record mlp-baseline (11,421 ± 120 samples): does not beat it" in text
    assert "would not be ranked on digits-classification" in text
    assert "record claim (one-sided-t, final Top-1 accuracy (val) against the threshold 0.95, α = 0.05): p = " in text
    baseline = invoke("validate", "--no-flops", "--format", "json", "runs/digits-classification/mlp-baseline").stdout
    (run,) = json.loads(baseline)["runs"]
    assert run["standing"]["rank"] == 1 and run["standing"]["figures"][0]["label"] == (
        "samples to Top-1 accuracy (val) ≥ 0.95")
    assert round(run["standing"]["figures"][0]["mean"]) == 11421


def test_github_format():
    case = f"{INVALID}/samples-inconsistent"
    result = invoke("validate", "--no-flops", "--format", "github", "--tracks", TRACKS, case)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    annotations, summary = lines[:-1], lines[-1]
    assert annotations, result.stdout
    for line in annotations:
        assert line.startswith("::error file="), line
    assert f"::error file={case}/speedrun_analysis.json,title=samples-inconsistent::" in result.stdout
    assert summary == "1 run(s) checked: 0 valid, 1 invalid"


def test_github_format_escapes_newlines_and_commas():
    """Each annotation stays on one line whatever the message holds."""
    result = invoke("validate", "--no-flops", "--format", "github", "--tracks", TRACKS, f"{INVALID}/parse-error-json",
                    f"{INVALID}/unknown-setting")
    lines = result.stdout.splitlines()
    assert sum(line.startswith("::error ") for line in lines) == len(lines) - 1


def test_invalid_exits_1_and_reports_all():
    cases = sorted(str(p.relative_to(REPO)) for p in INVALID_DIR.iterdir() if p.is_dir())
    result = invoke("validate", "--no-flops", "--tracks", TRACKS, *cases)
    assert result.exit_code == 1
    for case in cases:
        assert f"{case} (" in result.stdout
    assert f"{len(cases)} run(s) checked: 0 valid, {len(cases)} invalid" in result.stdout


def test_missing_analysis_is_reported_not_crashed():
    result = invoke("validate", "--no-flops", "--tracks", TRACKS, f"{INVALID}/missing-analysis")
    assert result.exit_code == 1
    assert "[missing-analysis]" in result.stdout


def test_binary_analysis_is_reported_not_crashed():
    result = invoke("validate", "--no-flops", "--format", "json", "--tracks", TRACKS, f"{INVALID}/not-text")
    assert result.exit_code == 1
    (run,) = json.loads(result.stdout)["runs"]
    assert [e["rule"] for e in run["errors"]] == ["not-text"]


def test_nonexistent_path_exits_2():
    result = invoke("validate", "runs/no-such-track/no-such-run")
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, result.stderr
    assert err[0].startswith("error: ") and "no-such-run" in err[0]


def test_unrelated_file_exits_2():
    result = invoke("validate", "pyproject.toml")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


def test_unknown_format_is_a_usage_error():
    result = invoke("validate", "--format", "xml", "runs/")
    assert result.exit_code == 2


def test_nonexistent_tracks_root_is_a_usage_error():
    result = invoke("validate", "--tracks", "no/such/folder", "runs/")
    assert result.exit_code == 2


def test_output_file(tmp_path):
    out = tmp_path / "report.md"
    result = invoke("validate", "--no-flops", "--format", "markdown", "--output", str(out), "runs/")
    assert result.exit_code == 0
    assert out.read_text(encoding="utf-8") == result.stdout


def test_github_step_summary(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = invoke("validate", "--no-flops", "--format", "github", "--tracks", TRACKS, f"{INVALID}/over-budget")
    assert result.exit_code == 1
    text = summary.read_text(encoding="utf-8")
    assert text.startswith(COMMENT_MARKER) and "`over-budget`" in text


def test_internal_error_is_one_line(monkeypatch):
    from validator import checker

    def boom(self, paths):
        raise RuntimeError("something broke")

    monkeypatch.setattr(checker.Checker, "check_paths", boom)
    result = invoke("validate", "runs/")
    assert result.exit_code == 2
    assert result.stderr.strip() == "internal error: RuntimeError: something broke (set SPEEDRUN_DEBUG=1 for details)"


def test_serve_recounts_flops_by_default_like_build():
    for command in ("build", "serve"):
        flops = next(p for p in cli.commands[command].params if p.name == "flops")
        assert flops.default is True, command
        cache = next(p for p in cli.commands[command].params if p.name == "cache_dir")
        assert cache.default == ".speedrun-cache", command
    shown = invoke("serve", "--help").stdout
    assert "--flops / --no-flops" in shown and "[default: flops]" in shown
    assert "Recount FLOPs" in shown and "cached" in shown


def test_version_and_help():
    assert invoke("--version").exit_code == 0
    result = invoke("--help")
    assert result.exit_code == 0 and "validate" in result.stdout and "schemas" in result.stdout


# --------------------------------------------------------------------------------------------------------- schemas


def test_schemas_check_on_repo():
    result = invoke("schemas", "--check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


def _copy_generated(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "schemas", root / "schemas")
    shutil.copytree(REPO / "docs", root / "docs")  # docs/reference/ and any other generated page
    return root


def test_schemas_check_detects_drift(tmp_path):
    root = _copy_generated(tmp_path)
    assert invoke("schemas", "--check", "--root", str(root)).exit_code == 0

    schema = root / "schemas" / "run.schema.json"
    data = json.loads(schema.read_text(encoding="utf-8"))
    data["title"] = "Edited by hand"
    schema.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    result = invoke("schemas", "--check", "--root", str(root))
    assert result.exit_code == 1
    assert "schemas/run.schema.json: out of date" in result.stderr
    assert "track.schema.json" not in result.stderr


def test_schemas_check_detects_missing_and_edited_docs(tmp_path):
    root = _copy_generated(tmp_path)
    (root / "docs" / "reference" / "track.md").unlink()
    with (root / "docs" / "reference" / "run.md").open("a", encoding="utf-8") as fh:
        fh.write("\nA hand-written note.\n")
    result = invoke("schemas", "--check", "--root", str(root))
    assert result.exit_code == 1
    assert "docs/reference/track.md" in result.stderr and "docs/reference/run.md" in result.stderr


def test_schemas_write_repairs_drift(tmp_path):
    root = _copy_generated(tmp_path)
    (root / "schemas" / "track.schema.json").write_text("{}\n", encoding="utf-8")
    result = invoke("schemas", "--root", str(root))
    assert result.exit_code == 0
    assert result.stdout.strip() == "wrote schemas/track.schema.json"
    assert invoke("schemas", "--check", "--root", str(root)).exit_code == 0
    assert (root / "schemas" / "track.schema.json").read_bytes() == (REPO / "schemas" / "track.schema.json").read_bytes()


def test_schemas_write_into_empty_root(tmp_path):
    result = invoke("schemas", "--root", str(tmp_path / "fresh"))
    assert result.exit_code == 0
    from leaderboard.exports import LeaderboardExport

    expected = generated_files({"leaderboard": LeaderboardExport})
    assert "schemas/leaderboard.schema.json" in expected
    assert sorted(result.stdout.strip().splitlines()) == sorted(f"wrote {rel}" for rel in expected)
    assert invoke("schemas", "--check", "--root", str(tmp_path / "fresh")).exit_code == 0


def test_markdown_embeds_a_png_of_the_curves(tmp_path):
    out = tmp_path / "pngs"
    result = invoke("validate", "runs/digits-classification/mlp-baseline", "--no-flops", "--format", "markdown",
                    "--png-dir", str(out), "--png-url", "https://example.org/pr-42")
    assert result.exit_code == 0, result.output
    png = out / "digits-classification--mlp-baseline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "![curves of mlp-baseline](https://example.org/pr-42/digits-classification--mlp-baseline.png)" in result.stdout
