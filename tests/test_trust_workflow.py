"""A hostile pull request played through a real git repository with the steps validate.yml takes.

The base commit holds this project's tree and the digits track. The PR edits `validator/` so that every report says
valid, and adds a run whose claim is broken. The tool is installed (for real, non-editable, offline) from the base
checkout, and `.github/scripts/validate-pr.sh` (the script the workflow runs) judges the PR's checkout: the verdict is
the base's. The control runs the PR's own code on the same checkout and gets "valid", so the test can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(".github/scripts/validate-pr.sh")
TRACK = "runs/digits-classification"
RUN = f"{TRACK}/hostile-run"
# Appended to the PR's validator/result.py: every run, track and policy check passes and nothing is reported.
HOSTILE_EDIT = """

# The PR's edit: nothing is ever wrong.
Report.valid = property(lambda self: True)
RunResult.valid = property(lambda self: True)
TrackResult.valid = property(lambda self: True)
RunResult.errors = property(lambda self: [])
RunResult.warnings = property(lambda self: [])
TrackResult.problems = property(lambda self: [], lambda self, value: None)
Report.policy = property(lambda self: [], lambda self, value: None)
"""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env,
                          timeout=120).stdout


def project_files() -> list[str]:
    """This working tree's files (committed or not, as the lead will commit them), runs/ left to the tests."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    keep = [f"{TRACK}/track.yaml", f"{TRACK}/mlp-baseline/"]
    return [rel for rel in listed if rel and (ROOT / rel).is_file() and not (ROOT / rel).is_symlink()
            and (not rel.startswith("runs/") or any(rel == k or rel.startswith(k) for k in keep))]


def hostile_pr_commit(repo: Path) -> None:
    result_py = repo / "validator" / "result.py"
    result_py.write_text(result_py.read_text() + HOSTILE_EDIT)
    run = repo / RUN
    shutil.copytree(repo / TRACK / "mlp-baseline", run)
    claim = json.loads((run / "speedrun_analysis.json").read_text())
    claim.update(name="hostile-run", team="mallory")
    claim["training"]["steps"] = 511  # 511 x 64 is not the 32,768 samples claimed
    (run / "speedrun_analysis.json").write_text(json.dumps(claim, indent=2))


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory):
    """origin (base, then the PR), and the two checkouts validate.yml makes: trusted/ at the base, pr/ at the head."""
    root = tmp_path_factory.mktemp("trust")
    origin = root / "origin"
    for rel in project_files():
        (origin / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, origin / rel)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "base")
    base = git(origin, "rev-parse", "HEAD").strip()
    git(origin, "checkout", "-q", "-b", "hostile")
    hostile_pr_commit(origin)
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "my run (and a small fix to the validator)")
    head = git(origin, "rev-parse", "HEAD").strip()
    git(root, "clone", "-q", "--no-checkout", str(origin), "trusted")
    git(root / "trusted", "checkout", "-q", "--detach", base)
    git(root, "clone", "-q", "--no-checkout", str(origin), "pr")
    git(root / "pr", "checkout", "-q", "--detach", head)
    return root, base


@pytest.fixture(scope="module")
def trusted_env(checkouts):
    """The base's tool installed as the workflow installs it (non-editable, from trusted/), offline: a venv that
    borrows this interpreter's packages for the dependencies."""
    root, _ = checkouts
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "./trusted"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "SPEEDRUN_DEBUG")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    located = subprocess.run([str(python), "-c", "import validator; print(validator.__file__)"], cwd=root,
                             capture_output=True, text=True, env=env, check=True).stdout
    assert located.startswith(str(venv)), located
    return env


def run_script(root: Path, base: str, env: dict, out: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "trusted" / SCRIPT), "trusted", "pr", base, str(out)], cwd=root,
                          capture_output=True, text=True, env={**env, **extra}, timeout=300)


