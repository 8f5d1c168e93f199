"""Where a checked run would stand on its track's current board: its ranking figures, its would-be rank, the record
it faces and, where the track has a significance rule, whether it beats it and at what p-value.

This is leaderboard work (ranking, statistics) for a validator report, so it lives in the CLI, the one layer that sees
both, and hands the reporters plain data keyed by the run's display path (validator never imports leaderboard)."""

from __future__ import annotations

from pathlib import Path

from leaderboard import stats
from leaderboard.groups import group_of
from leaderboard.ranking import Entry, better_is_lower, rank, rule_label
from validator.checker import Checker
from validator.discover import is_track_dir, run_dirs_of
from validator.models import RunAnalysis, Track
from validator.result import Report, RunResult


def standings(report: Report, tracks_root: Path | None = None) -> dict[str, dict]:
    """Standing of every valid, ranked-track run of `report`. The board is the other valid runs of its track's
    folder: taken from the report where it judged them, else checked here without recounting FLOPs (the recount
    never changes a figure, only whether a claim is believed)."""
    judged = {r.path.resolve(): r for r in report.runs}
    checker = Checker(tracks_root=tracks_root)
    boards: dict[Path, dict[Path, RunAnalysis]] = {}
    out = {}
    for r in report.runs:
        if not r.valid or r.analysis is None or r.track is None:
            continue
        track_dir = _track_dir(r, tracks_root)
        if track_dir is None:
            continue
        if track_dir not in boards:
            boards[track_dir] = _board(track_dir, judged, checker)
        board = {path: a for path, a in boards[track_dir].items() if path != r.path.resolve()}
        try:
            out[r.display] = standing(r.analysis, r.track, {a.name: a for a in board.values()})
        except Exception as exc:  # noqa: BLE001 - the standing is extra: a bug in it must not cost the verdict
            out[r.display] = {"track": r.track.id, "error": f"{type(exc).__name__}: {exc}"}
    return out


def _track_dir(r: RunResult, tracks_root: Path | None) -> Path | None:
    if is_track_dir(r.path.parent):
        return r.path.parent.resolve()
    for root in (tracks_root, r.path.parent.parent):
        if root is not None and is_track_dir(root / r.track.id):
            return (root / r.track.id).resolve()
    return None


def _board(track_dir: Path, judged: dict[Path, RunResult], checker: Checker) -> dict[Path, RunAnalysis]:
    board = {}
    for run_dir in run_dirs_of(track_dir):
        key = run_dir.resolve()
        result = judged.get(key) or checker.check_run(run_dir)
        if result.valid and result.analysis is not None:
            board[key] = result.analysis
    return board


def _figure(entry: Entry, i: int) -> dict:
    f = entry.figures[i]
    return {"mean": f.mean, "std": f.std, "n": f.n}


def standing(run: RunAnalysis, track: Track, board: dict[str, RunAnalysis]) -> dict:
    """`run` ranked among `board` (the track's other valid runs; one of the same name is the version it replaces)."""
    rules = [track.ranking.primary, *track.ranking.tie_breakers]
    others = {name: a for name, a in board.items() if name != run.name}
    group = None
    if track.ranking.group_by is not None:  # ranked within its group only, as the site ranks it
        group = group_of(run, track.ranking.group_by.field)
        others = {n: a for n, a in others.items() if group_of(a, track.ranking.group_by.field) == group}
    before = rank(others, track)
    after = rank({**others, run.name: run}, track)
    me = next(e for e in after if e.name == run.name)
    record = before[0] if before and before[0].rank is not None else None
    lower = better_is_lower(rules[0], track)
    mine, best = me.figures[0].mean, record.figures[0].mean if record else None
    # A run with no primary figure (threshold never reached) cannot hold the record, whatever its other figures.
    beats = (mine is not None) if record is None else (mine is not None and (mine < best if lower else mine > best))
    return {
        "track": track.id,
        "group": ({"title": track.ranking.group_by.title, "name": group} if group is not None else None),
        "figures": [{"label": rule_label(rule, track), "kind": rule.kind, **_figure(me, i)}
                    for i, rule in enumerate(rules)],
        "rank": me.rank,
        "of": sum(e.rank is not None for e in after),
        "record": ({"name": record.name, "kind": rules[0].kind, **_figure(record, 0)} if record else None),
        "beats_record": beats,
        "significance": _significance(run, track, me, record),
    }


def _significance(run: RunAnalysis, track: Track, me: Entry, record: Entry | None) -> dict | None:
    """The track's test of a record claim, as leaderboard/trackdata.py applies it on the site: the final primary
    metric against the threshold, or the primary figure against the standing record's (Welch)."""
    sig = track.seeds.significance
    if sig is None:
        return None
    primary = track.ranking.primary
    metric = track.metric(primary.metric or track.primary_metric)
    threshold = getattr(primary, "threshold", None)
    if sig.against == "threshold" and threshold is not None:
        finals = [r.final[metric.id] for r in run.results if metric.id in r.final]
        res = stats.one_sample(finals, threshold, metric.direction == "lower", sig.alpha)
    elif sig.against == "record" and record is not None:
        res = stats.two_sample([v for v in me.figures[0].values if v is not None],
                               [v for v in record.figures[0].values if v is not None],
                               better_is_lower(primary, track), sig.alpha, record.name)
    else:
        return None
    return {"test": sig.test, "alpha": sig.alpha, "against": res.against, "reference": res.reference,
            "metric": metric.name, "p_value": res.p_value, "significant": res.significant, "note": res.note}
