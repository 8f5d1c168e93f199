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

from . import stats
from .ranking import Entry, Figure, better_is_lower, rank, rule_label, setting_figures

LEADERBOARD_FORMAT_VERSION = 1
MAX_COPIED_FILE_BYTES = 1024 * 1024


@dataclass
class BuildSummary:
    tracks: int
    valid_runs: int
    invalid_runs: int
    files: int
    largest_page: tuple[str, int] = ("", 0)


def _fig(f: Figure) -> dict:
    return {"mean": f.mean, "std": f.std, "n": f.n, "values": list(f.values)}


def _problems(items) -> list[dict]:
    return [{"rule": p.rule, "file": p.file, "path": p.path, "message": p.message, "hint": p.hint} for p in items]


def _reproductions(run_dir: Path) -> list[dict]:
    out = []
    for path in sorted((run_dir / "reproductions").glob("*.json")) if (run_dir / "reproductions").is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.append({"file": path.name, **{k: data.get(k) for k in ("verdict", "hardware", "date", "device",
                                                                          "nproc", "wall_time_seconds", "deltas")}})
    return out


def _status(run: RunResult, reproductions: list[dict]) -> str:
    if run.analysis and run.analysis.source:
        return "self-reported"
    if any(r.get("verdict") == "reproduced" for r in reproductions):
        return "reproduced"
    return "validated"


def _files(run: RunResult) -> list[dict]:
    """The run's own files worth linking: copied into the site (small text files only)."""
    analysis = run.analysis
    named = [("analysis", p.name) for p in run.path.glob("speedrun_analysis.*")]
    if analysis:
        named += [("script", analysis.files.script)] if analysis.files.script else []
        named += [("readme", analysis.files.readme)] if analysis.files.readme else []
        named += [("config", analysis.files.config)] if analysis.files.config else []
        named += [("log", p) for p in analysis.files.logs]
        if analysis.model.entrypoint:
            named.append(("entrypoint", analysis.model.entrypoint.split(":", 1)[0]))
    out, seen = [], set()
    for label, rel in named:
        path = run.path / rel
        if rel in seen or not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_COPIED_FILE_BYTES:
            continue
        if run.path.resolve() not in path.resolve().parents:
            continue
        seen.add(rel)
        out.append({"label": label, "path": rel})
    return out


def _entry(e: Entry, result: RunResult) -> dict:
    run = e.run
    compute = result.compute if result.compute and "error" not in result.compute else None
    reproductions = _reproductions(result.path)
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
        "forward_only_samples": run.compute.forward_only_samples,
        "claimed_flops": run.compute.flops.claimed if run.compute.flops else None,
        "recomputed_flops": compute["total_training_flops"] if compute else None,
        "compute": {k: compute[k] for k in ("per_sample_forward_flops", "per_sample_training_flops",
                                             "total_training_flops", "claimed_flops", "claim_ratio", "verdict",
                                             "by_module", "device", "notes", "evaluation_flops")} if compute else None,
        "hardware": run.compute.hardware.model_dump(mode="json"),
        "wall_time_seconds": run.compute.wall_time_seconds,
        "peak_memory_bytes": run.compute.peak_memory_bytes,
        "seeds": run.seeds,
        "figures": [_fig(f) for f in e.figures],
        "metrics": {k: _fig(v) for k, v in e.metrics.items()},
        "settings": {m: {k: _fig(f) for k, f in setting_figures(run, m).items()} for m in e.metrics}
        if any(r.setting for r in run.results) else {},
        "status": _status(result, reproductions),
        "reproductions": reproductions,
        "warnings": _problems(result.warnings),
        "source": run.source.model_dump(mode="json") if run.source else None,
        "model": run.model.model_dump(mode="json"),
        "dataset": run.dataset.model_dump(mode="json"),
        "training": run.training.model_dump(mode="json") if run.training else None,
        "method": run.method.model_dump(mode="json") if run.method else None,
        "evaluation": run.evaluation.model_dump(mode="json"),
        "experiment": run.experiment.model_dump(mode="json") if run.experiment else None,
        "baseline_run": run.baseline.run if run.baseline else None,
        "notes": run.notes,
        "files": _files(result),
        "curves": [
            {"seed": r.seed, "setting": r.setting, "samples_seen": r.samples_seen,
             "points": [{"samples": p.samples, **(p.model_extra or {})} for p in r.curve],
             "final": r.final, "trace": r.trace}
            for r in run.results
        ],
    }


