"""What git knows: the files a pull request changes and when runs were added. Real git, via subprocess."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .problems import SpeedrunError


def git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise SpeedrunError("git is not installed") from exc
    if proc.returncode != 0:
        raise SpeedrunError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def toplevel(path: Path) -> Path:
    return Path(git(path, "rev-parse", "--show-toplevel").strip())


@dataclass(frozen=True)
class Change:
    status: str  # A added, M modified, D deleted, T type changed
    path: str    # POSIX path relative to the repository root
    mode: str    # git file mode in the working tree ("120000" for a symlink), "" if deleted


def changed_files(repo: Path, base: str) -> list[Change]:
    """Files that differ between the merge base of `base` and HEAD, and the working tree (committed or not)."""
    try:
        merge_base = git(repo, "merge-base", base, "HEAD").strip()
    except SpeedrunError as exc:
        raise SpeedrunError(f"cannot compare with {base!r}: {exc}; fetch it first "
                            "(e.g. `git fetch origin main` and --base origin/main)") from exc
    out: dict[str, Change] = {}
    raw = git(repo, "diff", "--raw", "-z", "--no-renames", "--no-ext-diff", merge_base)
    parts = raw.split("\0")
    i = 0
    while i < len(parts) - 1:
        meta, path = parts[i], parts[i + 1]
        i += 2
        fields = meta.lstrip(":").split()
        if len(fields) < 5:
            continue
        new_mode, status = fields[1], fields[4][0]
        out[path] = Change(status, path, "" if status == "D" else new_mode)
    for path in git(repo, "ls-files", "--others", "--exclude-standard", "-z").split("\0"):
        if path:
            full = repo / path
            out[path] = Change("A", path, "120000" if full.is_symlink() else "100644")
    return sorted(out.values(), key=lambda c: c.path)


def exists_at(repo: Path, rev: str, path: str) -> bool:
    return bool(git(repo, "ls-tree", "--name-only", rev, "--", path).strip())


def read_at(repo: Path, rev: str, path: str) -> str | None:
    """The text of `path` as revision `rev` has it (never the working tree's copy), or None if it has no such file."""
    listed = git(repo, "ls-tree", rev, "--", path).split()
    if len(listed) < 2 or listed[1] != "blob" or listed[0] == "120000":
        return None
    return git(repo, "show", f"{rev}:{path}")


def added_dates(repo: Path, folder: str) -> dict[str, dt.datetime]:
    """For each run folder under `folder` (a track), when its first file was committed (commit time, UTC)."""
    out: dict[str, dt.datetime] = {}
    log = git(repo, "log", "--reverse", "--diff-filter=A", "--format=@%ct", "--name-only", "--", folder)
    when = None
    prefix = folder.rstrip("/") + "/"
    for line in log.splitlines():
        if line.startswith("@"):
            when = dt.datetime.fromtimestamp(int(line[1:]), dt.timezone.utc)
        elif line.startswith(prefix) and when is not None:
            run = line[len(prefix):].split("/", 1)[0]
            if "/" in line[len(prefix):] and not run.startswith(("_", ".")):
                out.setdefault(run, when)
    return out


def head_time(repo: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(git(repo, "log", "-1", "--format=%ct").strip()), dt.timezone.utc)
