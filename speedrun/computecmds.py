"""`speedrun flops` and `speedrun reproduce`: recount a run's compute, or rerun its script, in the sandbox."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from speedrun.cli import EXIT_INVALID, EXIT_OK, _guard, _need_sandbox, _progress
from validator.problems import SpeedrunError


def _pattern(regex: str, what: str):
    """A click callback accepting only values that match `regex` in full."""
    import re

    def check(_ctx, _param, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(regex, value):
            raise click.BadParameter(f"{value!r} is not {what}")
        return value

    return check

@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the full compute report as JSON.")
@click.option("--tracks", "tracks_root", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Folder holding <track>/track.yaml, if the run is not inside its track's folder.")
@click.option("--timeout", type=float, default=180.0, show_default=True, help="Seconds allowed for the sandboxed count.")
@click.option("--no-fvcore", is_flag=True, help="Skip the fvcore cross-check.")
@_guard
def flops(run_dir: Path, as_json: bool, tracks_root: Path | None, timeout: float, no_fvcore: bool) -> None:
    """Recount a run's FLOPs (meta device, sandboxed) and compare them with its claim and the budget."""
    import json

    from validator.checker import Checker
    from validator.compute.accounting import account
    from validator.compute.sandbox import Limits
    from validator.problems import Problems

    _need_sandbox(True)
    file, analysis, track = Checker(tracks_root=tracks_root).load_claim(run_dir)
    problems = Problems(str(file))
    model = analysis.model
    if model.entrypoint is None and model.config is None:
        raise SpeedrunError(f"{file}: neither model.entrypoint nor model.config is set; nothing to count "
                            "(see CONTRIBUTING.md)")
    what = model.entrypoint or f"{model.config.library} {model.config.architecture}, from its config"
    click.echo(f"counting {run_dir} ({what}) in the sandbox ...", err=True)
    report = account(run_dir, analysis, track, problems, Limits(timeout_s=timeout), fvcore=not no_fvcore)
    if as_json:
        click.echo(json.dumps({**report, "problems": [p.to_dict() for p in problems.items]}, indent=2))
    else:
        from validator.reporter import compute_lines

        click.echo("\n".join(compute_lines(report)))
        for p in problems.items:
            click.echo(f"{p.severity}: {p.line()}\n    fix: {p.hint}")
    sys.exit(EXIT_INVALID if report.get("verdict") == "fail" else EXIT_OK)

@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--device", default="cpu", show_default=True, help="Device passed to the script: cpu, cuda, cuda:1 ...")
@click.option("--nproc", type=int, default=1, show_default=True, help="Processes (GPUs); >1 starts the script under torchrun.")
@click.option("--seeds", type=int, multiple=True, help="Seeds to rerun (repeat the option); default: every claimed seed.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds allowed per seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the reproduction report as JSON.")
@click.option("--record", is_flag=True,
              help="If the rerun agrees, write reproductions/<date>-<hardware>.json into the run folder, bound to "
                   "the run and the content hash of its folder.")
@click.option("--head-sha", callback=_pattern(r"[0-9a-f]{40}", "a full 40-character lowercase commit SHA"),
              help="For the record: the reviewed pull-request head commit that was reproduced.")
@click.option("--pr", type=click.IntRange(min=1), help="For the record: the pull request number.")
@click.option("--workflow-run", metavar="URL", callback=_pattern(r"https://\S+", "an https:// URL"),
              help="For the record: the URL of the workflow run that reproduced it.")
@_guard
def reproduce(run_dir: Path, device: str, nproc: int, seeds: tuple[int, ...], timeout: float, as_json: bool,
              record: bool, head_sha: str | None, pr: int | None, workflow_run: str | None) -> None:
    """Rerun a run's script in a sandboxed copy and compare with its claim within the track's tolerance."""
    import json

    from validator.checker import Checker
    from validator.reproduce import reproduce as do_reproduce

    _need_sandbox(True)
    report = do_reproduce(run_dir, Checker(), device=device, nproc=nproc, seeds=list(seeds) or None,
                          timeout_s=timeout, record=record, head_sha=head_sha, pr=pr, workflow_run=workflow_run,
                          progress=_progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for d in (d for s in report.seeds for d in s.deltas):
            where = f"seed {d['seed']}" + (f" {d['setting']}" if d["setting"] else "")
            click.echo(f"{where:>18} {d['metric']:<16} claimed {d['claimed']:.4f}  reproduced {d['reproduced']:.4f}  "
                       f"Δ {d['delta']:+.4f} {'ok' if d['ok'] else 'OUT OF TOLERANCE'}")
        click.echo(f"verdict: {report.verdict}" + (f" ({'; '.join(report.reasons)})" if report.reasons else ""))
        if report.recorded:
            click.echo(f"recorded {report.recorded}")
        elif record:
            click.echo("nothing recorded: only a reproduction that agrees is written")
    sys.exit(EXIT_OK if report.verdict == "reproduced" else EXIT_INVALID)
