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


def test_cuda_runs_inside_the_sandbox_and_nothing_outlives_it(tmp_path):
    """Issue 10 on a GPU: CUDA works inside bubblewrap's PID namespace as an unprivileged user, the host stays
    unwritable, and a double-forked setsid daemon dies with the sandbox (it survived `reproduce --device cuda`)."""
    import os
    import subprocess
    import textwrap
    import time
    import uuid

    from validator.compute import bwrap
    from validator.compute.sandbox import Limits, Workspace, run_python

    assert bwrap.unavailable_reason() is None, bwrap.unavailable_reason()
    marker = f"{800 + os.getpid() % 100}.{uuid.uuid4().int % 1000:03d}"
    run = tmp_path / "run"
    run.mkdir()
    (run / "probe.py").write_text(textwrap.dedent(f"""
        import json, os, torch
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "{marker}"])
            os._exit(0)
        x = torch.ones(1024, 1024, device="cuda")
        try:
            open({str(ROOT / "README.md")!r}, "a").write("x")
            wrote = True
        except OSError:
            wrote = False
        print(json.dumps({{"sum": (x @ x).sum().item(), "uid": os.getuid(), "pid": os.getpid(), "wrote": wrote,
                           "gpu": torch.cuda.get_device_name()}}))
    """))
    with Workspace(run) as ws:
        outcome = run_python(["probe.py"], workdir=ws, limits=Limits(timeout_s=120, gpu=True, memory_bytes=32 << 30),
                             script_path=True, pass_env=("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"))
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    report = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert report["sum"] == 1024.0**3 and "NVIDIA" in report["gpu"] and not report["wrote"]
    assert report["pid"] < 10  # its own PID namespace
    if os.geteuid() == 0:
        assert report["uid"] == bwrap.SANDBOX_UID
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.strip()
    assert left == "", "a daemon outlived the CUDA sandbox"


def test_torchrun_with_cuda_in_the_sandbox(tmp_path):
    """`reproduce --nproc 2 --device cuda` in miniature: two ranks under torchrun inside one sandbox, each using the
    GPU, meeting on the sandbox's own loopback; a daemon started by a rank dies with the sandbox."""
    import os
    import subprocess
    import textwrap
    import time
    import uuid

    from validator.compute.sandbox import Limits, Workspace, run_python

    marker = f"{900 + os.getpid() % 90}.{uuid.uuid4().int % 1000:03d}"
    run = tmp_path / "run"
    run.mkdir()
    (run / "probe.py").write_text(textwrap.dedent(f"""
        import json, os, torch, torch.distributed as dist
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        if rank == 1 and os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "{marker}"])
            os._exit(0)
        x = torch.full((256, 256), float(rank + 1), device="cuda")
        total = torch.tensor([(x @ x).sum().item()])
        dist.all_reduce(total)
        # one write per line: two ranks share the pipe, and print() writes the newline separately
        os.write(1, (json.dumps({{"rank": rank, "total": total.item()}}) + "\\n").encode())
        dist.destroy_process_group()
    """))
    with Workspace(run) as ws:
        outcome = run_python(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "probe.py"],
                             workdir=ws, limits=Limits(timeout_s=180, gpu=True, memory_bytes=32 << 30),
                             threads=1, script_path=True, pass_env=("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"))
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    reports = sorted((json.loads(ln) for ln in outcome.stdout.splitlines() if ln.startswith("{")), key=lambda r: r["rank"])
    expected = 256 * 256 * (256 * 1 + 256 * 4)  # rank 0: ones @ ones; rank 1: twos @ twos
    assert [r["rank"] for r in reports] == [0, 1] and all(r["total"] == expected for r in reports), reports
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.strip()
    assert left == "", "a daemon outlived the torchrun sandbox"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_attention_counts_the_same_on_cuda_kernels_as_on_meta(dtype):
    """Issue 12: one count wherever it runs. On CUDA, SDPA runs the flash or memory-efficient kernel, whose backward
    formulas also charge the recomputed scores; the count charges the math path's four matmuls on every backend."""
    from test_count_anywhere import SEQ, _GPT, _count

    from validator.compute.counting import flops_from_trace
    from validator.compute.tracer import record_once

    batches = {}
    for batch in (1, 2):
        torch.manual_seed(0)
        model = _GPT(False).to("cuda", dtype)
        batches[str(batch)] = record_once(model, torch.zeros(batch, SEQ, dtype=torch.long, device="cuda"),
                                          backward=batch == 1)
    ops = {c["op"] for c in batches["1"]["calls"]}
    assert any("attention" in op for op in ops), ops  # a fused kernel ran, not the math path
    params = sum(p.numel() for p in model.parameters())
    on_cuda = flops_from_trace({"batches": batches, "parameters": params, "trainable_parameters": params})
    on_meta = _count(False)
    assert on_cuda["per_sample_forward_flops"] == on_meta["per_sample_forward_flops"]
    assert on_cuda["per_sample_training_flops"] == on_meta["per_sample_training_flops"]
