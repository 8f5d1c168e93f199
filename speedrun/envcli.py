"""`speedrun env`: a track's declared environment (docs/environments.md), installed or locked by its organizers."""

from __future__ import annotations

from pathlib import Path

import click

from speedrun.cli import _guard, _progress
from validator.problems import InvalidInput


def _track(track: Path):
    """The track folder (a path, or an id under runs/) and its valid Track, or InvalidInput naming what is wrong."""
    from validator.checker import Checker
    from validator.discover import TRACK_FILE

    track_dir = track if track.is_dir() or len(track.parts) > 1 else Path("runs") / str(track)
    result = Checker().check_track(track_dir)
    if result.track is None or result.errors:
        first = result.errors[0].line() if result.errors else f"{track_dir}/{TRACK_FILE}: missing"
        raise InvalidInput(f"{first}; fix the track first (`speedrun validate {track_dir}`)")
    return track_dir, result.track


def _refused(track_dir: Path, exc) -> InvalidInput:
    from validator.compute.accounting import _FAILURE_HINTS
    from validator.envlock import LOCK_FILE

    where = f"{track_dir}/{LOCK_FILE}" if exc.rule == "env-lock-invalid" else f"{track_dir}/track.yaml::$.environment.packages"
    return InvalidInput(f"{where}: {exc} [{exc.rule}]; fix: {_FAILURE_HINTS[exc.rule]}")


@click.group("env")
def env() -> None:
    """Install or lock a track's declared packages (track.yaml `environment`)."""


@env.command()
@click.argument("track", type=click.Path(path_type=Path, file_okay=False))
@_guard
def install(track: Path) -> None:
    """Install TRACK's packages into its cached environment (a folder or an id under runs/); print its interpreter."""
    from validator.environment import EnvironmentFailure, sandbox_env

    track_dir, t = _track(track)
    try:
        made = sandbox_env(t, track_dir, progress=_progress)
    except EnvironmentFailure as exc:
        raise _refused(track_dir, exc) from None
    click.echo(f"{t.id}: {made.description}", err=True)
    for name, version in made.packages.items():
        click.echo(f"  {name} {version}", err=True)
    click.echo(made.python)


@env.command()
@click.argument("track", type=click.Path(path_type=Path, file_okay=False))
@_guard
def lock(track: Path) -> None:
    """Resolve TRACK's packages against this interpreter and write TRACK/environment.lock (exact pins)."""
    from validator.environment import EnvironmentFailure
    from validator.envlock import write_lock

    track_dir, t = _track(track)
    try:
        target, pins = write_lock(track_dir, t.id, t.environment, progress=_progress)
    except EnvironmentFailure as exc:
        raise _refused(track_dir, exc) from None
    for pin in pins:
        click.echo(f"  {pin}")
    click.echo(f"wrote {target}: {len(pins)} package(s) to install beyond this interpreter; commit it")
