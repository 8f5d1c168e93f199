"""Statistics over seeds: one-sided t-tests for record claims and the record history of a track."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as _st


@dataclass(frozen=True)
class TestResult:
    p_value: float | None
    statistic: float | None
    significant: bool
    against: str  # "threshold" or "record"
    reference: float | str | None
    note: str = ""


def one_sample(values: Sequence[float], threshold: float, better_is_lower: bool, alpha: float) -> TestResult:
    """H1: the mean is better than `threshold` (modded-nanogpt's rule: mean val loss below 3.28, p < alpha)."""
    if len(values) < 2:
        return TestResult(None, None, False, "threshold", threshold, "needs at least 2 seeds")
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    if sd == 0:
        better = mean < threshold if better_is_lower else mean > threshold
        return TestResult(0.0 if better else 1.0, math.inf if better else -math.inf, better, "threshold", threshold,
                          "identical values over seeds")
    t = (threshold - mean if better_is_lower else mean - threshold) / (sd / math.sqrt(len(values)))
    p = float(_st.t.sf(t, df=len(values) - 1))
    return TestResult(p, t, p < alpha, "threshold", threshold)


def two_sample(values: Sequence[float], record: Sequence[float], better_is_lower: bool, alpha: float,
               record_name: str) -> TestResult:
    """Welch's one-sided t-test, H1: the run's mean is better than the record's."""
    if len(values) < 2 or len(record) < 2:
        return TestResult(None, None, False, "record", record_name, "needs at least 2 seeds on both runs")
    a, b = (record, values) if better_is_lower else (values, record)
    result = _st.ttest_ind(a, b, equal_var=False, alternative="greater")
    p = float(result.pvalue) if not math.isnan(result.pvalue) else None
    t = float(result.statistic) if not math.isnan(result.statistic) else None
    if p is None:  # both constant
        better = statistics.fmean(values) < statistics.fmean(record) if better_is_lower else \
            statistics.fmean(values) > statistics.fmean(record)
        return TestResult(0.0 if better else 1.0, None, better, "record", record_name, "identical values over seeds")
    return TestResult(p, t, p < alpha, "record", record_name)


@dataclass(frozen=True)
class Record:
    date: str
    name: str
    mean: float
    p_value: float | None


def record_history(entries: Sequence[dict], better_is_lower: bool, alpha: float | None,
                   against: str | None) -> list[Record]:
    """Runs that improved the best primary figure, in order of their date (then name). With a significance
    rule against the record, an improvement only counts when its test against the standing record passes."""
    history: list[Record] = []
    best: dict | None = None
    for e in sorted(entries, key=lambda e: (e["date"], e["name"])):
        fig = e["figures"][0]
        if fig["mean"] is None:
            continue
        improves = best is None or (fig["mean"] < best["figures"][0]["mean"] if better_is_lower
                                    else fig["mean"] > best["figures"][0]["mean"])
        p = None
        if improves and best is not None and alpha is not None and against == "record":
            test = two_sample(fig["values"], best["figures"][0]["values"], better_is_lower, alpha, best["name"])
            p = test.p_value
            improves = test.significant
        if improves:
            best = e
            history.append(Record(e["date"], e["name"], fig["mean"], p))
    return history