def gather(runs_dir: Path, flops: bool = False, flops_cache: Path | None = None,
           progress: Callable[[str], None] = lambda _m: None) -> dict:
    """Everything the site shows, as plain data (this is also leaderboard.json)."""
    checker = Checker(tracks_root=runs_dir, flops=flops, flops_cache=flops_cache, progress=progress)
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


def _significance(track, entries: list[dict]) -> None:
    """p-value of each ranked run's record claim, under the track's test."""
    sig = track.seeds.significance
    if sig is None:
        return
    primary = track.ranking.primary
    metric = track.metric(primary.metric or track.primary_metric)
    lower = better_is_lower(primary, track)
    threshold = getattr(primary, "threshold", None)
    for i, e in enumerate(entries):
        if sig.against == "threshold" and threshold is not None:
            finals = [c["final"].get(metric.id) for c in e["curves"]]
            finals = [v for v in finals if v is not None]
            res = stats.one_sample(finals, threshold, metric.direction == "lower", sig.alpha)
        elif sig.against == "record":
            others = [o for o in entries if o is not e and o["figures"][0]["mean"] is not None]
            if not others:
                e["significance"] = None
                continue
            best = min(others, key=lambda o: o["figures"][0]["mean"] if lower else -o["figures"][0]["mean"])
            res = stats.two_sample([v for v in e["figures"][0]["values"] if v is not None],
                                   [v for v in best["figures"][0]["values"] if v is not None], lower, sig.alpha,
                                   best["name"])
        else:
            continue
        e["significance"] = {"test": sig.test, "alpha": sig.alpha, "against": res.against,
                             "reference": res.reference, "p_value": res.p_value, "significant": res.significant,
                             "note": res.note}


def _baselines(track, entries: list[dict]) -> None:
    """AST-style comparison of each run with its named baseline: accuracy delta, samples ratio, compute savings
    (recomputed, scoring passes included) next to the naive activation-rate savings, and the wall-clock speedup."""
    by_name = {e["name"]: e for e in entries}
    metric = track.primary_metric
    for e in entries:
        base = by_name.get(e.get("baseline_run") or "")
        if base is None:
            e["comparison"] = None
            continue
        mine, theirs = e["metrics"].get(metric, {}).get("mean"), base["metrics"].get(metric, {}).get("mean")
        flops_mine = e["recomputed_flops"] or e["claimed_flops"]
        flops_base = base["recomputed_flops"] or base["claimed_flops"]
        trained = e["samples_seen"]
        e["comparison"] = {
            "baseline": base["name"],
            "metric_delta": mine - theirs if mine is not None and theirs is not None else None,
            "samples_ratio": trained / base["samples_seen"] if base["samples_seen"] else None,
            "compute_savings": 1 - flops_mine / flops_base if flops_mine and flops_base else None,
            "compute_recomputed": bool(e["recomputed_flops"] and base["recomputed_flops"]),
            # what "we trained on x % of the samples" suggests: gradient samples against the baseline's
            "naive_savings": 1 - trained / base["samples_seen"] if base["samples_seen"] else None,
            "speedup": (base["wall_time_seconds"] / e["wall_time_seconds"]
                        if e["wall_time_seconds"] and base["wall_time_seconds"] else None),
        }


