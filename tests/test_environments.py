"""Declared environments (issue 12): a track declares the packages its runs may import; validation and reproduction
install them into a cached virtual environment; anything else fails with a rule naming the module.

Real pip against the package index, real virtual environments, real bubblewrap; nothing is mocked. transformers is
installed once per session (a fresh cache, so the install itself is tested; pip's download cache keeps reruns fast).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from conftest import REPO
from speedrun.cli import cli
from validator.checker import Checker
from validator.compute import bwrap
from validator.environment import CACHE_ENV, MARKER, cache_root, sandbox_env
from validator.envlock import unsatisfied
from validator.imports import allowed_imports, check_run
from validator.models.track import Environment
from validator.problems import Problems

TRANSFORMERS = "transformers==5.24.0"  # what `pip index versions transformers` offers here
SKLEARN = "scikit-learn==1.9.1"  # the host's (constraints.txt): the digits ship inside it
needs_sandbox = pytest.mark.skipif(bwrap.unavailable_reason() is not None,
                                   reason=f"no sandbox here: {bwrap.unavailable_reason()} (CI installs bubblewrap)")

GPT2_MODEL = '''"""GPT-2 from transformers, built from its config: the FLOP-counting entrypoint."""
import torch
from transformers import GPT2Config, GPT2LMHeadModel

CONFIG = dict(n_layer=2, n_embd=64, n_head=2, vocab_size=1000, n_positions=128, use_cache=False,
              bos_token_id=0, eos_token_id=0)


def build_for_flops(batch_size, device="meta"):
    with torch.device(device):
        model = GPT2LMHeadModel(GPT2Config(**CONFIG))
        return model, (torch.zeros(batch_size, 32, dtype=torch.long),)
'''
GPT2_PARAMETERS = 172_288  # wte 64,000 + wpe 8,192 + 2 x 49,984 per block + ln_f 128 (lm_head tied to wte)
# Forward FLOPs of one 32-token sample, 2 per multiply-accumulate: the matmul weights (2 x 49,152 per block + the
# 64,000 of lm_head) once per token, and per block QK^T and AV (2 x 2 x 32 x 32 x 64).
GPT2_FORWARD = 2 * (2 * 49_152 + 64_000) * 32 + 2 * (2 * 2 * 32 * 32 * 64)

MLP_MODEL = '''"""A digits MLP whose file also imports {what}."""
import importlib

import torch
from torch import nn

{statement}


def build_for_flops(batch_size, device="meta"):
    with torch.device(device):
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)), (torch.zeros(batch_size, 64),)
'''


def invoke(cwd: Path, *args: str) -> Result:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.delenv("GITHUB_STEP_SUMMARY", raising=False)
        mp.delenv("SPEEDRUN_DEBUG", raising=False)
        result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def _track(runs: Path, track_id: str, packages: list[str]) -> Path:
    """A copy of the digits track named `track_id`, declaring `packages`, with its baseline run."""
    src = REPO / "runs" / "digits-classification"
    track_dir = runs / track_id
    track_dir.mkdir(parents=True)
    doc = yaml.safe_load((src / "track.yaml").read_text(encoding="utf-8"))
    doc["id"] = track_id
    doc["environment"] = {"packages": packages}
    doc.pop("starter", None)
    (track_dir / "track.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return track_dir


def _run(track_dir: Path, name: str, model: str, parameters: int = 9610) -> Path:
    """The digits baseline under `name`, counted from model.py (holding `model`) instead of run.py."""
    run = track_dir / name
    shutil.copytree(REPO / "runs" / "digits-classification" / "mlp-baseline", run,
                    ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    (run / "model.py").write_text(model, encoding="utf-8")
    file = run / "speedrun_analysis.json"
    doc = json.loads(file.read_text(encoding="utf-8"))
    doc.update(name=name, track=track_dir.name)
    doc["model"].update(entrypoint="model.py:build_for_flops", parameters=parameters)
    doc["compute"].pop("flops")  # a samples-budget track: the MLP's FLOPs claim does not describe these models
    file.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return run


def _report(result: Result) -> dict[str, dict]:
    return {r["path"]: r for r in json.loads(result.stdout)["runs"]}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory) -> Path:
    """A fresh environment cache for this module's installs (set for the whole module by `cached`)."""
    return tmp_path_factory.mktemp("speedrun-cache")


