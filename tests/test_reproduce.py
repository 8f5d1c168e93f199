"""`speedrun reproduce` and `speedrun new` on real runs, on the CPU."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from speedrun.cli import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "digits-classification", runs / "digits-classification",
                    ignore=shutil.ignore_patterns("__pycache__", "reproductions", "ast-*"))
    monkeypatch.chdir(tmp_path)
    return runs


def _variant(runs: Path, name: str, patch=None, claim=None, logs=None) -> Path:
    """A copy of the baseline under `name`, still a valid claim (reproduce refuses invalid ones): its script patched,
    its analysis edited by `claim(data)` and each log by `logs(text)`."""
    run = runs / "digits-classification" / name
    shutil.copytree(runs / "digits-classification" / "mlp-baseline", run)
    if patch:
        script = run / "run.py"
        script.write_text(patch(script.read_text()))
    path = run / "speedrun_analysis.json"
    data = json.loads(path.read_text())
    data["name"] = name
    if claim:
        claim(data)
    path.write_text(json.dumps(data, indent=2))
    for log in (run / "logs").glob("*.log") if logs else ():
        log.write_text(logs(log.read_text()))
    return run


def _raise_test_top1(text: str) -> str:
    """The logs of a run that claims test top-1 0.04 higher than it measured: its analysis and logs agree."""
    return re.sub(r"(test_top1 )(\d\.\d+)", lambda m: f"{m[1]}{float(m[2]) + 0.04:.4f}", text)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_reproduces_the_baseline_and_records_it(runs):
    run = runs / "digits-classification" / "mlp-baseline"
    before = _snapshot(run)
    result = CliRunner().invoke(cli, ["reproduce", str(run), "--seeds", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "reproduced" and report["recorded"] is None
    assert {d["metric"] for d in report["deltas"]} == {"val_top1", "test_top1"}
    assert all(abs(d["delta"]) <= report["tolerance"]["metric_abs"] for d in report["deltas"])
    assert _snapshot(run) == before  # nothing written without --record

    workflow = "https://github.com/org/repo/actions/runs/42"
    result = CliRunner().invoke(cli, ["reproduce", str(run), "--seeds", "1", "--record", "--head-sha", "ab" * 20,
                                      "--pr", "7", "--workflow-run", workflow])
    assert result.exit_code == 0, result.output
    recorded = list((run / "reproductions").glob("*.json"))
    assert len(recorded) == 1
    data = json.loads(recorded[0].read_text())
    assert data["verdict"] == "reproduced" and data["device"] == "cpu" and data["versions"]["torch"]
    assert data["hardware"].startswith("CPU")
    # bound to this run and to the exact content of its folder (the record itself excluded), and to where it came from
    from validator.fingerprint import content_sha256

    assert data["run"] == "digits-classification/mlp-baseline"
    assert data["content_sha256"] == content_sha256(run) and len(data["content_sha256"]) == 64
    assert (data["head_sha"], data["pr"], data["workflow_run"]) == ("ab" * 20, 7, workflow)

    from leaderboard.build import build_site

    def status() -> str:
        build_site(runs, runs.parent / "site", charts=False)
        board = json.loads((runs.parent / "site" / "tracks" / "digits-classification.json").read_text())
        return {e["name"]: e["status"] for e in board["entries"]}["mlp-baseline"]

    assert status() == "reproduced"
    (run / "README.md").write_text((run / "README.md").read_text() + "\nchanged after the reproduction\n")
    assert status() == "validated"


@pytest.mark.parametrize("option, value", [("--head-sha", "abc123"), ("--head-sha", "AB" * 20), ("--pr", "0"),
                                           ("--workflow-run", "http://example.org/run"),
                                           ("--workflow-run", "javascript:alert(1)")])
def test_record_provenance_options_are_checked(runs, option, value):
    run = runs / "digits-classification" / "mlp-baseline"
    result = CliRunner().invoke(cli, ["reproduce", str(run), "--record", option, value])
    assert result.exit_code == 2 and option in result.output and "Invalid value" in result.output
    assert not (run / "reproductions").exists()


@pytest.mark.parametrize("name, patch, claim, expected", [
    ("crashes", lambda s: s.replace("    data, checksum = load_split()", "    raise SystemExit(3)"), None,
     "the script failed (exit 3)"),
    ("writes-nothing", lambda s: s.replace("    out.write_text(json.dumps(analysis", "    return\n    out.write_text(json.dumps(analysis"),
     None, "wrote no speedrun_analysis.json"),
    ("hangs", lambda s: s.replace("    data, checksum = load_split()", "    import time; time.sleep(600)"), None,
     "timed out after 4 s"),
    # beyond the 0.03 tolerance, logs edited alike: validation passes it, only the rerun can tell
    ("overclaims", None, lambda d: [r["final"].update(test_top1=round(r["final"]["test_top1"] + 0.04, 6))
                                    for r in d["results"]], "out of tolerance"),
])
def test_failures_give_a_verdict_and_write_nothing(runs, name, patch, claim, expected):
    run = _variant(runs, name, patch, claim, logs=_raise_test_top1 if name == "overclaims" else None)
    before = _snapshot(run)
    result = CliRunner().invoke(cli, ["reproduce", str(run), "--seeds", "0", "--record", "--timeout", "4"
                                      if name == "hangs" else "600"])
    assert result.exit_code == 1, result.output
    assert expected.lower() in result.output.lower()
    assert "verdict: " in result.stdout and "reproduced" not in result.stdout.split("verdict: ")[1].split()[0]
    assert "nothing recorded" in result.stdout
    assert _snapshot(run) == before
    assert "Traceback" not in result.output


def test_missing_seed_and_cited_results_are_refused(runs, tmp_path):
    run = runs / "digits-classification" / "mlp-baseline"
    result = CliRunner().invoke(cli, ["reproduce", str(run), "--seeds", "7"])
    assert result.exit_code == 1 and "seed(s) [7]" in result.output

    empty = tmp_path / "empty-run"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["reproduce", str(empty)])
    assert result.exit_code == 1 and "nothing is claimed" in result.output


def test_new_scaffolds_a_run_that_validates_once_trained(runs):
    result = CliRunner().invoke(cli, ["new", "my-first-run", "--track", "digits-classification",
                                      "--team", "team-zed", "--author", "Zed Example"])
    assert result.exit_code == 0, result.output
    run = runs / "digits-classification" / "my-first-run"
    assert sorted(p.name for p in run.iterdir()) == ["README.md", "run.py"]
    text = (run / "run.py").read_text()
    assert "TEAM = 'team-zed'" in text and "Zed Example" in text
    # The scaffold's placeholders fail validation until filled (tests/test_scaffold.py): fill them as a participant.
    for field in ("description", "changes", "notes"):
        text = re.sub(rf'^(\s*)"{field}": .*', rf'\1"{field}": "My first run: the baseline retrained.",', text, flags=re.M)
    (run / "run.py").write_text(text)

    subprocess.run([sys.executable, "run.py", "--seeds", "0", "1", "2"], cwd=run, check=True, capture_output=True,
                   timeout=300)
    result = CliRunner().invoke(cli, ["validate", str(run), "--no-flops", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads((run / "speedrun_analysis.json").read_text())
    assert data["name"] == "my-first-run" and data["team"] == "team-zed"

    again = CliRunner().invoke(cli, ["new", "my-first-run", "--track", "digits-classification"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(cli, ["new", "Bad Name", "--track", "digits-classification"])
    assert bad.exit_code == 1 and "lowercase" in bad.output


@pytest.mark.parametrize("run", ["digits-reconstruction/autoencoder-baseline", "maxclip/clip-infonce",
                                 "marin-local-tiny/bytegpt-tiny"])
def test_one_run_of_each_track_reproduces_on_cpu(run, tmp_path, monkeypatch):
    track = run.split("/")[0]
    shutil.copytree(ROOT / "runs" / track, tmp_path / "runs" / track,
                    ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["reproduce", f"runs/{run}", "--seeds", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "reproduced" and report["deltas"]
    assert all(d["ok"] for d in report["deltas"])


def test_a_script_may_import_its_own_modules(runs):
    run = _variant(runs, "with-helper-module",
                   patch=lambda s: s.replace("import numpy as np\n", "import numpy as np\nimport helper_constants\n", 1))
    (run / "helper_constants.py").write_text("VALUE = 1\n")
    result = CliRunner().invoke(cli, ["reproduce", str(run), "--seeds", "0"])
    assert result.exit_code == 0, result.output


def test_a_record_is_never_written_through_a_link(tmp_path):
    """The run folder is PR content: a link it planted where the record goes must not redirect the write."""
    from validator.reproduce import Reproduction, _write_record

    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    run = tmp_path / "run"
    (run / "reproductions").mkdir(parents=True)
    (run / "reproductions" / "r.json").symlink_to(outside)
    result = Reproduction("run", "track", "cpu", 1, [], {}, {})
    assert _write_record(run / "reproductions" / "r.json", result)
    assert outside.read_text() == "keep" and not (run / "reproductions" / "r.json").is_symlink()

    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "reproductions").symlink_to(tmp_path)
    assert not _write_record(linked / "reproductions" / "r.json", result)
    assert not (tmp_path / "r.json").exists()
