"""Frozen code on constrained tracks: the manifest of the reference and the diff of a run folder against it.

A run folder on a constrained track is a copy of the track's reference folder in which only the editable globs and
the config file may differ. The manifest (`frozen.json`, written by `speedrun freeze`) pins every reference file's
sha256, so a change to the reference itself is visible in review too.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from .fingerprint import sha256_file
from .models.track import Constrained
from .problems import Problems

# A ZIP submission is code without results until organizers train it; `speedrun import-zip` writes this marker
# into the run folder so that the state is explicit (not a missing analysis) and survives a commit.
PENDING_FILE = "PENDING.md"
# Files every run folder may have besides the reference's: the claim, the write-up, logs and reproductions.
RUN_OWN = ("speedrun_analysis.json", "speedrun_analysis.yaml", "speedrun_analysis.yml", "README.md", PENDING_FILE)
RUN_OWN_DIRS = ("logs", "reproductions")
MANIFEST_VERSION = 1


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    """A glob over POSIX relative paths: '**' spans folders, '*' and '?' stay within one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def matches(path: str, patterns: list[str]) -> bool:
    return any(_glob_regex(p).match(path) for p in patterns)


def is_editable(path: str, constrained: Constrained) -> bool:
    return path == constrained.config or matches(path, constrained.editable)


def _files(folder: Path, skip_own: bool) -> list[str]:
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if "__pycache__" in p.parts or (not p.is_file() and not p.is_symlink()):
            continue
        if skip_own and (rel in RUN_OWN or rel.split("/", 1)[0] in RUN_OWN_DIRS):
            continue
        out.append(rel)
    return out


def build_manifest(track_dir: Path, constrained: Constrained) -> dict:
    reference = track_dir / constrained.reference
    return {
        "version": MANIFEST_VERSION,
        "reference": constrained.reference,
        "files": {rel: sha256_file(reference / rel) for rel in _files(reference, skip_own=False)},
    }


def render_manifest(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_manifest(track_dir: Path, constrained: Constrained) -> tuple[Path, int]:
    reference = track_dir / constrained.reference
    if not reference.is_dir():
        from .problems import InvalidInput

        raise InvalidInput(f"{reference}: the track's reference folder does not exist (constrained.reference)")
    manifest = build_manifest(track_dir, constrained)
    target = track_dir / constrained.manifest
    target.write_text(render_manifest(manifest), encoding="utf-8")
    return target, len(manifest["files"])


def load_manifest(track_dir: Path, constrained: Constrained) -> dict | None:
    path = track_dir / constrained.manifest
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return data if isinstance(files, dict) else None


def check_track(track_dir: Path, constrained: Constrained, problems: Problems) -> None:
    """The manifest exists and still describes the reference folder."""
    manifest = load_manifest(track_dir, constrained)
    if manifest is None:
        problems.error("$.constrained.manifest", "frozen-manifest-missing",
                       f"{constrained.manifest} is missing or unreadable",
                       f"run `speedrun freeze {track_dir}` and commit the manifest")
        return
    if not (track_dir / constrained.reference).is_dir():
        problems.error("$.constrained.reference", "frozen-manifest-stale",
                       f"reference folder {constrained.reference!r} does not exist", "add the frozen reference code")
        return
    current = build_manifest(track_dir, constrained)["files"]
    if current != manifest["files"]:
        changed = sorted(set(current) ^ set(manifest["files"]) |
                         {k for k in current if k in manifest["files"] and current[k] != manifest["files"][k]})
        problems.error("$.constrained.manifest", "frozen-manifest-stale",
                       f"the reference differs from {constrained.manifest}: {', '.join(changed[:5])}"
                       + (" ..." if len(changed) > 5 else ""),
                       f"if the change is intended, run `speedrun freeze {track_dir}` and bump rules_version")


def check_run(run_dir: Path, track_dir: Path, constrained: Constrained, problems: Problems) -> None:
    """Every difference from the frozen reference must lie inside the editable globs or the config."""
    manifest = load_manifest(track_dir, constrained)
    if manifest is None:
        return  # reported once, on the track
    frozen: dict[str, str] = manifest["files"]
    for rel, digest in sorted(frozen.items()):
        if is_editable(rel, constrained):
            continue
        path = run_dir / rel
        if path.is_symlink() or not path.is_file():
            problems.error(f"$files['{rel}']", "frozen-file-missing", f"frozen file {rel} is missing from the run",
                           f"copy it unchanged from {track_dir.name}/{constrained.reference}/{rel}")
        elif sha256_file(path) != digest:
            problems.error(f"$files['{rel}']", "frozen-file-modified", f"frozen file {rel} differs from the reference",
                           f"restore it from {track_dir.name}/{constrained.reference}/{rel}; only "
                           f"{', '.join(constrained.editable + [constrained.config])} may change")
    for rel in _files(run_dir, skip_own=True):
        if rel not in frozen and not is_editable(rel, constrained):
            problems.error(f"$files['{rel}']", "frozen-extra-file", f"{rel} is not part of the reference and lies "
                           "outside the editable folder", f"move it under {', '.join(constrained.editable)} or remove it")


def check_pending(run_dir: Path, track_result, problems: Problems) -> bool:
    """A run folder with no analysis file that `speedrun import-zip` marked pending, on a constrained track: a
    warning instead of missing-analysis, and the frozen code still checked. False when it is not one."""
    track = track_result.track if track_result is not None else None
    if track is None or track.constrained is None or not (run_dir / PENDING_FILE).is_file():
        return False
    problems.warn("$", "zip-pending", "a ZIP submission waiting for the organizers to train it: no results yet, "
                  "so it is listed but not ranked", f"organizers: run `python run.py` in {run_dir.name}/ (it writes "
                  f"speedrun_analysis.json and logs/), then delete {PENDING_FILE} in the same commit")
    check_run(run_dir, track_result.path, track.constrained, problems)
    return True