def _experiments(entries: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for e in entries:
        if e.get("experiment"):
            groups.setdefault(e["experiment"]["id"], []).append(e)
    out = []
    for exp_id, members in sorted(groups.items()):
        parameter = next((m["experiment"]["parameter"] for m in members if m["experiment"]["parameter"]), None)
        rows = sorted(members, key=lambda m: (str(type(m["experiment"]["value"])), m["experiment"]["value"] or 0))
        out.append({"id": exp_id, "parameter": parameter, "runs": [m["name"] for m in rows]})
    return out


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
    ranked_entries = rank({n: r.analysis for n, r in valid.items()}, track)
    rules = [track.ranking.primary, *track.ranking.tie_breakers]
    everything = [_entry(e, valid[e.name]) for e in ranked_entries]
    ranked = [e for e in everything if e["rank"] is not None]
    unranked = [e for e in everything if e["rank"] is None]
    _significance(track, ranked)
    _baselines(track, everything)
    sig = track.seeds.significance
    lower = better_is_lower(track.ranking.primary, track)
    records = stats.record_history(ranked, lower, sig.alpha if sig else None, sig.against if sig else None)
    record = ranked[0] if ranked else None
    return {
        "id": track.id,
        "valid": True,
        "title": track.title,
        "competition": track.competition.model_dump(mode="json"),
        "description": track.description,
        "rules_version": track.rules_version,
        "board": track.board,
        "task": track.task.model_dump(mode="json"),
        "dataset": track.dataset.model_dump(mode="json"),
        "budget": track.budget.model_dump(mode="json") if track.budget else None,
        "metrics": [m.model_dump(mode="json") for m in track.metrics],
        "primary_metric": track.primary_metric,
        "checkpoints": track.checkpoint_samples(),
        "ranking": [{"kind": r.kind, "label": rule_label(r, track), **r.model_dump(mode="json", exclude={"kind"})}
                    for r in rules],
        "seeds_minimum": track.seeds.minimum,
        "significance": track.seeds.significance.model_dump(mode="json") if track.seeds.significance else None,
        "settings": [s.model_dump(mode="json") for s in track.settings],
        "constrained": track.constrained.model_dump(mode="json") if track.constrained else None,
        "submission_policy": track.submission_policy.model_dump(mode="json") if track.submission_policy else None,
        "rules": track.rules,
        "record": {"name": record["name"], "figure": record["figures"][0]} if record else None,
        "records": [r.__dict__ for r in records],
        "experiments": _experiments(everything),
        "entries": ranked,
        "unranked": unranked,
        "invalid": invalid,
        "errors": [],
    }


def build_time() -> str | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def build_site(runs_dir: Path, out_dir: Path, progress: Callable[[str], None] = lambda _m: None, *,
               flops: bool = False, flops_cache: Path | None = None, charts: bool = True) -> BuildSummary:
    from .exports import export_files
    from .render import render_pages

    progress(f"validating runs under {runs_dir}/ ...")
    data = gather(runs_dir, flops=flops, flops_cache=flops_cache, progress=progress)
    progress("rendering pages ...")
    built_at = build_time()

    def everything():
        yield from render_pages(data, built_at=built_at, charts=charts)
        yield from export_files(data, built_at=built_at).items()
        yield from _copied_run_files(runs_dir, data)

    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    count, largest = 0, ("", 0)
    try:
        # Written one file at a time into a temporary folder, then swapped in: atomic, and never all in memory.
        for rel, content in everything():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            raw = content if isinstance(content, bytes) else content.encode("utf-8")
            target.write_bytes(raw)
            count += 1
            if rel.endswith(".html") and len(raw) > largest[1]:
                largest = (rel, len(raw))
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
        files=count,
        largest_page=largest,
    )


def _copied_run_files(runs_dir: Path, data: dict):
    for track in data["tracks"]:
        for e in track["entries"] + track["unranked"]:
            for f in e["files"]:
                yield (f"runs/{track['id']}/{e['name']}/{f['path']}",
                       (runs_dir / track["id"] / e["name"] / f["path"]).read_bytes())
