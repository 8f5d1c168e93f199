"""`speedrun comment`: post or update the one sticky validation report on a pull request.

Run by `comment.yml` with a write token on a report produced by the PR's own (untrusted) job. Exit codes follow
the CLI's: 0 posted, 1 refused (bad PR number, head SHA mismatch, closed PR), 2 API or usage error.
One line on failure, never a traceback, never the token.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import click

from validator import bot

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2
DEFAULT_API_URL = "https://api.github.com"
MAX_BODY_BYTES = 4 * 1024 * 1024  # the artifact is attacker-controlled: do not read an arbitrarily large file


def _repo(ctx, param, value: str) -> str:
    try:
        return bot.valid_repo(value)
    except bot.BotError as exc:
        raise click.BadParameter(str(exc)) from None


def _sha(ctx, param, value: str) -> str:
    try:
        return bot.valid_head_sha(value)
    except bot.BotError as exc:
        raise click.BadParameter(str(exc)) from None


def _read_regular_file(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a regular file, never through a symlink: the report comes from an artifact that a
    PR's job uploaded, and a link to /proc/self/environ or similar must not end up in a comment."""
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "is a symbolic link")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return fh.read(limit)


def _fail(code: int, message: str) -> None:
    click.echo(message, err=True)
    sys.exit(code)


@click.command("comment")
@click.option("--repo", required=True, callback=_repo, metavar="OWNER/NAME", help="The repository of the pull request.")
@click.option("--pr", "pr_text", required=True, metavar="TEXT",
              help="The pull request number (from the artifact: untrusted, validated here).")
@click.option("--head-sha", required=True, callback=_sha, metavar="SHA",
              help="The head SHA the report is about (from the triggering run); the PR's head must equal it.")
@click.option("--body-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The markdown report to post.")
@click.option("--api-url", default=lambda: os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL,
              show_default="$GITHUB_API_URL or https://api.github.com", help="The GitHub REST API root.")
def comment(repo: str, pr_text: str, head_sha: str, body_file: Path, api_url: str) -> None:
    """Create or update the sticky speedrun report comment on a pull request. The token is read from $GITHUB_TOKEN."""
    token = (os.environ.get("GITHUB_TOKEN") or "").strip()
    if not token:
        _fail(EXIT_ERROR, "error: GITHUB_TOKEN is not set")
    try:
        pr = bot.valid_pr_number(pr_text)
    except bot.BotError as exc:
        _fail(EXIT_REFUSED, f"refused: {exc}")
    try:
        raw = _read_regular_file(body_file, MAX_BODY_BYTES)
    except OSError as exc:
        _fail(EXIT_ERROR, f"error: cannot read {body_file}: {exc.strerror or exc}")
    body = raw.decode("utf-8", "replace")
    try:
        action, comment_id = bot.upsert_comment(api_url, repo, token, pr, head_sha, body)
    except bot.Refused as exc:
        _fail(EXIT_REFUSED, str(exc))
    except bot.BotError as exc:
        _fail(EXIT_ERROR, f"error: {exc}")
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback, and never the token
        _fail(EXIT_ERROR, f"internal error: {type(exc).__name__}: {str(exc).replace(token, '***')}")
    click.echo(f"{action} comment {comment_id}")


if __name__ == "__main__":  # pragma: no cover - `python -m speedrun.comment` until it is registered on the group
    comment()
