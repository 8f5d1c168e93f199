"""Pull-request policy: what a submission may change, and how often a team may submit.

A PR adds or edits exactly one run folder and touches nothing else (unless a maintainer says so); no file over the
size limit, no symlinks, no binaries outside `logs/` and the run's declared artifacts, no reproduction records (the
maintainers' workflow writes those). A run already merged on the base branch may be changed only by its authors or a
maintainer (validator/ownership.py). On tracks with a submission
policy, a team gets `max_submissions` per `window_days`, counted from the dates git recorded; a fix to a run within
the track's fix window is not a new submission.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from .discover import ANALYSIS_NAMES
from .git import Change, added_dates, exists_at, head_time
from .loader import lenient_mapping
from .models import Track
from .ownership import check_merged_run
from .problems import Problem, Problems

RUNS_ROOT = "runs"
CHANGES_HINT = ("say in one line, in the `changes` that run.py writes into the analysis, what this run changes "
                "against the run it builds on (e.g. 'Muon optimizer instead of AdamW; 20% fewer steps'), then rerun "
                "run.py")
DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024


@dataclass
class PullRequest:
    run_dirs: list[Path] = field(default_factory=list)
    track_dirs: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


def run_folder_of(path: str) -> tuple[str, str] | None:
    """(track, run) when `path` lies inside runs/<track>/<run>/, else None."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[0] == RUNS_ROOT and not parts[2].startswith(("_", ".")):
        return parts[1], parts[2]
    return None


