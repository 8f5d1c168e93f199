"""Hostile and broken files (issue 11): each is reported with its file, its JSON path and a rule id, exit 1, without
hanging, without blowing up memory and without echoing a refused file's content.

Cases that hung or aborted before (alias bomb, /dev/zero, FIFO) run `speedrun validate` in a subprocess with a
timeout, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from validator import loader, yamlsafe
from validator.checker import Checker

TRACK = REPO / "runs" / "digits-classification"
RUN = "mlp-baseline"

# 7 levels of 9 aliases: 253 bytes that PyYAML expands to 6 million values (8.4 GB seen before the fix).
ALIAS_BOMB = "\n".join(
    ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    + [f"{c}: &{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdef", "bcdefg")]
) + "\n"


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(runs root, track folder, run folder): a copy of the digits track with its baseline run."""
    root = tmp_path / "runs"
    track = root / TRACK.name
    track.mkdir(parents=True)
    shutil.copy(TRACK / "track.yaml", track / "track.yaml")
    shutil.copytree(TRACK / RUN, track / RUN)
    return root, track, track / RUN


def _analysis(run: Path) -> dict:
    return json.loads((run / "speedrun_analysis.json").read_text())


def _validate(target: Path, timeout: float = 60) -> tuple[int, dict, str]:
    """`speedrun validate --no-flops --format json` in a subprocess: (exit code, report, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "speedrun", "validate", "--no-flops", "--format", "json",
                           str(target)], capture_output=True, text=True, timeout=timeout, cwd=target.parent)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def _problems(report: dict) -> list[dict]:
    return ([p for r in report.get("runs", []) for p in r["errors"]]
            + [p for t in report.get("tracks", []) for p in t["errors"]])


def _one(report: dict, rule: str) -> dict:
    found = [p for p in _problems(report) if p["rule"] == rule]
    assert found, f"no {rule!r} among {[(p['rule'], p['message']) for p in _problems(report)]}"
    return found[0]


# ----------------------------------------------------------------------------------- the analysis file itself


def _replace_analysis(run: Path, name: str, make) -> Path:
    (run / "speedrun_analysis.json").unlink()
    target = run / name
    make(target)
    return target


ANALYSIS_CASES = {
    # case: (file name, how to make it, rule, path)
    "alias-bomb": ("speedrun_analysis.yaml", lambda p: p.write_text(ALIAS_BOMB), "yaml-aliases", "$"),
    "recursive-alias": ("speedrun_analysis.yaml", lambda p: p.write_text("a: &a [*a]\n"), "yaml-aliases", "$"),
    "dev-zero-link": ("speedrun_analysis.json", lambda p: os.symlink("/dev/zero", p), "path-escape", "$"),
    "fifo": ("speedrun_analysis.json", os.mkfifo, "not-regular-file", "$"),
    "folder": ("speedrun_analysis.json", lambda p: p.mkdir(), "not-regular-file", "$"),
    "dangling-link": ("speedrun_analysis.json", lambda p: os.symlink("nowhere.json", p), "broken-link", "$"),
    "link-loop": ("speedrun_analysis.json", lambda p: os.symlink(p.name, p), "unreadable", "$"),
    "json-1000-deep": ("speedrun_analysis.json", lambda p: p.write_text('{"notes": ' + "[" * 1000 + "]" * 1000 + "}"),
                       "too-deep", "$"),
    "json-100000-deep": ("speedrun_analysis.json", lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
                         "too-deep", "$"),
    "yaml-10000-deep": ("speedrun_analysis.yaml", lambda p: p.write_text("a: " + "[" * 10_000 + "]" * 10_000),
                        "too-deep", "$"),
    "int-4301-digits": ("speedrun_analysis.json", lambda p: p.write_text('{"seeds": [' + "9" * 4301 + "]}"),
                        "number-too-large", "$"),
    "yaml-int-4301-digits": ("speedrun_analysis.yaml", lambda p: p.write_text("seeds: [" + "9" * 4301 + "]\n"),
                             "number-too-large", "$"),
    "yaml-binary": ("speedrun_analysis.yaml", lambda p: p.write_text("notes: !!binary aGVsbG8=\n"), "yaml-tag", "$"),
    "yaml-set": ("speedrun_analysis.yaml", lambda p: p.write_text("notes: !!set {a, b}\n"), "yaml-tag", "$"),
    "yaml-python-object": ("speedrun_analysis.yaml",
                           lambda p: p.write_text("notes: !!python/object/apply:os.system ['true']\n"), "yaml-tag", "$"),
    "yaml-bad-date": ("speedrun_analysis.yaml", lambda p: p.write_text("date: 2024-13-45\n"), "parse-error", "$"),
    "huge-file": ("speedrun_analysis.json", lambda p: p.write_text(" " * (loader.MAX_DOCUMENT_BYTES + 1)),
                  "file-too-large", "$"),
    "huge-yaml": ("speedrun_analysis.yaml", lambda p: p.write_text("# x\n" * 100_000), "file-too-large", "$"),
}


@pytest.mark.parametrize("case", sorted(ANALYSIS_CASES))
def test_hostile_analysis_file_is_named_and_refused(tmp_path, case):
    name, make, rule, path = ANALYSIS_CASES[case]
    _root, _track, run = _tree(tmp_path)
    _replace_analysis(run, name, make)
    code, report, stderr = _validate(run)
    assert code == 1, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr
    problem = _one(report, rule)
    assert problem["path"] == path
    assert problem["file"].endswith(f"{RUN}/{name}")
    assert report["runs"][0]["valid"] is False


def test_link_to_a_secret_is_refused_without_echoing_it(tmp_path):
    """The report becomes a public PR comment: nothing of the linked file may appear in it, in any format."""
    _root, _track, run = _tree(tmp_path)
    secret = tmp_path / "secret.yaml"
    secret.write_text("token: ghp_SECRET_VALUE_0123456789\nroot:x:0:0:root:/root:/bin/bash\n")
    for name in ("speedrun_analysis.json", "speedrun_analysis.yaml"):
        for existing in run.glob("speedrun_analysis.*"):
            existing.unlink()
        os.symlink(secret, run / name)
        code, report, stderr = _validate(run)
        assert code == 1
        assert _one(report, "path-escape")["path"] == "$"
        for fmt in ("text", "markdown", "json", "github"):
            out = subprocess.run([sys.executable, "-m", "speedrun", "validate", "--no-flops", "--format", fmt,
                                  str(run)], capture_output=True, text=True, timeout=60)
            assert "SECRET" not in out.stdout + out.stderr and "root:x" not in out.stdout + out.stderr, fmt


def test_a_loop_of_links_elsewhere_in_the_run_is_not_a_crash(tmp_path):
    """pathlib's resolve() raises RuntimeError on a loop; the checks must not."""
    _root, _track, run = _tree(tmp_path)
    os.symlink("loop-b", run / "loop-a")
    os.symlink("loop-a", run / "loop-b")
    code, report, stderr = _validate(run)
    assert "internal error" not in stderr and "Traceback" not in stderr
    assert code in (0, 1)


