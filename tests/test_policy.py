"""Pull requests played through real temporary git repositories: policy, frozen code, rate limits, ZIP imports."""

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from speedrun.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "runs" / "digits-classification"
DAY = 86400
T0 = 1_790_000_000  # 2026-09-21 14:13:20 UTC, when the repository's history starts


def git(repo: Path, *args: str, when: int | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{when} +0000"
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def commit(repo: Path, message: str, when: int) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, when=when)


CHANGES = "The baseline retrained as is (a test's copy)."


def new_run(track_dir: Path, name: str, team: str = "team-a", source: str = "mlp-baseline",
            changes: str | None = CHANGES) -> Path:
    run = track_dir / name
    shutil.copytree(track_dir / source, run, ignore=shutil.ignore_patterns("__pycache__", "reproductions"))
    data = json.loads((run / "speedrun_analysis.json").read_text())
    data.update(name=name, team=team, changes=changes)
    if changes is None:
        del data["changes"]
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))
    return run


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """main: the digits track with its baseline, and a MaxCLIP-style constrained track (1 run per team per 14 days,
    48 h to fix) whose reference is the digits script plus an editable loss and a config."""
    repo = tmp_path / "repo"
    (repo / "runs").mkdir(parents=True)
    shutil.copytree(DIGITS, repo / "runs" / "digits-classification", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "README.md").write_text("kit\n")
    (repo / ".gitignore").write_text("__pycache__/\nsite/\n")

    clip = repo / "runs" / "clip-mini"
    ref = clip / "_reference"
    (ref / "editable").mkdir(parents=True)
    shutil.copy(DIGITS / "mlp-baseline" / "run.py", ref / "run.py")
    (ref / "editable" / "loss.py").write_text("def loss(logits, y):\n    return logits.logsumexp(1).mean()\n")
    (ref / "config.yaml").write_text("lr: 0.05\n")
    track = yaml.safe_load((DIGITS / "track.yaml").read_text())
    track.update(id="clip-mini", title="Constrained digits",
                 constrained={"editable": ["editable/**"], "config": "config.yaml"},
                 submission_policy={"max_submissions": 1, "window_days": 14, "fix_window_hours": 48})
    (clip / "track.yaml").write_text(yaml.safe_dump(track, sort_keys=False))
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(cli, ["freeze", "runs/clip-mini"])
    assert result.exit_code == 0, result.output
    assert json.loads((clip / "frozen.json").read_text())["files"].keys() == {"config.yaml", "editable/loss.py", "run.py"}

    git(repo, "init", "-q", "-b", "main")
    commit(repo, "kit", T0)
    return repo


def constrained_run(repo: Path, name: str, team: str, github: str | None = None) -> Path:
    clip = repo / "runs" / "clip-mini"
    run = clip / name
    shutil.copytree(clip / "_reference", run)
    base = DIGITS / "mlp-baseline"
    shutil.copytree(base / "logs", run / "logs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(base / "README.md", run / "README.md")
    data = json.loads((base / "speedrun_analysis.json").read_text())
    data.update(track="clip-mini", name=name, team=team, changes="A log-softmax loss instead of the reference's.")
    if github:
        data["authors"] = [{"name": team, "github": github}]
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))
    (run / "editable" / "loss.py").write_text("def loss(logits, y):\n    return -logits.log_softmax(1)[range(len(y)), y].mean()\n")
    (run / "config.yaml").write_text("lr: 0.1\n")
    return run


def validate_changed(*extra: str):
    return CliRunner().invoke(cli, ["validate", "--changed", "--base", "main", "--no-flops", "--format", "json", *extra])


def report(result) -> dict:
    return json.loads(result.output[result.output.index("{"):])


def rules_of(payload: dict) -> set[str]:
    rules = {p["rule"] for p in payload["policy"]}
    for r in payload["runs"]:
        rules |= {e["rule"] for e in r["errors"]}
    return rules


