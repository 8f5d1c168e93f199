"""Record-claim statistics and the Pareto frontier against hand-computed figures."""

import math

import pytest
from scipy import stats as st

from leaderboard.charts import pareto
from leaderboard.stats import one_sample, record_history, sample_std, two_sample


# --- one_sample ---------------------------------------------------------------------------------------------------


def _t2_sf(t: float) -> float:
    """Survival function of Student's t with 2 degrees of freedom, in closed form: 1/2 - t / (2 sqrt(t^2 + 2))."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


def test_one_sample_higher_is_better_by_hand():
    # mean 0.96, sample sd 0.01, se = 0.01 / sqrt(3), t = (0.96 - 0.95) / se = sqrt(3), df = 2
    res = one_sample([0.96, 0.97, 0.95], threshold=0.95, better_is_lower=False, alpha=0.05)
    assert res.statistic == pytest.approx(math.sqrt(3))
    assert res.p_value == pytest.approx(_t2_sf(math.sqrt(3)))  # 0.11270...
    assert res.p_value == pytest.approx(float(st.t.sf(math.sqrt(3), df=2)))
    assert res.p_value == pytest.approx(0.1127016654, abs=1e-9)
    assert not res.significant  # 0.113 > 0.05
    assert res.against == "threshold" and res.reference == 0.95
    assert one_sample([0.96, 0.97, 0.95], 0.95, False, alpha=0.2).significant


def test_one_sample_lower_is_better_by_hand():
    # losses: mean 3.22, sd 0.02, se = 0.02 / sqrt(3); t = (3.25 - 3.22) / se = 1.5 sqrt(3) = 2.598, df = 2
    res = one_sample([3.20, 3.24, 3.22], threshold=3.25, better_is_lower=True, alpha=0.1)
    t = 1.5 * math.sqrt(3)
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(_t2_sf(t))  # 0.0608
    assert res.p_value == pytest.approx(0.0608449672, abs=1e-9)
    assert res.significant  # < 0.1
    assert not one_sample([3.20, 3.24, 3.22], 3.25, True, alpha=0.05).significant


def test_one_sample_worse_than_threshold_has_negative_t():
    # the same losses against a threshold they miss: t = (3.19 - 3.22) / se = -1.5 sqrt(3), p = 1 - 0.0608
    res = one_sample([3.20, 3.24, 3.22], threshold=3.19, better_is_lower=True, alpha=0.05)
    assert res.statistic == pytest.approx(-1.5 * math.sqrt(3))
    assert res.p_value == pytest.approx(1 - 0.0608449672, abs=1e-9)
    assert not res.significant


def test_one_sample_larger_sample_matches_scipy_t():
    values = [3.271, 3.262, 3.279, 3.268, 3.270]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = (3.28 - mean) / (sd / math.sqrt(n))
    res = one_sample(values, 3.28, better_is_lower=True, alpha=0.01)
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(float(st.t.sf(t, df=n - 1)))
    # scipy's own one-sample test agrees
    assert res.p_value == pytest.approx(float(st.ttest_1samp(values, 3.28, alternative="less").pvalue))


def test_one_sample_identical_values():
    better = one_sample([3.2, 3.2, 3.2], threshold=3.28, better_is_lower=True, alpha=0.05)
    assert (better.p_value, better.statistic, better.significant) == (0.0, math.inf, True)
    assert "identical" in better.note
    worse = one_sample([3.3, 3.3], threshold=3.28, better_is_lower=True, alpha=0.05)
    assert (worse.p_value, worse.statistic, worse.significant) == (1.0, -math.inf, False)
    # higher is better: identical accuracies above the threshold pass, equal to it does not
    assert one_sample([0.97, 0.97], 0.95, better_is_lower=False, alpha=0.05).significant
    on = one_sample([0.95, 0.95], 0.95, better_is_lower=False, alpha=0.05)
    assert not on.significant and on.p_value == 1.0


@pytest.mark.parametrize("values", [[], [3.1]])
def test_one_sample_needs_two_seeds(values):
    res = one_sample(values, threshold=3.28, better_is_lower=True, alpha=0.05)
    assert res.p_value is None and res.statistic is None and not res.significant
    assert "at least 2" in res.note


# --- two_sample ---------------------------------------------------------------------------------------------------

RUN = [3.20, 3.22, 3.24]  # mean 3.22, variance 0.0004
RECORD = [3.25, 3.28, 3.31, 3.28]  # mean 3.28, variance 0.0006


def _welch(a, b):
    """Welch's t of mean(a) - mean(b) and its Welch-Satterthwaite df, computed from the definitions."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return (ma - mb) / math.sqrt(se2), df


