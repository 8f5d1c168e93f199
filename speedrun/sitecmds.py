"""`speedrun build` and `speedrun serve`: the leaderboard site, written to a folder or served on localhost.

Both recount FLOPs by default, with the same cache, so the board a participant serves locally ranks and flags runs
as the published one does."""

from __future__ import annotations

from pathlib import Path

import click

from speedrun.cli import _guard, _need_sandbox, _progress

CACHE_DIR = ".speedrun-cache"
FLOPS_HELP = ("Recount FLOPs of runs with an entrypoint or model config (sandboxed; cached by content under "
              "--cache-dir), as CI and the published site do.")


@click.command()
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path, file_okay=False, exists=True), default="runs",
              show_default=True, help="Folder of tracks and runs.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default="site", show_default=True,
              help="Where to write the site (replaced atomically).")
@click.option("--flops/--no-flops", default=True, show_default=True, help=FLOPS_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=CACHE_DIR,
              show_default=True, help="Where FLOP counts are cached between builds.")
@click.option("--charts/--no-charts", default=True, show_default=True, help="Render charts (Vega-Lite + SVG).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes; tracks are built in parallel. [default: one per CPU; 1 with --flops]")
@click.option("--source-url", metavar="URL", default=None,
              help="The runs folder in the repository (e.g. https://github.com/ORG/REPO/blob/SHA/runs): run pages "
                   "link each file there too.")
@_guard
def build(runs_dir: Path, out_dir: Path, flops: bool, cache_dir: Path, charts: bool, jobs: int | None,
          source_url: str | None) -> None:
    """Validate every run and render the leaderboard site."""
    from leaderboard.build import build_site

    _need_sandbox(flops)
    summary = build_site(runs_dir, out_dir, progress=_progress, flops=flops,
                         flops_cache=cache_dir / "flops", charts=charts, jobs=jobs, source_url=source_url)
    click.echo(f"built {out_dir}/: {summary.tracks} track(s); {summary.runs_line()}; invalid and unreadable runs "
               "are listed with their errors")


@click.command()
@click.option("--storage-path", default="runs", show_default=True,
              help="Runs tree to serve: a local folder or an fsspec URL (gs://bucket/runs, s3://..., memory://...).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (localhost by default).")
@click.option("--flops/--no-flops", default=True, show_default=True,
              help=FLOPS_HELP + " --no-flops starts faster but judges claims without recounting them.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=CACHE_DIR,
              show_default=True, help="Where FLOP counts are cached between builds (shared with `speedrun build`).")
@_guard
def serve(storage_path: str, port: int, host: str, flops: bool, cache_dir: Path) -> None:
    """Build the leaderboard from a runs tree and serve it locally (Ctrl-C to stop); recounts FLOPs like build."""
    from leaderboard.serve import Leaderboard

    _need_sandbox(flops)
    board = Leaderboard(storage_path, host, port, progress=_progress, flops=flops,
                        flops_cache=cache_dir.resolve() / "flops")
    s = board.summary
    click.echo(f"{s.tracks} track(s), {s.valid_runs} run(s) ranked or listed, {s.invalid_runs} invalid")
    click.echo(f"serving the leaderboard at {board.url} (Ctrl-C to stop)")
    try:
        board.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
