"""The participant loop works as written: the commands of README.md's "Submit a run" are run literally (only the
placeholders filled in, the edit step done by hand), in a real clone of the project's digits track, up to the pull
request's check. CONTRIBUTING.md names the same commands."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDERS = {"<your-run>": "wider-mlp", "<track>": "digits-classification", "<team>": "wide",
                "<name>": "A Person"}
GIT = {"GIT_AUTHOR_NAME": "p", "GIT_AUTHOR_EMAIL": "p@example.org", "GIT_COMMITTER_NAME": "p",
       "GIT_COMMITTER_EMAIL": "p@example.org"}


def readme_commands() -> list[str]:
    """The shell block under README.md's "## Submit a run", comments dropped, placeholders filled in."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Submit a run", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        for placeholder, value in PLACEHOLDERS.items():
            line = line.replace(placeholder, value)
        commands.append(line)
    return commands


def contributing_commands() -> set[str]:
    """The participant's commands that CONTRIBUTING.md quotes inline, placeholders filled in."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8").split("## What CI says", 1)[0]
    found = set()
    for span in re.findall(r"`((?:speedrun|python) [^`]+)`", text):
        for placeholder, value in PLACEHOLDERS.items():
            span = span.replace(placeholder, value)
        found.add(span)
    return found


def edit(run: Path) -> None:
    """The participant's change: a wider hidden layer, their own description and changes, no notes."""
    script = run / "run.py"
    text = script.read_text(encoding="utf-8").replace('"hidden": 128', '"hidden": 256')
    text = re.sub(r'^(\s*)"description": .*', r'\1"description": "The baseline MLP, 256 wide.",', text, flags=re.M)
    text = re.sub(r'^(\s*)"changes": .*', r'\1"changes": "Hidden layer 256 wide instead of 128.",', text, flags=re.M)
    text = re.sub(r'\n\s*"notes": .*', "", text)
    script.write_text(text, encoding="utf-8")


def test_readme_and_contributing_agree_on_the_loop():
    readme = readme_commands()
    assert readme[0].startswith("speedrun new wider-mlp --track digits-classification")
    assert {c for c in contributing_commands() if c.startswith(("speedrun new ", "speedrun validate runs/"))} <= set(
        readme), contributing_commands()
    assert "python runs/digits-classification/wider-mlp/run.py" in contributing_commands() & set(readme)
    assert any(c.startswith("speedrun validate --changed --base origin/main") for c in readme)
    for doc in ("README.md", "CONTRIBUTING.md"):
        assert "copy `runs/digits-classification/mlp-baseline/`" not in (ROOT / doc).read_text(encoding="utf-8")


def test_the_loop_runs_as_written(tmp_path):
    upstream = tmp_path / "upstream"
    shutil.copytree(ROOT / "runs" / "digits-classification", upstream / "runs" / "digits-classification",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (upstream / ".gitignore").write_text("__pycache__/\n")
    env = {**os.environ, **GIT}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "the kit"]):
        subprocess.run(["git", *args], cwd=upstream, check=True, env=env)
    fork = tmp_path / "fork"
    subprocess.run(["git", "clone", "-q", str(upstream), str(fork)], check=True, env=env)
    subprocess.run(["git", "checkout", "-q", "-b", "speedrun/wider-mlp"], cwd=fork, check=True, env=env)

    outputs = []
    for command in readme_commands():
        if command.startswith("python "):
            edit(fork / "runs" / "digits-classification" / "wider-mlp")  # the "edit run.py" line above it
        done = subprocess.run(["bash", "-c", command], cwd=fork, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
        outputs.append(done.stdout)
    report = outputs[-1]
    assert "✅ All submissions are valid." in report
    assert "### ✅ `runs/digits-classification/wider-mlp` on track `digits-classification`: valid" in report
    assert re.search(r"\| would-be rank \| would rank \d of 2 on digits-classification \|", report), report
    assert "current record `mlp-baseline`" in report
    assert shlex.split(readme_commands()[-1])[:3] == ["speedrun", "validate", "--changed"]
