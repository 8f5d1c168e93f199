"""Cross-field rules: what a schema cannot say about one run against its track.

Each check reads a `RunContext` and records problems; none raises. Rule ids and their meanings live in
`catalog.py`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import logclaims
from .catalog import CATALOG  # noqa: F401 - re-exported: callers import the catalog from here
from .discover import ANALYSIS_NAMES
from .models import RunAnalysis, Track
from .problems import Problems


@dataclass
class RunContext:
    run_dir: Path
    run: RunAnalysis
    track: Track
    problems: Problems
    # Relative (POSIX) paths of every symlink in the run folder, as symlink_escapes() found them; None when not
    # scanned, and then path checks ask the file system.
    symlinks: frozenset[str] | None = None
    logs: list[tuple[int, str, str | None]] | None = None  # logclaims.read(): each named log, read once


Check = Callable[[RunContext], None]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _seed_samples(ctx: RunContext, i: int) -> int:
    result = ctx.run.results[i]
    return result.samples_seen if result.samples_seen is not None else ctx.run.compute.samples_seen


def _seed_forward_only(ctx: RunContext, i: int) -> int:
    result = ctx.run.results[i]
    fo = result.forward_only_samples
    return fo if fo is not None else ctx.run.compute.forward_only_samples


@check
def identity(ctx: RunContext) -> None:
    p, run = ctx.problems, ctx.run
    if run.name != ctx.run_dir.name:
        p.error("$.name", "name-mismatch", f"name is {run.name!r} but the folder is {ctx.run_dir.name!r}",
                f"set name to {ctx.run_dir.name!r} or rename the folder")
    if run.date > dt.date.today() + dt.timedelta(days=1):
        p.error("$.date", "date-in-future", f"date {run.date} is in the future", "use the date the run finished")


@check
def dataset(ctx: RunContext) -> None:
    p, d, t = ctx.problems, ctx.run.dataset, ctx.track.dataset
    if d.name != t.name:
        p.error("$.dataset.name", "dataset-mismatch", f"dataset {d.name!r} is not the track's {t.name!r}",
                "train on the track's dataset; external data is not allowed")
    if d.version != t.version:
        p.error("$.dataset.version", "dataset-mismatch", f"version {d.version!r} is not the track's {t.version!r}",
                f"use {t.name} version {t.version}")
    if t.splits.train is not None and d.train_samples is None:
        p.error("$.dataset.train_samples", "dataset-mismatch", "the number of training samples is missing",
                f"report dataset.train_samples ({t.splits.train:,} on this track)")
    if t.checksum and d.checksum != t.checksum:
        p.error("$.dataset.checksum", "dataset-mismatch",
                f"split checksum {d.checksum or 'missing'} is not the track's {t.checksum}",
                "use the track's canonical split (see the track's dataset.source)")


@check
def board(ctx: RunContext) -> None:
    p, run, track = ctx.problems, ctx.run, ctx.track
    if track.board == "standard":
        if run.source is not None:
            p.error("$.source", "source-not-allowed", "cited results are not accepted on a standard board",
                    "submit a run trained by its run.py, or add the result to the track's unconstrained board")
        if run.training is None:
            p.error("$.training", "missing-training", "the training configuration is missing",
                    "have run.py write optimizer, batch, steps, schedule and augmentations")
        if run.files.script is None:
            p.error("$.files.script", "missing-script", "no training script is named", "ship run.py and name it here")
        if not run.files.logs:  # the metric values are checked against the logs: without them nothing ties them down
            p.error("$.files.logs", "missing-logs", "no training log is named",
                    "ship the logs run.py wrote (one per seed, stating each evaluation) and list them here")
    elif run.source is None:
        p.error("$.source", "missing-source", "results on an unconstrained board need a citation",
                "add source: {title, url} of the paper or repository that reports the result")


@check
def seeds_and_settings(ctx: RunContext) -> None:
    p, run, track = ctx.problems, ctx.run, ctx.track
    seen: set[int] = set()
    for i, seed in enumerate(run.seeds):
        if seed in seen:
            p.error(f"$.seeds[{i}]", "duplicate-seed", f"seed {seed} is listed twice", "each seed may appear once")
        seen.add(seed)
    if len(seen) < track.seeds.minimum:
        p.error("$.seeds", "too-few-seeds", f"{len(seen)} distinct seed(s); the track requires at least {track.seeds.minimum}",
                "run more seeds; running more than you report and keeping the best is not allowed")

    setting_ids = [s.id for s in track.settings]
    keys: dict[tuple[int, str | None], int] = {}
    for i, result in enumerate(run.results):
        if result.seed not in seen:
            p.error(f"$.results[{i}].seed", "unknown-seed", f"seed {result.seed} is not in the seeds list",
                    "add it to seeds, or remove the result")
        if setting_ids and result.setting not in setting_ids:
            p.error(f"$.results[{i}].setting", "unknown-setting",
                    f"setting {result.setting!r} is not one of the track's {setting_ids}", f"use one of {setting_ids}")
        elif not setting_ids and result.setting is not None:
            p.error(f"$.results[{i}].setting", "unknown-setting",
                    f"the track has no settings but the result names {result.setting!r}", "remove 'setting'")
        key = (result.seed, result.setting)
        if key in keys:
            p.error(f"$.results[{i}]", "duplicate-result",
                    f"seed {result.seed}{' setting ' + result.setting if result.setting else ''} already has a result "
                    f"at $.results[{keys[key]}]", "report each seed (and setting) once")
        keys.setdefault(key, i)
    for seed in sorted(seen):
        if setting_ids:
            missing = [s for s in setting_ids if (seed, s) not in keys]
            if len(missing) == len(setting_ids):
                p.error("$.results", "missing-result", f"seed {seed} has no result", "report a result for every seed")
            elif missing:
                p.warn("$.results", "missing-setting", f"seed {seed} has no result for setting(s) {missing}; "
                       "the run is listed but not ranked", "train every setting to be ranked on the mean over settings")
        elif (seed, None) not in keys:
            p.error("$.results", "missing-result", f"seed {seed} has no result", "report a result for every seed")


@check
def metrics(ctx: RunContext) -> None:
    p, run, track = ctx.problems, ctx.run, ctx.track
    known = [m.id for m in track.metrics]
    for i, m in enumerate(run.evaluation.metrics):
        if m not in known:
            p.error(f"$.evaluation.metrics[{i}]", "unknown-metric", f"metric {m!r} is not one of the track's {known}",
                    "report the track's metrics under their ids")

    by_id = {m.id: m for m in track.metrics}

    def value(path: str, metric_id: str, v: float) -> None:
        metric = by_id.get(metric_id)
        if metric is None:
            p.error(path, "unknown-metric", f"metric {metric_id!r} is not one of the track's {known}",
                    "use the track's metric ids")
            return
        if (metric.min is not None and v < metric.min) or (metric.max is not None and v > metric.max):
            p.error(path, "metric-out-of-range", f"{metric_id} = {v} is outside its valid range "
                    f"[{metric.min if metric.min is not None else '-inf'}, {metric.max if metric.max is not None else 'inf'}]",
                    "check the metric's units (a fraction, not a percentage?)")

    for i, result in enumerate(run.results):
        if track.primary_metric not in result.final:
            p.error(f"$.results[{i}].final", "missing-metric", f"the primary metric {track.primary_metric!r} is missing",
                    f"report final.{track.primary_metric}")
        for k, v in result.final.items():
            value(f"$.results[{i}].final.{k}", k, v)
        for j, point in enumerate(result.curve):
            for k, v in (point.model_extra or {}).items():
                value(f"$.results[{i}].curve[{j}].{k}", k, v)


def _listing(values: list[int], most: int = 12) -> str:
    shown = ", ".join(f"{x:,}" for x in values[:most])
    return shown + (f" and {len(values) - most:,} more" if len(values) > most else "")


@check
def curves(ctx: RunContext) -> None:
    p, run, track = ctx.problems, ctx.run, ctx.track
    milestones = track.checkpoint_samples()
    for i, result in enumerate(run.results):
        base = f"$.results[{i}]"
        if not result.curve:
            if track.board == "standard":
                p.error(f"{base}.curve", "missing-curve", "no curve: performance vs samples seen is required",
                        "have run.py evaluate at the track's checkpoints and write the points")
            continue
        samples = [pt.samples for pt in result.curve]
        for j in range(1, len(samples)):
            if samples[j] <= samples[j - 1]:
                p.error(f"{base}.curve[{j}].samples", "curve-not-increasing",
                        f"samples {samples[j]} does not follow {samples[j - 1]}", "sort points by samples; no repeats")
        seen = _seed_samples(ctx, i)
        if samples[-1] != seen:
            p.error(f"{base}.curve[{len(samples) - 1}].samples", "curve-final-samples",
                    f"the last point is at {samples[-1]} samples but the run saw {seen}",
                    "evaluate once more at the end of training, or fix compute.samples_seen")
        if milestones:
            have = set(samples)
            for m in milestones:
                if m <= seen and m not in have:
                    p.error(f"{base}.curve", "missing-checkpoint", f"no point at checkpoint {m:,} samples",
                            f"evaluate at every checkpoint: {_listing(milestones)}")
            if not track.checkpoints.allow_extra:
                allowed = set(milestones) | {seen}
                for j, s in enumerate(samples):
                    if s not in allowed:
                        p.error(f"{base}.curve[{j}].samples", "off-checkpoint",
                                f"{s:,} samples is not one of the track's checkpoints",
                                "evaluate only at the checkpoints (and at the end of training)")
        last = result.curve[-1].model_extra or {}
        for k, v in last.items():
            if k in result.final and not _close(result.final[k], v):
                p.error(f"{base}.final.{k}", "final-mismatch",
                        f"final {k} = {result.final[k]} but the curve's last point says {v}",
                        "report as final the value measured at the end of training")


@check
def samples(ctx: RunContext) -> None:
    p, run = ctx.problems, ctx.run
    selecting = run.method is not None and run.method.data_selection
    claims_forward_only = run.compute.forward_only_samples > 0 or any(r.forward_only_samples for r in run.results)
    if claims_forward_only and not selecting:
        p.error("$.compute.forward_only_samples", "forward-only-without-method",
                "forward-only samples are claimed but no data-selection method is declared",
                "declare method: {name, data_selection: true}, or set forward_only_samples to 0")
    if run.training is None:
        return
    # Every optimizer step trains on one global batch, whatever chose its samples; a data-selection method's
    # scoring passes are reported apart, as forward_only_samples.
    b = run.training.batch
    global_batch = b.micro_batch * b.accumulation * b.world_size
    processed = run.training.steps * global_batch
    for i in range(len(run.results)):
        seen = _seed_samples(ctx, i)
        if seen != processed:
            where = f"$.results[{i}].samples_seen" if run.results[i].samples_seen is not None else "$.compute.samples_seen"
            p.error(where, "samples-inconsistent",
                    f"samples_seen {seen:,} but steps x global batch = {run.training.steps:,} x {global_batch:,} = "
                    f"{processed:,}", "samples seen must count every sample that got a gradient, over all epochs")
            break  # the same mismatch on every seed says nothing new


@check
def budget(ctx: RunContext) -> None:
    p, run, track = ctx.problems, ctx.run, ctx.track
    if track.budget is None:
        return
    limit = track.budget.limit
    if track.budget.kind == "samples":
        for i in range(len(run.results)):
            s = _seed_samples(ctx, i)
            if s > limit:
                p.error("$.compute.samples_seen", "over-budget", f"{s:,} samples exceeds the budget of {limit:,.0f}",
                        "train on fewer samples")
                break
    else:
        if run.compute.flops is None:
            if track.board == "standard":
                p.error("$.compute.flops", "missing-flops-claim", "a FLOPs-budget track needs a FLOPs claim",
                        "have run.py write compute.flops.claimed (speedrun-v1 convention)")
            return
        if run.compute.flops.claimed > limit:
            p.error("$.compute.flops.claimed", "over-budget",
                    f"claimed {run.compute.flops.claimed:.3e} FLOPs exceeds the budget of {limit:.3e}",
                    "train for fewer tokens or a smaller model")


def _inside(run_dir: Path, rel: str, symlinks: frozenset[str] | None = None) -> tuple[bool, str]:
    """(ok, reason) for a relative path named by the analysis."""
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return False, "is absolute"
    parts = Path(rel).parts
    if ".." in parts:
        return False, "uses '..'"
    # Only a link can lead out of the folder; symlink_escapes() reports every one, this names the field too.
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if symlinks is not None:
        linked = any(pre in symlinks for pre in prefixes)
    else:
        linked = any(os.path.islink(os.path.join(run_dir, pre)) for pre in prefixes)
    if linked:
        target = run_dir / rel
        # realpath, not Path.resolve(): a loop of links raises RuntimeError there, and a run may hold one.
        real = Path(os.path.realpath(target))
        root = Path(os.path.realpath(run_dir))
        if real != root and root not in real.parents:
            return False, "leaves the run folder through a symlink"
    return True, ""


@check
def files(ctx: RunContext) -> None:
    p, run = ctx.problems, ctx.run
    named = run.files.all_paths()
    if run.model.entrypoint:
        named.append(("$.model.entrypoint", run.model.entrypoint.split(":", 1)[0]))
    for path, rel in named:
        ok, why = _inside(ctx.run_dir, rel, ctx.symlinks)
        if not ok:
            p.error(path, "path-escape", f"{rel!r} {why}", "name files relative to the run folder, inside it")
        elif not os.path.isfile(os.path.join(ctx.run_dir, rel)):
            p.error(path, "file-missing", f"{rel!r} does not exist in the run folder", "add the file or fix the path")


@check
def model_source(ctx: RunContext) -> None:
    m = ctx.run.model
    if m.config is not None and m.entrypoint is not None and m.framework == "torch":
        ctx.problems.error("$.model", "model-config-conflict", "the run gives both model.entrypoint and model.config",
                           "keep one: model.config (counted by the validator, no code runs) or the entrypoint")
    elif m.framework == "jax" and m.entrypoint is None:
        ctx.problems.error("$.model.entrypoint", "flops-no-entrypoint", "a JAX model is counted from its entrypoint",
                           "add model.entrypoint 'model.py:build_for_flops' returning (loss_fn, params, batch)")


@check
def baseline(ctx: RunContext) -> None:
    b = ctx.run.baseline
    if b is None:
        return
    track_dir = ctx.run_dir.parent
    target = track_dir.parent / b.track / b.run if b.track else track_dir / b.run
    if not any((target / n).is_file() for n in ANALYSIS_NAMES):
        ctx.problems.error("$.baseline.run", "unknown-baseline",
                           f"baseline run {b.run!r} not found on track {b.track or ctx.track.id!r}",
                           "name an existing run folder of the track")


_LOG_SAMPLES = re.compile(r"\bsamples(?:_seen)?[=: ]\s*(\d[\d,]*)")
def _logs(ctx: RunContext) -> list[tuple[int, str, str | None]]:
    if ctx.logs is None:
        ctx.logs = logclaims.read(ctx.run_dir, ctx.run.files.logs,
                                  lambda rel: _inside(ctx.run_dir, rel, ctx.symlinks)[0])
    return ctx.logs


@check
def logs_agree(ctx: RunContext) -> None:
    """The largest sample count the logs mention must be the run's samples seen (when logs mention any)."""
    expected = max([ctx.run.compute.samples_seen] + [r.samples_seen for r in ctx.run.results if r.samples_seen])
    found = []
    for i, _rel, text in _logs(ctx):
        values = [int(m.group(1).replace(",", "")) for m in _LOG_SAMPLES.finditer(text or "")]
        if values:
            found.append((i, max(values)))
    if found and max(v for _, v in found) != expected:
        i, v = max(found, key=lambda t: t[1])
        ctx.problems.error(f"$.files.logs[{i}]", "samples-log-mismatch",
                           f"the logs count up to {v:,} samples but the analysis claims {expected:,}",
                           "regenerate the analysis with the same run that wrote the logs")


@check
def metrics_logged(ctx: RunContext) -> None:
    """Every metric value claimed must be what the logs recorded (logclaims.py); runs naming no logs are cited."""
    logs = _logs(ctx)
    if logs and all(text is not None for _i, _rel, text in logs):  # else file-missing/path-escape says why
        logclaims.check(ctx.run, ctx.track, [(rel, text) for _i, rel, text in logs], ctx.problems)


@check
def imports_declared(ctx: RunContext) -> None:
    """The run's code imports only what the track allows (imports.py); a cited result ships no code to check."""
    if ctx.run.files.script is None and ctx.run.model.entrypoint is None:
        return
    from . import imports

    imports.check_run(ctx.run_dir, imports.allowed_imports(ctx.track.environment), ctx.problems)


def run_checks(ctx: RunContext) -> None:
    for fn in CHECKS:
        fn(ctx)


from . import timerules  # noqa: E402,F401 - registers the time-track checks (hardware, training time, artifact)
