"""`speedrun import`, `speedrun import-zip` and `speedrun freeze`: runs from other formats, ZIP submissions over a
constrained track's frozen reference, and that reference's manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from speedrun.cli import EXIT_INVALID, _guard
from validator.problems import InvalidInput, SpeedrunError


@click.group("import")
def import_() -> None:
    """Import results from other competitions' formats as runs."""


@import_.command("marin")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--track", required=True,
              help="Track id to import into, or 'auto': the smallest Marin budget that holds the run's FLOPs.")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path, file_okay=False, exists=True), default="runs",
              show_default=True, help="Folder of tracks.")
@click.option("--force", is_flag=True, help="Replace run folders that already exist.")
@_guard
def import_marin(files: tuple[Path, ...], track: str, runs_dir: Path, force: bool) -> None:
    """Turn Marin `*.speedrun_results.json` files into runs, recomputing FLOPs of Llama-architecture models."""
    from validator.checker import Checker
    from validator.discover import is_track_dir
    from validator.importers.marin import import_file, run_base_name

    checker = Checker()
    tracks = {}
    for d in sorted(p for p in runs_dir.iterdir() if is_track_dir(p)):
        t = checker.check_track(d)
        if t.track is not None and t.track.competition.id == "marin":
            tracks[t.track.id] = t.track.budget.limit if t.track.budget else None
    if not tracks:
        raise SpeedrunError(f"no Marin tracks (competition id 'marin') under {runs_dir}/")
    named: dict[str, Path] = {}
    for file in files:  # before anything is written: two inputs must never overwrite one run
        base = run_base_name(file)
        if base in named:
            raise InvalidInput(f"{file} and {named[base]} would both become run {base!r} (the same run); "
                               "import them one at a time into different --runs folders, or rename one")
        named[base] = file
    imported = []
    for file in files:
        click.echo(f"importing {file} ...", err=True)
        imported += import_file(file, runs_dir, track, tracks, force=force)
    for item in imported:
        if item.rebuilt:
            how = (f"recomputed {item.recomputed_flops:.4e} vs published {item.published_flops:.4e} "
                   f"(ratio {item.ratio:.4f}); Marin's convention gives {item.marin['model_flops']:.4e}, "
                   + ("reproducing" if item.marin["reproduces_published"] else "NOT reproducing") + " it")
        else:
            how = f"self-reported {item.published_flops:.4e} FLOPs: {item.note}"
        click.echo(f"{item.path}: {how}")
    click.echo(f"imported {len(imported)} run(s); check them with `speedrun validate {runs_dir}`")


@click.command()
@click.argument("track", type=click.Path(path_type=Path, file_okay=False))
@_guard
def freeze(track: Path) -> None:
    """Write the sha256 manifest of a constrained track's frozen reference (TRACK: folder or id under runs/)."""
    from validator.checker import Checker
    from validator.frozen import write_manifest

    track_dir = track if track.is_dir() else Path("runs") / str(track)
    result = Checker().check_track(track_dir)
    if result.track is None:
        raise InvalidInput(f"{track_dir}/track.yaml is missing or invalid; run `speedrun validate {track_dir}`")
    if result.track.constrained is None:
        raise InvalidInput(f"{track_dir}/track.yaml::$.constrained: the track is not constrained; nothing to freeze")
    target, n = write_manifest(track_dir, result.track.constrained)
    click.echo(f"wrote {target}: {n} frozen file(s); commit it and bump rules_version if the reference changed")


@click.command("import-zip")
@click.argument("zip_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--track", required=True, help="Id of the constrained track (a folder under --runs).")
@click.option("--name", required=True, help="Name of the new run folder.")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path, file_okay=False, exists=True), default="runs",
              show_default=True)
@_guard
def import_zip(zip_file: Path, track: str, name: str, runs_dir: Path) -> None:
    """Unpack a ZIP submission (editable folder + config) over the track's frozen reference, then check it."""
    from validator.checker import Checker
    from validator.zipimport import import_zip as do_import

    run_dir = do_import(zip_file, runs_dir / track, name)
    click.echo(f"unpacked {zip_file} into {run_dir}")
    report = Checker(tracks_root=runs_dir).check_paths([run_dir])
    result = report.runs[0]
    for p in result.errors:
        click.echo(f"error: {p.line()}\n    fix: {p.hint}")
    if not result.pending:
        sys.exit(EXIT_INVALID)
    click.echo(f"frozen files intact; pending until organizers train it (see {run_dir}/PENDING.md)")
