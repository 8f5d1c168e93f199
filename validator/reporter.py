"""Render a `Report` for a terminal, a PR comment, machines, or GitHub annotations. Picked by name."""

from __future__ import annotations

import json
import re
from typing import Callable

from .mdsafe import code, image, prose
from .problems import Problem
from .result import Report, RunResult, TrackResult
from .standinglines import markdown_lines as standing_markdown, text_lines as standing_text

COMMENT_MARKER = "<!-- speedrun-report -->"


def _status(valid: bool, warnings: list[Problem], pending: bool = False) -> str:
    if pending:
        return "pending (organizers train it)"
    if not valid:
        return "invalid"
    return "valid, needs review" if warnings else "valid"


def _g(value) -> str:
    return "–" if value is None else f"{value:.4g}"


FLOPS_FROM_ENTRYPOINT = ("FLOPs counted from the submitted entrypoint: unverified until a maintainers' reproduction "
                         "confirms it")
FLOPS_FROM_CONFIG = "FLOPs counted by trusted code from the model config"


def flops_provenance(c: dict) -> str:
    """Who made a count: trusted code from a model config (`"source": "config"`), or the submission's entrypoint."""
    return FLOPS_FROM_CONFIG if c.get("source") == "config" else FLOPS_FROM_ENTRYPOINT


def compute_lines(c: dict, verdict_label: str = "verdict") -> list[str]:
    """Recomputed compute, for terminals and comments. Inside a run's report the compute verdict is labelled
    `compute`: a bare "verdict: pass" above an invalid run's errors reads as the run's verdict."""
    if not c:
        return []
    if "error" in c:
        return [f"compute: not counted ({c['error']['rule']})"]
    lines = [
        f"per-sample FLOPs: forward {_g(c['per_sample_forward_flops'])}, training {_g(c['per_sample_training_flops'])} "
        f"(counted on {c['device']})",
        f"samples seen {c['samples_seen']:,}" + (f", forward-only {c['forward_only_samples']:,}" if c['forward_only_samples'] else ""),
        f"total training FLOPs: recomputed {_g(c['total_training_flops'])}, claimed {_g(c['claimed_flops'])}"
        + (f" (ratio {c['claim_ratio']:.3f})" if c.get("claim_ratio") is not None else ""),
        flops_provenance(c),
    ]
    counters = c.get("counters", {})
    fv = counters.get("fvcore", {})
    if fv:
        lines.append(f"counters (forward/sample): torch {_g(counters['torch_flop_counter']['forward'])}, "
                     f"fvcore x2 {_g(fv.get('forward'))}")
    if c.get("budget"):
        b = c["budget"]
        lines.append(f"budget: {_g(b['used'])} of {_g(b['limit'])} {b['kind']} ({b['fraction']:.1%})")
    lines += [f"note: {n}" for n in c.get("notes", [])]
    lines += [f"sandbox: {n}" for n in (c.get("sandbox") or {}).get("notes", [])]
    lines.append(f"{verdict_label}: {c['verdict']}")
    return lines


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


def markdown(report: Report, images: dict[str, str] | None = None, standing: dict[str, dict] | None = None) -> str:
    """The PR comment. `images` maps a run's display path to the URL of a chart of its curves, `standing` to where
    it would stand on its board (speedrun/standing.py)."""
    n_bad = sum(not r.valid and not r.pending for r in report.runs) + sum(not t.valid for t in report.tracks)
    n_policy = sum(p.severity == "error" for p in report.policy)
    n_pending = sum(r.pending for r in report.runs)
    if n_bad == 0 and n_policy == 0:
        verdict = (f"⏳ {n_pending} submission(s) pending: organizers train them; nothing else to fix." if n_pending
                   else "✅ All submissions are valid.")
    else:
        parts = ([f"{n_bad} invalid submission(s)"] if n_bad else []) + (
            [f"{n_policy} pull-request policy error(s)"] if n_policy else [])
        verdict = "❌ " + " and ".join(parts) + "."
    lines = [COMMENT_MARKER, "## Speedrun validation", "", f"**{verdict}**", ""]
    if report.policy:
        lines += ["### Pull request", "", "| | rule | file | problem | how to fix |", "|---|---|---|---|---|"]
        lines += [f"| {p.severity} | {code(p.rule, table=True)} | {code(p.file, table=True)} | "
                  f"{prose(p.message, table=True)} | {prose(p.hint, table=True)} |" for p in report.policy]
        lines.append("")
    for t in report.tracks:
        if t.problems:
            lines += [f"### Track {code(t.display)}", "", "| rule | where | problem | how to fix |", "|---|---|---|---|"]
            lines += [f"| {code(p.rule, table=True)} | {code(p.path, table=True)} | {prose(p.message, table=True)} | "
                      f"{prose(p.hint, table=True)} |" for p in t.problems]
            lines.append("")
    for r in report.runs:
        icon = "⏳" if r.pending else "❌" if not r.valid else ("⚠️" if r.warnings else "✅")
        lines += [f"### {icon} {code(r.display)} on track {code(r.track_id or '?')}: "
                  f"{_status(r.valid, r.warnings, r.pending)}", ""]
        if r.analysis is not None and r.track is not None:
            lines += [_results_line(r), ""]
        if standing and r.display in standing:
            lines += standing_markdown(standing[r.display])
        if images and r.display in images:
            lines += [image(f"curves of {r.name}", images[r.display]), ""]
        if r.compute and "error" not in r.compute:
            c = r.compute
            lines += ["| compute | recomputed | claimed |", "|---|---|---|",
                      f"| training FLOPs per sample | {_g(c['per_sample_training_flops'])} | |",
                      f"| total training FLOPs | {_g(c['total_training_flops'])} | {_g(c['claimed_flops'])} |",
                      f"| samples seen | {c['samples_seen']:,} | |", "", flops_provenance(c) + ".", ""]
            if c.get("budget"):
                b = c["budget"]
                lines += [f"Budget: {_g(b['used'])} of {_g(b['limit'])} {b['kind']} ({b['fraction']:.1%}). "
                          f"Compute: **{c['verdict']}**.", ""]
        problems = r.errors + r.warnings
        if problems:
            lines += ["| | rule | where | problem | how to fix |", "|---|---|---|---|---|"]
            for p in problems:
                sev = "error" if p.severity == "error" else "warning"
                lines.append(f"| {sev} | {code(p.rule, table=True)} | {code(f'{p.file}::{p.path}', table=True)} | "
                             f"{prose(p.message, table=True)} | {prose(p.hint, table=True)} |")
            lines.append("")
    versions = sorted({f"{r.track.id} rules v{r.track.rules_version}" for r in report.runs if r.track})
    footer = "Checked by `speedrun validate`"
    if versions:
        footer += " against " + ", ".join(prose(v) for v in versions)
    lines += ["---", f"<sub>{footer}. Numbers computed in a PR job are unverified until a maintainer reproduces them.</sub>", ""]
    return "\n".join(lines)


def _results_line(r: RunResult) -> str:
    """The claimed final metrics, mean ± std over seeds, as the reviewer should read them."""
    parts = []
    for metric in r.track.metrics:
        values = [res.final[metric.id] for res in r.analysis.results if metric.id in res.final]
        if not values:
            continue
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
        parts.append(f"{prose(metric.name)} {mean:.4g} ± {std:.2g}")
    seeds = len(set(r.analysis.seeds))
    return f"Claimed results over {seeds} seed(s): " + "; ".join(parts) + f". Parameters: {r.analysis.model.parameters:,}."


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
