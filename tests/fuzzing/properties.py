"""The properties every fuzz case must keep, checked in the parent process on what the child reported (so that
hypothesis can shrink a failing case): how the command ended, which files its problems name, what it left on disk.
Each check returns what is broken, one line per property, empty when the case is fine."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from .isolate import Outcome

PASSWD = "root:x:0:0"  # what an output would show if it echoed /etc/passwd
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _command(out: Outcome) -> list[str]:
    """A CLI command: exit 0 or 1, never an internal error, nothing of /etc/passwd, and every one-line error
    naming a file."""
    bad = out.problems()
    if out.status != "done":
        return bad
    v = out.value
    text = v["stdout"] + v["stderr"]
    # "[internal-error]": the build and the checker turn an unexpected exception into a problem with that rule
    if v["exit"] not in (0, 1) or re.search(r"internal[ -]error|Traceback", text):
        bad.append(f"exit {v['exit']}: {(v['stderr'] or v['stdout']).strip()[-1500:]}")
    if PASSWD in text:
        bad.append("the output shows /etc/passwd")
    for line in v["stderr"].splitlines():
        if line.startswith("error:") and not re.search(r"[\w.-]+/[\w./-]+", line):
            bad.append(f"an error that names no file: {line[:300]}")
    return bad


def check_loader(out: Outcome, display: str) -> list[str]:
    """The loader: problems name the document; nothing comes back only when an error says why; what comes back is
    JSON data (text keys, finite numbers, no bytes, sets or dates, nothing shared or cyclic)."""
    bad = out.problems()
    if out.status == "done":
        v = out.value
        bad += [f"[{rule}] names {file!r}, not {display!r}" for file, rule, _ in v["problems"] if file != display]
        bad += [f"[internal-error] {file}" for file, rule, _ in v["problems"] if rule == "internal-error"]
        if v["none"] and not any(s == "error" for _, _, s in v["problems"]):
            bad.append("returned nothing and reported no error")
        if not v["none"] and v["not_plain"]:
            bad.append(f"returned data the schema layer cannot take: {v['not_plain']}")
    return bad


def check_validate(out: Outcome, document: str) -> list[str]:
    """`speedrun validate`: a JSON report (or a one-line error), each problem naming the damaged document. A damaged
    track file also makes its runs' problems (`track-invalid`) legitimate, named on their analysis files."""
    bad = _command(out)
    if out.status == "done":
        v = out.value
        if v["exit"] in (0, 1) and not v["report"] and "error:" not in v["stderr"]:
            bad.append(f"exit {v['exit']} without a report: {v['stderr'][-500:]}")
        track = document.endswith("/track.yaml")
        own = re.compile(re.escape(document.rsplit("/", 1)[0]) + r"/[^/]+/speedrun_analysis\.(json|ya?ml)$")
        for file, rule, _ in v["problems"]:
            if rule == "internal-error":
                bad.append(f"[internal-error] reported on {file}")
            if file != document and not (track and own.match(file or "")):
                bad.append(f"[{rule}] names {file!r}, not {document!r}")
    return bad


def check_build(out: Outcome, build_dir: Path, document: str, tracks: int) -> list[str]:
    """`speedrun build` over a tree of `tracks` tracks with one damaged document: the site is still written,
    world-readable, with every track listed, the untouched run ranked and the damaged run not dropped silently;
    its errors name its file; no CSV cell of a submission's text starts a formula."""
    bad = _command(out)
    site = build_dir / "site"
    if not (site / "index.html").is_file() or not (site / "leaderboard.json").is_file():
        return bad + ["the site was not written"]
    if os.stat(site).st_mode & 0o755 != 0o755:
        bad.append(f"the site folder has mode {os.stat(site).st_mode & 0o777:o}, not world-readable")
    board = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    if len(board["tracks"]) + len(board["invalid_tracks"]) != tracks:
        bad.append(f"tracks {[t['id'] for t in board['tracks']]} + invalid {board['invalid_tracks']}: one is missing")
    export = site / "tracks" / "digits-classification.json"
    if not export.is_file():
        return bad + ["the untouched track digits-classification has no export"]
    track = json.loads(export.read_text(encoding="utf-8"))
    if "mlp-baseline" not in [e["name"] for e in track["entries"]]:
        bad.append("the untouched run mlp-baseline is not ranked")
    if "ast-10pct" in document:
        names = [e["name"] for e in track["entries"]] + [r["name"] for r in track["invalid"]]
        if "ast-10pct" not in names:
            bad.append(f"the damaged run is dropped silently (listed: {names})")
        folder = document.rsplit("/", 1)[0] + "/"
        bad += [f"an error of the damaged run names another file: {e[:200]}"
                for r in track["invalid"] for e in r["errors"] if not e.startswith(folder)]
    shown = [p for p in site.rglob("*") if p.suffix in (".html", ".json") and "internal-error" in p.read_text("utf-8")]
    bad += [f"{p.relative_to(site)} shows an [internal-error]" for p in shown]
    for table in (site / "tracks").glob("*.csv"):
        for row in list(csv.reader(io.StringIO(table.read_text(encoding="utf-8"))))[1:]:
            bad += [f"{table.name}: formula cell {c[:40]!r}" for c in row[1:3] if c.startswith(FORMULA)]
    leftovers = [p.name for p in build_dir.iterdir() if p.name.startswith(".site")]
    if leftovers and out.status == "done":  # a child killed at the time limit cannot clean up: that is reported
        bad.append(f"temporary folders left: {leftovers}")
    return bad


def check_import_zip(out: Outcome, new: list[str], run: str, zip_path: str) -> list[str]:
    """`speedrun import-zip`: writes nothing outside the new run folder (`new`: paths that appeared, relative to the
    working directory); a refusal names the ZIP and writes nothing at all."""
    bad = _command(out)
    bad += [f"wrote {p} outside the run folder" for p in new if p != run and not p.startswith(run + os.sep)]
    if out.status == "done":
        v = out.value
        refused = v["exit"] == 1 and "unpacked" not in v["stdout"]
        if refused and run in new:
            bad.append("refused, yet the run folder was written")
        if refused and zip_path not in v["stderr"]:
            bad.append(f"the refusal does not name the ZIP: {v['stderr'][:300]}")
        if v["exit"] == 0 and run not in new:
            bad.append("accepted, yet no run folder")
    return bad
