"""One run's failure stays that run's: an unexpected exception while judging, ranking or showing a run (a bug in
speedrun that some input triggers) becomes an invalid entry naming the run's file, and the rest is published."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from validator.checker import Checker, display_path
from validator.discover import ANALYSIS_NAMES, analysis_file
from validator.problems import Problem
from validator.result import RunResult, TrackResult


def crash_problem(file: str, exc: BaseException, doing: str) -> Problem:
    """An unexpected exception while judging or showing one file, as that file's problem: the rest of the build goes
    on. The message carries the exception's type, cut short, and never the file's content."""
    return Problem(file, "$", "internal-error", f"{doing} failed: {type(exc).__name__}: {str(exc)[:160]}",
                   "this is a bug in speedrun, not in the run: please report it with the run folder")


def check_one(checker: Checker, run_dir: Path) -> RunResult:
    try:
        return checker.check_run(run_dir)
    except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the others
        if os.environ.get("SPEEDRUN_DEBUG"):
            raise
        file = display_path(analysis_file(run_dir) or run_dir / ANALYSIS_NAMES[0])
        return RunResult(run_dir, display_path(run_dir), run_dir.name, None,
                         problems=[crash_problem(file, exc, "checking this run")])


def check_track(checker: Checker, group) -> TrackResult:
    if group.orphan:
        return checker.check_orphan(group.track_dir)
    try:
        return checker.check_track(group.track_dir)
    except Exception as exc:  # noqa: BLE001 - one track's failure must not stop the others
        if os.environ.get("SPEEDRUN_DEBUG"):
            raise
        d = group.track_dir
        return TrackResult(d, display_path(d), d.name, None,
                           [crash_problem(display_path(d / "track.yaml"), exc, "checking this track")])


def check_group(checker: Checker, group) -> tuple[TrackResult, list[RunResult]]:
    """One track folder and its runs, each judged on its own, runs in name order."""
    t = check_track(checker, group)
    return t, sorted((check_one(checker, r) for r in group.runs), key=lambda r: r.name)


def render_isolated(render: Callable, t: TrackResult, results: list[RunResult]) -> tuple:
    """`render(t, results)` (a track's data, competition and files), plus the results it was made from, surviving a bug that one run's data triggers in ranking or rendering: each valid run is then tried
    alone, those that fail become invalid entries naming their file, and the track renders without them. A track
    that fails even so is shown as an invalid track, with its runs listed."""
    try:
        return (*render(t, results), results)
    except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the others
        if os.environ.get("SPEEDRUN_DEBUG"):
            raise
        first = exc
    kept = []
    for r in results:
        try:
            render(t, [r])
        except Exception as exc:  # noqa: BLE001
            found = analysis_file(r.path)
            file = f"{r.display}/{found.name}" if found else r.display
            r = RunResult(r.path, r.display, r.name, r.track_id, r.analysis, r.track,
                          [*r.problems, crash_problem(file, exc, "ranking or showing this run")], r.compute)
        kept.append(r)
    try:
        return (*render(t, kept), kept)
    except Exception:  # noqa: BLE001
        broken = TrackResult(t.path, t.display, t.track_id, None,
                             [*t.problems, crash_problem(display_path(t.path / "track.yaml"), first,
                                                          "ranking or showing this track")])
        return (*render(broken, kept), kept)


def counts(results: list[RunResult]) -> dict[str, int]:
    """Runs in = valid + invalid + unreadable + pending: unreadable runs have no analysis that could be read at all;
    pending ones (ZIP submissions) have code and no results yet."""
    pending = sum(1 for r in results if r.pending)
    valid = sum(1 for r in results if r.valid)
    unreadable = sum(1 for r in results if r.analysis is None and not r.pending)
    return {"runs_in": len(results), "valid": valid, "pending": pending, "unreadable": unreadable,
            "invalid": len(results) - valid - pending - unreadable}
