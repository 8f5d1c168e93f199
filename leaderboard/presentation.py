"""Small decisions about how figures read on the pages: budgets in the words a competition uses, tokens on language
tracks, which metric columns would only repeat a ranking column, and the order tracks are listed in."""

from __future__ import annotations

import re

from validator.models.run import RunAnalysis
from validator.models.track import Track

# "2048 tokens", "128 bytes": the sequence a language-model run trains on, in the run's own dataset.resolution.
_SEQUENCE = re.compile(r"^\s*([\d,]+)\s+(tokens?|bytes?)\b", re.IGNORECASE)


def tokens_per_sample(track: Track | None, run: RunAnalysis) -> int | None:
    """On a language-modelling track a sample is a sequence; its length (from the run's dataset.resolution) turns
    samples seen into tokens, the unit LM speedruns are read in. None where it is not stated."""
    if track is None or track.task.kind != "language-modeling" or not run.dataset.resolution:
        return None
    m = _SEQUENCE.match(run.dataset.resolution)
    return int(m[1].replace(",", "")) or None if m else None


def sample_unit(track: Track) -> str:
    return "sequences" if track.task.kind == "language-modeling" else "samples"


def metric_columns(track: Track, ranked: list[dict]) -> list[str]:
    """Ids of the non-primary metrics worth a column: one whose figure equals a ranking rule's for every ranked run
    (MaxCLIP's tie-breaker is the mean recall over settings, which is also that metric's figure) is left out."""
    out = []
    for m in track.metrics:
        if m.id == track.primary_metric:
            continue
        same_as_rule = any(
            ranked and all(e["metrics"].get(m.id, {}).get("values") == e["figures"][i]["values"] for e in ranked)
            for i in range(len(ranked[0]["figures"]) if ranked else 0))
        if not same_as_rule:
            out.append(m.id)
    return out


def budget_text(budget: dict | None) -> str:
    """'3e19 FLOPs', '32,768 samples': a FLOPs budget as the competitions write it (Marin's TINY is '3e18')."""
    if not budget:
        return "no budget"
    limit = budget["limit"]
    if budget["kind"] == "flops":
        mantissa, exponent = f"{limit:.3e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)} FLOPs"
    return f"{limit:,.0f} samples"


def track_order(track: dict) -> tuple:
    """Tracks of a competition from the smallest budget to the largest (TINY, SMALL, MEDIUM), then boards without
    a budget; the id breaks ties so the order never depends on the file system."""
    budget = track.get("budget")
    return (budget is None, budget["kind"] if budget else "", budget["limit"] if budget else 0.0, track["id"])


def compact(value) -> str:
    """A count as a reader takes it in at a glance: 12,800,000,000 -> '12.8B', 4,882,688 -> '4.88M'."""
    if value is None:
        return "–"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:,.0f}"


def duration(seconds: float) -> str:
    """A training time as speedruns publish it: '179.5 s' under two minutes' worth of reading, '2.992 min' above,
    hours for the long baselines (llm.c's 45 minutes stays minutes)."""
    if abs(seconds) >= 7200:
        return f"{seconds / 3600:.2f} h"
    if abs(seconds) >= 120:
        return f"{seconds / 60:.3f} min"
    return f"{seconds:.2f} s" if abs(seconds) < 10 else f"{seconds:.1f} s"


def mean_std(fig: dict | None, kind: str = "") -> str:
    """mean ± std, formatted for the rule: samples as whole numbers, times as durations, metrics with four decimals."""
    if fig is None or fig.get("mean") is None:
        return "not reached" if kind in ("samples_to_threshold", "time_to_target") else "–"
    if kind == "time_to_target":
        spread = fig.get("std")
        return duration(fig["mean"]) + (f" ± {spread:.2g} s" if fig.get("n", 0) > 1 and spread is not None else "")
    fmt = (lambda v: f"{v:,.0f}") if kind == "samples_to_threshold" else (lambda v: f"{v:.4f}")
    text = fmt(fig["mean"])
    if fig.get("n", 0) > 1 and fig.get("std") is not None:
        text += f" ± {fmt(fig['std'])}"
    return text


def figure_text(fig: dict | None, rule: dict, track: dict) -> str:
    """A ranking figure with its unit: '11,421 ± 120 samples', '1.2703 bits/byte', '0.6264'."""
    text = mean_std(fig, rule["kind"])
    if fig is None or fig.get("mean") is None or rule["kind"] == "time_to_target":
        return text
    if rule["kind"] == "samples_to_threshold":
        unit = track.get("sample_unit", "samples")
    else:
        metric_id = rule.get("metric") or track["primary_metric"]
        unit = next((m.get("unit") or "" for m in track["metrics"] if m["id"] == metric_id), "")
    return f"{text} {unit}".strip()


def rule_header(rule: dict, track: dict) -> str:
    """A column header short enough not to wrap: the full rule is the header's title."""
    metric_id = rule.get("metric") or track["primary_metric"]
    metric = next((m for m in track["metrics"] if m["id"] == metric_id), {"name": metric_id, "direction": "higher"})
    if rule["kind"] == "samples_to_threshold":
        sign = "≥" if metric["direction"] == "higher" else "≤"
        return f"{track.get('sample_unit', 'samples').capitalize()} to {sign} {rule['threshold']:g}"
    if rule["kind"] == "settings_mean":
        return f"{metric['name']}, mean of settings"
    if rule["kind"] == "final_metric":
        return metric["name"] + (f" ({metric['unit']})" if metric.get("unit") else "")
    if rule["kind"] == "auc":
        return f"AUC to {compact(rule['sample_limit'])}"
    if rule["kind"] == "metric_at_budget":
        return f"{metric['name']} at {compact(rule['samples'])}"
    if rule["kind"] == "baseline_delta":
        return f"Δ {metric['name']}"
    if rule["kind"] == "time_to_target":
        return f"Time to {'≥' if metric['direction'] == 'higher' else '≤'} {rule['target']:g}"
    if rule["kind"] == "metric_under_time_limit":
        return f"{metric['name']} in {duration(rule['seconds'])}"
    return rule["label"]
