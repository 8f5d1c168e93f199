"""Who may change a run that is already merged: its authors, or a maintainer.

A pull request that changes (or deletes) a run folder which exists on the base branch is changing someone's merged
result. It passes only when the pull request's author (`--pr-author`, the GitHub login CI passes) is one of the
GitHub logins the run's authors declare (`authors[].github`), compared case-insensitively, or when a maintainer
takes it (`--maintainer`). The authors are read from the BASE revision's analysis file with `git show`, never from
the pull request's copy, which the pull request itself could have edited to add its author. A run whose authors
declare no GitHub account can only be changed by a maintainer.
"""

from __future__ import annotations

from pathlib import Path

from .discover import ANALYSIS_NAMES
from .git import exists_at, read_at
from .loader import lenient_mapping
from .problems import Problem

RULE = "pr-changes-merged-run"


def base_analysis(repo: Path, base: str, run_rel: str) -> tuple[str, dict]:
    """(path of the analysis file, its data) as the base revision has them; ({default path}, {}) if unreadable."""
    for name in ANALYSIS_NAMES:
        text = read_at(repo, base, f"{run_rel}/{name}")
        if text is not None:
            return f"{run_rel}/{name}", lenient_mapping(name, text)
    return f"{run_rel}/{ANALYSIS_NAMES[0]}", {}


def github_logins(data: dict) -> list[str]:
    """The authors' declared GitHub logins, in order, without duplicates (compared case-insensitively)."""
    authors = data.get("authors")
    out: list[str] = []
    for author in authors if isinstance(authors, list) else []:
        login = author.get("github") if isinstance(author, dict) else None
        if isinstance(login, str) and login and login.lower() not in {o.lower() for o in out}:
            out.append(login)
    return out


def check_merged_run(repo: Path, base: str, run_rel: str, pr_author: str | None, maintainer: bool) -> Problem | None:
    """None when `run_rel` (runs/<track>/<run>) is new; otherwise an error, or a warning saying why it is allowed."""
    if not exists_at(repo, base, run_rel):
        return None
    file, data = base_analysis(repo, base, run_rel)
    logins = github_logins(data)
    owners = ", ".join(f"@{x}" for x in logins)
    merged = f"{run_rel}, a run already merged on {base}"
    if pr_author and pr_author.lower() in {x.lower() for x in logins}:
        return Problem(file, "$.authors", RULE,
                       f"the pull request changes {merged}: allowed, because @{pr_author} is one of its authors "
                       f"({owners}, as {base} names them)",
                       "reviewers: check that the change is its authors' own fix", "warning")
    if maintainer:
        return Problem(file, "$.authors", RULE,
                       f"the pull request changes {merged}: allowed, because a maintainer takes it",
                       "reviewers: the run's authors should agree to the change", "warning")
    whose = (f"whose authors are {owners}; only they or a maintainer may change it" if logins else
             "whose authors declare no GitHub account (authors[].github); only a maintainer may change it")
    if pr_author is None:
        return Problem(file, "$.authors", RULE, f"the pull request changes {merged}, {whose}",
                       "if you are one of its authors, pass --pr-author YOUR_GITHUB_LOGIN (CI passes the pull "
                       "request's author); otherwise put your submission in a new run folder")
    return Problem(file, "$.authors", RULE, f"the pull request by @{pr_author} changes {merged}, {whose}",
                   "submit your own run in a new folder (speedrun new NAME --track TRACK); to change this one, "
                   "ask its authors or a maintainer")