def test_welch_by_hand():
    # se^2 = 0.0004/3 + 0.0006/4 = 0.00028333; t = 0.06 / sqrt(se^2) = 3.5645
    # df = se^4 / ((0.0004/3)^2 / 2 + (0.0006/4)^2 / 3) = 4.8983
    t, df = _welch(RECORD, RUN)
    assert t == pytest.approx(3.5645311547, rel=1e-9)
    assert df == pytest.approx(4.8983050847, rel=1e-9)


def test_two_sample_lower_is_better():
    t, df = _welch(RECORD, RUN)
    res = two_sample(RUN, RECORD, better_is_lower=True, alpha=0.05, record_name="old")
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(float(st.t.sf(t, df)))  # 0.00835
    assert res.p_value == pytest.approx(0.0083534228, rel=1e-6)
    assert res.significant and res.against == "record" and res.reference == "old"
    ref = st.ttest_ind(RUN, RECORD, equal_var=False, alternative="less")
    assert res.p_value == pytest.approx(float(ref.pvalue))


def test_two_sample_lower_is_better_reversed():
    # the record is the better one: the claim fails, p = 1 - 0.00835
    t, df = _welch(RUN, RECORD)  # negative
    res = two_sample(RECORD, RUN, better_is_lower=True, alpha=0.05, record_name="r")
    assert res.statistic == pytest.approx(t) and t < 0
    assert res.p_value == pytest.approx(1 - 0.0083534228, rel=1e-6)
    assert not res.significant


def test_two_sample_higher_is_better_both_directions():
    run, record = [0.962, 0.958, 0.967, 0.960], [0.951, 0.955, 0.949]
    t, df = _welch(run, record)
    res = two_sample(run, record, better_is_lower=False, alpha=0.05, record_name="r")
    assert res.statistic == pytest.approx(t) and t > 0
    assert res.p_value == pytest.approx(float(st.t.sf(t, df)))
    assert res.p_value == pytest.approx(float(st.ttest_ind(run, record, equal_var=False,
                                                           alternative="greater").pvalue))
    assert res.significant

    back = two_sample(record, run, better_is_lower=False, alpha=0.05, record_name="r")
    assert back.statistic == pytest.approx(-t)
    assert back.p_value == pytest.approx(1 - res.p_value)
    assert not back.significant


def test_two_sample_not_significant_improvement():
    # better mean, but the spread is too wide for alpha 0.05
    run, record = [3.10, 3.30, 3.20], [3.25, 3.21, 3.29]
    t, df = _welch(record, run)
    res = two_sample(run, record, better_is_lower=True, alpha=0.05, record_name="r")
    assert res.p_value == pytest.approx(float(st.t.sf(t, df)))
    assert 0.05 < res.p_value < 0.5
    assert not res.significant


def test_two_sample_needs_two_seeds_each():
    assert two_sample([3.1], RECORD, True, 0.05, "r").p_value is None
    res = two_sample(RUN, [3.3], True, 0.05, "r")
    assert res.p_value is None and not res.significant and "at least 2" in res.note


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on constant samples
def test_two_sample_constant_samples():
    same = two_sample([3.2, 3.2], [3.2, 3.2], True, 0.05, "r")
    assert same.p_value == 1.0 and not same.significant
    better = two_sample([3.1, 3.1], [3.2, 3.2], True, 0.05, "r")
    assert better.p_value == 0.0 and better.significant
    worse = two_sample([3.3, 3.3], [3.2, 3.2], True, 0.05, "r")
    assert worse.p_value == 1.0 and not worse.significant


# --- record_history -----------------------------------------------------------------------------------------------


def _e(name, date, values):
    mean = sum(values) / len(values) if values and None not in values else None
    return {"name": name, "date": date, "figures": [{"mean": mean, "values": list(values)}]}


def test_record_history_sorts_by_date_and_skips_non_improving():
    entries = [
        _e("c", "2025-03-01", [0.80]),  # best so far: record
        _e("a", "2025-01-01", [0.50]),  # first: record
        _e("d", "2025-04-01", [0.70]),  # worse than c: not a record
        _e("b", "2025-02-01", [0.60]),  # better than a: record
        _e("e", "2025-05-01", [0.80]),  # equal to c: not a record
        _e("f", "2025-06-01", [None]),  # no figure: skipped
    ]
    hist = record_history(entries, better_is_lower=False, alpha=None, against=None)
    assert [(r.date, r.name, r.mean) for r in hist] == [
        ("2025-01-01", "a", 0.50), ("2025-02-01", "b", 0.60), ("2025-03-01", "c", 0.80)]
    assert all(r.p_value is None for r in hist)


def test_record_history_lower_is_better_same_date_by_name():
    entries = [_e("z", "2025-01-01", [3.0]), _e("m", "2025-01-01", [3.5]), _e("k", "2025-01-02", [2.9])]
    hist = record_history(entries, better_is_lower=True, alpha=None, against=None)
    # same date: m before z by name; m 3.5 is the first record, z 3.0 improves, k 2.9 improves
    assert [r.name for r in hist] == ["m", "z", "k"]


