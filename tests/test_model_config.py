"""Models described by a config (`model.config`), counted by trusted code: `speedrun validate --flops` builds them
with the library the track declares, in the sandbox, in a folder that holds only the config (issue 12, part 2).

Real transformers (installed into the track environment's cache from the package index), real bubblewrap, real
CLI. A copy of the digits track declares transformers; its runs are the digits baseline with `model.config` in place
of the entrypoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from test_compute import TRACK_DIR, _edit_analysis, _rules, _runs, invoke
from validator.compute import bwrap

TRANSFORMERS = "transformers==5.24.0"
# GPT-2 at 2 layers, width 64, 4 heads, 256 byte tokens, 8 tokens a sample. By hand: every Conv1D and the tied
# output layer are matmuls, N = 2 * (64*192 + 64*64 + 2*64*256) + 64*256; PaLM's 6N + 12*L*d*T per token.
TINY = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 256, "n_positions": 128}
SEQ = 8
N_MATMUL = 2 * (64 * 192 + 64 * 64 + 2 * 64 * 256) + 64 * 256
PER_SAMPLE = (6 * N_MATMUL + 12 * 2 * 64 * SEQ) * SEQ
PARAMS = 256 * 64 + 128 * 64 + 2 * (2 * 128 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64) + 128
SAMPLES = 32768


def _config(**changes) -> dict:
    spec = {"library": "transformers", "architecture": "GPT2LMHeadModel", "config": dict(TINY),
            "inputs": {"input_ids": [SEQ]}}
    spec.update(changes)
    return spec


def _run(ws: Path, name: str, spec: dict | None, entrypoint: bool = False, extra_files: dict | None = None) -> str:
    run = ws / TRACK_DIR / name
    shutil.copytree(ws / TRACK_DIR / "mlp-baseline", run)

    def edit(doc):
        doc["model"] = {"architecture": "GPT-2, 2 layers, width 64", "parameters": PARAMS, "config": spec}
        if entrypoint:
            doc["model"]["entrypoint"] = "run.py:build_for_flops"
        doc["compute"]["flops"] = {"claimed": float(PER_SAMPLE * SAMPLES), "convention": "speedrun-v1"}

    _edit_analysis(run, edit)
    for rel, text in (extra_files or {}).items():
        (run / rel).write_text(text, encoding="utf-8")
    return f"{TRACK_DIR}/{name}"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    if bwrap.unavailable_reason() is not None:
        pytest.skip(f"no sandbox here: {bwrap.unavailable_reason()}")
    root = tmp_path_factory.mktemp("config")
    shutil.copytree(REPO / TRACK_DIR, root / TRACK_DIR, ignore=shutil.ignore_patterns("__pycache__"))
    track = root / TRACK_DIR / "track.yaml"
    text = track.read_text(encoding="utf-8")
    assert 'packages: ["scikit-learn==1.9.1"]' in text
    track.write_text(text.replace('packages: ["scikit-learn==1.9.1"]',
                                 f'packages: ["scikit-learn==1.9.1", "{TRANSFORMERS}"]'), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def report(ws) -> dict:
    runs = {
        "good": _run(ws, "hf-gpt2", _config()),
        # A run shipping a module named like the library: the count must not see it (no run file is present)
        "shadow": _run(ws, "hf-gpt2-shadowed", _config(), extra_files={
            "transformers.py": "import os\nos._exit(3)\n", "sitecustomize.py": "raise SystemExit(4)\n"}),
        "remote": _run(ws, "hf-remote-code", _config(config={**TINY, "auto_map": {"AutoModel": "evil.Model"}})),
        "class": _run(ws, "hf-not-a-model", _config(architecture="AutoTokenizer")),
        "both": _run(ws, "hf-and-entrypoint", _config(), entrypoint=True),
    }
    result = invoke(ws, "validate", "--format", "json", "--flops", *runs.values())
    if "env-install-failed" in result.stdout and not os.environ.get("CI"):
        pytest.skip(f"{TRANSFORMERS} could not be installed here")
    return {key: _runs(result)[path] for key, path in runs.items()}


def test_config_run_is_counted_by_trusted_code(report):
    run = report["good"]
    assert run["valid"], run["errors"]
    compute = run["compute"]
    assert compute["source"] == "config"
    assert compute["per_sample_training_flops"] == PER_SAMPLE
    assert compute["parameters"] == PARAMS
    assert compute["verdict"] == "pass"
    assert compute["counters"]["fvcore"]["forward"] == compute["per_sample_forward_flops"]


def test_files_of_the_run_cannot_touch_a_config_count(report):
    shadowed = report["shadow"]["compute"]
    assert shadowed["source"] == "config"
    assert shadowed["per_sample_training_flops"] == PER_SAMPLE


def test_remote_code_and_non_model_classes_are_refused(report):
    assert "model-config-invalid" in _rules(report["remote"])
    assert any("auto_map" in p["message"] for p in report["remote"]["errors"])
    assert "model-config-invalid" in _rules(report["class"])
    assert any("AutoTokenizer" in p["message"] for p in report["class"]["errors"])


def test_entrypoint_and_config_together_are_refused(report):
    assert "model-config-conflict" in _rules(report["both"])


def test_config_schema_rejects_a_bad_library(ws):
    path = _run(ws, "hf-unknown-library", _config(library="keras"))
    result = invoke(ws, "validate", "--format", "json", path)
    assert result.exit_code == 1
    run = _runs(result)[path]
    assert any(p["path"].startswith("$.model.config.library") for p in run["errors"]), run["errors"]
    assert json.dumps(run).count("Traceback") == 0