@pytest.fixture(scope="module")
def judged(checkouts, trusted_env):
    """The script run on the PR by a contributor and by an organisation member (each recounts FLOPs in the sandbox,
    as the workflow does), and the control: the PR's own code on the same checkout."""
    root, base = checkouts
    done = {who: run_script(root, base, trusted_env, root / f"report-{who}", AUTHOR_ASSOCIATION=who,
                            PR_AUTHOR="mallory") for who in ("CONTRIBUTOR", "MEMBER")}
    # What the old workflow did: the PR's code on the import path (an editable install of the checkout). Its FLOP
    # count would change nothing, so it is skipped to keep the test short.
    done["control"] = subprocess.run(
        [sys.executable, "-m", "speedrun", "validate", "--changed", "--base", base, "--format", "markdown",
         "--no-flops"], cwd=root / "pr", capture_output=True, text=True, timeout=300,
        env={**trusted_env, "PYTHONPATH": str(root / "pr")})
    return root, done


def verdict(root: Path, who: str) -> tuple[str, str]:
    out = root / f"report-{who}"
    return (out / "exit-code").read_text().strip(), (out / "report.md").read_text()


def test_the_base_commits_tool_judges_a_pr_that_rewrites_the_validator(judged):
    root, done = judged
    proc = done["CONTRIBUTOR"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    code, report = verdict(root, "CONTRIBUTOR")
    assert code == "1", proc.stdout + proc.stderr
    assert report.startswith("<!-- speedrun-report -->")
    assert "`samples-inconsistent`" in report and "hostile-run" in report, report
    assert "`pr-outside-run`" in report and "validator/result.py" in report, report
    assert "All submissions are valid" not in report
    assert proc.stdout.splitlines()[0].startswith("judging with " + os.path.realpath(root / "venv"))
    # The workflow log cannot take commands from what the validator printed.
    assert any(line.startswith("::stop-commands::") for line in proc.stdout.splitlines())


def test_control_the_prs_own_code_would_have_called_it_valid(judged):
    """The same PR, judged by its own code, passes: so the test above can fail."""
    _, done = judged
    proc = done["control"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All submissions are valid" in proc.stdout
    assert "samples-inconsistent" not in proc.stdout and "pr-outside-run" not in proc.stdout


@pytest.mark.parametrize("who,maintainer", [("MEMBER", True), ("CONTRIBUTOR", False)])
def test_only_owners_and_members_get_the_maintainers_policy(judged, who, maintainer):
    """The PR changes validator/, which passes the policy only for a maintainer; the broken claim fails either way."""
    root, done = judged
    code, report = verdict(root, who)
    assert done[who].returncode == 0 and code == "1", done[who].stderr
    assert ("pr-outside-run" in report) is not maintainer, report
    ran = next(line for line in done[who].stdout.splitlines() if line.startswith("running: speedrun validate"))
    assert "--pr-author mallory" in ran and ("--maintainer" in ran) is maintainer, ran
    assert "samples-inconsistent" in report


def test_the_script_refuses_to_judge_with_a_tool_imported_from_the_pr(checkouts, tmp_path):
    """This checkout's own editable install is exactly that case: pointed at it as the PR, the tripwire fires."""
    root, base = checkouts
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    proc = subprocess.run(["bash", str(ROOT / SCRIPT), str(root / "trusted"), str(ROOT), base, str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    if "would be imported from the PR checkout" not in proc.stderr:
        pytest.skip("this interpreter's speedrun is not an editable install of this checkout")
    assert proc.returncode == 2 and not (tmp_path / "o" / "exit-code").exists()


@pytest.mark.parametrize("args,needle", [
    (["trusted", "pr", "HEAD", "o"], "BASE_SHA must be"),
    (["trusted", "pr", "0" * 40, "pr/report"], "outside the PR checkout"),
    (["trusted", "pr", "0" * 40, "o"], "does not have the base commit"),
    (["trusted", "pr", "o"], "usage"),
])
def test_the_script_refuses_bad_arguments(checkouts, trusted_env, args, needle):
    root, _ = checkouts
    proc = subprocess.run(["bash", str(root / "trusted" / SCRIPT), *args], cwd=root, capture_output=True, text=True,
                          env=trusted_env, timeout=60)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
