"""Statistics over seeds: one-sided t-tests for record claims and the record history of a track."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy.special import stdtr  # Student's t CDF; scipy.stats costs a second to import and ~100 µs a call


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1), two-pass in floats: statistics.stdev's exact fractions cost ~50 µs per call,
    which a 10,000-run build pays tens of thousands of times. Identical values give exactly 0."""
    if len(values) < 2 or max(values) == min(values):
        return 0.0
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


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
    m, sd = mean(values), sample_std(values)
    if sd == 0:
        better = m < threshold if better_is_lower else m > threshold
        return TestResult(0.0 if better else 1.0, math.inf if better else -math.inf, better, "threshold", threshold,
                          "identical values over seeds")
    t = (threshold - m if better_is_lower else m - threshold) / (sd / math.sqrt(len(values)))
    p = float(stdtr(len(values) - 1, -t))  # P(T > t)
    return TestResult(p, t, p < alpha, "threshold", threshold)


def two_sample(values: Sequence[float], record: Sequence[float], better_is_lower: bool, alpha: float,
               record_name: str) -> TestResult:
    """Welch's one-sided t-test, H1: the run's mean is better than the record's."""
    if len(values) < 2 or len(record) < 2:
        return TestResult(None, None, False, "record", record_name, "needs at least 2 seeds on both runs")
    a, b = (record, values) if better_is_lower else (values, record)
    # Welch's test with the Welch-Satterthwaite degrees of freedom (scipy's ttest_ind(equal_var=False), by hand).
    wa, wb = sample_std(a) ** 2 / len(a), sample_std(b) ** 2 / len(b)
    if wa + wb == 0:  # both constant
        better = mean(values) < mean(record) if better_is_lower else mean(values) > mean(record)
        return TestResult(0.0 if better else 1.0, None, better, "record", record_name, "identical values over seeds")
    t = (mean(a) - mean(b)) / math.sqrt(wa + wb)
    df = (wa + wb) ** 2 / (wa**2 / (len(a) - 1) + wb**2 / (len(b) - 1))
    p = float(stdtr(df, -t))
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
