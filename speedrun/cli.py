"""`speedrun`: the command line. The only layer that sees both `validator` and `leaderboard`, and the only
place where exceptions become exit codes (0 valid, 1 invalid submission, 2 usage or internal error).

This module holds the click group and what every command shares (`_guard`, `_progress`, `_need_sandbox`); the
commands live beside it by family (validatecmd, newcmd, sitecmds, computecmds, importcmds, envcli, comment) and are
added to the group at the end of this module, after what they import from it exists."""

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


def _register() -> None:
    from speedrun.comment import comment
    from speedrun.envcli import env
    from speedrun.computecmds import flops, reproduce
    from speedrun.importcmds import freeze, import_, import_zip
    from speedrun.newcmd import new
    from speedrun.sitecmds import build, serve
    from speedrun.validatecmd import validate
    from validator.importers.ast_template import ast_template_command

    for command in (comment, env, new, build, serve, validate, flops, reproduce, import_, import_zip, freeze):
        cli.add_command(command)
    import_.add_command(ast_template_command)


_register()


def main() -> None:
    cli(prog_name="speedrun")


if __name__ == "__main__":
    main()
