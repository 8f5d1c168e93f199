"""Ranking rules as pure functions over validated runs.

A rule turns each seed's result into one figure; a run's figure is the mean over seeds (with std and n); runs are
ordered by the primary rule, then the tie-breakers. A figure of None means "not reached" or "incomplete": such runs
rank after every run with a figure, in the order of their tie-breakers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from validator.models import RunAnalysis, Track
from validator.models.rankrules import TIME_RULES
from validator.models.run import SeedResult
from validator.models.track import (
    AUCRule,
    BaselineDeltaRule,
    BudgetRule,
    FinalMetricRule,
    MetricUnderTimeLimitRule,
    SettingsMeanRule,
    ThresholdRule,
    TimeToTargetRule,
)

from . import stats

Curve = Sequence[tuple[float, float]]


def curve_of(result: SeedResult, metric: str) -> list[tuple[float, float]]:
    return [(p.samples, (p.model_extra or {})[metric]) for p in result.curve if metric in (p.model_extra or {})]


def interpolate(curve: Curve, x: float, axis: str = "linear") -> float | None:
    """Metric at `x` samples, linear between checkpoints (in log samples on a log axis); None outside the curve."""
    if not curve or x < curve[0][0] or x > curve[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= x <= x1:
            if x1 == x0:
                return y1
            if axis == "log" and x0 > 0:
                t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            else:
                t = (x - x0) / (x1 - x0)
            return y0 + t * (y1 - y0)
    return curve[-1][1]


def samples_to_threshold(curve: Curve, threshold: float, direction: str) -> float | None:
    """Samples at which the curve first reaches `threshold`, interpolated linearly; None if never reached."""
    def reached(v: float) -> bool:
        return v >= threshold if direction == "higher" else v <= threshold

    for i, (x, y) in enumerate(curve):
        if reached(y):
            if i == 0:
                return float(x)
            x0, y0 = curve[i - 1]
            return x0 + (threshold - y0) / (y - y0) * (x - x0)
    return None


def auc(curve: Curve, sample_limit: float, axis: str, vmin: float | None, vmax: float | None) -> float | None:
    """Mean metric over [first checkpoint, sample_limit] (trapezoids; in log samples on a log axis), mapped to
    [0, 1] of the metric's range when it has one. The last value is held if the curve stops before the limit."""
    pts = [(x, y) for x, y in curve if x <= sample_limit]
    if not pts:
        return None
    if pts[-1][0] < sample_limit:
        beyond = interpolate(curve, sample_limit)
        pts.append((sample_limit, beyond if beyond is not None else pts[-1][1]))
    if len(pts) < 2:
        return None
    tx = (lambda v: math.log(v)) if axis == "log" else (lambda v: float(v))
    if axis == "log" and pts[0][0] <= 0:
        pts = [p for p in pts if p[0] > 0]
    area = sum((tx(x1) - tx(x0)) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))
    width = tx(pts[-1][0]) - tx(pts[0][0])
    if width <= 0:
        return None
    mean = area / width
    if vmin is not None and vmax is not None and vmax > vmin:
        return (mean - vmin) / (vmax - vmin)
    return mean


@dataclass(frozen=True)
class Figure:
    mean: float | None
    std: float | None
    n: int
    values: tuple[float | None, ...] = ()

    @classmethod
    def of(cls, values: Sequence[float | None]) -> "Figure":
        if not values or any(v is None for v in values):
            return cls(None, None, len(values), tuple(values))
        m = stats.mean(values)
        s = stats.sample_std(values)
        return cls(m, s, len(values), tuple(values))


def rule_label(rule, track: Track) -> str:
    metric = track.metric(rule.metric or track.primary_metric)
    name = metric.name if metric else rule.metric
    if isinstance(rule, FinalMetricRule):
        return f"{name}"
    if isinstance(rule, ThresholdRule):
        return f"samples to {name} {'≥' if metric.direction == 'higher' else '≤'} {rule.threshold:g}"
    if isinstance(rule, BudgetRule):
        return f"{name} at {rule.samples:,} samples"
    if isinstance(rule, AUCRule):
        return f"AUC of {name} to {rule.sample_limit:,} samples ({rule.axis})"
    if isinstance(rule, SettingsMeanRule):
        return f"mean {name} over settings"
    if isinstance(rule, BaselineDeltaRule):
        return f"Δ {name} vs baseline"
    if isinstance(rule, TimeToTargetRule):
        sign = "≥" if metric.direction == "higher" else "≤"
        how = "whole timed training" if rule.timing == "full_run" else "until first reached"
        return f"training time to {name} {sign} {rule.target:g} ({how})"
    if isinstance(rule, MetricUnderTimeLimitRule):
        return f"{name} within {rule.seconds:g} s of training"
    return rule.kind


def better_is_lower(rule, track: Track) -> bool:
    """Sort direction of a rule's figure."""
    if isinstance(rule, (ThresholdRule, TimeToTargetRule)):
        return True  # fewer samples, fewer seconds is better, whatever the metric's direction
    metric = track.metric(rule.metric or track.primary_metric)
    return metric.direction == "lower"


def _by_seed(run: RunAnalysis) -> dict[int, list[SeedResult]]:
    out: dict[int, list[SeedResult]] = {}
    for r in run.results:
        out.setdefault(r.seed, []).append(r)
    return out


def train_time(result: SeedResult, run: RunAnalysis) -> float | None:
    """A seed's timed training: its own figure, else the run's per-seed wall time."""
    return result.train_time_seconds if result.train_time_seconds is not None else run.compute.wall_time_seconds


