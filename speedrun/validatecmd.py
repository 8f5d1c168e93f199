"""`speedrun validate`: judge run folders, or with --changed the run a pull request adds, and report it in one of
the reporters' formats, with where each valid run would stand on its track's board (speedrun/standing.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from speedrun.cli import EXIT_INVALID, EXIT_OK, _guard, _need_sandbox, _progress
from speedrun.standing import standings

FORMATS = ["text", "markdown", "json", "github"]


def _github_login(_ctx, _param, value: str | None) -> str | None:
    import re

    from validator.models.run import GITHUB_LOGIN

    if value is not None and not (len(value) <= 39 and re.match(GITHUB_LOGIN, value)):
        raise click.BadParameter(f"{value!r} is not a GitHub login (letters, digits and single hyphens, at most 39)")
    return value


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Report format: text for terminals, markdown for PR comments, json for machines, github for annotations.")
@click.option("--tracks", "tracks_root", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Folder holding <track>/track.yaml, for runs that do not sit inside their track's folder.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the report to this file.")
@click.option("--flops/--no-flops", default=True, show_default=True,
              help="Recount each run's FLOPs from its entrypoint in the sandbox.")
@click.option("--timeout", type=float, default=180.0, show_default=True, help="Seconds allowed per sandboxed count.")
@click.option("--changed", is_flag=True,
              help="Validate the run folders this branch changes against --base, and apply the pull-request policy.")
@click.option("--base", default="main", show_default=True, help="Base revision for --changed (e.g. origin/main).")
@click.option("--maintainer", is_flag=True,
              help="With --changed: a maintainer takes the change: files outside run folders (tracks, code), "
                   "merged runs of others, reproduction records.")
@click.option("--pr-author", metavar="LOGIN", callback=_github_login,
              help="With --changed: the pull request author's GitHub login; they may change a merged run whose "
                   "authors[].github names them (CI passes github.event.pull_request.user.login).")
@click.option("--max-file-mb", type=float, default=5.0, show_default=True, help="With --changed: largest file accepted.")
@click.option("--png-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write a PNG of each valid run's curves here; the markdown report embeds them.")
@click.option("--png-url", default="", help="URL prefix under which --png-dir is published (default: relative links).")
@_guard
def validate(paths: tuple[Path, ...], fmt: str, tracks_root: Path | None, output: Path | None, flops: bool,
             timeout: float, changed: bool, base: str, maintainer: bool, pr_author: str | None, max_file_mb: float,
             png_dir: Path | None, png_url: str) -> None:
    """Check run folders, track folders or a whole runs/ tree (default: runs/)."""
    from validator.checker import Checker
    from validator.compute.sandbox import Limits
    from validator.reporter import REPORTERS

    _need_sandbox(flops)
    checker = Checker(tracks_root=tracks_root, flops=flops, limits=Limits(timeout_s=timeout),
                      progress=_progress)
    if changed:
        if paths:
            raise click.UsageError("--changed finds the run folders itself; give no PATHS with it")
        report = _validate_changed(checker, base, maintainer, int(max_file_mb * 2**20), pr_author)
    else:
        if pr_author:
            raise click.UsageError("--pr-author applies to --changed (the pull request's author)")
        targets = list(paths) or [Path("runs")]
        if tracks_root is None and not paths and Path("runs").is_dir():
            checker.tracks_root = Path("runs")
        report = checker.check_paths(targets)
    _placeholders(report)
    standing = standings(report, checker.tracks_root)
    images = _curve_pngs(report, png_dir, png_url) if png_dir else None
    if fmt == "markdown":
        rendered = REPORTERS["markdown"](report, images, standing=standing)
    else:
        rendered = REPORTERS[fmt](report, standing=standing)
    click.echo(rendered, nl=False)
    if output:
        output.write_text(rendered, encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and fmt in ("markdown", "github"):
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(REPORTERS["markdown"](report, standing=standing))
    sys.exit(EXIT_OK if report.valid else EXIT_INVALID)


def _placeholders(report) -> None:
    """Text a run kept from `speedrun new` (validator/scaffold.py) is an error in every mode, local or CI."""
    from validator.checker import display_path
    from validator.discover import analysis_file
    from validator.scaffold import placeholder_problems

    for result in report.runs:
        if result.analysis is not None:
            result.problems += placeholder_problems(result.analysis, display_path(analysis_file(result.path)))


def _curve_pngs(report, png_dir: Path, png_url: str) -> dict[str, str]:
    """PNG charts of each run's curves for the PR comment (the CLI sees both layers: validator results, leaderboard
    charts)."""
    from leaderboard.charts import run_curves_spec, to_png

    png_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for r in report.runs:
        if r.analysis is None or r.track is None:
            continue
        track = {"metrics": [m.model_dump() for m in r.track.metrics], "primary_metric": r.track.primary_metric,
                 "ranking": [{"kind": x.kind, "threshold": getattr(x, "threshold", None)}
                             for x in [r.track.ranking.primary, *r.track.ranking.tie_breakers]]}
        curves = [{"seed": x.seed, "setting": x.setting,
                   "points": [{"samples": p.samples, **(p.model_extra or {})} for p in x.curve]}
                  for x in r.analysis.results]
        spec = run_curves_spec(track, r.name, curves)
        if spec is None:
            continue
        file = f"{r.track.id}--{r.name}.png"
        (png_dir / file).write_bytes(to_png(spec))
        out[r.display] = f"{png_url.rstrip('/')}/{file}" if png_url else file
    return out


def _validate_changed(checker, base: str, maintainer: bool, max_file_bytes: int, pr_author: str | None = None):
    from validator import git, policy
    from validator.checker import display_path
    from validator.discover import ANALYSIS_NAMES, Targets
    from validator.problems import Problems

    repo = git.toplevel(Path.cwd())
    changes = git.changed_files(repo, base)
    pr = policy.check_pull_request(repo, changes, maintainer=maintainer, max_file_bytes=max_file_bytes, base=base,
                                   pr_author=pr_author)
    checker.tracks_root = checker.tracks_root or repo / policy.RUNS_ROOT
    report = checker.check_targets(Targets(tracks=pr.track_dirs, runs=pr.run_dirs))
    report.policy = pr.problems
    for result in report.runs:
        if result.analysis is not None and result.track is not None:
            file = next(result.path / n for n in ANALYSIS_NAMES if (result.path / n).is_file())
            problems = Problems(display_path(file))
            policy.check_rate_limit(repo, base, result.path, result.track, result.analysis.team, problems)
            policy.check_changes(repo, base, result.path, result.analysis, problems)
            result.problems += problems.items
    return report


