"""The bundled runs come from code that ran: rerun their scripts and compare with what is committed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from speedrun.cli import cli

ROOT = Path(__file__).resolve().parents[1]
TRACK = ROOT / "runs" / "digits-classification"


def test_digits_baseline_rerun_matches_committed_claim(tmp_path, monkeypatch):
    track = tmp_path / "runs" / "digits-classification"
    shutil.copytree(TRACK, track)
    run_dir = track / "mlp-baseline"
    (run_dir / "speedrun_analysis.json").unlink()
    shutil.rmtree(run_dir / "logs")

    proc = subprocess.run([sys.executable, "run.py"], cwd=run_dir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "runs/digits-classification/mlp-baseline"])
    assert result.exit_code == 0, result.output

    fresh = json.loads((run_dir / "speedrun_analysis.json").read_text())
    committed = json.loads((TRACK / "mlp-baseline" / "speedrun_analysis.json").read_text())
    assert fresh["seeds"] == committed["seeds"]
    assert fresh["compute"]["samples_seen"] == committed["compute"]["samples_seen"]
    tolerance = 0.03  # the track's tolerance.metric_abs; CPU kernels may differ across machines
    for a, b in zip(fresh["results"], committed["results"]):
        assert [p["samples"] for p in a["curve"]] == [p["samples"] for p in b["curve"]]
        for metric, value in b["final"].items():
            assert abs(a["final"][metric] - value) <= tolerance, (metric, a["final"][metric], value)

    log = (run_dir / "logs" / "seed0.log").read_text()
    assert "torch " in log and "==== run.py ====" in log  # a log carries versions and the script itself
