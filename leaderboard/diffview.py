"""A run page's diff view: the unified diff of its training script against the run it is compared with
(compare.py), computed at build time from the files on disk.

Scripts are read like every other file of a submitted folder (validator/reading.py: a regular file inside its
folder, size checked first), so a link out, a FIFO or a huge file gives a note instead of a diff, and the other
run pages build as usual.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from pathlib import Path

from validator.problems import Problems
from validator.reading import read_capped

from .compare import compared_with

DIFF_FILE_BYTES = 256 * 1024  # of one script; difflib's time grows faster than linearly with the lines
DIFF_MAX_LINES = 400  # of the diff shown; the counts above it are always of the whole diff
CONTEXT_LINES = 3


def script_of(entry: dict) -> str | None:
    """The run's training script: the analysis's `files.script`, else the file of its FLOP-counting entrypoint
    (both already proved regular files inside the folder when the entry was gathered)."""
    for label in ("script", "entrypoint"):
        path = next((f["path"] for f in entry["files"] if f["label"] == label), None)
        if path:
            return path
    return None


def _read(run_dir: Path, rel: str) -> tuple[list[str] | None, str]:
    """The script's lines, or None and why not."""
    problems = Problems(rel)
    try:
        raw = read_capped(run_dir / rel, run_dir, DIFF_FILE_BYTES, problems)
    except OSError as exc:  # a read error after a good open (a disk fault): a note, never a failed build
        return None, f"cannot read it: {exc.strerror or exc}"
    if raw is None:
        return None, problems.items[0].message if problems.items else "unreadable"
    if b"\x00" in raw:
        return None, "it is a binary file"
    return raw.decode("utf-8", errors="replace").splitlines(), ""


def _lines(diff: list[str]) -> list[dict]:
    """One file's unified diff as classed lines; its first two lines are always the file headers, so a removed
    line that happens to start with '-- ' is never taken for one."""
    out = []
    for i, line in enumerate(diff):
        kind = ("file" if i < 2 else "hunk" if line.startswith("@@") else "add" if line.startswith("+")
                else "del" if line.startswith("-") else "ctx")
        out.append({"kind": kind, "text": line})
    return out


MAX_FILES = 50  # of a constrained run's changeable files; the page stays small whatever a folder holds


def compared_files(track: dict, entry: dict, run_dir: Path | None) -> list[str]:
    """What a reader compares: on a constrained track the files a submission may change (its editable globs and
    its config, found on disk without following links; the rest is frozen and identical by rule), elsewhere the
    training script."""
    constrained = track.get("constrained")
    if not constrained:
        script = script_of(entry)
        return [script] if script else []
    if run_dir is None:
        return []
    patterns = [*constrained["editable"], constrained["config"]]
    found = []
    for here, dirs, files in os.walk(run_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            rel = (Path(here) / name).relative_to(run_dir).as_posix()
            if any(rel == g or fnmatch.fnmatchcase(rel, g) for g in patterns):
                found.append(rel)
    return sorted(found)[:MAX_FILES]


def diff_view(track_dir: Path | None, track: dict, entry: dict) -> dict:
    """What the page's diff section shows: `compared` (compare.compared_with), and either `lines`
    (kind: file, hunk, add, del or ctx) with `added`, `removed`, `left_out`, or `identical`, or a `note`."""
    compared = compared_with(track, entry)
    view = {"compared": compared, "lines": [], "added": 0, "removed": 0, "left_out": 0, "identical": False,
            "note": compared.get("note", ""), "old": None, "new": None}
    if compared["name"] is None:
        return view
    other = next((e for e in track["entries"] + track["unranked"] if e["name"] == compared["name"]), None)
    if other is None:  # compare.py only names valid runs; should that ever change, the page still builds
        view["note"] = f"No diff: {compared['name']} is not a valid run of this track."
        return view
    if track_dir is None:
        view["note"] = "No diff: the run folders are not included in this build."
        return view
    mine = compared_files(track, entry, track_dir / entry["name"] if track_dir else None)
    theirs = compared_files(track, other, track_dir / other["name"] if track_dir else None)
    view["old"], view["new"] = ", ".join(theirs), ", ".join(mine)
    if not mine or not theirs:
        view["note"] = ("No diff: neither run includes a training script." if not mine and not theirs
                        else "No diff: this run includes no training script." if not mine
                        else f"No diff: {other['name']} includes no training script.")
        return view
    lines: list[dict] = []
    for rel in sorted(set(mine) | set(theirs)) if len(mine) > 1 or len(theirs) > 1 else [None]:
        new_rel, old_rel = (rel, rel) if rel else (mine[0], theirs[0])
        new, why_new = _read(track_dir / entry["name"], new_rel) if new_rel in mine else ([], "")
        old, why_old = _read(track_dir / other["name"], old_rel) if old_rel in theirs else ([], "")
        if new is None or old is None:
            view["note"] = (f"No diff: this run's {new_rel} could not be read ({why_new})." if new is None
                            else f"No diff: {other['name']}'s {old_rel} could not be read ({why_old}).")
            return view
        lines += _lines(list(difflib.unified_diff(old, new, f"{other['name']}/{old_rel}",
                                                  f"{entry['name']}/{new_rel}", n=CONTEXT_LINES, lineterm="")))
    if not lines:
        view["identical"] = True
        return view
    view["added"] = sum(1 for line in lines if line["kind"] == "add")
    view["removed"] = sum(1 for line in lines if line["kind"] == "del")
    view["lines"], view["left_out"] = lines[:DIFF_MAX_LINES], max(0, len(lines) - DIFF_MAX_LINES)
    return view