@pytest.fixture(scope="module", autouse=True)
def cached(env_cache):
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(env_cache))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """runs/ with a track declaring transformers and one that does not, and the runs the tests validate."""
    root = tmp_path_factory.mktemp("envs-ws")
    declared = _track(root / "runs", "digits-transformers", [SKLEARN, TRANSFORMERS])
    plain = _track(root / "runs", "digits-plain", [SKLEARN])
    _run(declared, "gpt2", GPT2_MODEL, GPT2_PARAMETERS)
    _run(plain, "gpt2", GPT2_MODEL, GPT2_PARAMETERS)
    _run(plain, "dynamic-fvcore", MLP_MODEL.format(what="fvcore by name", statement='importlib.import_module("fvcore")'))
    _run(plain, "dynamic-missing", MLP_MODEL.format(what="a module that exists nowhere",
                                                   statement='importlib.import_module("speedrun_no_such_module")'))
    return root


@pytest.fixture(scope="module")
def transformers_env(ws):
    """The declared track's environment, installed once (a real pip install into a fresh cache)."""
    track_dir = ws / "runs" / "digits-transformers"
    track = Checker().check_track(track_dir).track
    t0 = time.perf_counter()
    env = sandbox_env(track, track_dir)
    return env, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ the schema


@pytest.mark.parametrize("package, says", [
    ("transformers", "has no version; pin one"),
    ("transformers @ https://example.org/t.whl", "URLs and paths are not allowed"),
    ("./vendor/transformers", "not a PEP 508 requirement"),
    ("-e .", "pip options"),
    ("torch==2.13.0", "part of the tool's own runtime"),
])
def test_track_refuses_unpinned_urls_paths_and_options(tmp_path, package, says):
    track_dir = _track(tmp_path / "runs", "digits-bad", [SKLEARN, package])
    result = invoke(tmp_path, "validate", "--no-flops", "--format", "json", str(track_dir.relative_to(tmp_path)))
    assert result.exit_code == 1, result.output
    errors = json.loads(result.stdout)["tracks"][0]["errors"]
    assert [(e["path"], e["rule"]) for e in errors] == [("$.environment.packages[1]", "invalid-model")], errors
    assert says in errors[0]["message"]


