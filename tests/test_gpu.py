"""GPU reproduction; skipped on machines without CUDA (CI has none; the lent GPU machine runs it)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from speedrun.cli import cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_digits_baseline_reproduces_on_cuda(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "runs" / "digits-classification", tmp_path / "runs" / "digits-classification",
                    ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["reproduce", "runs/digits-classification/mlp-baseline", "--device", "cuda",
                                      "--seeds", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "reproduced" and "NVIDIA" in report["hardware"]