def test_record_history_significance_against_record():
    first = _e("first", "2025-01-01", [3.28, 3.31, 3.25, 3.28])
    noisy = _e("noisy", "2025-02-01", [3.10, 3.30, 3.20])  # better mean, not significant
    clear = _e("clear", "2025-03-01", [3.20, 3.22, 3.24])  # significant against first (p = 0.00835)
    hist = record_history([clear, noisy, first], better_is_lower=True, alpha=0.05, against="record")
    assert [r.name for r in hist] == ["first", "clear"]
    assert hist[0].p_value is None  # nothing to test the first record against
    # clear was tested against the standing record (first), not against the blocked noisy run
    t, df = _welch(first["figures"][0]["values"], clear["figures"][0]["values"])
    assert hist[1].p_value == pytest.approx(float(st.t.sf(t, df)))
    assert hist[1].p_value == pytest.approx(0.0083534228, rel=1e-6)


def test_record_history_without_record_test_counts_every_improvement():
    first = _e("first", "2025-01-01", [3.28, 3.31, 3.25, 3.28])
    noisy = _e("noisy", "2025-02-01", [3.10, 3.30, 3.20])
    # against the threshold, record_history does no two-sample test: the mean alone decides
    hist = record_history([first, noisy], better_is_lower=True, alpha=0.05, against="threshold")
    assert [r.name for r in hist] == ["first", "noisy"]
    assert hist[1].p_value is None


# --- charts.pareto ------------------------------------------------------------------------------------------------


def test_pareto_lower_is_better_drops_dominated():
    points = [(3e18, 1.15, "c"), (1e18, 1.20, "a"), (4e18, 1.00, "d"), (2e18, 1.10, "b"), (5e18, 1.05, "e")]
    # c (more FLOPs than b, worse) and e (more FLOPs than d, worse) are dominated
    assert pareto(points, lower_is_better=True) == [(1e18, 1.20, "a"), (2e18, 1.10, "b"), (4e18, 1.00, "d")]


def test_pareto_higher_is_better():
    points = [(1e18, 0.40, "a"), (2e18, 0.35, "b"), (3e18, 0.50, "c"), (4e18, 0.50, "d"), (5e18, 0.55, "e")]
    # b is worse than a with more FLOPs; d only equals c with more FLOPs
    assert pareto(points, lower_is_better=False) == [(1e18, 0.40, "a"), (3e18, 0.50, "c"), (5e18, 0.55, "e")]


def test_pareto_ties_in_flops_keep_the_better_value():
    lower = [(1e18, 1.20, "worse"), (1e18, 1.10, "better"), (2e18, 1.15, "late")]
    assert pareto(lower, lower_is_better=True) == [(1e18, 1.10, "better")]
    higher = [(1e18, 0.50, "worse"), (1e18, 0.60, "better"), (2e18, 0.70, "late")]
    assert pareto(higher, lower_is_better=False) == [(1e18, 0.60, "better"), (2e18, 0.70, "late")]


def test_pareto_empty_and_single():
    assert pareto([], lower_is_better=True) == []
    assert pareto([(1.0, 2.0, "x")], lower_is_better=False) == [(1.0, 2.0, "x")]


# --- float statistics against scipy and the exact ones --------------------------------------------------------------


@pytest.mark.parametrize("values", [[0.1, 0.2, 0.4], [1e9 + 1, 1e9 + 2, 1e9 + 4], [3.0, 3.0, 3.0, 3.0001],
                                    [0.9274, 0.9181, 0.9302, 0.9243, 0.9266]])
def test_sample_std_matches_the_exact_one(values):
    import statistics

    assert sample_std(values) == pytest.approx(statistics.stdev(values), rel=1e-12)


def test_sample_std_of_identical_values_is_exactly_zero():
    assert sample_std([0.1] * 3) == 0.0 and sample_std([0.7]) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_tests_match_scipy(seed):
    import random

    rng = random.Random(seed)
    a = [rng.gauss(1.0, 0.1) for _ in range(rng.randint(2, 7))]
    b = [rng.gauss(1.05, 0.2) for _ in range(rng.randint(2, 7))]
    mine = two_sample(a, b, better_is_lower=True, alpha=0.05, record_name="r")
    ref = st.ttest_ind(b, a, equal_var=False, alternative="greater")
    assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9) and mine.statistic == pytest.approx(ref.statistic)
    mine = two_sample(a, b, better_is_lower=False, alpha=0.05, record_name="r")
    ref = st.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    one = one_sample(a, 1.02, better_is_lower=True, alpha=0.05)
    assert one.p_value == pytest.approx(st.ttest_1samp(a, 1.02, alternative="less").pvalue, rel=1e-9)
