"""Issue 10, attack 2: a submission that forges its own FLOP count.

A copy of the `marin-local-tiny` baseline is made 3.3x larger in FLOPs (7 layers instead of 2, plus a wider
model) while keeping its claim inside the 1e12 budget. Before the counter moved out of the submission's process,
both forgeries below passed with "torch and fvcore agree". Now the submission only hands over a trace and trusted
code counts it, so each fails on the real count with rule ids; a forged result channel is refused by its own rule.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from conftest import REPO
from speedrun.cli import cli
from validator.compute import bwrap

pytestmark = pytest.mark.skipif(bwrap.unavailable_reason() is not None, reason="no sandbox here (CI installs bubblewrap)")

TRACK = "marin-local-tiny"
BASE = f"{TRACK}/bytegpt-tiny"
BIGGER = ('"layers": 2, "width": 64,', '"layers": 7, "width": 64,')

PATCH_COUNTERS = '''

if __name__ == "speedrun_submission":  # only when the FLOP counter imports this file
    import torch.utils.flop_counter as _fc
    _total = _fc.FlopCounterMode.get_total_flops
    _fc.FlopCounterMode.get_total_flops = lambda self: int(_total(self) / 3.3)
    try:
        from fvcore.nn import FlopCountAnalysis as _FCA
        _fv_total = _FCA.total
        _FCA.total = lambda self, *a: int(_fv_total(self, *a) / 3.3)
    except ImportError:
        pass
'''

FAKE_RESULT_LINE = '''

if __name__ == "speedrun_submission":
    import atexit, json, os
    _fake = {"ok": True, "device": "meta", "per_sample_forward_flops": 1, "per_sample_training_flops": 3,
             "training_forward_ratio": 3.0, "linear_in_batch": True, "batch_counts": {}, "by_module": {},
             "parameters": 1, "trainable_parameters": 1, "counters": {"torch_flop_counter": {"forward": 1}}, "notes": []}
    atexit.register(lambda: os.write(1, ("SPEEDRUN_RESULT " + json.dumps(_fake) + "\\n").encode()))
'''

FORGED_CHANNEL = '''

if __name__ == "speedrun_submission":
    import os, sys
    _fd = int(sys.argv[sys.argv.index("--result-fd") + 1])
    _junk = b'{"ok": true, "batches": {}}'
    os.write(_fd, b"SPEEDRUN-TRACE " + str(len(_junk)).encode() + b"\\n" + _junk)
'''


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    ws = tmp_path_factory.mktemp("forgery")
    (ws / TRACK).mkdir()
    shutil.copy(REPO / "runs" / TRACK / "track.yaml", ws / TRACK / "track.yaml")
    names = {"patched-counters": PATCH_COUNTERS, "fake-result-line": FAKE_RESULT_LINE, "forged-channel": FORGED_CHANNEL}
    for name, tail in names.items():
        run = ws / TRACK / name
        shutil.copytree(REPO / "runs" / BASE, run, ignore=shutil.ignore_patterns("reproductions"))
        script = (run / "run.py").read_text(encoding="utf-8")
        assert BIGGER[0] in script
        (run / "run.py").write_text(script.replace(*BIGGER) + tail, encoding="utf-8")
        doc = json.loads((run / "speedrun_analysis.json").read_text(encoding="utf-8"))
        doc["name"] = name
        (run / "speedrun_analysis.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(ws)
    try:
        result = CliRunner().invoke(cli, ["validate", "--format", "json", *(f"{TRACK}/{n}" for n in names)])
    finally:
        os.chdir(cwd)
    assert "Traceback" not in result.output, result.output
    runs = {r["path"].rstrip("/").split("/")[-1]: r for r in json.loads(result.stdout)["runs"]}
    return {"exit": result.exit_code, "runs": runs}


def _rules(run: dict) -> set[str]:
    return {p["rule"] for p in run["errors"]}


def test_patched_counters_fail_on_the_real_count(report):
    run = report["runs"]["patched-counters"]
    assert report["exit"] == 1
    assert "over-budget" in _rules(run), run["errors"]
    compute = run["compute"]
    assert compute["total_training_flops"] > 3 * 1e12 * 0.999 / 3.3 * 3  # the real, unpatched count
    assert compute["counters"]["fvcore"]["forward"] == compute["per_sample_forward_flops"]
    assert compute["source"] == "entrypoint"


def test_a_fake_result_line_on_stdout_is_ignored(report):
    run = report["runs"]["fake-result-line"]
    assert "over-budget" in _rules(run), run["errors"]
    assert run["compute"]["per_sample_forward_flops"] > 1


def test_a_second_frame_on_the_result_channel_is_refused(report):
    run = report["runs"]["forged-channel"]
    assert _rules(run) == {"flops-bad-trace"}, run["errors"]
