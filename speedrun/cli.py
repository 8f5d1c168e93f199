"""`speedrun`: the command line. The only layer that sees both `validator` and `leaderboard`, and the only
place where exceptions become exit codes (0 valid, 1 invalid submission, 2 usage or internal error)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from validator import __version__
from validator.problems import InvalidInput, SpeedrunError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


_doing: list[str] = []


def _progress(msg: str) -> None:
    """Progress on stderr; the last line is kept, so an interrupt can say what it stopped."""
    click.echo(msg, err=True)
    if msg.strip():
        _doing[:] = [msg.strip().rstrip(" .")]


def _guard(fn):
    """Turn library errors into one line and exit 2; never show a traceback unless SPEEDRUN_DEBUG is set."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except InvalidInput as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_INVALID)
        except SpeedrunError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            # Whatever was under way has been undone on the way out (a sandbox killed, a build's temporary folder
            # removed); say what it was.
            doing = f" while {_doing[-1]}" if _doing else ""
            click.echo(f"interrupted{doing}; nothing was left half-written", err=True)
            sys.exit(EXIT_USAGE)
        except OSError as exc:  # a full disk, a read-only folder: name the path, as the user must act on it
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            sys.exit(EXIT_USAGE)
        except Exception as exc:  # noqa: BLE001 - the boundary: anything unexpected is an internal error
            if os.environ.get("SPEEDRUN_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} (set SPEEDRUN_DEBUG=1 for details)", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="speedrun")
@click.option("--unsafe-no-sandbox", is_flag=True,
              help="Run submitted code even where bubblewrap is missing, with resource limits only. Never in CI: "
                   "the code can then read and write whatever this user can.")
def cli(unsafe_no_sandbox: bool) -> None:
    """Validate ML training speedrun submissions and build their leaderboards."""
    if unsafe_no_sandbox:
        from validator.compute.bwrap import UNSAFE_ENV

        os.environ[UNSAFE_ENV] = "1"  # an environment variable, so build workers and fork servers see it too


def _need_sandbox(runs_code: bool) -> None:
    """Refuse up front, with the reason and the fix, rather than fail every run on the way."""
    if runs_code:
        from validator.compute import bwrap

        try:
            bwrap.require()
        except bwrap.SandboxUnavailable as exc:
            raise SpeedrunError(str(exc)) from exc


def _pattern(regex: str, what: str):
    """A click callback accepting only values that match `regex` in full."""
    import re

    def check(_ctx, _param, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(regex, value):
            raise click.BadParameter(f"{value!r} is not {what}")
        return value

    return check


@cli.command()
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


@cli.command()
@click.option("--check", is_flag=True, help="Exit 1 if the committed schemas or reference docs differ from the models.")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True,
              help="Project root holding schemas/ and docs/reference/.")
@_guard
def schemas(check: bool, root: Path) -> None:
    """Write schemas/*.schema.json and docs/reference/*.md from the pydantic models."""
    from leaderboard.exports import LeaderboardExport
    from validator import schemas as gen

    extra = {"leaderboard": LeaderboardExport}
    if check:
        stale = gen.drift(root, extra)
        for rel in stale:
            click.echo(f"{rel}: out of date with the models; run `speedrun schemas` and commit the result", err=True)
        if stale:
            sys.exit(EXIT_INVALID)
        click.echo("schemas and reference docs are up to date")
        return
    written = gen.write(root, extra)
    click.echo("\n".join(f"wrote {w}" for w in written) if written else "schemas and reference docs are up to date")


@cli.command()
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


@cli.group("import")
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


@cli.command()
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


@cli.command("import-zip")
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


def _register() -> None:
    from speedrun.comment import comment
    from speedrun.envcli import env
    from speedrun.newcmd import new
    from speedrun.sitecmds import build, serve
    from speedrun.validatecmd import validate
    from validator.importers.ast_template import ast_template_command

    for command in (comment, env, new, build, serve, validate):
        cli.add_command(command)
    import_.add_command(ast_template_command)


_register()


def main() -> None:
    cli(prog_name="speedrun")


if __name__ == "__main__":
    main()
