"""What the site shows of each track, as plain data: every run's entry (figures, status, files, reproductions),
the ranking, the record history, significance and baselines. `leaderboard.json` is made of these."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from validator.checker import Checker
from validator.discover import ANALYSIS_NAMES, Targets, discover
from validator.fingerprint import content_sha256
from validator.loader import load_document
from validator.models.rankrules import TIME_RULES
from validator.problems import Problems
from validator.result import RunResult, TrackResult

from . import groups, isolation, presentation, stats
from .conventions import marin_convention
from .ranking import Entry, Figure, better_is_lower, rank, rule_label, setting_figures

LEADERBOARD_FORMAT_VERSION = 1


def _fig(f: Figure) -> dict:
    return {"mean": f.mean, "std": f.std, "n": f.n, "values": list(f.values)}


def _problems(items) -> list[dict]:
    return [{"rule": p.rule, "file": p.file, "path": p.path, "message": p.message, "hint": p.hint} for p in items]


def _reproductions(run_dir: Path, run_id: str) -> list[dict]:
    """The run's reproduction records, each with whether it counts: a record counts only if it is bound to this run
    (`run` is `<track>/<run>`) and to its current content (`content_sha256`, validator/fingerprint.py)."""
    folder = run_dir / "reproductions"
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    current = content_sha256(run_dir) if paths else None
    out = []
    for path in paths:
        # A record is the run folder's file like any other: a link out, a FIFO or a bomb is skipped, not read.
        data = load_document(path, path.name, Problems(path.name), root=run_dir)
        if isinstance(data, dict):
            fields = ("verdict", "hardware", "date", "device", "nproc", "wall_time_seconds", "deltas")
            why = _not_counted(data, run_id, current)
            out.append({"file": path.name, "anchor": file_anchor(f"reproductions/{path.name}"),
                        **{k: data.get(k) for k in fields}, "counts": why is None, "why": why})
    return out


def _not_counted(record: dict, run_id: str, current: str | None) -> str | None:
    """Why a record does not make the run reproduced, or None when it does."""
    digest, run = record.get("content_sha256"), record.get("run")
    if not isinstance(digest, str) or not digest or not isinstance(run, str):
        return "not bound to any content"
    if run != run_id:
        return "bound to another run"
    if digest != current:
        return "the run changed since it was reproduced"
    if record.get("verdict") != "reproduced":
        return f"its verdict is {record.get('verdict')!s}"
    return None


def times_not_counted(track, valid: dict[str, RunResult]) -> dict[str, str]:
    """Runs whose time a standard time track does not count yet, with why: only a time a maintainers' reproduction
    confirmed counts there (docs/time-tracks.md); an unconstrained board takes cited times as self-reported."""
    if track.board != "standard" or not any(r.kind in TIME_RULES for r in [track.ranking.primary,
                                                                            *track.ranking.tie_breakers]):
        return {}
    out = {}
    for name, result in valid.items():
        records = _reproductions(result.path, f"{track.id}/{name}")
        if not any(r["counts"] for r in records):
            whys = sorted({r["why"] for r in records if r["why"]})
            out[name] = ("time not reproduced: only times a maintainers' reproduction confirmed count on this track"
                         + (f" (its record: {'; '.join(whys)})" if whys else ""))
    return out


def _status(run: RunResult, reproductions: list[dict]) -> str:
    if run.analysis and run.analysis.source:
        return "self-reported"
    if any(r["counts"] for r in reproductions):
        return "reproduced"
    return "validated"


def _flops_count(compute: dict | None, status: str) -> str | None:
    """Who vouches for a recomputed count: "config" (trusted code from the model config), "confirmed" (the
    submitted entrypoint's, and a bound reproduction confirmed the run) or "unverified"; None when not recounted."""
    if compute is None:
        return None
    if compute.get("source") == "config":
        return "config"
    return "confirmed" if status == "reproduced" else "unverified"


def _files(run: RunResult, reproductions: list[dict]) -> list[dict]:
    """The run's own files, shown on its page: regular files only, never a link. Only valid runs get here, and
    validation already proved every named path relative, inside the folder and present."""
    analysis = run.analysis
    named = [("analysis", n) for n in ANALYSIS_NAMES if os.path.lexists(os.path.join(run.path, n))]
    if analysis:
        named += [("script", analysis.files.script)] if analysis.files.script else []
        named += [("readme", analysis.files.readme)] if analysis.files.readme else []
        named += [("config", analysis.files.config)] if analysis.files.config else []
        named += [("log", p) for p in analysis.files.logs]
        if analysis.model.entrypoint:
            named.append(("entrypoint", analysis.model.entrypoint.split(":", 1)[0]))
    named += [("reproduction", f"reproductions/{r['file']}") for r in reproductions]
    out, seen = [], set()
    for label, rel in named:
        if rel in seen:
            continue
        try:
            st = os.lstat(os.path.join(run.path, rel))
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        seen.add(rel)
        out.append({"label": label, "path": rel, "bytes": st.st_size, "anchor": file_anchor(rel)})
    return out


def file_anchor(rel: str) -> str:
    return "file-" + re.sub(r"[^A-Za-z0-9]+", "-", rel).strip("-").lower()


def _entry(e: Entry, result: RunResult) -> dict:
    run = e.run
    compute = result.compute if result.compute and "error" not in result.compute else None
    reproductions = _reproductions(result.path, f"{result.track.id}/{result.name}")
    status = _status(result, reproductions)
    return {
        "rank": e.rank,
        "name": e.name,
        "team": run.team,
        "authors": [a.model_dump(mode="json") for a in run.authors],
        "date": run.date.isoformat(),
        "description": run.description,
        "changes": getattr(run, "changes", None),
        "tokens_per_sample": presentation.tokens_per_sample(result.track, run),
        "parameters": run.model.parameters,
        "architecture": run.model.architecture,
        "samples_seen": run.compute.samples_seen,
        "forward_only_samples": run.compute.forward_only_samples,
        "claimed_flops": run.compute.flops.claimed if run.compute.flops else None,
        "recomputed_flops": compute["total_training_flops"] if compute else None,
        "compute": {k: compute[k] for k in ("per_sample_forward_flops", "per_sample_training_flops",
                                             "total_training_flops", "claimed_flops", "claim_ratio", "verdict",
                                             "by_module", "device", "notes", "evaluation_flops")} if compute else None,
        "flops_count": _flops_count(compute, status),
        "marin_convention": marin_convention(run, compute["total_training_flops"] if compute else None),
        "hardware": run.compute.hardware.model_dump(mode="json"),
        "wall_time_seconds": run.compute.wall_time_seconds,
        "peak_memory_bytes": run.compute.peak_memory_bytes,
        "seeds": run.seeds,
        "figures": [_fig(f) for f in e.figures],
        "metrics": {k: _fig(v) for k, v in e.metrics.items()},
        "settings": {m: {k: _fig(f) for k, f in setting_figures(run, m).items()} for m in e.metrics}
        if any(r.setting for r in run.results) else {},
        "status": status,
        "unranked_why": e.unranked_why,
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
        "files": _files(result, reproductions),
        "curves": [
            {"seed": r.seed, "setting": r.setting, "samples_seen": r.samples_seen,
             "points": [{"samples": p.samples, **(p.model_extra or {})} for p in r.curve],
             "final": r.final, "trace": r.trace}
            for r in run.results
        ],
    }


@dataclass
class _Group:
    """One track folder (or a folder of runs without track.yaml) and its run folders: the unit of work."""
    track_dir: Path
    runs: list[Path]
    orphan: bool = False


def _groups(targets: Targets) -> list[_Group]:
    by_dir: dict[Path, list[Path]] = {}
    for run in targets.runs:
        by_dir.setdefault(run.parent, []).append(run)
    groups = [_Group(t, by_dir.get(t, [])) for t in targets.tracks]
    groups += [_Group(o, [], orphan=True) for o in targets.orphans]
    return groups


def _group_data(t: TrackResult, results: list[RunResult]) -> tuple[dict, dict | None]:
    competition = None
    if t.track:
        c = t.track.competition
        competition = {"id": c.id, "title": c.title, "url": c.url, "description": c.description, "track": t.track.id}
    return _track_data(t, results), competition


def _assemble(parts: list[tuple[dict, dict | None]]) -> dict:
    """The whole leaderboard (this is also leaderboard.json's source) from each track's part."""
    competitions: dict[str, dict] = {}
    for track, comp in sorted(parts, key=lambda p: presentation.track_order(p[0])):
        if comp:
            entry = competitions.setdefault(comp["id"], {"id": comp["id"], "title": comp["title"], "url": comp["url"],
                                                         "description": None, "tracks": []})
            entry["tracks"].append(comp["track"])
            entry["description"] = entry["description"] or comp["description"]
    return {
        "format_version": LEADERBOARD_FORMAT_VERSION,
        "competitions": [competitions[k] for k in sorted(competitions)],
        "tracks": [track for track, _ in sorted(parts, key=lambda p: p[0]["id"])],
    }


def gather(runs_dir: Path, flops: bool = False, flops_cache: Path | None = None,
           progress: Callable[[str], None] = lambda _m: None) -> dict:
    """Everything the site shows, as plain data, in this process."""
    checker = Checker(tracks_root=runs_dir, flops=flops, flops_cache=flops_cache, progress=progress)
    parts = []
    for group in _groups(discover([runs_dir])):
        parts.append(_group_data(*isolation.check_group(checker, group)))
    return _assemble(parts)


def _significance(track, entries: list[dict]) -> None:
    """p-value of each ranked run's record claim, under the track's test."""
    sig = track.seeds.significance
    if sig is None:
        return
    primary = track.ranking.primary
    metric = track.metric(primary.metric or track.primary_metric)
    lower = better_is_lower(primary, track)
    threshold = getattr(primary, "threshold", getattr(primary, "target", None))
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
        for r in results if not r.valid and not r.pending
    ]
    pending = [{"name": r.name, "path": r.display, "warnings": _problems(r.warnings)} for r in results if r.pending]
    if t.track is None or not t.valid:
        return {"id": t.track_id, "valid": False, "errors": _problems(t.errors), "invalid": invalid, "pending": pending,
                "entries": [], "unranked": [], "ranked_count": 0, "invalid_count": len(invalid)}
    track = t.track
    valid = {r.name: r for r in results if r.valid}
    ranked_entries = rank({n: r.analysis for n, r in valid.items()}, track, times_not_counted(track, valid))
    rules = [track.ranking.primary, *track.ranking.tie_breakers]
    everything = [_entry(e, valid[e.name]) for e in ranked_entries]
    parts = groups.boards(track, {n: r.analysis for n, r in valid.items()}, everything)
    ranked = [e for _, members in parts for e in members]
    unranked = [e for e in everything if e["rank"] is None]
    for _, members in parts:
        _significance(track, members)
    _baselines(track, everything)
    sig = track.seeds.significance
    lower = better_is_lower(track.ranking.primary, track)
    records = groups.per_board(parts, lambda members: stats.record_history(
        members, lower, sig.alpha if sig else None, sig.against if sig else None))
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
        "hardware": track.hardware.model_dump(mode="json") if track.hardware else None,
        "artifact_limit_bytes": track.artifact_limit_bytes,
        "record": {"name": record["name"], "figure": record["figures"][0], "date": record["date"]} if record else None,
        "records": records,
        "group_by": track.ranking.group_by.title if track.ranking.group_by else None,
        "groups": [{"name": g, "count": len(m), "record": {"name": m[0]["name"], "figure": m[0]["figures"][0],
                                                            "date": m[0]["date"]}}
                   for g, m in parts if g is not None and m],
        "metric_columns": presentation.metric_columns(track, ranked),
        "sample_unit": presentation.sample_unit(track),
        "experiments": _experiments(everything),
        "ranked_count": len(ranked),
        "invalid_count": len(invalid),
        "entries": ranked,
        "unranked": unranked,
        "invalid": invalid,
        "pending": pending,
        "errors": [],
    }
