"""Render a `Report` for a terminal, a PR comment, machines, or GitHub annotations. Picked by name."""

from __future__ import annotations

import json
import re
from typing import Callable

from .mdreport import markdown
from .problems import Problem
from .reportparts import COMMENT_MARKER, _status, compute_lines  # noqa: F401 - COMMENT_MARKER: callers import it here
from .result import Report, RunResult, TrackResult
from .standinglines import text_lines as standing_text


def text(report: Report, standing: dict[str, dict] | None = None) -> str:
    """`standing` maps a run's display path to where it would stand on its board (speedrun/standing.py)."""
    standing = standing or {}
    lines: list[str] = []
    if report.policy:
        lines.append("pull request policy: " + ("invalid" if any(p.severity == "error" for p in report.policy) else "ok"))
        lines += _problem_lines(report.policy)
    for t in report.tracks:
        if t.problems:
            lines.append(f"track {t.display}: {'invalid' if t.errors else 'valid'}")
            lines += _problem_lines(t.problems)
    for r in report.runs:
        status = _status(r.valid, r.warnings, r.pending)
        if r.errors:
            status += f", {len(r.errors)} error(s)"
        # The run's own status first, then what is wrong, and only then the recount: its verdict judges the FLOPs
        # and the budget alone, so it is labelled `compute`, never a bare `verdict` a reader takes for the run's.
        lines.append(f"{r.display} ({r.track_id or 'no track'}): {status}")
        if r.display in standing:
            lines += [f"  {ln}" for ln in standing_text(standing[r.display])]
        lines += _problem_lines(r.errors + r.warnings)
        lines += [f"  {ln}" for ln in compute_lines(r.compute or {}, verdict_label="compute")]
    n_pending = sum(r.pending for r in report.runs)
    n_bad = sum(not r.valid for r in report.runs) - n_pending
    n_bad_tracks = sum(not t.valid for t in report.tracks)
    summary = f"{len(report.runs)} run(s) checked: {len(report.runs) - n_bad - n_pending} valid, {n_bad} invalid"
    if n_pending:
        summary += f", {n_pending} pending"
    if n_bad_tracks:
        summary += f"; {n_bad_tracks} track file(s) invalid"
    n_policy = sum(p.severity == "error" for p in report.policy)
    if n_policy:
        summary += f"; {n_policy} pull-request policy error(s)"
    lines.append(summary)
    # Terminal escapes in a submission's strings must not repaint the reader's terminal or forge lines.
    return _TERMINAL_CONTROL.sub("\N{REPLACEMENT CHARACTER}", "\n".join(lines)) + "\n"


_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _problem_lines(problems: list[Problem]) -> list[str]:
    out = []
    for p in problems:
        prefix = "  error: " if p.severity == "error" else "  warning: "
        out.append(prefix + p.line())
        if p.hint:
            out.append(f"    fix: {p.hint}")
    return out


def _run_json(r: RunResult, standing: dict | None) -> dict:
    def item(p: Problem) -> dict:
        return {"rule": p.rule, "path": p.path, "message": p.message, "file": p.file, "hint": p.hint}

    out = {
        "path": r.display,
        "track": r.track_id,
        "valid": r.valid,
        "pending": r.pending,
        "errors": [item(p) for p in r.errors],
        "warnings": [item(p) for p in r.warnings],
    }
    if r.compute is not None:
        out["compute"] = r.compute
    if standing is not None:
        out["standing"] = standing
    return out


def _track_json(t: TrackResult) -> dict:
    return {
        "path": t.display,
        "track": t.track_id,
        "valid": t.valid,
        "errors": [{"rule": p.rule, "path": p.path, "message": p.message, "file": p.file, "hint": p.hint}
                   for p in t.errors],
    }


def json_format(report: Report, standing: dict[str, dict] | None = None) -> str:
    payload = {
        "valid": report.valid,
        "runs": [_run_json(r, (standing or {}).get(r.display)) for r in report.runs],
        "tracks": [_track_json(t) for t in report.tracks],
        "policy": [{"rule": p.rule, "path": p.path, "message": p.message, "file": p.file, "hint": p.hint,
                    "severity": p.severity} for p in report.policy],
    }
    return json.dumps(payload, indent=2, sort_keys=False) + "\n"


def _gh_escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github(report: Report, standing: dict[str, dict] | None = None) -> str:
    lines = []
    all_problems = list(report.policy) + [p for t in report.tracks for p in t.problems] + [
        p for r in report.runs for p in r.errors + r.warnings
    ]
    for p in all_problems:
        kind = "error" if p.severity == "error" else "warning"
        msg = f"{p.path}: {p.message}" + (f" (fix: {p.hint})" if p.hint else "")
        lines.append(f"::{kind} file={_gh_escape(p.file, True)},title={_gh_escape(p.rule, True)}::{_gh_escape(msg)}")
    lines.append(text(report).rstrip("\n").splitlines()[-1])
    return "\n".join(lines) + "\n"


REPORTERS: dict[str, Callable[[Report], str]] = {
    "text": text,
    "markdown": markdown,
    "json": json_format,
    "github": github,
}