def test_tracks_the_host_satisfies_need_no_install(tmp_path, monkeypatch):
    """A track whose packages this interpreter already has (every bundled track but one declaring transformers):
    the fast path, no virtual environment, no pip."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    folders = [p.parent for p in sorted((REPO / "runs").glob("*/track.yaml"))]
    folders += [p.parent for p in sorted((REPO / "tests" / "fixtures").rglob("track.yaml"))]
    checker = Checker()
    fast = []
    for folder in folders:
        track = checker.check_track(folder).track
        assert track is not None, folder
        if unsatisfied(track.environment.packages, sys.path):
            continue  # needs an install: the transformers tests below cover that
        env = sandbox_env(track, folder)
        assert (env.python, env.readonly) == (sys.executable, ()), folder
        fast.append(folder.name)
    assert {"digits-classification", "digits-reconstruction", "maxclip", "digits-mini"} <= set(fast)
    assert not (tmp_path / "cache").exists()
    digits = sandbox_env(checker.check_track(REPO / "runs" / "digits-classification").track, None)
    assert digits.packages == {"scikit-learn": "1.9.1"} and "sklearn" in digits.allowed_imports


# ------------------------------------------------------------------------------------------------ imports, statically


def test_static_check_names_module_file_and_line(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "helpers.py").write_text("from . import other\nimport scipy\n", encoding="utf-8")
    (tmp_path / "corpus.py").write_text("", encoding="utf-8")
    (tmp_path / "run.py").write_text(
        "import os, json\nimport torch.nn as nn\nimport corpus\nfrom pkg import helpers\n"
        "try:\n    import wandb\nexcept ImportError:\n    wandb = None\n"
        "import sklearn.datasets\n\ndef f():\n    from transformers import GPT2Config\n    import transformers\n",
        encoding="utf-8")
    problems = Problems("speedrun_analysis.json")
    check_run(tmp_path, allowed_imports(Environment(packages=[SKLEARN])), problems)
    assert [(p.path, p.rule, p.message) for p in problems.items] == [
        ("$files['pkg/helpers.py']", "undeclared-import",
         "pkg/helpers.py line 2 imports 'scipy', which the track's environment does not declare"),
        ("$files['run.py']", "undeclared-import",
         "run.py line 12 imports 'transformers', which the track's environment does not declare"),
    ]
    assert problems.items[0].hint.startswith("declare it in track.yaml environment.packages (organizer) or remove")


def test_run_without_the_declaration_fails_on_the_import(ws):
    result = invoke(ws, "validate", "--format", "json", "runs/digits-plain/gpt2")
    assert result.exit_code == 1, result.output
    run = _report(result)["runs/digits-plain/gpt2"]
    assert [(p["rule"], p["path"]) for p in run["errors"]] == [("undeclared-import", "$files['model.py']")]
    assert "imports 'transformers'" in run["errors"][0]["message"]
    assert run.get("compute") is None  # not counted: it would only fail in the sandbox


# ------------------------------------------------------------------------------------------------ install and count


def test_declared_environment_is_installed_once_and_cached(transformers_env, env_cache, ws):
    env, seconds = transformers_env
    venv = Path(env.python).parent.parent
    assert venv.parent == cache_root() == env_cache / "envs"
    assert env.readonly == (venv,) and (venv / MARKER).is_file()
    assert env.packages == {"scikit-learn": "1.9.1", "transformers": "5.24.0"}
    assert {"transformers", "sklearn", "torch", "json"} <= env.allowed_imports
    assert "huggingface_hub" not in env.allowed_imports  # a dependency, not declared
    assert not list(cache_root().glob(".build-*"))
    print(f"\ntransformers environment installed in {seconds:.1f} s")
    track_dir = ws / "runs" / "digits-transformers"
    t0 = time.perf_counter()
    again = subprocess.run([sys.executable, "-m", "speedrun", "env", "install", str(track_dir)], capture_output=True,
                           text=True, env={**os.environ, CACHE_ENV: str(env_cache)})
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == env.python and "installing" not in again.stderr
    print(f"cached: `speedrun env install` took {time.perf_counter() - t0:.1f} s")


@needs_sandbox
def test_declared_transformers_run_validates_and_is_counted(transformers_env, ws):
    t0 = time.perf_counter()
    result = invoke(ws, "validate", "--format", "json", "runs/digits-transformers/gpt2")
    print(f"\nvalidate --flops of the GPT-2 run: {time.perf_counter() - t0:.1f} s")
    run = _report(result)["runs/digits-transformers/gpt2"]
    assert result.exit_code == 0 and run["valid"], run["errors"]
    compute = run["compute"]
    assert compute["verdict"] == "pass" and compute["sandbox"]["isolated"] is True
    assert compute["parameters"] == GPT2_PARAMETERS
    assert compute["per_sample_forward_flops"] == GPT2_FORWARD


@needs_sandbox
def test_dynamic_import_of_an_installed_undeclared_module_fails(ws):
    result = invoke(ws, "validate", "--format", "json", "runs/digits-plain/dynamic-fvcore")
    assert result.exit_code == 1, result.output
    run = _report(result)["runs/digits-plain/dynamic-fvcore"]
    assert [p["rule"] for p in run["errors"]] == ["env-undeclared-import"], run["errors"]
    error = run["errors"][0]
    assert "speedrun: undeclared import 'fvcore' (imported by model.py)" in error["message"]
    assert "ask the track's organizers to declare it in track.yaml environment.packages" in error["hint"]


@needs_sandbox
@pytest.mark.parametrize("name, module", [("dynamic-missing", "speedrun_no_such_module"), ("gpt2", "transformers")])
def test_missing_module_is_named_with_a_hint_that_points_the_right_way(ws, name, module):
    """A module nothing provides (or a package the track does not install): `speedrun flops` has no static check."""
    result = invoke(ws, "flops", f"runs/digits-plain/{name}", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [p["rule"] for p in report["problems"]] == ["env-module-missing"], report["problems"]
    problem = report["problems"][0]
    assert f"the track's environment lacks module {module!r}" in problem["message"]
    assert "ask the track's organizers to declare the package" in problem["hint"]
    assert "build_for_flops" not in problem["hint"]


# ------------------------------------------------------------------------------------------------ the lock


def test_lock_is_written_and_used(transformers_env, ws, tmp_path):
    track_dir = ws / "runs" / "digits-transformers"
    result = invoke(ws, "env", "lock", "runs/digits-transformers")
    assert result.exit_code == 0, result.output
    lock = (track_dir / "environment.lock").read_text(encoding="utf-8")
    pins = [ln for ln in lock.splitlines() if ln and not ln.startswith("#")]
    assert "transformers==5.24.0" in pins and any(p.startswith("huggingface_hub==") for p in pins), lock
    assert not any(p.split("==")[0].lower() in ("torch", "numpy", "scikit-learn") for p in pins)  # the host's
    try:
        locked = sandbox_env(Checker().check_track(track_dir).track, track_dir)
        assert locked.python != transformers_env[0].python  # another key: installed from the lock
        marker = json.loads((Path(locked.python).parent.parent / MARKER).read_text(encoding="utf-8"))
        assert marker["lock"] == pins
        assert sorted(f"{k}=={v}" for k, v in marker["installed"].items()) == sorted(pins)  # --no-deps: exactly
        # A lock written for other packages is refused, in validation as in `speedrun env install`.
        (track_dir / "environment.lock").write_text(lock.replace("# inputs: sha256:", "# inputs: sha256:0"),
                                                    encoding="utf-8")
        result = invoke(ws, "env", "install", "runs/digits-transformers")
        assert result.exit_code == 1
        assert "environment.lock was written for other declared packages" in result.output
        assert "[env-lock-invalid]" in result.output and "speedrun env lock" in result.output
    finally:
        (track_dir / "environment.lock").unlink()


# ------------------------------------------------------------------------------------------------ concurrency, failure


def test_two_concurrent_installs_build_one_environment(tmp_path):
    track_dir = _track(tmp_path / "runs", "digits-toolz", [SKLEARN, "toolz==1.2.0"])
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "speedrun", "env", "install", str(track_dir)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    pythons = {out.strip() for out, _err in outs}
    assert len(pythons) == 1
    installs = sum("toolz==1.2.0 into" in err for _out, err in outs)
    assert installs == 1, outs  # the other waited for the lock, then took the finished environment
    envs = [p for p in (tmp_path / "cache" / "envs").iterdir() if p.is_dir()]
    assert [p.name for p in envs] == [Path(pythons.pop()).parent.parent.name]  # one, and no half-built leftovers
    python = envs[0] / "bin" / "python"
    assert subprocess.run([python, "-c", "import toolz, sklearn, torch"], capture_output=True).returncode == 0


def test_failed_install_is_a_problem_with_its_rule(tmp_path):
    track_dir = _track(tmp_path / "runs", "digits-broken", [SKLEARN, "transformers==0.0.0.1"])
    _run(track_dir, "gpt2", GPT2_MODEL, GPT2_PARAMETERS)
    result = invoke(tmp_path, "env", "install", "runs/digits-broken")
    assert result.exit_code == 1
    assert "runs/digits-broken/track.yaml::$.environment.packages: installing transformers==0.0.0.1 failed:" in result.output
    assert "[env-install-failed]" in result.output and "transformers==0.0.0.1" in result.output.split("failed:")[1]
    result = invoke(tmp_path, "validate", "--format", "json", "runs/digits-broken/gpt2")
    assert result.exit_code == 1
    run = _report(result)["runs/digits-broken/gpt2"]
    assert [(p["rule"], p["path"]) for p in run["errors"]] == [("env-install-failed", "$.track")]
    assert not list((cache_root()).glob(".build-*"))  # nothing half-built is left, or used


@needs_sandbox
def test_reproduction_runs_the_script_under_the_guard(ws):
    """`speedrun reproduce` uses the track's environment and the same guard: a script importing an installed but
    undeclared module by name fails there, saying so."""
    run = ws / "runs" / "digits-plain" / "fvcore-in-training"
    shutil.copytree(REPO / "runs" / "digits-classification" / "mlp-baseline", run,
                    ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    script = run / "run.py"
    text = script.read_text(encoding="utf-8")
    script.write_text(text.replace("\ndef ", '\n__import__("fvcore")\n\n\ndef ', 1), encoding="utf-8")
    doc = json.loads((run / "speedrun_analysis.json").read_text(encoding="utf-8"))
    doc.update(name=run.name, track="digits-plain")
    (run / "speedrun_analysis.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    result = invoke(ws, "reproduce", "runs/digits-plain/fvcore-in-training", "--seeds", "0", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "failed"
    assert "speedrun: undeclared import 'fvcore' (imported by run.py)" in report["reasons"][0], report["reasons"]
