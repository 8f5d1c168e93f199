"""`speedrun new`: the next steps it prints work where they are printed, a wrong track lists the tracks, and the new
run starts with placeholders (not the baseline's words) that validation refuses until the participant fills them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from speedrun.cli import cli
PLACEHOLDER_MARK = "TODO (speedrun new):"  # validator.scaffold.PLACEHOLDER_MARK, spelled out as a participant sees it

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "runs" / "digits-classification" / "mlp-baseline"


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    """A runs/ tree with the digits track (baseline only) and MaxCLIP, the working folder at its parent."""
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "digits-classification", runs / "digits-classification",
                    ignore=shutil.ignore_patterns("__pycache__", "reproductions", "ast-*"))
    shutil.copytree(ROOT / "runs" / "maxclip", runs / "maxclip", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return runs


def fill_placeholders(script: Path) -> None:
    """The participant's edit, at its smallest: their own description and changes, the notes line removed."""
    text = script.read_text(encoding="utf-8")
    text = re.sub(r'^(\s*)"description": .*', r'\1"description": "The baseline MLP, retrained unchanged.",', text,
                  flags=re.M)
    text = re.sub(r'^(\s*)"changes": .*', r'\1"changes": "Nothing yet: the baseline retrained as is.",', text,
                  flags=re.M)
    text = re.sub(r'\n\s*"notes": .*', "", text)
    script.write_text(text, encoding="utf-8")


def printed_commands(output: str) -> list[str]:
    """The shell commands `speedrun new` tells the participant to run next."""
    commands = []
    for line in output.splitlines():
        line = re.sub(r"^\s*(next:|\d+\.)\s*", "", line)
        if line.startswith(("cd ", "python ", "speedrun ")):
            commands.append(line)
    return commands


def test_the_printed_next_steps_work_when_pasted_where_new_ran(runs, tmp_path):
    result = CliRunner().invoke(cli, ["new", "my-run", "--track", "digits-classification", "--team", "t",
                                      "--author", "A Person"])
    assert result.exit_code == 0, result.output
    commands = printed_commands(result.output)
    joined = " && ".join(commands)
    assert "python " in joined and "run.py" in joined and "speedrun validate " in joined, result.output
    fill_placeholders(runs / "digits-classification" / "my-run" / "run.py")
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    assert (runs / "digits-classification" / "my-run" / "speedrun_analysis.json").is_file()


def test_a_wrong_track_lists_the_tracks(runs):
    result = CliRunner().invoke(cli, ["new", "my-run", "--track", "digits"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "'digits'" in result.output and "--track" in result.output
    assert "\n  digits-classification: Digits classification (8x8), samples-seen track\n" in result.output
    assert "\n  maxclip: MaxCLIP" in result.output
    assert not (runs / "digits" / "my-run").exists()


def test_the_new_run_starts_with_placeholders_not_the_baselines_words(runs):
    result = CliRunner().invoke(cli, ["new", "my-run", "--track", "digits-classification"])
    assert result.exit_code == 0, result.output
    run = runs / "digits-classification" / "my-run"
    text = (run / "run.py").read_text(encoding="utf-8")
    assert "Two-layer MLP (64-128-10), SGD with Nesterov" not in text
    assert "Stable across seeds; no divergence observed." not in text
    assert text.count(PLACEHOLDER_MARK) == 3  # description, changes, notes
    compile(text, "run.py", "exec")
    # The training code itself is the baseline's, untouched.
    assert text.split("def main()")[0] == (BASELINE / "run.py").read_text(encoding="utf-8").split("def main()")[0]

    subprocess.run(["python", str(run / "run.py")], check=True, capture_output=True, timeout=300)
    analysis = json.loads((run / "speedrun_analysis.json").read_text())
    assert all(analysis[f].startswith(PLACEHOLDER_MARK) for f in ("description", "changes", "notes"))
    refused = CliRunner().invoke(cli, ["validate", "--no-flops", str(run), "--format", "json"])
    assert refused.exit_code == 1, refused.output
    (checked,) = json.loads(refused.stdout)["runs"]
    assert {(e["rule"], e["path"]) for e in checked["errors"]} == {
        ("placeholder-text", "$.description"), ("placeholder-text", "$.notes"), ("changes-missing", "$.changes")}
    assert all(e["hint"] for e in checked["errors"])

    fill_placeholders(run / "run.py")
    subprocess.run(["python", str(run / "run.py")], check=True, capture_output=True, timeout=300)
    accepted = CliRunner().invoke(cli, ["validate", "--no-flops", str(run)])
    assert accepted.exit_code == 0, accepted.output


def test_a_constrained_run_keeps_the_frozen_script_and_marks_its_config(runs):
    result = CliRunner().invoke(cli, ["new", "my-clip", "--track", "maxclip"])
    assert result.exit_code == 0, result.output
    run, reference = runs / "maxclip" / "my-clip", runs / "maxclip" / "_reference"
    assert (run / "run.py").read_bytes() == (reference / "run.py").read_bytes()
    config = (run / "config.yaml").read_text(encoding="utf-8")
    # description, notes and changes: the frozen run.py copies all three from the config into the analysis
    assert config.startswith("# MaxCLIP submission config") and config.count(PLACEHOLDER_MARK) == 3
    assert "changes: 'TODO (speedrun new):" in config
    assert "Reference: symmetric InfoNCE" not in config
    assert "runs/maxclip/my-clip/config.yaml" in result.output
