"""`speedrun build`: validate every run, rank per track, render the static site.

Everything is gathered and rendered in memory first, then written to a temporary folder beside the target and
swapped in, so a failed build leaves the previous site untouched. Output depends only on the inputs (and
SOURCE_DATE_EPOCH, when set), so two builds of the same tree are byte-identical.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from validator.checker import Checker
from validator.discover import ANALYSIS_NAMES, Targets, discover
from validator.fingerprint import content_sha256
from validator.checker import display_path
from validator.loader import load_document
from validator.problems import Problem, Problems, SpeedrunError
from validator.result import RunResult, TrackResult

from . import stats
from .ranking import Entry, Figure, better_is_lower, rank, rule_label, setting_figures

LEADERBOARD_FORMAT_VERSION = 1


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
        "hardware": run.compute.hardware.model_dump(mode="json"),
        "wall_time_seconds": run.compute.wall_time_seconds,
        "peak_memory_bytes": run.compute.peak_memory_bytes,
        "seeds": run.seeds,
        "figures": [_fig(f) for f in e.figures],
        "metrics": {k: _fig(v) for k, v in e.metrics.items()},
        "settings": {m: {k: _fig(f) for k, f in setting_figures(run, m).items()} for m in e.metrics}
        if any(r.setting for r in run.results) else {},
        "status": status,
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


def _crash_problem(file: str, exc: BaseException, doing: str) -> Problem:
    """An unexpected exception while judging or showing one file, as that file's problem: the rest of the build goes
    on. The message carries the exception's type, cut short, and never the file's content."""
    return Problem(file, "$", "internal-error", f"{doing} failed: {type(exc).__name__}: {str(exc)[:160]}",
                   "this is a bug in speedrun, not in the run: please report it with the run folder")


def _check_one(checker: Checker, run_dir: Path) -> RunResult:
    try:
        return checker.check_run(run_dir)
    except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the others
        if os.environ.get("SPEEDRUN_DEBUG"):
            raise
        found = [n for n in ANALYSIS_NAMES if os.path.lexists(run_dir / n)]
        file = display_path(run_dir / (found[0] if found else ANALYSIS_NAMES[0]))
        return RunResult(run_dir, display_path(run_dir), run_dir.name, None,
                         problems=[_crash_problem(file, exc, "checking this run")])


def _check_track(checker: Checker, group: _Group) -> TrackResult:
    if group.orphan:
        return checker.check_orphan(group.track_dir)
    try:
        return checker.check_track(group.track_dir)
    except Exception as exc:  # noqa: BLE001 - one track's failure must not stop the others
        if os.environ.get("SPEEDRUN_DEBUG"):
            raise
        d = group.track_dir
        return TrackResult(d, display_path(d), d.name, None,
                           [_crash_problem(display_path(d / "track.yaml"), exc, "checking this track")])


def _check_group(checker: Checker, group: _Group) -> tuple[dict, dict | None]:
    """Validate and rank one track: (its data for the site, its competition or None)."""
    t = _check_track(checker, group)
    results = sorted((_check_one(checker, r) for r in group.runs), key=lambda r: r.name)
    return _group_data(t, results)


def _group_data(t: TrackResult, results: list[RunResult]) -> tuple[dict, dict | None]:
    competition = None
    if t.track:
        c = t.track.competition
        competition = {"id": c.id, "title": c.title, "url": c.url, "track": t.track.id}
    return _track_data(t, results), competition


def _assemble(parts: list[tuple[dict, dict | None]]) -> dict:
    """The whole leaderboard (this is also leaderboard.json's source) from each track's part."""
    competitions: dict[str, dict] = {}
    for track, comp in sorted(parts, key=lambda p: p[0]["id"]):
        if comp:
            competitions.setdefault(comp["id"], {"id": comp["id"], "title": comp["title"], "url": comp["url"],
                                                 "tracks": []})["tracks"].append(comp["track"])
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
        with _gc_paused():
            parts.append(_check_group(checker, group))
    return _assemble(parts)


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
        for r in results if not r.valid and not r.pending
    ]
    pending = [{"name": r.name, "path": r.display, "warnings": _problems(r.warnings)} for r in results if r.pending]
    if t.track is None or not t.valid:
        return {"id": t.track_id, "valid": False, "errors": _problems(t.errors), "invalid": invalid, "pending": pending,
                "entries": [], "unranked": [], "ranked_count": 0, "invalid_count": len(invalid)}
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
        "ranked_count": len(ranked),
        "invalid_count": len(invalid),
        "entries": ranked,
        "unranked": unranked,
        "invalid": invalid,
        "pending": pending,
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
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
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


def _render_isolated(job: _Job, t: TrackResult, results: list[RunResult]):
    """`_render`, surviving a bug that one run's data triggers in ranking or rendering: each valid run is then tried
    alone, those that fail become invalid entries naming their file, and the track renders without them. A track
    that fails even so is shown as an invalid track, with its runs listed."""
    try:
        return (*_render(job, t, results), results)
    except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the others
        if os.environ.get("SPEEDRUN_DEBUG"):
            raise
        first = exc
    kept = []
    for r in results:
        try:
            _render(job, t, [r])
        except Exception as exc:  # noqa: BLE001
            file = next((f"{r.display}/{n}" for n in ANALYSIS_NAMES if os.path.lexists(r.path / n)), r.display)
            r = RunResult(r.path, r.display, r.name, r.track_id, r.analysis, r.track,
                          [*r.problems, _crash_problem(file, exc, "ranking or showing this run")], r.compute)
        kept.append(r)
    try:
        return (*_render(job, t, kept), kept)
    except Exception:  # noqa: BLE001
        broken = TrackResult(t.path, t.display, t.track_id, None,
                             [*t.problems, _crash_problem(display_path(t.path / "track.yaml"), first,
                                                          "ranking or showing this track")])
        return (*_render(job, broken, kept), kept)


def _counts(results: list[RunResult]) -> dict[str, int]:
    """Runs in = valid + invalid + unreadable + pending: unreadable runs have no analysis that could be read at all;
    pending ones (ZIP submissions) have code and no results yet."""
    pending = sum(1 for r in results if r.pending)
    valid = sum(1 for r in results if r.valid)
    unreadable = sum(1 for r in results if r.analysis is None and not r.pending)
    return {"runs_in": len(results), "valid": valid, "pending": pending, "unreadable": unreadable,
            "invalid": len(results) - valid - pending - unreadable}


def _build_track(job: _Job, progress: Callable[[str], None] | None = None) -> dict:
    """Validate, rank and render one track into the build folder; return its data and what was written. Runs in a
    worker process when the build is parallel, so it takes and returns plain, picklable values."""
    if os.getcwd() != job.cwd:
        os.chdir(job.cwd)
    checker = Checker(tracks_root=job.runs_dir, flops=job.flops, flops_cache=job.flops_cache, progress=progress)
    writer = _Writer(job.out)
    with _gc_paused():
        t = _check_track(checker, job.group)
        results = sorted((_check_one(checker, r) for r in job.group.runs), key=lambda r: r.name)
        track, competition, files, results = _render_isolated(job, t, results)
        for rel, content in files.items():
            writer.write(rel, content)
    # The rest of the build (index, leaderboard.json, feed) needs the track's summary and its export, not its
    # thousands of entries: sending less back from a worker saves pickling them twice.
    summary = {**track, "entries": [], "unranked": [], "invalid": [],
               "valid_runs": len(track["entries"]) + len(track["unranked"])}
    return {"track": summary, "competition": competition, "exported": files.get(f"tracks/{track['id']}.json"),
            "count": writer.count, "largest": writer.largest, "counts": _counts(results)}


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
                        [_crash_problem(display_path(d / "track.yaml"), again, "building this track")])
        results = [RunResult(r, display_path(r), r.name, None,
                             problems=[_crash_problem(display_path(r), exc, "building this run's track")])
                   for r in sorted(job.group.runs)]
        track, competition, files = _render(job, t, results)
        writer = _Writer(job.out)
        for rel, content in files.items():
            writer.write(rel, content)
        summary = {**track, "invalid": [], "valid_runs": 0}
        return {"track": summary, "competition": competition, "exported": files.get(f"tracks/{track['id']}.json"),
                "count": writer.count, "largest": writer.largest, "counts": _counts(results)}


def _parallel(work: list[_Job], jobs: int, progress: Callable[[str], None]) -> list[dict]:
    """Tracks in worker processes."""
    import concurrent.futures as cf
    import multiprocessing as mp

    parts: list[dict] = []
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(_start_method()))
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
