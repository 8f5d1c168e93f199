"""`speedrun build`: validate every run, rank per track, render the static site.

Everything is gathered and rendered in memory first, then written to a temporary folder beside the target and
swapped in, so a failed build leaves the previous site untouched. Output depends only on the inputs (and
SOURCE_DATE_EPOCH, when set), so two builds of the same tree are byte-identical.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from validator.checker import Checker
from validator.discover import discover
from validator.result import RunResult, TrackResult

from .ranking import Entry, Figure, rank, rule_label
from .render import render_pages

LEADERBOARD_FORMAT_VERSION = 1


@dataclass
class BuildSummary:
    tracks: int
    valid_runs: int
    invalid_runs: int
    files: int


def _fig(f: Figure) -> dict:
    return {"mean": f.mean, "std": f.std, "n": f.n}


def _problems(items) -> list[dict]:
    return [{"rule": p.rule, "file": p.file, "path": p.path, "message": p.message, "hint": p.hint} for p in items]


def _status(run: RunResult) -> str:
    return "self-reported" if run.analysis and run.analysis.source else "validated"


def _entry(e: Entry, result: RunResult) -> dict:
    run = e.run
    return {
        "rank": e.rank,
        "name": e.name,
        "team": run.team,
        "authors": [a.model_dump(mode="json") for a in run.authors],
        "date": run.date.isoformat(),
        "description": run.description,
        "parameters": run.model.parameters,
        "architecture": run.model.architecture,
        "samples_seen": run.compute.samples_seen,
        "claimed_flops": run.compute.flops.claimed if run.compute.flops else None,
        "seeds": run.seeds,
        "figures": [_fig(f) for f in e.figures],
        "metrics": {k: _fig(v) for k, v in e.metrics.items()},
        "status": _status(result),
        "warnings": _problems(result.warnings),
        "source": run.source.model_dump(mode="json") if run.source else None,
        "curves": [
            {"seed": r.seed, "setting": r.setting,
             "points": [{"samples": p.samples, **(p.model_extra or {})} for p in r.curve]}
            for r in run.results
        ],
    }


def gather(runs_dir: Path) -> dict:
    """Everything the site shows, as plain data (this is also leaderboard.json)."""
    checker = Checker(tracks_root=runs_dir)
    targets = discover([runs_dir])
    report = checker.check_targets(targets)
    by_track: dict[str, list[RunResult]] = {}
    for r in report.runs:
        by_track.setdefault(r.path.parent.name, []).append(r)

    tracks_out, competitions = [], {}
    for t in sorted(report.tracks, key=lambda t: t.track_id):
        results = sorted(by_track.get(t.path.name, []), key=lambda r: r.name)
        tracks_out.append(_track_data(t, results))
        if t.track:
            comp = competitions.setdefault(t.track.competition.id, {
                "id": t.track.competition.id, "title": t.track.competition.title,
                "url": t.track.competition.url, "tracks": []})
            comp["tracks"].append(t.track.id)
    return {
        "format_version": LEADERBOARD_FORMAT_VERSION,
        "competitions": [competitions[k] for k in sorted(competitions)],
        "tracks": tracks_out,
    }


def _track_data(t: TrackResult, results: list[RunResult]) -> dict:
    invalid = [
        {"name": r.name, "path": r.display, "errors": _problems(r.errors), "warnings": _problems(r.warnings)}
        for r in results if not r.valid
    ]
    if t.track is None or not t.valid:
        return {"id": t.track_id, "valid": False, "errors": _problems(t.errors), "invalid": invalid,
                "entries": [], "unranked": []}
    track = t.track
    valid = {r.name: r for r in results if r.valid}
    entries = rank({n: r.analysis for n, r in valid.items()}, track)
    rules = [track.ranking.primary, *track.ranking.tie_breakers]
    ranked = [_entry(e, valid[e.name]) for e in entries if e.rank is not None]
    unranked = [_entry(e, valid[e.name]) for e in entries if e.rank is None]
    record = ranked[0] if ranked else None
    return {
        "id": track.id,
        "valid": True,
        "title": track.title,
        "competition": track.competition.model_dump(mode="json"),
        "description": track.description,
        "rules_version": track.rules_version,
        "board": track.board,
        "task": track.task.model_dump(),
        "dataset": track.dataset.model_dump(mode="json"),
        "budget": track.budget.model_dump() if track.budget else None,
        "metrics": [m.model_dump(mode="json") for m in track.metrics],
        "primary_metric": track.primary_metric,
        "checkpoints": track.checkpoint_samples(),
        "ranking": [{"kind": r.kind, "label": rule_label(r, track), **r.model_dump(exclude={"kind"}, exclude_none=True)}
                    for r in rules],
        "seeds_minimum": track.seeds.minimum,
        "settings": [s.model_dump(mode="json") for s in track.settings],
        "rules": track.rules,
        "record": {"name": record["name"], "figure": record["figures"][0]} if record else None,
        "entries": ranked,
        "unranked": unranked,
        "invalid": invalid,
        "errors": [],
    }


def _build_time() -> str | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return None


def build_site(runs_dir: Path, out_dir: Path, progress: Callable[[str], None] = lambda _m: None) -> BuildSummary:
    progress(f"validating runs under {runs_dir}/ ...")
    data = gather(runs_dir)
    progress("rendering pages ...")
    files = render_pages(data, built_at=_build_time())
    files["leaderboard.json"] = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for rel, content in sorted(files.items()):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tracks = data["tracks"]
    return BuildSummary(
        tracks=len(tracks),
        valid_runs=sum(len(t["entries"]) + len(t["unranked"]) for t in tracks),
        invalid_runs=sum(len(t["invalid"]) for t in tracks),
        files=len(files),
    )
