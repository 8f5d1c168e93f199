"""Offline checks of .github/workflows: the JSON Schema, zizmor's audits, and the security properties we rely on.

Nothing here contacts GitHub: check-jsonschema ships the workflow schema, and zizmor runs with --offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ["validate", "comment", "reproduce", "pages", "tests"]

# The action majors the project uses (pinned by major tag).
MAJORS = {
    "actions/checkout": "v7",
    "actions/setup-python": "v7",
    "actions/upload-artifact": "v7",
    "actions/download-artifact": "v8",
    "actions/github-script": "v9",
    "actions/upload-pages-artifact": "v5",
    "actions/deploy-pages": "v5",
}
# zizmor rules that may be silenced inline, each with a reason on the same line (see the workflows' headers).
ALLOWED_IGNORES = {"unpinned-uses", "dangerous-triggers", "self-hosted-runner"}
# Every write permission granted anywhere: (workflow, job, permission).
EXPECTED_WRITES = {
    ("comment", "comment", "pull-requests"),
    ("pages", "deploy", "pages"),
    ("pages", "deploy", "id-token"),
}


def tool(name: str) -> str | None:
    """The executable, from PATH or next to this interpreter (a venv that is not activated)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text(encoding="utf-8"))
    # PyYAML (YAML 1.1) reads the key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def jobs(wf: dict) -> dict:
    return wf["jobs"]


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def uses(step: dict, action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def all_steps(wf: dict):
    for job_id, job in jobs(wf).items():
        for step in steps(job):
            yield job_id, step


def run_scripts(wf: dict) -> list[str]:
    return [s["run"] for _, s in all_steps(wf) if "run" in s]


@pytest.fixture(scope="module", params=NAMES)
def name(request):
    return request.param


def test_the_workflows_are_all_there():
    assert sorted(p.stem for p in WORKFLOWS.glob("*.yml")) == sorted(NAMES)
    assert not list(WORKFLOWS.glob("*.yaml"))


# --- external checkers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"])
def test_check_jsonschema(name, schema):
    exe = tool("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install -c constraints.txt -e '.[dev]')")
    proc = subprocess.run([exe, "--builtin-schema", schema, str(WORKFLOWS / f"{name}.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_offline_has_no_findings():
    exe = tool("zizmor")
    if exe is None:
        pytest.skip("zizmor is not installed (pip install -c constraints.txt -e '.[dev]')")
    proc = subprocess.run([exe, "--offline", "--no-progress", "--color", "never", ".github/workflows/"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout, proc.stdout


def test_zizmor_ignores_are_few_known_and_explained(name):
    for lineno, line in enumerate((WORKFLOWS / f"{name}.yml").read_text(encoding="utf-8").splitlines(), 1):
        m = re.search(r"#\s*zizmor:\s*ignore\[([^\]]*)\](.*)$", line)
        if not m:
            continue
        rules = {r.strip() for r in m[1].split(",")}
        assert rules <= ALLOWED_IGNORES, f"{name}.yml:{lineno}: new zizmor ignore {rules - ALLOWED_IGNORES}"
        assert len(m[2].strip()) >= 15, f"{name}.yml:{lineno}: a zizmor ignore needs a reason on the same line"


# --- properties of every workflow --------------------------------------------------------------------------------

def test_top_level_permissions_are_empty_and_each_job_grants_its_own(name):
    wf = load(name)
    assert "permissions" in wf and wf["permissions"] == {}, f"{name}.yml must start from `permissions: {{}}`"
    for job_id, job in jobs(wf).items():
        assert isinstance(job.get("permissions"), dict), f"{name}.yml:{job_id} must grant its permissions"
        assert job["permissions"], f"{name}.yml:{job_id}: grant what the job needs, explicitly"
        assert "write-all" not in str(job["permissions"]) and "read-all" not in str(job["permissions"])


def test_write_permissions_are_exactly_the_expected_ones():
    writes = set()
    for name in NAMES:
        for job_id, job in jobs(load(name)).items():
            for perm, level in job["permissions"].items():
                assert level in ("read", "write", "none"), (name, job_id, perm, level)
                if level == "write":
                    writes.add((name, job_id, perm))
    assert writes == EXPECTED_WRITES


def test_every_job_has_a_timeout(name):
    for job_id, job in jobs(load(name)).items():
        assert isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 240, (name, job_id)


def test_no_pull_request_target_and_no_secrets(name):
    wf = load(name)
    assert "pull_request_target" not in (wf["on"] if isinstance(wf["on"], (dict, list)) else [wf["on"]])
    text = (WORKFLOWS / f"{name}.yml").read_text(encoding="utf-8")
    assert "pull_request_target" not in text
    assert "secrets." not in text, "no workflow needs a secret beyond github.token"


def test_run_scripts_take_no_template_expressions(name):
    """Inputs reach shell scripts through env vars only (zizmor's template-injection, stricter)."""
    for script in run_scripts(load(name)):
        assert "${{" not in script, script


def test_checkouts_never_persist_credentials(name):
    for job_id, step in all_steps(load(name)):
        if uses(step, "actions/checkout"):
            assert step.get("with", {}).get("persist-credentials") is False, (name, job_id)


def test_actions_are_first_party_at_current_majors(name):
    for job_id, step in all_steps(load(name)):
        if "uses" in step:
            action, _, ref = step["uses"].partition("@")
            assert action in MAJORS, f"{name}.yml:{job_id}: unexpected action {action}"
            assert ref == MAJORS[action], f"{name}.yml:{job_id}: {action}@{ref}, expected @{MAJORS[action]}"


def test_installs_take_cpu_torch_first_and_the_constraints(name):
    if name == "reproduce":
        pytest.skip("reproduce.yml runs on a GPU and installs the CUDA build of torch")
    scripts = "\n".join(run_scripts(load(name)))
    cpu = scripts.find("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu")
    # validate.yml installs from its checkout of the base commit, under trusted/.
    rest = re.search(r"pip install -c (trusted/)?constraints\.txt", scripts)
    assert rest and 0 <= cpu < rest.start(), name


# --- validate.yml ------------------------------------------------------------------------------------------------

def test_validate_runs_on_pull_request_with_a_read_only_token():
    wf = load("validate")
    assert set(wf["on"]) == {"pull_request"}
    pr = wf["on"]["pull_request"]
    assert set(pr["types"]) == {"opened", "synchronize", "reopened"}
    assert pr["paths"] == ["runs/**"]
    (job,) = jobs(wf).values()
    assert job["permissions"] == {"contents": "read"}
    trusted, pr = [s["with"] for s in steps(job) if uses(s, "actions/checkout")]
    assert trusted == {"ref": "${{ github.event.pull_request.base.sha }}", "path": "trusted",
                       "persist-credentials": False}
    assert pr == {"ref": "${{ github.event.pull_request.head.sha }}", "path": "pr", "persist-credentials": False,
                  "fetch-depth": 0}


def test_validate_installs_the_base_commits_tool_and_reads_the_pr_as_files():
    """Issue 10: the PR's edits to the validator cannot judge the PR. tests/test_trust_workflow.py runs the script."""
    job = next(iter(jobs(load("validate")).values()))
    st = steps(job)
    install = next(i for i, s in enumerate(st) if "pip install -c trusted/constraints.txt ./trusted" in s.get("run", ""))
    judge = next(i for i, s in enumerate(st) if "validate-pr.sh" in s.get("run", ""))
    assert install < judge
    assert st[judge]["run"].strip() == 'bash trusted/.github/scripts/validate-pr.sh trusted pr "$BASE_SHA" report'
    assert st[judge]["env"] == {"BASE_SHA": "${{ github.event.pull_request.base.sha }}",
                                "PR_AUTHOR": "${{ github.event.pull_request.user.login }}",
                                "AUTHOR_ASSOCIATION": "${{ github.event.pull_request.author_association }}"}
    assert "apt-get install -y bubblewrap" in st[install]["run"]
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in st[install]["run"]
    text = (WORKFLOWS / "validate.yml").read_text(encoding="utf-8")
    for forbidden in ("pip install -e", "-e .", "./pr", "PYTHONPATH", "working-directory", "python -m speedrun"):
        assert forbidden not in text, forbidden
    for s in st:
        assert not str(s.get("run", "")).lstrip().startswith(("pr/", "./pr/", "bash pr/")), s
    script = (ROOT / ".github" / "scripts" / "validate-pr.sh").read_text(encoding="utf-8")
    assert 'speedrun "${args[@]}"' in script and "--changed --base \"$base\"" in script
    assert "unset PYTHONPATH" in script and "PYTHONSAFEPATH=1" in script


def test_validate_uploads_the_report_even_when_the_run_is_invalid():
    job = next(iter(jobs(load("validate")).values()))
    names = [s.get("name") or s.get("uses") for s in steps(job)]
    scripts = "\n".join(s.get("run", "") for s in steps(job))
    script = (ROOT / ".github" / "scripts" / "validate-pr.sh").read_text(encoding="utf-8")
    assert "set +e" in script and '"$out/exit-code"' in script and '"$out/report.md"' in script
    for f in ("report/pr-number", "report/head-sha", "report/report.md", "$GITHUB_STEP_SUMMARY"):
        assert f in scripts
    env = {k: v for s in steps(job) for k, v in s.get("env", {}).items()}
    assert env["PR_NUMBER"] == "${{ github.event.number }}"
    assert env["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    upload_at = next(i for i, s in enumerate(steps(job)) if uses(s, "actions/upload-artifact"))
    upload = steps(job)[upload_at]
    assert upload["with"]["name"] == "speedrun-report" and upload["with"]["retention-days"] == 7
    fail_at = next(i for i, s in enumerate(steps(job)) if "exit 1" in s.get("run", ""))
    assert fail_at > upload_at, names


# --- comment.yml -------------------------------------------------------------------------------------------------

def test_comment_is_triggered_by_the_validate_workflow_only():
    wf, validate = load("comment"), load("validate")
    assert set(wf["on"]) == {"workflow_run"}
    trigger = wf["on"]["workflow_run"]
    assert trigger["workflows"] == [validate["name"]] and trigger["types"] == ["completed"]
    (job,) = jobs(wf).values()
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    assert job["permissions"] == {"pull-requests": "write", "actions": "read"}


def test_comment_never_checks_out_pr_code():
    wf = load("comment")
    text = (WORKFLOWS / "comment.yml").read_text(encoding="utf-8")
    for forbidden in ("refs/pull", "github.head_ref", "pull_request.head", "github.event.pull_request"):
        assert forbidden not in text, forbidden
    pr_refs = ("head_sha", "head_branch", "head_repository", "head_commit", "pull_requests")
    for _, step in all_steps(wf):
        for key, value in step.get("with", {}).items():
            assert not any(r in str(value) for r in pr_refs), f"step input {key}={value} points at PR code"
    checkouts = [s for _, s in all_steps(wf) if uses(s, "actions/checkout")]
    assert checkouts, "the tool is installed from a checkout of the default branch"
    for step in checkouts:
        assert step["with"] == {"ref": "${{ github.event.repository.default_branch }}", "persist-credentials": False}
        assert "repository" not in step["with"]
    for script in run_scripts(wf):
        assert not re.search(r"\bgit\s+(fetch|checkout|switch|pull|clone)\b", script), script
        assert "pip install -e" not in script and "pip install -c constraints.txt -e" not in script


def test_comment_takes_the_head_sha_from_the_event_and_the_report_from_the_triggering_run():
    job = next(iter(jobs(load("comment")).values()))
    download = next(s for s in steps(job) if uses(s, "actions/download-artifact"))
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["name"] == "speedrun-report"
    assert download["with"]["github-token"] == "${{ github.token }}"
    assert download["with"]["path"].startswith("${{ runner.temp }}"), "artifact files stay out of the workspace"
    post = next(s for s in steps(job) if "speedrun comment" in s.get("run", ""))
    assert post["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert post["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert '--head-sha "$HEAD_SHA"' in post["run"] and "--pr " in post["run"] and "--body-file" in post["run"]
    assert "head-sha" not in post["run"].replace("--head-sha", ""), "never the SHA from the artifact"
    order = [i for i, s in enumerate(steps(job)) if uses(s, "actions/checkout") or uses(s, "actions/download-artifact")]
    assert uses(steps(job)[order[0]], "actions/checkout"), "install the tool before any artifact is on disk"


# --- reproduce.yml -----------------------------------------------------------------------------------------------

def test_reproduce_is_gated():
    wf = load("reproduce")
    assert set(wf["on"]) == {"workflow_dispatch"}
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert {"pr", "sha", "run_dir"} <= set(inputs)
    assert all(inputs[k]["required"] is True for k in ("pr", "sha", "run_dir"))
    assert wf["concurrency"]["group"] == "gpu-reproduction"
    assert wf["concurrency"]["cancel-in-progress"] is False
    (job,) = jobs(wf).values()
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    assert job["environment"] == "gpu-reproduction"
    assert job["timeout-minutes"] == 240
    assert job["permissions"] == {"contents": "read"}


def test_reproduce_checks_inputs_and_sha_before_running_anything():
    job = next(iter(jobs(load("reproduce")).values()))
    st = steps(job)
    check = next(i for i, s in enumerate(st) if "RUN_DIR" in s.get("env", {}) and "=~" in s.get("run", ""))
    checkout = next(i for i, s in enumerate(st) if uses(s, "actions/checkout"))
    verify = next(i for i, s in enumerate(st) if "git rev-parse HEAD" in s.get("run", ""))
    install = next(i for i, s in enumerate(st) if "pip install" in s.get("run", ""))
    reproduce = next(i for i, s in enumerate(st) if "speedrun reproduce" in s.get("run", ""))
    assert check < checkout < verify < install < reproduce
    assert st[checkout]["with"]["ref"] == "refs/pull/${{ inputs.pr }}/head"
    assert '"$SHA"' in st[verify]["run"] and st[verify]["env"]["SHA"] == "${{ inputs.sha }}"
    assert 'speedrun reproduce "$RUN_DIR" --device cuda --json' in st[reproduce]["run"]
    assert any(uses(s, "actions/upload-artifact") for s in st[reproduce:])
    for regex in (r"^[1-9][0-9]{0,6}$", r"^[0-9a-f]{40}$", r"^runs/[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$"):
        assert regex in st[check]["run"], regex


def test_reproduce_records_a_bound_reproduction_into_the_artifact():
    job = next(iter(jobs(load("reproduce")).values()))
    step = next(s for s in steps(job) if "speedrun reproduce" in s.get("run", ""))
    script = " ".join(step["run"].replace("\\\n", " ").split())
    assert ('--record --head-sha "$SHA" --pr "$PR" --workflow-run "$WORKFLOW_RUN"') in script
    assert step["env"]["WORKFLOW_RUN"] == \
        "${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}"
    assert (step["env"]["SHA"], step["env"]["PR"]) == ("${{ inputs.sha }}", "${{ inputs.pr }}")
    assert 'cp -- "$recorded" "$out/record/"' in script
    upload = next(s for s in steps(job) if uses(s, "actions/upload-artifact"))
    assert upload["with"]["path"] == "${{ runner.temp }}/reproduction/"


@pytest.mark.parametrize("pr,sha,run_dir,ok", [
    ("7", "a" * 40, "runs/digits-classification/mlp-baseline", True),
    ("1234567", "0123456789abcdef" * 2 + "01234567", "runs/a.b/c_d-e", True),
    ("0", "a" * 40, "runs/t/r", False),
    ("12345678", "a" * 40, "runs/t/r", False),
    ("7; rm -rf /", "a" * 40, "runs/t/r", False),
    ("7", "A" * 40, "runs/t/r", False),
    ("7", "a" * 39, "runs/t/r", False),
    ("7", "a" * 40, "runs/../etc", False),
    ("7", "a" * 40, "runs/t/r/x", False),
    ("7", "a" * 40, "/etc/passwd", False),
    ("7", "a" * 40, "runs/t/r\nx", False),
    ("7", "a" * 40, "runs/t/$(id)", False),
])
def test_reproduce_input_check_script(pr, sha, run_dir, ok):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    job = next(iter(jobs(load("reproduce")).values()))
    script = next(s["run"] for s in steps(job) if "=~" in s.get("run", ""))
    proc = subprocess.run([bash, "-e", "-c", script], env={"PR": pr, "SHA": sha, "RUN_DIR": run_dir, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr


# --- pages.yml and tests.yml -------------------------------------------------------------------------------------

def test_pages_builds_read_only_and_only_deploy_can_publish():
    wf = load("pages")
    assert wf["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in wf["on"]
    assert wf["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    build, deploy = jobs(wf)["build"], jobs(wf)["deploy"]
    assert build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["needs"] in ("build", ["build"])
    assert deploy["environment"] == {"name": "github-pages", "url": "${{ steps.deployment.outputs.page_url }}"}
    scripts = "\n".join(s.get("run", "") for s in steps(build))
    assert "speedrun build --out site" in scripts and "SOURCE_DATE_EPOCH" in scripts
    upload = next(s for s in steps(build) if uses(s, "actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "site"
    (dep,) = [s for s in steps(deploy) if uses(s, "actions/deploy-pages")]
    assert dep["id"] == "deployment"
    assert not any(uses(s, "actions/checkout") for s in steps(deploy)), "the deploy job runs no repository code"


def test_tests_workflow_runs_pytest_for_code_not_runs():
    wf = load("tests")
    assert {"push", "pull_request"} <= set(wf["on"])
    for event in ("push", "pull_request"):
        assert wf["on"][event]["paths-ignore"] == ["runs/**"]
    (job,) = jobs(wf).values()
    assert job["permissions"] == {"contents": "read"}
    scripts = "\n".join(run_scripts(wf))
    assert 'pip install -c constraints.txt -e ".[dev]"' in scripts
    assert re.search(r"^\s*pytest\s*$", scripts, re.M)
