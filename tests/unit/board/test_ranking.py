"""The rank rule: Holm over pairs, the within-run floor, the square-root scale, rank intervals and edge cases;
and the previous rule's Welch test (kept for comparisons) against scipy. Its false-claim rate and power are
simulated in tests/unit/board/test_ranking_simulation.py."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from fairbench.board.ranking import (
    ALPHA,
    EntryRank,
    holm_rejections,
    rank_entries,
    significance_ranks,
    significantly_better,
    squared_distance,
    welch_p_value,
)

# The committed mnist-bicolor-imbalanced board's primary metric: repfair's three seeds and vanilla's.
REPFAIR = [0.6931471805599453, 0.6931471805599453, 0.3056214884488655]
VANILLA = [0.6931471805599453] * 3


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    """No NaN / divide-by-zero warning may leak out of the ranking, whatever the spreads."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def scipy_p(test, *args, **kwargs) -> float:
    """The reference p-value; scipy itself warns about constant samples (which the ranking must not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(test(*args, **kwargs).pvalue)


@pytest.mark.parametrize(("n_a", "n_b"), [(2, 2), (3, 3), (3, 5), (10, 4)])
def test_welch_p_value_matches_scipy(n_a: int, n_b: int) -> None:
    rng = np.random.default_rng(n_a * 10 + n_b)
    for _ in range(20):
        a = rng.normal(0.0, rng.uniform(0.1, 2.0), n_a)
        b = rng.normal(rng.uniform(-2, 2), rng.uniform(0.1, 2.0), n_b)
        expected = scipy_p(stats.ttest_ind, a, b, equal_var=False)
        assert welch_p_value(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_one_zero_spread_is_a_one_sample_test() -> None:
    """Welch with one constant side: df = n - 1 of the other, i.e. a one-sample t-test against the constant."""
    p = welch_p_value(REPFAIR, VANILLA)
    assert p == pytest.approx(scipy_p(stats.ttest_ind, REPFAIR, VANILLA, equal_var=False), rel=1e-9)
    assert p == pytest.approx(scipy_p(stats.ttest_1samp, REPFAIR, VANILLA[0]), rel=1e-9)
    assert welch_p_value(VANILLA, REPFAIR) == p  # symmetric
    assert 0.3 < p < 0.5  # t = 1, df = 2: nowhere near significant


def test_issue_example_shares_rank_one() -> None:
    """0.564 ± 0.224 over three seeds is not better than 0.693 ± 0.000 (issue 9)."""
    assert np.mean(REPFAIR) == pytest.approx(0.564, abs=5e-4)
    assert np.std(REPFAIR, ddof=1) == pytest.approx(0.224, abs=5e-4)
    assert significance_ranks({"repfair": REPFAIR, "vanilla": VANILLA}, higher_is_better=False) == {
        "repfair": 1,
        "vanilla": 1,
    }


def test_clearly_separated_pair_gets_ranks_one_and_two() -> None:
    good, bad = [0.10, 0.11, 0.12], [0.50, 0.52, 0.49]
    assert welch_p_value(good, bad) < 1e-3
    assert significance_ranks({"bad": bad, "good": good}, higher_is_better=False) == {"good": 1, "bad": 2}
    # the direction decides who is better
    assert significance_ranks({"bad": bad, "good": good}, higher_is_better=True) == {"good": 2, "bad": 1}


def test_non_transitive_chain() -> None:
    """A ~ B and B ~ C, but A shown better than C: rank = 1 + entries shown better; the intervals say the rest."""
    a, b, c = [-1.0, 0.0, 1.0], [1.0, 2.0, 3.0], [3.0, 4.0, 5.0]
    assert welch_p_value(a, b) > ALPHA and welch_p_value(b, c) > ALPHA  # t = 2.45, df = 4: p = 0.07
    assert welch_p_value(a, c) < ALPHA / 3  # t = 4.9: p = 0.008, below Holm's first threshold
    ranks = significance_ranks({"A": a, "B": b, "C": c}, higher_is_better=False)
    assert ranks == {"A": 1, "B": 1, "C": 2}
    assert significance_ranks({"A": a, "B": b, "C": c}, higher_is_better=True) == {"A": 2, "B": 1, "C": 1}
    assert rank_entries({"A": a, "B": b, "C": c}, higher_is_better=False) == {
        "A": EntryRank(1, 2, True), "B": EntryRank(1, 3, True), "C": EntryRank(2, 3, True)}


def test_ranks_do_not_depend_on_order() -> None:
    rng = np.random.default_rng(5)
    runs = {f"e{i}": list(rng.normal(i * 0.4, 0.3, 3)) for i in range(5)}
    expected = significance_ranks(runs, higher_is_better=False)
    for order in itertools.permutations(runs):
        assert significance_ranks({k: runs[k] for k in order}, higher_is_better=False) == expected
        # nor on the order of an entry's runs
        assert significance_ranks({k: runs[k][::-1] for k in order}, higher_is_better=False) == expected
    assert sorted(expected.values())[0] == 1


def test_fewer_than_two_runs_is_never_significant() -> None:
    single, many = [0.0], [10.0, 10.1, 9.9]
    assert welch_p_value(single, many) is None and welch_p_value(many, single) is None
    assert not significantly_better(single, many, higher_is_better=True)
    assert not significantly_better(many, single, higher_is_better=True)
    # a lone run against two constant entries that differ from each other
    ranks = significance_ranks({"one": [5.0], "low": [1.0, 1.0], "high": [9.0, 9.0]}, higher_is_better=False)
    assert ranks == {"low": 1, "one": 1, "high": 2}
    assert significance_ranks({"x": [1.0], "y": [2.0]}, higher_is_better=False) == {"x": 1, "y": 1}
    # the lone run stays unranked against the others: rank 1, interval 1 to 3, never compared
    places = rank_entries({"one": [5.0], "low": [1.0, 1.0], "high": [9.0, 9.0]}, higher_is_better=False)
    assert places == {"one": EntryRank(1, 3, False), "low": EntryRank(1, 2, True), "high": EntryRank(2, 3, True)}


def test_both_spreads_zero_is_significant_iff_values_differ() -> None:
    assert welch_p_value([1.0, 1.0], [2.0, 2.0]) == 0.0
    assert welch_p_value([1.0, 1.0, 1.0], [1.0, 1.0]) == 1.0
    assert significance_ranks({"a": [1.0, 1.0], "b": [2.0, 2.0]}, higher_is_better=False) == {"a": 1, "b": 2}
    assert significance_ranks({"a": [0.5] * 3, "b": [0.5] * 3}, higher_is_better=False) == {"a": 1, "b": 1}
    # 0.1 three times has mean 0.10000000000000002 and variance ~1e-34 in numpy; it is still a zero spread
    assert welch_p_value([0.1] * 3, [0.2] * 3) == 0.0
    assert welch_p_value([0.1] * 3, [0.1, 0.1]) == 1.0


def test_last_bit_noise_is_no_difference() -> None:
    ln2 = math.log(2)
    noisy = math.nextafter(ln2, 1.0)
    assert welch_p_value([ln2] * 3, [noisy] * 3) == 1.0
    assert welch_p_value([ln2, noisy, ln2], [0.5, 0.5, 0.5]) == 0.0  # a noise-only spread is no spread
    assert significance_ranks({"a": [ln2] * 3, "b": [noisy] * 3}, higher_is_better=False) == {"a": 1, "b": 1}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1e-200, 2e-200, 3e-200], [1.0, 1.0, 1.0]),  # squared standard errors underflow
        ([0.0, 0.0], [1e-300, 1e-300]),
        ([0.0, 1e-308, 2e-308], [5.0, 5.0]),
        ([1e300, -1e300], [0.0, 0.0]),
    ],
)
def test_extreme_spreads_give_a_p_value_without_warnings(a: list[float], b: list[float]) -> None:
    p = welch_p_value(a, b)
    assert p is not None and 0.0 <= p <= 1.0 and not math.isnan(p)


def test_missing_metric_has_no_rank_and_is_not_compared() -> None:
    ranks = significance_ranks({"gone": None, "empty": [], "a": [0.1, 0.1], "b": [0.9, 0.9]}, higher_is_better=False)
    assert ranks == {"gone": None, "empty": None, "a": 1, "b": 2}
    places = rank_entries({"gone": None, "a": [0.1, 0.1], "b": [0.9, 0.9]}, higher_is_better=False)
    assert places == {"gone": None, "a": EntryRank(1, 1, True), "b": EntryRank(2, 2, True)}  # k = 2 present


def holm_reference(p: list[float], alpha: float) -> list[bool]:
    """Holm by its definition: reject H_(i) iff every p_(j), j <= i, is below alpha / (m - j + 1)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [False] * m
    for rank, i in enumerate(order):
        if not all(p[order[j]] < alpha / (m - j) for j in range(rank + 1)):
            break
        out[i] = True
    return out


