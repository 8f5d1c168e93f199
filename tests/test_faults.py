"""Faults (issue 11): a full disk, an interrupted build and an interrupted FLOP count each leave the previous site
intact and no process behind, with a message naming the path; a memory bomb in model code is `sandbox-memory`.

Real faults: a size-limited tmpfs is a full disk, SIGINT is sent to the process group as a terminal's Ctrl-C is,
and the processes left behind are read from /proc.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from validator.compute import bwrap

SRC = REPO / "runs" / "digits-classification"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def _site_tree(tmp: Path) -> Path:
    runs = tmp / "runs"
    shutil.copytree(SRC, runs / SRC.name, ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    return runs


def _previous_site(out: Path) -> None:
    out.mkdir(parents=True)
    (out / "index.html").write_text("the previous site\n")


def _untouched(out: Path) -> None:
    assert (out / "index.html").read_text() == "the previous site\n"
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")] == []


def test_full_disk_leaves_the_previous_site_and_names_the_path(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs (a real full disk) needs root")
    try:
        out = disk / "site"
        _previous_site(out)
        proc = subprocess.run([sys.executable, "-m", "speedrun", "build", "--no-flops", "--runs",
                               str(_site_tree(tmp_path)), "--out", str(out)], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
        assert "No space left on device" in proc.stderr and str(out) in proc.stderr, proc.stderr
        _untouched(out)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 120) -> set[int]:
    """Wait until `ready(descendants)`, then Ctrl-C the process group; return the processes alive at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        below = _descendants(proc.pid)
        if ready(below):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the work to interrupt never started")
    os.killpg(proc.pid, signal.SIGINT)
    return below


def test_interrupted_build_leaves_the_previous_site_and_no_process(tmp_path):
    out = tmp_path / "site"
    _previous_site(out)
    runs = _site_tree(tmp_path)
    shutil.copytree(REPO / "runs" / "digits-reconstruction", runs / "digits-reconstruction",
                    ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    proc = subprocess.Popen([sys.executable, "-m", "speedrun", "build", "--no-flops", "--jobs", "2", "--runs",
                             str(runs), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    # Interrupted once the workers run and the temporary folder beside the site exists.
    below = _interrupt_when(proc, lambda b: len(b) >= 2 and any(
        d.name.startswith(".site.") for d in out.parent.iterdir()))
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert "interrupted while validating and rendering" in stderr and "Traceback" not in stderr
    _untouched(out)
    deadline = time.monotonic() + 10
    while _alive(below) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(below)


SPIN = '''

def build_for_flops(batch_size: int, device: str = "meta"):  # replaces the real one: spins at 100 % CPU
    while True:
        pass
'''

MEMORY_BOMBS = {
    "list-growth": "hog = []\n    while True:\n        hog.append(bytearray(64 * 2**20))",
    "one-huge-list": "hog = [0] * 10**11",
    "huge-bytes": "hog = b'x' * 10**13",
}


def _counting_run(tmp_path: Path, body: str) -> Path:
    runs = tmp_path / "runs"
    track = runs / SRC.name
    track.mkdir(parents=True)
    shutil.copy(SRC / "track.yaml", track / "track.yaml")
    run = track / "mlp-baseline"
    shutil.copytree(SRC / "mlp-baseline", run, ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    with open(run / "run.py", "a") as fh:
        fh.write(body)
    return run


needs_sandbox = pytest.mark.skipif(bwrap.unavailable_reason() is not None,
                                   reason=f"no sandbox here: {bwrap.unavailable_reason()}")


@needs_sandbox
def test_interrupted_count_leaves_no_process_behind(tmp_path):
    run = _counting_run(tmp_path, SPIN)
    proc = subprocess.Popen([sys.executable, "-m", "speedrun", "validate", "--flops", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=tmp_path)

    def spinning(below: set[int]) -> bool:
        for pid in below:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[11]) > 100:  # utime in clock ticks: a process that has spun for a second
                return True
        return False

    below = _interrupt_when(proc, spinning)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert "interrupted while counting FLOPs of runs/digits-classification/mlp-baseline" in stderr, stderr
    deadline = time.monotonic() + 10
    while _alive(below) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(below), "the sandboxed child outlived the interrupt"


@needs_sandbox
@pytest.mark.parametrize("case", sorted(MEMORY_BOMBS))
def test_memory_bomb_in_model_code_is_sandbox_memory(tmp_path, case):
    body = f"\n\ndef build_for_flops(batch_size: int, device: str = 'meta'):\n    {MEMORY_BOMBS[case]}\n"
    run = _counting_run(tmp_path, body)
    proc = subprocess.run([sys.executable, "-m", "speedrun", "validate", "--flops", "--format", "json", str(run)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    rules = [p["rule"] for p in report["runs"][0]["errors"] if p["path"] == "$.model.entrypoint"]
    assert rules == ["sandbox-memory"], report["runs"][0]["errors"]
