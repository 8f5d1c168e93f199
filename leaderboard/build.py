"""`speedrun build`: validate every run, rank per track, render the static site.

Everything is gathered and rendered in memory first, then written to a temporary folder beside the target and
swapped in, so a failed build leaves the previous site untouched. Output depends only on the inputs (and
SOURCE_DATE_EPOCH, when set), so two builds of the same tree are byte-identical. What a track's pages show is
`trackdata`'s; how one failing run is kept from stopping the rest is `isolation`'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from validator.checker import Checker, display_path
from validator.discover import discover
from validator.problems import SpeedrunError
from validator.result import RunResult, TrackResult

from . import isolation
from .trackdata import _Group, _assemble, _group_data, _groups
from .trackdata import gather  # noqa: F401 - callers gather the site's data from here


@dataclass
class BuildSummary:
    tracks: int
    valid_runs: int
    invalid_runs: int
    files: int
    largest_page: tuple[str, int] = ("", 0)
    runs_in: int = 0
    unreadable_runs: int = 0  # no analysis could be read at all: listed among the invalid, with why
    pending_runs: int = 0  # ZIP submissions waiting for the organizers' training

    def runs_line(self) -> str:
        """Every run folder found, accounted for: the terms always add up to the first number."""
        line = (f"{self.runs_in} run(s) in = {self.valid_runs} valid + {self.invalid_runs} invalid + "
                f"{self.unreadable_runs} unreadable")
        return line + (f" + {self.pending_runs} pending" if self.pending_runs else "")


def build_time() -> str | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


class _Writer:
    """Writes site files under a folder, counting them and remembering the largest page."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        self.largest = ("", 0)
        self._made: set[str] = set()

    def _folder(self, rel: str) -> str:
        folder = os.path.dirname(rel)
        if folder not in self._made:  # one mkdir per folder, not per file: a big site has 50,000 files
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
            self._made.add(folder)
        return os.path.join(self.root, rel)

    def write(self, rel: str, content: str | bytes) -> None:
        # A folder name that is not UTF-8 reaches Python as surrogate escapes: shown as `\udcff`, so every page and
        # export stays valid UTF-8.
        raw = content if isinstance(content, bytes) else content.encode("utf-8", "backslashreplace")
        with open(self._folder(rel), "wb") as f:
            f.write(raw)
        self.count += 1
        if rel.endswith(".html") and len(raw) > self.largest[1]:
            self.largest = (rel, len(raw))


@dataclass
class _Job:
    runs_dir: Path
    group: _Group
    out: Path
    flops: bool
    flops_cache: Path | None
    built_at: str | None
    bundle_name: str | None
    source_url: str | None
    # A fork server's workers keep the directory the server started in; paths in reports are relative to this one.
    cwd: str


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: a track's build allocates millions of small objects that are not garbage,
    and the collector rescanning the growing heap over and over costs a third of the validation time. Cycles made
    meanwhile are collected once it runs again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _render(job: _Job, t: TrackResult, results: list[RunResult]) -> tuple[dict, dict | None, dict[str, object]]:
    """One track's data, competition and every file of its pages, in memory: nothing is written from a render
    that fails halfway."""
    from .exports import track_files
    from .render import render_track

    track, competition = _group_data(t, results)
    files = dict(render_track(track, job.built_at, job.bundle_name, job.group.track_dir, job.source_url))
    files.update(track_files(track))
    return track, competition, files


def _build_track(job: _Job, progress: Callable[[str], None] | None = None) -> dict:
    """Validate, rank and render one track into the build folder; return its data and what was written. Runs in a
    worker process when the build is parallel, so it takes and returns plain, picklable values."""
    if os.getcwd() != job.cwd:
        os.chdir(job.cwd)
    checker = Checker(tracks_root=job.runs_dir, flops=job.flops, flops_cache=job.flops_cache, progress=progress)
    with _gc_paused():
        t, results = isolation.check_group(checker, job.group)
        return _written(job, *isolation.render_isolated(functools.partial(_render, job), t, results))


