"""`speedrun build` isolates every run (issue 11): whatever one run does, an unexpected exception included, it becomes
an invalid entry naming its file, the rest is published, and the printed count adds up.

Hostile files are real files. An *unexpected* exception cannot be produced by any input once the known ones are
fixed, so those tests inject one (a bug stand-in) into the validator or the ranking for one named run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from conftest import REPO
from leaderboard import build as build_mod
from leaderboard import trackdata
from validator.checker import Checker

SRC = REPO / "runs" / "digits-classification"


def _run_copy(track: Path, name: str) -> Path:
    run = track / name
    shutil.copytree(SRC / "mlp-baseline", run, ignore=shutil.ignore_patterns("reproductions", "__pycache__"))
    data = json.loads((run / "speedrun_analysis.json").read_text())
    data["name"] = name
    (run / "speedrun_analysis.json").write_text(json.dumps(data))
    return run


@pytest.fixture()
def hostile_tree(tmp_path) -> Path:
    """Two good runs, and one run for each way a file used to hang or abort the build."""
    runs = tmp_path / "runs"
    track = runs / SRC.name
    track.mkdir(parents=True)
    shutil.copy(SRC / "track.yaml", track / "track.yaml")
    good = _run_copy(track, "good")
    (good / "reproductions").mkdir()
    os.mkfifo(good / "reproductions" / "2026-01-01-fifo.json")  # records are read by the build, not the validator
    linked = _run_copy(track, "linked-record")
    (linked / "reproductions").mkdir()
    os.symlink("/dev/zero", linked / "reproductions" / "2026-01-02-zero.json")

    fifo = _run_copy(track, "fifo")
    (fifo / "speedrun_analysis.json").unlink()
    os.mkfifo(fifo / "speedrun_analysis.json")

    deep = _run_copy(track, "deep")
    (deep / "speedrun_analysis.json").write_text("[" * 1000 + "]" * 1000)

    bigint = _run_copy(track, "bigint")
    (bigint / "speedrun_analysis.json").write_text('{"seeds": [' + "9" * 4301 + "]}")

    for name, text in (("binary", "notes: !!binary aGVsbG8=\n"), ("set", "notes: !!set {a}\n")):
        run = _run_copy(track, name)
        (run / "speedrun_analysis.json").unlink()
        (run / "speedrun_analysis.yaml").write_text(text)
    return runs


def _build(runs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speedrun", "build", "--no-flops", "--no-charts", "--runs", str(runs),
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})


def _count_line(stdout: str) -> dict[str, int]:
    m = re.search(r"(\d+) run\(s\) in = (\d+) valid \+ (\d+) invalid \+ (\d+) unreadable(?: \+ (\d+) pending)?", stdout)
    assert m, stdout
    runs_in, valid, invalid, unreadable, pending = (int(g or 0) for g in m.groups())
    assert runs_in == valid + invalid + unreadable + pending
    return {"in": runs_in, "valid": valid, "invalid": invalid, "unreadable": unreadable, "pending": pending}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_hostile_runs_never_stop_the_build(hostile_tree, tmp_path, jobs):
    out = tmp_path / "site"
    proc = _build(hostile_tree, out, "--jobs", jobs)
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    counts = _count_line(proc.stdout)
    assert counts == {"in": 7, "valid": 1, "invalid": 1, "unreadable": 5, "pending": 0}

    page = BeautifulSoup((out / "tracks" / f"{SRC.name}.html").read_text(), "html.parser")
    text = page.get_text(" ")
    for name, rule in (("fifo", "not-regular-file"), ("deep", "too-deep"), ("bigint", "number-too-large"),
                       ("binary", "yaml-tag"), ("set", "yaml-tag"), ("linked-record", "path-escape")):
        assert f"{name}/speedrun_analysis." in text and rule in text, name
    assert (out / "runs" / SRC.name / "good.html").is_file()
    assert oct(out.stat().st_mode & 0o777) == "0o755"


def _tree_of_three(tmp_path) -> Path:
    runs = tmp_path / "runs"
    track = runs / SRC.name
    track.mkdir(parents=True)
    shutil.copy(SRC / "track.yaml", track / "track.yaml")
    for name in ("alpha", "bravo", "charlie"):
        _run_copy(track, name)
    return runs


def test_unexpected_exception_in_one_run_is_an_invalid_entry(tmp_path, monkeypatch):
    runs = _tree_of_three(tmp_path)
    real = Checker.check_run

    def buggy(self, run_dir):
        if run_dir.name == "bravo":
            raise KeyError("a bug stand-in")
        return real(self, run_dir)

    monkeypatch.setattr(Checker, "check_run", buggy)
    monkeypatch.chdir(tmp_path)
    summary = build_mod.build_site(runs, tmp_path / "site", jobs=1, charts=False)
    assert (summary.runs_in, summary.valid_runs, summary.unreadable_runs) == (3, 2, 1)
    data = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    track = data["tracks"][0]
    export = json.loads((tmp_path / "site" / "tracks" / f"{SRC.name}.json").read_text())
    assert [e["name"] for e in export["entries"]] == ["alpha", "charlie"] or \
        sorted(e["name"] for e in export["entries"]) == ["alpha", "charlie"]
    [bad] = export["invalid"]
    assert bad["name"] == "bravo"
    rule = "internal-error"
    assert any("bravo/speedrun_analysis.json::$" in e and f"[{rule}]" in e and "KeyError" in e
               for e in bad["errors"])
    assert track["id"] == SRC.name


def test_a_run_that_breaks_the_ranking_is_isolated(tmp_path, monkeypatch):
    runs = _tree_of_three(tmp_path)
    real = trackdata._entry

    def buggy(entry, result):
        if entry.name == "charlie":
            raise ZeroDivisionError("a bug stand-in")
        return real(entry, result)

    monkeypatch.setattr(trackdata, "_entry", buggy)
    monkeypatch.chdir(tmp_path)
    summary = build_mod.build_site(runs, tmp_path / "site", jobs=1, charts=False)
    assert (summary.runs_in, summary.valid_runs, summary.invalid_runs) == (3, 2, 1)
    export = json.loads((tmp_path / "site" / "tracks" / f"{SRC.name}.json").read_text())
    assert sorted(e["name"] for e in export["entries"]) == ["alpha", "bravo"]
    [bad] = export["invalid"]
    assert bad["name"] == "charlie" and "ZeroDivisionError" in bad["errors"][0]
    assert (tmp_path / "site" / "runs" / SRC.name / "alpha.html").is_file()
    assert not (tmp_path / "site" / "runs" / SRC.name / "charlie.html").exists()


def test_a_worker_that_dies_is_rebuilt_here(tmp_path, monkeypatch):
    """A worker killed mid-track (out of memory, a signal) costs a retry, not the build."""
    runs = tmp_path / "runs"
    for track_name in ("digits-classification", "digits-reconstruction"):
        shutil.copytree(REPO / "runs" / track_name, runs / track_name,
                        ignore=shutil.ignore_patterns("reproductions", "__pycache__", "ast-*"))
    parent = os.getpid()
    real = build_mod._build_track

    def dies_in_a_worker(job, progress=None):
        if os.getpid() != parent and job.group.track_dir.name == "digits-reconstruction":
            os._exit(9)
        return real(job, progress)

    monkeypatch.setattr(build_mod, "_build_track", dies_in_a_worker)
    monkeypatch.setattr(build_mod, "_start_method", lambda: "fork")  # the workers inherit the stand-in
    monkeypatch.chdir(tmp_path)
    summary = build_mod.build_site(runs, tmp_path / "site", jobs=2, charts=False)
    assert summary.tracks == 2 and summary.runs_in == 2 and summary.valid_runs == 2
    assert (tmp_path / "site" / "tracks" / "digits-reconstruction.html").is_file()


def test_a_folder_name_that_is_not_utf8_is_listed_not_fatal(tmp_path):
    """git stores any bytes as a name; Python reads them as surrogate escapes, which a UTF-8 page cannot hold."""
    runs = _tree_of_three(tmp_path)
    shutil.copytree(runs / SRC.name / "alpha", os.fsdecode(bytes(runs / SRC.name) + b"/bad\xffname"))
    proc = _build(runs, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr
    assert _count_line(proc.stdout) == {"in": 4, "valid": 3, "invalid": 1, "unreadable": 0, "pending": 0}
    export = json.loads((tmp_path / "site" / "tracks" / f"{SRC.name}.json").read_text())
    [bad] = export["invalid"]
    assert "[name-mismatch]" in bad["errors"][0]


def test_a_trace_of_extreme_floats_renders(tmp_path, monkeypatch):
    """Found by the fuzzer: ±1.8e308 in a trace overflowed the chart's tick span (an OverflowError, caught only by
    the build's safety net as an internal error)."""
    runs = tmp_path / "runs"
    shutil.copytree(SRC, runs / SRC.name, ignore=shutil.ignore_patterns("__pycache__", "reproductions", "ast-5pct",
                                                                       "ast-15pct", "ast-20pct"))
    path = runs / SRC.name / "ast-10pct" / "speedrun_analysis.json"
    data = json.loads(path.read_text())
    trace = data["results"][0]["trace"]["activation_rate"]
    trace[0], trace[1] = 1.7976931348623157e308, -1.7976931348623157e308
    path.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    summary = build_mod.build_site(runs, tmp_path / "site", jobs=1, charts=False)
    assert (summary.runs_in, summary.valid_runs, summary.invalid_runs) == (2, 2, 0)
    assert "internal-error" not in (tmp_path / "site" / "runs" / SRC.name / "ast-10pct.html").read_text()