def _is_binary(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError:
        return False
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a multi-byte character cut by the 8 KiB window is still text
    return False


def _analysis_data(run_dir: Path) -> dict:
    """The run's analysis as plain data, read leniently: policy checks must not fail on a broken claim (the
    validator reports that)."""
    for name in ANALYSIS_NAMES:
        path = run_dir / name
        if path.is_file():
            try:
                return lenient_mapping(name, path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
    return {}


def _declared_artifacts(run_dir: Path) -> set[str]:
    files = _analysis_data(run_dir).get("files")
    return {str(a) for a in (files.get("artifacts") or [])} if isinstance(files, dict) else set()


def check_pull_request(repo: Path, changes: list[Change], maintainer: bool = False,
                       max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, base: str | None = None,
                       pr_author: str | None = None) -> PullRequest:
    """Judge the change itself. With `base`, a run folder that exists there is a merged run: only its authors
    (`pr_author` among the base's authors[].github) or a maintainer may change it (validator/ownership.py)."""
    pr = PullRequest(changes=changes)
    runs: dict[tuple[str, str], list[Change]] = {}
    outside: list[Change] = []
    for change in changes:
        where = run_folder_of(change.path)
        if where:
            runs.setdefault(where, []).append(change)
        else:
            outside.append(change)

    for change in outside:
        problems = Problems(change.path)
        parts = change.path.split("/")
        if parts[0] == RUNS_ROOT and len(parts) >= 3 and (Path(repo) / RUNS_ROOT / parts[1] / "track.yaml").exists():
            if maintainer:
                pr.track_dirs.append(repo / RUNS_ROOT / parts[1])
        if not maintainer:
            what = "a track's rules" if parts[-1] == "track.yaml" else (
                "a track's frozen reference" if len(parts) > 2 and parts[0] == RUNS_ROOT else "the kit itself")
            problems.error("$", "pr-outside-run", f"{change.path} ({what}) is outside the submitted run folder",
                           "a submission changes only runs/<track>/<your-run>/; ask a maintainer for anything else")
        pr.problems += problems.items

    if len(runs) > 1:
        names = ", ".join(f"{t}/{r}" for t, r in sorted(runs))
        pr.problems.append(Problem("pull request", "$", "pr-multiple-runs",
                                   f"the pull request touches {len(runs)} run folders: {names}",
                                   "open one pull request per run"))
    if not runs and not outside:
        pr.problems.append(Problem("pull request", "$", "pr-no-run", "the pull request changes nothing", "add your run folder"))
    elif not runs and not maintainer:
        pr.problems.append(Problem("pull request", "$", "pr-no-run", "the pull request changes no run folder",
                                   "add runs/<track>/<your-run>/ with run.py and speedrun_analysis.json"))

    for (track, run), run_changes in sorted(runs.items()):
        run_dir = repo / RUNS_ROOT / track / run
        if run_dir.is_dir():
            pr.run_dirs.append(run_dir)
        owned = check_merged_run(repo, base, f"{RUNS_ROOT}/{track}/{run}", pr_author, maintainer) if base else None
        pr.problems += [owned] if owned else []
        artifacts = _declared_artifacts(run_dir)
        for change in run_changes:
            problems = Problems(change.path)
            rel = change.path.split("/", 3)[3]
            if rel.startswith("reproductions/"):
                _reproduction_record(change, maintainer, problems)
            if change.status == "D":
                pr.problems += problems.items
                continue
            full = repo / change.path
            if change.mode == "120000" or full.is_symlink():
                problems.error("$", "pr-symlink", "symbolic links are not accepted", "commit the file itself")
            elif full.is_file():
                size = full.stat().st_size
                if size > max_file_bytes:
                    problems.error("$", "pr-file-too-large", f"{size:,} bytes is over the {max_file_bytes:,}-byte limit",
                                   "keep checkpoints and datasets out of the repository; link them from README.md")
                if _is_binary(full) and not (rel.startswith("logs/") or rel in artifacts):
                    problems.error("$", "pr-binary-file", "binary file outside logs/ and the declared artifacts",
                                   "declare it in files.artifacts, move it under logs/, or leave it out")
            pr.problems += problems.items
    return pr


def _reproduction_record(change: Change, maintainer: bool, problems: Problems) -> None:
    """Reproduction records are the maintainers' workflow's output, never a submitter's: a record in a pull request
    would make the site call the run reproduced."""
    done = {"A": "adds", "D": "deletes"}.get(change.status, "changes")
    if maintainer:
        problems.warn("$", "pr-reproduction-record", f"a maintainer {done} the reproduction record {change.path}",
                      "reviewers: commit only records that reproduce.yml wrote for this run's reviewed commit")
    else:
        problems.error("$", "pr-reproduction-record",
                       f"the pull request {done} {change.path}: reproduction records are written only by the "
                       "maintainers' reproduce workflow",
                       "remove the reproductions/ folder from your pull request; a maintainer reproduces the run "
                       "after review and commits the record")


def check_changes(repo: Path, base: str, run_dir: Path, analysis, problems: Problems) -> None:
    """A run the pull request adds must say what it changes (`changes`); runs merged before the field existed, and
    edits of merged runs, are not held to it."""
    rel = run_dir.resolve().relative_to(repo.resolve()).as_posix()
    if (analysis.changes is None or not analysis.changes.strip()) and not exists_at(repo, base, rel):
        problems.error("$.changes", "changes-missing",
                       "a new run must say what it changes against the run it builds on; `changes` is missing",
                       CHANGES_HINT)


def _team_of(run_dir: Path) -> str | None:
    team = _analysis_data(run_dir).get("team")
    return str(team) if team else None


def check_rate_limit(repo: Path, base: str, run_dir: Path, track: Track, team: str, problems: Problems,
                     now: dt.datetime | None = None) -> None:
    """Refuse a new submission when the team used its quota in the window; say when it may submit next."""
    policy = track.submission_policy
    if policy is None:
        return
    rel = run_dir.resolve().relative_to(repo.resolve()).as_posix()
    track_rel = rel.rsplit("/", 1)[0]
    dates = added_dates(repo, track_rel)
    if now is None:
        now = head_time(repo) if run_dir.name in dates else dt.datetime.now(dt.timezone.utc)
    window = dt.timedelta(days=policy.window_days)
    previous = dates.get(run_dir.name) if exists_at(repo, base, rel) else None
    if previous is not None and now - previous <= dt.timedelta(hours=policy.fix_window_hours):
        return  # a fix within the fix window does not count as a new submission

    earlier = sorted(
        when for name, when in dates.items()
        if (name != run_dir.name or previous is not None) and now - window <= when <= now
        and _team_of(repo / track_rel / name) == team
    )
    if len(earlier) >= policy.max_submissions:
        next_ok = earlier[len(earlier) - policy.max_submissions] + window
        listed = ", ".join(w.date().isoformat() for w in earlier)
        problems.error("$.team", "rate-limit",
                       f"team {team!r} already submitted {len(earlier)} run(s) on {track.id} in the last "
                       f"{policy.window_days} days ({listed}); the limit is {policy.max_submissions}. "
                       f"Next submission allowed from {next_ok.strftime('%Y-%m-%d %H:%M UTC')}",
                       "wait until then"
                       + (f", or fix a failed run within {policy.fix_window_hours} h of submitting it"
                          if policy.fix_window_hours else ""))