def _written(job: _Job, track: dict, competition: dict | None, files: dict, results: list[RunResult]) -> dict:
    """Write a rendered track; return what the rest of the build needs of it. The index, leaderboard.json and the
    feed need the track's summary and its export, not its thousands of entries: sending less back from a worker
    saves pickling them twice."""
    writer = _Writer(job.out)
    for rel, content in files.items():
        writer.write(rel, content)
    summary = {**track, "entries": [], "unranked": [], "invalid": [],
               "valid_runs": len(track["entries"]) + len(track["unranked"])}
    return {"track": summary, "competition": competition, "exported": files.get(f"tracks/{track['id']}.json"),
            "count": writer.count, "largest": writer.largest, "counts": isolation.counts(results)}


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def build_site(runs_dir: Path, out_dir: Path, progress: Callable[[str], None] = lambda _m: None, *,
               flops: bool = False, flops_cache: Path | None = None, charts: bool = True,
               jobs: int | None = None, source_url: str | None = None) -> BuildSummary:
    """Build the site into `out_dir`, replacing it only once everything is written.

    Each track is validated, ranked and rendered on its own (in `jobs` worker processes, default one per CPU; with
    FLOP counting, one, since every count already runs in its own sandbox); the index, `leaderboard.json` and the
    feed come last, from the tracks' data. Run pages show the run's files; with `source_url` (the runs folder in
    the repository, e.g. https://github.com/ORG/REPO/blob/SHA/runs) they also link to them there."""
    from .charts import bundle_content, bundle_name as vega_bundle_name
    from .exports import site_files
    from .render import render_site

    targets = discover([runs_dir])
    groups = sorted(_groups(targets), key=lambda g: -len(g.runs))  # biggest first keeps the workers evenly busy
    jobs = max(1, min(jobs or (1 if flops else default_jobs()), len(groups) or 1))
    built_at = build_time()
    bundle_name = vega_bundle_name() if charts else None

    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        progress(f"validating and rendering {len(targets.runs)} run(s) on {len(groups)} track(s)"
                 + (f" in {jobs} processes" if jobs > 1 else "") + " ...")
        url = source_url.rstrip("/") if source_url else None
        work = [_Job(runs_dir, g, tmp, flops, flops_cache, built_at, bundle_name, url, os.getcwd()) for g in groups]
        if jobs == 1:
            parts = []
            for i, job in enumerate(work, 1):
                parts.append(_build_track(job, progress))
                progress(f"  [{i}/{len(work)}] {_done(parts[-1])}")
        else:
            parts = _parallel(work, jobs, progress)

        progress("writing the index, exports and feed ...")
        data = _assemble([(p["track"], p["competition"]) for p in parts])
        writer = _Writer(tmp)
        if charts:  # read from the vendored copy; bundled afresh only if vl-convert was upgraded without it
            writer.write(f"static/{bundle_name}", bundle_content())
        for rel, content in render_site(data, built_at, bundle_name):
            writer.write(rel, content)
        exported = [p["exported"] for p in sorted(parts, key=lambda p: p["track"]["id"]) if p["exported"]]
        for rel, content in site_files(data, exported, built_at).items():
            writer.write(rel, content)

        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
        os.chmod(tmp, 0o755)  # mkdtemp made it private; the site is for any web server to read
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, say: the temporary folder is gone, the old site untouched
            where = exc.filename if exc.filename and not str(exc.filename).startswith(str(tmp)) else out_dir
            raise SpeedrunError(f"cannot write the site ({where}: {exc.strerror or exc}); "
                                f"{out_dir} was left as it was") from exc
        raise
    tracks = data["tracks"]
    largest = max([p["largest"] for p in parts] + [writer.largest], key=lambda x: (x[1], x[0]))
    counts = {k: sum(p["counts"][k] for p in parts) for k in ("runs_in", "valid", "invalid", "unreadable", "pending")}
    return BuildSummary(
        tracks=len(tracks),
        valid_runs=counts["valid"],
        invalid_runs=counts["invalid"],
        files=writer.count + sum(p["count"] for p in parts),
        largest_page=largest,
        runs_in=counts["runs_in"],
        unreadable_runs=counts["unreadable"],
        pending_runs=counts["pending"],
    )


def _done(part: dict) -> str:
    t = part["track"]
    return (f"{t['id']}: {t['valid_runs']} valid run(s), {t['invalid_count']} invalid"
            + ("" if t["valid"] else " (track invalid)"))


def _start_method() -> str:
    """Fork when it is safe, since workers then start at once with everything imported: on Linux, with no other
    Python thread (a server's, say) and vl-convert's runtime not started here, as a fork copies no thread and a
    child would wait forever on their locks. Otherwise a fork server: a fresh process that forks the workers."""
    import multiprocessing as mp
    import sys
    import threading

    from . import charts

    if sys.platform == "linux" and threading.active_count() == 1 and not charts.runtime_started:
        return "fork"
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def _retry_here(job: _Job, exc: BaseException) -> dict:
    """A track whose worker failed: built again in this process; if that fails too, shown as an invalid track with
    every run listed as failed, so the rest of the site is still published and every run is accounted for."""
    try:
        return _build_track(job)
    except Exception as again:  # noqa: BLE001
        d = job.group.track_dir
        t = TrackResult(d, display_path(d), d.name, None,
                        [isolation.crash_problem(display_path(d / "track.yaml"), again, "building this track")])
        results = [RunResult(r, display_path(r), r.name, None,
                             problems=[isolation.crash_problem(display_path(r), exc, "building this run's track")])
                   for r in sorted(job.group.runs)]
        return _written(job, *_render(job, t, results), results)


def _exit_quietly(_signum, _frame) -> None:
    raise SystemExit(130)  # unwinds (a sandbox is killed on the way out) without a worker's traceback on the terminal


def _quiet_on_interrupt() -> None:
    """Ctrl-C reaches every process of the terminal's group: the parent reports it once; a worker just stops."""
    import signal

    signal.signal(signal.SIGINT, _exit_quietly)


def _parallel(work: list[_Job], jobs: int, progress: Callable[[str], None]) -> list[dict]:
    """Tracks in worker processes."""
    import concurrent.futures as cf
    import multiprocessing as mp

    parts: list[dict] = []
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(_start_method()),
                                  initializer=_quiet_on_interrupt)
    try:
        futures = {pool.submit(_build_track, job): job for job in work}
        for done, future in enumerate(cf.as_completed(futures), 1):
            try:
                parts.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a worker that died (memory, a signal) or raised
                if os.environ.get("SPEEDRUN_DEBUG"):
                    raise
                parts.append(_retry_here(futures[future], exc))
            progress(f"  [{done}/{len(work)}] {_done(parts[-1])}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on failure, queued tracks are dropped, not built
    return parts
