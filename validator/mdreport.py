"""The markdown report: the PR comment (and the job summary), every submitted string through validator/mdsafe.py."""

from __future__ import annotations

from .mdsafe import code, image, prose
from .reportparts import COMMENT_MARKER, _g, _status, flops_provenance
from .result import Report, RunResult
from .standinglines import markdown_lines as standing_markdown

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