def test_alias_bomb_is_refused_before_it_is_built():
    """The node graph is measured before construction: the message says how far it would have expanded."""
    with pytest.raises(yamlsafe.YamlRefused) as info:
        yamlsafe.load(ALIAS_BOMB)
    assert info.value.rule == "yaml-aliases"
    assert "6,053,451" in info.value.message


def test_modest_anchors_and_merge_keys_still_load(tmp_path):
    """A small alias budget, not none: an organizer may share a block of settings with an anchor."""
    doc = tmp_path / "t.yaml"
    doc.write_text("base: &b {lr: 0.1, wd: 0.0}\nsmall: {<<: *b, lr: 0.2}\nlarge: *b\nwhen: 2026-01-02\n")
    problems = loader.Problems(str(doc))
    data = loader.load_document(doc, str(doc), problems)
    assert not problems.items
    assert data == {"base": {"lr": 0.1, "wd": 0.0}, "small": {"lr": 0.2, "wd": 0.0}, "large": {"lr": 0.1, "wd": 0.0},
                    "when": "2026-01-02"}


def test_lenient_reader_refuses_a_bomb_too():
    """The PR policy reads the claim leniently: the same bounds apply, and a refusal reads as no mapping."""
    assert loader.lenient_mapping("speedrun_analysis.yaml", ALIAS_BOMB) == {}
    assert loader.lenient_mapping("speedrun_analysis.json", "[" * 100_000 + "]" * 100_000) == {}
    assert loader.lenient_mapping("x.json", '{"a": ' + "9" * 5000 + "}") == {}
    assert loader.lenient_mapping("x.yaml", "a: 1\n") == {"a": 1}