def _time_figure(rule, run: RunAnalysis, metric_id: str, direction: str) -> Figure:
    def reached(v: float) -> bool:
        return v >= rule.target if direction == "higher" else v <= rule.target

    if isinstance(rule, MetricUnderTimeLimitRule):
        times = [train_time(r, run) for r in run.results]
        return Figure.of([r.final.get(metric_id) if t is not None and t <= rule.seconds else None
                          for r, t in zip(run.results, times)])
    if rule.timing == "first_reached":
        return Figure.of([samples_to_threshold(
            [(p.train_time_seconds, (p.model_extra or {})[metric_id]) for p in r.curve
             if p.train_time_seconds is not None and metric_id in (p.model_extra or {})], rule.target, direction)
            for r in run.results])
    # modded-nanogpt times the whole run and asks the mean final metric over seeds to reach the target: one seed
    # at 3.2806 does not unrank a run whose mean is 3.2790
    finals = [r.final.get(metric_id) for r in run.results]
    times = [train_time(r, run) for r in run.results]
    if any(v is None for v in finals) or not reached(stats.mean(finals)):
        return Figure.of([None] * len(times))
    return Figure.of(times)


def figure(rule, run: RunAnalysis, track: Track, baseline: RunAnalysis | None = None) -> Figure:
    """The run's figure under one rule, aggregated over seeds."""
    metric_id = rule.metric or track.primary_metric
    metric = track.metric(metric_id)
    if isinstance(rule, (TimeToTargetRule, MetricUnderTimeLimitRule)):
        return _time_figure(rule, run, metric_id, metric.direction)
    if isinstance(rule, SettingsMeanRule):
        wanted = [s.id for s in track.settings]
        per_seed = []
        for results in _by_seed(run).values():
            got = {r.setting: r.final.get(metric_id) for r in results}
            vals = [got.get(s) for s in wanted]
            per_seed.append(None if any(v is None for v in vals) else stats.mean(vals))
        return Figure.of(per_seed)
    if isinstance(rule, BaselineDeltaRule):
        if baseline is None:
            return Figure.of([None])
        base = Figure.of([r.final.get(metric_id) for r in baseline.results])
        own = Figure.of([r.final.get(metric_id) for r in run.results])
        if base.mean is None or own.mean is None:
            return Figure.of([None])
        return Figure.of([v - base.mean for v in own.values])
    values: list[float | None] = []
    for r in run.results:
        if isinstance(rule, FinalMetricRule):
            values.append(r.final.get(metric_id))
        elif isinstance(rule, ThresholdRule):
            values.append(samples_to_threshold(curve_of(r, metric_id), rule.threshold, metric.direction))
        elif isinstance(rule, BudgetRule):
            values.append(interpolate(curve_of(r, metric_id), rule.samples))
        elif isinstance(rule, AUCRule):
            values.append(auc(curve_of(r, metric_id), rule.sample_limit, rule.axis, metric.min, metric.max))
    return Figure.of(values)


def _metric_figure(run: RunAnalysis, metric_id: str, settings: list[str]) -> Figure:
    """Final metric over seeds; with settings, each seed's value is its mean over all of them (None if one is
    missing, so an incomplete run never looks better than a complete one)."""
    per_seed = []
    for results in _by_seed(run).values():
        got = {r.setting: r.final.get(metric_id) for r in results}
        values = [got.get(s) for s in settings] if settings else list(got.values())
        per_seed.append(None if not values or any(v is None for v in values) else stats.mean(values))
    return Figure.of(per_seed or [None])


def setting_figures(run: RunAnalysis, metric_id: str) -> dict[str, Figure]:
    """Per setting: the final metric over seeds (MaxCLIP publishes each scale)."""
    out: dict[str, list[float | None]] = {}
    for r in run.results:
        if r.setting is not None:
            out.setdefault(r.setting, []).append(r.final.get(metric_id))
    return {k: Figure.of(v) for k, v in out.items()}


@dataclass
class Entry:
    name: str
    run: RunAnalysis
    figures: list[Figure]
    rank: int | None = None
    metrics: dict[str, Figure] = field(default_factory=dict)
    unranked_why: str | None = None


def rank(runs: dict[str, RunAnalysis], track: Track, times_not_counted: dict[str, str] | None = None) -> list[Entry]:
    """Order runs by the track's rules; equal keys share a rank (1, 2, 2, 4); runs without a primary figure get none.
    A run named in `times_not_counted` (name: why) gets no time figure: a standard board counts reproduced times only."""
    rules = [track.ranking.primary, *track.ranking.tie_breakers]
    entries = []
    for name, run in runs.items():
        base = runs.get(run.baseline.run) if run.baseline and not run.baseline.track else None
        why = (times_not_counted or {}).get(name)
        figs = [Figure.of([None] * len(run.results)) if why and rule.kind in TIME_RULES
                else figure(rule, run, track, base) for rule in rules]
        metric_figs = {m.id: _metric_figure(run, m.id, [s.id for s in track.settings]) for m in track.metrics}
        unranked = why if why and rules[0].kind in TIME_RULES else None
        entries.append(Entry(name, run, figs, metrics=metric_figs, unranked_why=unranked))

    def key(e: Entry):
        parts = []
        for rule, fig in zip(rules, e.figures):
            if fig.mean is None:
                parts.append((1, 0.0))
            else:
                parts.append((0, fig.mean if better_is_lower(rule, track) else -fig.mean))
        return (*parts, e.name)

    entries.sort(key=key)
    previous, current = None, 0
    for i, e in enumerate(entries):
        if e.figures[0].mean is None:
            break
        k = key(e)[:-1]
        if k != previous:
            current, previous = i + 1, k
        e.rank = current
    return entries