def test_holm_matches_its_definition() -> None:
    rng = np.random.default_rng(11)
    for m in (1, 2, 3, 10, 45):
        for _ in range(50):
            p = rng.uniform(0, 0.06, m) ** rng.uniform(1, 3)
            assert list(holm_rejections(p, ALPHA)) == holm_reference(list(p), ALPHA)
    assert not holm_rejections(np.array([]), ALPHA).any()
    assert list(holm_rejections(np.array([0.04, 0.01, 0.01]), ALPHA)) == [True, True, True]  # < 0.05/3, /2, /1
    assert list(holm_rejections(np.array([0.01, 0.03, 0.04]), ALPHA)) == [True, False, False]  # 0.03 > 0.05/2: stop


def test_multiplicity_is_corrected() -> None:
    """Ten entries whose pairwise p-values are each below 0.05 but not below Holm's thresholds share a rank;
    the previous rule (Welch per pair at 0.05) separated them."""
    runs = {"a": [0.0, 1.0, 2.0], "b": [2.5, 3.5, 4.5]}  # Welch: t = 3.06, df = 4
    p = welch_p_value(runs["a"], runs["b"])
    assert 0.01 < p < ALPHA  # significant alone
    assert significance_ranks(runs, higher_is_better=False) == {"a": 1, "b": 2}  # one pair: Holm is the test
    # among eight more entries far from both, the pair's p is no longer below Holm's threshold for its place
    more = {f"far{i}": [100.0 + i, 100.5 + i, 101.0 + i] for i in range(8)}
    ranks = significance_ranks({**runs, **more}, higher_is_better=False)
    assert ranks["a"] == ranks["b"] == 1
    places = rank_entries({**runs, **more}, higher_is_better=False)
    assert places["a"] == places["b"] == EntryRank(1, 2, True)