# ----------------------------------------------------------------------------------------------- track files


def _replace_track(track: Path, make) -> None:
    (track / "track.yaml").unlink()
    make(track / "track.yaml")


TRACK_CASES = {
    "folder": (lambda p: p.mkdir(), "not-regular-file", "$"),
    "fifo": (os.mkfifo, "not-regular-file", "$"),
    "dangling-link": (lambda p: os.symlink("nowhere.yaml", p), "broken-link", "$"),
    "alias-bomb": (lambda p: p.write_text(ALIAS_BOMB), "yaml-aliases", "$"),
}


@pytest.mark.parametrize("case", sorted(TRACK_CASES))
def test_broken_track_file_is_named_not_blamed_on_the_run(tmp_path, case):
    make, rule, path = TRACK_CASES[case]
    root, track, _run = _tree(tmp_path)
    _replace_track(track, make)
    code, report, stderr = _validate(root)
    assert code == 1, stderr
    assert "internal error" not in stderr
    problem = _one(report, rule)
    assert problem["file"].endswith(f"{TRACK.name}/track.yaml") and problem["path"] == path
    rules = {p["rule"] for p in _problems(report)}
    assert "missing-analysis" not in rules  # the run is fine; it is judged against a broken track
    assert [r["path"].rsplit("/", 1)[-1] for r in report["runs"]] == [RUN]
    assert _one(report, "track-invalid")


def _edit_track(track: Path, old: str, new: str) -> None:
    text = (track / "track.yaml").read_text()
    assert old in text
    (track / "track.yaml").write_text(text.replace(old, new))


@pytest.mark.parametrize("count, rule, path", [
    # 100,000 milestones cost minutes (every curve against every milestone): refused by size before parsing.
    (100_000, "file-too-large", "$"),
    (2_000, "too-many-items", "$.checkpoints.samples"),
    (None, "out-of-range", "$.checkpoints.dataset_multiples[1]"),
], ids=["100000-milestones", "2000-milestones", "multiple-1e308"])
def test_track_checkpoints_are_bounded(tmp_path, count, rule, path):
    new = (f"samples: [{', '.join(str(i + 1) for i in range(count))}]" if count
           else "dataset_multiples: [1, 1e308]")
    root, track, _run = _tree(tmp_path)
    _edit_track(track, "dataset_multiples: [1, 2, 4, 8, 16, 32]", new)
    code, report, stderr = _validate(root)
    assert code == 1, stderr
    assert "internal error" not in stderr
    problem = _one(report, rule)
    assert problem["path"] == path and problem["file"].endswith("track.yaml")


def test_checker_library_reports_not_raises(tmp_path):
    """The same through the library: Checker never raises on these files."""
    root, track, run = _tree(tmp_path)
    _replace_analysis(run, "speedrun_analysis.yaml", lambda p: p.write_text(yaml.safe_dump({"a": 1}) + "b: !!set {x}\n"))
    result = Checker(tracks_root=root).check_run(run)
    assert [p.rule for p in result.errors] == ["yaml-tag"]