def test_a_good_new_run_passes(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    new_run(repo / "runs" / "digits-classification", "wider-mlp")
    commit(repo, "add run", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 0, result.output
    payload = report(result)
    assert [Path(r["path"]).name for r in payload["runs"]] == ["wider-mlp"]
    assert payload["policy"] == [] and payload["valid"]


def test_uncommitted_run_is_found_too(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    new_run(repo / "runs" / "digits-classification", "local-try")
    result = validate_changed()
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in report(result)["runs"]] == ["local-try"]


def test_editing_another_run_fails(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    new_run(repo / "runs" / "digits-classification", "mine")
    readme = repo / "runs" / "digits-classification" / "mlp-baseline" / "README.md"
    readme.write_text(readme.read_text() + "\nworse than mine\n")
    commit(repo, "add run and touch another", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 1
    assert "pr-multiple-runs" in rules_of(report(result))


def test_editing_a_track_file_fails_unless_maintainer(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    new_run(repo / "runs" / "digits-classification", "mine")
    track = repo / "runs" / "digits-classification" / "track.yaml"
    track.write_text(track.read_text().replace("limit: 32768", "limit: 65536"))
    commit(repo, "raise my budget", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 1
    policy = report(result)["policy"]
    assert [(p["rule"], p["file"]) for p in policy] == [("pr-outside-run", "runs/digits-classification/track.yaml")]
    assert validate_changed("--maintainer").exit_code == 0


def test_code_change_is_outside_the_run(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    (repo / "README.md").write_text("hacked\n")
    commit(repo, "edit kit", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 1
    assert rules_of(report(result)) == {"pr-outside-run", "pr-no-run"}


def test_symlink_binary_and_large_files_are_refused(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    run = new_run(repo / "runs" / "digits-classification", "mine")
    (run / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (run / "logs" / "trace.bin").write_bytes(b"\x00\x01" * 100)  # binaries under logs/ are fine
    (run / "big.txt").write_text("x" * (2 * 2**20))
    os.symlink("/etc/passwd", run / "passwd")
    commit(repo, "add run with extras", T0 + DAY)
    result = validate_changed("--max-file-mb", "1")
    assert result.exit_code == 1
    policy = {(p["rule"], p["file"].rsplit("/", 1)[-1]) for p in report(result)["policy"]}
    assert policy == {("pr-binary-file", "weights.bin"), ("pr-file-too-large", "big.txt"), ("pr-symlink", "passwd")}


def test_editing_a_frozen_file_fails_and_names_it(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    run = constrained_run(repo, "my-loss", "team-a")
    (run / "run.py").write_text((run / "run.py").read_text().replace('"hidden": 128', '"hidden": 129'))
    (run / "notes.txt").write_text("outside the editable folder\n")
    commit(repo, "tamper", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 1
    errors = report(result)["runs"][0]["errors"]
    found = {(e["rule"], e["path"]) for e in errors}
    assert ("frozen-file-modified", "$files['run.py']") in found
    assert ("frozen-extra-file", "$files['notes.txt']") in found
    assert all(e["rule"].startswith("frozen-") for e in errors), errors


def test_edits_inside_the_editable_folder_pass(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    constrained_run(repo, "my-loss", "team-a")
    commit(repo, "constrained run", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 0, result.output


def test_second_submission_inside_the_window_is_refused_with_the_date(repo):
    git(repo, "checkout", "-q", "-b", "first")
    constrained_run(repo, "first-try", "team-a")
    commit(repo, "first", T0 + DAY)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "first", "-m", "merge first", when=T0 + DAY + 60)

    git(repo, "checkout", "-q", "-b", "second")
    constrained_run(repo, "second-try", "team-a")
    commit(repo, "second", T0 + 5 * DAY)
    result = validate_changed()
    assert result.exit_code == 1
    errors = [e for e in report(result)["runs"][0]["errors"] if e["rule"] == "rate-limit"]
    assert len(errors) == 1
    assert "2026-09-22" in errors[0]["message"]            # the earlier submission
    assert "2026-10-06 14:13 UTC" in errors[0]["message"]  # 14 days later: when the team may submit again

    # another team is not limited by team-a's submission
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "other-team")
    constrained_run(repo, "their-try", "team-b")
    commit(repo, "other team", T0 + 5 * DAY)
    assert validate_changed().exit_code == 0


def test_a_fix_within_48_hours_is_not_a_new_submission(repo):
    git(repo, "checkout", "-q", "-b", "first")
    constrained_run(repo, "first-try", "team-a", github="team-a-dev")
    commit(repo, "first", T0 + DAY)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "first", "-m", "merge", when=T0 + DAY + 60)

    git(repo, "checkout", "-q", "-b", "fix")
    cfg = repo / "runs" / "clip-mini" / "first-try" / "config.yaml"
    cfg.write_text("lr: 0.09\n")
    commit(repo, "fix lr", T0 + DAY + 24 * 3600)
    assert validate_changed("--pr-author", "team-a-dev").exit_code == 0  # the run's author fixes their merged run

    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "late-fix")
    cfg.write_text("lr: 0.08\n")
    commit(repo, "late fix", T0 + 4 * DAY)  # past 48 h: counts as a submission, and the window is used
    result = validate_changed("--pr-author", "team-a-dev")
    assert result.exit_code == 1
    assert "rate-limit" in rules_of(report(result))


def _zip(path: Path, entries: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return path


def test_zip_submission_unpacks_over_the_reference(repo, tmp_path):
    z = _zip(tmp_path / "sub.zip", {"submission/editable/loss.py": "def loss(l, y):\n    return 0\n",
                                    "submission/config.yaml": "lr: 0.2\n"})
    result = CliRunner().invoke(cli, ["import-zip", str(z), "--track", "clip-mini", "--name", "zipped"])
    assert result.exit_code == 0, result.output
    run = repo / "runs" / "clip-mini" / "zipped"
    assert (run / "config.yaml").read_text() == "lr: 0.2\n"
    assert (run / "run.py").read_bytes() == (repo / "runs" / "clip-mini" / "_reference" / "run.py").read_bytes()
    assert "pending" in result.output


@pytest.mark.parametrize("entries, rule", [
    ({"editable/../../../evil.py": "x"}, "zip-unsafe-entry"),
    ({"/etc/cron.d/x": "x"}, "zip-unsafe-entry"),
    ({"editable/loss.py": "x", "run.py": "print('frozen!')"}, "zip-frozen-file"),
])
def test_bad_zip_is_refused_and_nothing_is_written(repo, tmp_path, entries, rule):
    z = _zip(tmp_path / "bad.zip", entries)
    before = sorted(p.relative_to(repo) for p in repo.rglob("*") if ".git" not in p.parts)
    result = CliRunner().invoke(cli, ["import-zip", str(z), "--track", "clip-mini", "--name", "evil"])
    assert result.exit_code == 1
    assert rule in result.output and "nothing was written" in result.output
    assert "Traceback" not in result.output
    after = sorted(p.relative_to(repo) for p in repo.rglob("*") if ".git" not in p.parts)
    assert after == before
    assert not (tmp_path / "evil.py").exists()


def test_zip_with_a_symlink_entry_is_refused(repo, tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("editable/loss.py")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    result = CliRunner().invoke(cli, ["import-zip", str(z), "--track", "clip-mini", "--name", "linked"])
    assert result.exit_code == 1 and "zip-unsafe-entry" in result.output
    assert not (repo / "runs" / "clip-mini" / "linked").exists()


def test_stale_manifest_is_reported_on_the_track(repo):
    (repo / "runs" / "clip-mini" / "_reference" / "run.py").write_text("changed\n")
    result = CliRunner().invoke(cli, ["validate", "runs/clip-mini", "--no-flops"])
    assert result.exit_code == 1
    assert "frozen-manifest-stale" in result.output and "run.py" in result.output


def test_markdown_comment_for_a_pr(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    new_run(repo / "runs" / "digits-classification", "wider-mlp")
    commit(repo, "add run", T0 + DAY)
    result = CliRunner().invoke(cli, ["validate", "--changed", "--base", "main", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    body = result.stdout
    assert body.startswith("<!-- speedrun-report -->")
    assert "✅ All submissions are valid." in body
    assert "| total training FLOPs |" in body and "rules v1.0" in body


def test_the_pr_comment_shows_where_the_run_would_rank(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    new_run(repo / "runs" / "digits-classification", "wider-mlp")
    commit(repo, "add run", T0 + DAY)
    result = CliRunner().invoke(cli, ["validate", "--changed", "--base", "main", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    body = result.stdout
    assert "| standing on `digits-classification` | |" in body
    assert "| samples to Top-1 accuracy (val) ≥ 0.95 | 11,421 ± 120 samples |" in body
    # A copy of the baseline ties with it: it shares the first rank and does not beat the record.
    assert "| would-be rank | would rank 1 of 2 on digits-classification |" in body
    assert "| record | current record `mlp-baseline` (11,421 ± 120 samples): does not beat it |" in body
    assert ("| significance (against the threshold) | record claim (one-sided-t, final Top-1 accuracy (val) against "
            "the threshold 0.95, α = 0.05): p = 0.0151, significant |") in body
    text = CliRunner().invoke(cli, ["validate", "--changed", "--base", "main", "--no-flops"]).stdout
    assert "standing: would rank 1 of 2 on digits-classification; current record mlp-baseline" in text


def test_a_new_run_must_say_what_it_changes(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    run = new_run(repo / "runs" / "digits-classification", "wider-mlp", changes=None)
    commit(repo, "add run", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 1, result.output
    (checked,) = report(result)["runs"]
    assert [(e["rule"], e["path"]) for e in checked["errors"]] == [("changes-missing", "$.changes")]
    assert "changes" in checked["errors"][0]["hint"] and "one line" in checked["errors"][0]["hint"]
    markdown = CliRunner().invoke(cli, ["validate", "--changed", "--base", "main", "--no-flops", "--format", "markdown"])
    assert markdown.exit_code == 1 and "`changes-missing`" in markdown.stdout

    # Outside a pull request (a merged run from before the field existed) nothing is asked.
    alone = CliRunner().invoke(cli, ["validate", "--no-flops", str(run.relative_to(repo))])
    assert alone.exit_code == 0, alone.output

    data = json.loads((run / "speedrun_analysis.json").read_text())
    data["changes"] = "Hidden layer 256 wide instead of 128."
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))
    assert validate_changed().exit_code == 0

    data["changes"] = "two\nlines"
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))
    two_lines = validate_changed()
    assert two_lines.exit_code == 1 and "$.changes" in two_lines.output


def test_editing_a_merged_run_without_changes_is_not_held_to_it(repo):
    run = merged_run(repo, "old-run", ["owner"])
    data = json.loads((run / "speedrun_analysis.json").read_text())
    del data["changes"]
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))
    commit(repo, "an old run, from before changes existed", T0 + 2 * DAY)
    git(repo, "checkout", "-q", "-b", "pr")
    (run / "README.md").write_text("A clearer write-up.\n")
    commit(repo, "edit my run", T0 + 3 * DAY)
    result = validate_changed("--pr-author", "owner")
    assert result.exit_code == 0, result.output
    assert "changes-missing" not in rules_of(report(result))


def test_the_scaffolds_placeholders_are_refused(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    run = new_run(repo / "runs" / "digits-classification", "fresh", changes="TODO (speedrun new): what this run "
                  "changes against the run it builds on, in one line.")
    data = json.loads((run / "speedrun_analysis.json").read_text())
    data.update(description="TODO (speedrun new): the approach in a few sentences.")
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))
    commit(repo, "add run", T0 + DAY)
    (checked,) = report(validate_changed())["runs"]
    assert {(e["rule"], e["path"]) for e in checked["errors"]} == {("placeholder-text", "$.description"),
                                                                  ("changes-missing", "$.changes")}


def test_missing_manifest_and_missing_frozen_file(repo):
    run = constrained_run(repo, "my-loss", "team-a")
    (run / "run.py").unlink()
    result = CliRunner().invoke(cli, ["validate", "runs/clip-mini/my-loss", "--no-flops", "--format", "json"])
    assert result.exit_code == 1
    errors = {(e["rule"], e["path"]) for e in report(result)["runs"][0]["errors"]}
    assert ("frozen-file-missing", "$files['run.py']") in errors

    (repo / "runs" / "clip-mini" / "frozen.json").unlink()
    result = CliRunner().invoke(cli, ["validate", "runs/clip-mini", "--no-flops", "--format", "json"])
    assert result.exit_code == 1
    track_errors = [e["rule"] for t in report(result)["tracks"] for e in t["errors"]]
    assert track_errors == ["frozen-manifest-missing"]


# --------------------------------------------------------------------------- merged runs and reproduction records


def merged_run(repo: Path, name: str, github: list[str | None], team: str = "team-owner") -> Path:
    """Merge a run into main whose authors declare these GitHub logins (None: an author without one)."""
    git(repo, "checkout", "-q", "-b", f"add-{name}")
    run = new_run(repo / "runs" / "digits-classification", name, team=team)
    path = run / "speedrun_analysis.json"
    data = json.loads(path.read_text())
    data["authors"] = [{"name": f"Author {i}", **({"github": g} if g else {})} for i, g in enumerate(github)]
    path.write_text(json.dumps(data, indent=2))
    commit(repo, f"add {name}", T0 + DAY)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", f"add-{name}", "-m", f"merge {name}", when=T0 + DAY + 60)
    return run


def rewrite(run: Path, **changes) -> None:
    """What an attacker does to someone else's run: new numbers, new authors, a new README."""
    path = run / "speedrun_analysis.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))
    (run / "README.md").write_text((run / "README.md").read_text() + "\nThis run is now mine.\n")


def policy_of(result) -> list[tuple[str, str, str]]:
    return [(p["severity"], p["rule"], p["file"]) for p in report(result)["policy"]]


def test_rewriting_a_merged_run_of_another_team_fails(repo):
    """Attack A: a PR that only edits someone else's merged run (README, numbers, authors) must not pass."""
    git(repo, "checkout", "-q", "-b", "pr")
    rewrite(repo / "runs" / "digits-classification" / "mlp-baseline", team="mallory-team",
            authors=[{"name": "Mallory"}])
    commit(repo, "improve the baseline", T0 + 2 * DAY)
    for extra in ((), ("--pr-author", "mallory")):
        result = validate_changed(*extra)
        assert result.exit_code == 1, result.output
        problems = [p for p in report(result)["policy"] if p["rule"] == "pr-changes-merged-run"]
        assert len(problems) == 1 and problems[0]["severity"] == "error"
        p = problems[0]
        assert p["file"] == "runs/digits-classification/mlp-baseline/speedrun_analysis.json"
        assert p["path"] == "$.authors" and p["hint"]
        assert "runs/digits-classification/mlp-baseline" in p["message"] and "merged" in p["message"]
    assert "--pr-author" in report(validate_changed())["policy"][0]["hint"]  # local use: say how to name yourself
    assert "no GitHub account" in report(validate_changed("--pr-author", "mallory"))["policy"][0]["message"]


def test_ownership_is_read_from_the_base_not_from_the_pull_request(repo):
    """The attacker adds their own login to the run's authors: the base's authors decide, not the PR's copy."""
    run = merged_run(repo, "alices-run", ["alice-dev"])
    git(repo, "checkout", "-q", "-b", "pr")
    rewrite(run, authors=[{"name": "Mallory", "github": "mallory"}, {"name": "Alice", "github": "alice-dev"}])
    commit(repo, "take over", T0 + 2 * DAY)
    result = validate_changed("--pr-author", "mallory")
    assert result.exit_code == 1
    assert ("error", "pr-changes-merged-run", "runs/digits-classification/alices-run/speedrun_analysis.json") \
        in policy_of(result)
    assert "@alice-dev" in report(result)["policy"][0]["message"]


def test_an_author_may_change_their_merged_run_and_is_told_so(repo):
    run = merged_run(repo, "alices-run", [None, "Alice-Dev"])
    git(repo, "checkout", "-q", "-b", "pr")
    rewrite(run)
    commit(repo, "fix my README", T0 + DAY + 3600)
    result = validate_changed("--pr-author", "alice-DEV")  # logins match case-insensitively
    assert result.exit_code == 0, result.output
    (p,) = report(result)["policy"]
    assert (p["severity"], p["rule"]) == ("warning", "pr-changes-merged-run")
    assert "runs/digits-classification/alices-run" in p["message"] and "@alice-DEV" in p["message"]
    assert "author" in p["message"]
    assert validate_changed("--pr-author", "bob").exit_code == 1
    assert validate_changed().exit_code == 1


def test_only_a_maintainer_may_change_a_run_without_github_accounts(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    rewrite(repo / "runs" / "digits-classification" / "mlp-baseline")
    commit(repo, "edit", T0 + 2 * DAY)
    assert validate_changed("--pr-author", "speedrun-maintainers").exit_code == 1
    result = validate_changed("--maintainer", "--pr-author", "someone")
    assert result.exit_code == 0, result.output
    (p,) = report(result)["policy"]
    assert (p["severity"], p["rule"]) == ("warning", "pr-changes-merged-run") and "maintainer" in p["message"]


def test_deleting_a_merged_run_is_changing_it(repo):
    git(repo, "checkout", "-q", "-b", "pr")
    shutil.rmtree(repo / "runs" / "digits-classification" / "mlp-baseline")
    commit(repo, "remove the competition", T0 + 2 * DAY)
    result = validate_changed("--pr-author", "mallory")
    assert result.exit_code == 1
    assert "pr-changes-merged-run" in rules_of(report(result))


def test_a_bad_pr_author_login_is_a_usage_error(repo):
    result = validate_changed("--pr-author", "not a login;")
    assert result.exit_code == 2 and "--pr-author" in result.output and "GitHub login" in result.output


def test_a_copied_reproduction_record_is_refused(repo):
    """Attack B: a new run folder carrying a reproductions/ record (copied from a reproduced run, or made up)."""
    git(repo, "checkout", "-q", "-b", "pr")
    run = new_run(repo / "runs" / "digits-classification", "fake-repro")
    (run / "reproductions").mkdir()
    shutil.copy(next((ROOT / "runs" / "digits-classification" / "mlp-baseline" / "reproductions").glob("*.json")),
                run / "reproductions" / "2026-11-22-nvidia-h100.json")
    commit(repo, "add run, already reproduced", T0 + DAY)
    result = validate_changed()
    assert result.exit_code == 1
    assert ("error", "pr-reproduction-record", "runs/digits-classification/fake-repro/reproductions/"
            "2026-11-22-nvidia-h100.json") in policy_of(result)
    result = validate_changed("--maintainer")  # the maintainers' own commit of a record the workflow wrote
    assert result.exit_code == 0, result.output
    assert [(s, r) for s, r, _f in policy_of(result)] == [("warning", "pr-reproduction-record")]


def test_an_author_cannot_add_a_reproduction_record_to_their_own_run(repo):
    run = merged_run(repo, "alices-run", ["alice-dev"])
    git(repo, "checkout", "-q", "-b", "pr")
    (run / "reproductions").mkdir()
    (run / "reproductions" / "mine.json").write_text('{"verdict": "reproduced"}\n')
    commit(repo, "I reproduced it myself", T0 + DAY + 3600)
    result = validate_changed("--pr-author", "alice-dev")
    assert result.exit_code == 1
    assert ("error", "pr-reproduction-record", "runs/digits-classification/alices-run/reproductions/mine.json") \
        in policy_of(result)
