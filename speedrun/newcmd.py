"""`speedrun new`: scaffold a run folder, and say what to do next in commands that work where they are printed."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from speedrun.cli import _guard


def next_steps(run_dir: Path, constrained=None) -> list[str]:
    """The participant loop, as commands to paste into the shell `speedrun new` ran in: every path is given from
    there (run.py writes beside itself whatever the working folder), nothing assumes a `cd`."""
    run = shlex.quote(str(run_dir))
    script = shlex.quote(str(run_dir / "run.py"))
    if constrained is None:
        edit = (f"edit {script}: your change, and the description and `changes` (one line: what it changes "
                "against the run it builds on) that it writes")
    else:
        config = shlex.quote(str(run_dir / constrained.config))
        edit = (f"edit {', '.join(constrained.editable)} under {run} and {config} (its submission: description, "
                "notes and changes, which the frozen run.py copies into the analysis)")
    return [
        edit,
        f"python {script}",
        f"speedrun validate {run}",
        "open a pull request that adds only that folder; CI runs "
        "`speedrun validate --changed --base origin/main --format markdown`",
    ]


@click.command()
@click.argument("name")
@click.option("--track", required=True, help="Track id (a folder under --runs); a wrong id lists the tracks.")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path, file_okay=False, exists=True), default="runs",
              show_default=True)
@click.option("--team", help="Your team name (written into run.py where it has a TEAM constant).")
@click.option("--author", help="Your name (written into run.py where it has an AUTHORS constant).")
@_guard
def new(name: str, track: str, runs_dir: Path, team: str | None, author: str | None) -> None:
    """Scaffold runs/<track>/<NAME>/ from the track's starter run (or frozen reference) to train and submit."""
    from validator.scaffold import scaffold

    from validator.checker import Checker

    run_dir, notes = scaffold(runs_dir, track, name, team=team, author=author)
    constrained = Checker().check_track(runs_dir / track).track.constrained
    click.echo(f"created {run_dir}/")
    for note in notes:
        click.echo(f"  {note}")
    click.echo("next, from this folder:")
    for i, step in enumerate(next_steps(run_dir, constrained), 1):
        click.echo(f"  {i}. {step}")