def test_within_run_noise_is_a_floor_on_the_spread() -> None:
    """Three seeds that agree by luck (spread 0.001) are not a precise entry when each run's own interval is
    +-0.05: rescoring alone would move them more. Without the intervals the same values are separated."""
    a, b = [0.200, 0.201, 0.202], [0.230, 0.231, 0.232]
    assert significance_ranks({"a": a, "b": b}, higher_is_better=False) == {"a": 1, "b": 2}
    wide = {"a": [(v - 0.05, v + 0.05) for v in a], "b": [(v - 0.05, v + 0.05) for v in b]}
    assert significance_ranks({"a": a, "b": b}, higher_is_better=False, intervals=wide) == {"a": 1, "b": 1}
    # runs without an interval count as no within-run noise; narrow intervals change nothing
    narrow = {"a": [(v - 1e-4, v + 1e-4) for v in a], "b": [None, None, None]}
    assert significance_ranks({"a": a, "b": b}, higher_is_better=False, intervals=narrow) == {"a": 1, "b": 2}
    # on the square-root scale too: +-0.05 around 0.2 is +-0.055 in sqrt, far above the seeds' spread
    assert significance_ranks({"a": a, "b": b}, False, intervals=wide, squared=True) == {"a": 1, "b": 1}


def test_lucky_low_seeds_of_a_skewed_entry_are_not_taken_as_precise() -> None:
    """The score test on the square-root scale: a steady entry (KL 0.0823 every seed) against three seeds of
    a varying one that all landed fairly low. Welch on the KLs calls it (p = 0.03); the rule does not (p = 0.08),
    since under equal means the varying entry would sit at 0.08, where its spread of sqrt(KL) means a KL spread
    of 0.027, not the 0.015 its three low seeds show."""
    steady = [0.0823, 0.0823, 0.0823]
    varying = [0.015, 0.035, 0.045]
    assert welch_p_value(steady, varying) < ALPHA
    assert significance_ranks({"s": steady, "v": varying}, higher_is_better=False) == {"s": 2, "v": 1}
    assert significance_ranks({"s": steady, "v": varying}, higher_is_better=False, squared=True) == {"s": 1, "v": 1}


def test_squared_distances_use_the_square_root_scale_unless_negative() -> None:
    assert squared_distance("kl_uniform_corrected") and squared_distance("fid") and squared_distance("fid_balanced")
    assert not squared_distance("kid") and not squared_distance("fd_l1") and not squared_distance("accuracy")
    # a negative value (a debiased KL) falls back to the metric's own scale, where this pair is separated
    lo, hi = [0.05, 0.06, 0.07], [0.30, 0.33, 0.36]
    assert significance_ranks({"lo": lo, "hi": hi}, False, squared=True) == {"lo": 1, "hi": 2}
    assert significance_ranks({"lo": [-0.01, 0.06, 0.07], "hi": hi}, False, squared=True) == \
        significance_ranks({"lo": [-0.01, 0.06, 0.07], "hi": hi}, False, squared=False)


def test_rank_intervals_on_a_board() -> None:
    """Rank intervals: from 1 + entries shown better to k - entries shown worse."""
    runs = {"best": [0.01, 0.011, 0.012], "mid1": [0.30, 0.31, 0.32], "mid2": [0.30, 0.35, 0.40],
            "worst": [0.90, 0.91, 0.92], "lone": [0.5]}
    places = rank_entries(runs, higher_is_better=False)
    assert places["best"] == EntryRank(1, 2, True)  # the lone run could be anywhere
    assert places["mid1"].rank == 2 and places["mid2"].rank == 2
    assert places["worst"] == EntryRank(4, 5, True)
    assert places["lone"] == EntryRank(1, 5, False)
    for place in places.values():
        assert place is not None and 1 <= place.rank <= place.worst <= len(runs)
