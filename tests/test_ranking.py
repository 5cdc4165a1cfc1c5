"""The significance ranking: Welch's test against scipy, the rule on the issue's examples, and its edge cases."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from fairbench.leaderboard.ranking import ALPHA, significance_ranks, significantly_better, welch_p_value

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
    """A ~ B and B ~ C, but A significantly better than C: rank = 1 + entries significantly better."""
    a, b, c = [-1.0, 0.0, 1.0], [1.0, 2.0, 3.0], [3.0, 4.0, 5.0]
    assert welch_p_value(a, b) > ALPHA and welch_p_value(b, c) > ALPHA  # t = 2.45, df = 4: p = 0.07
    assert welch_p_value(a, c) < ALPHA  # t = 4.9: p = 0.008
    ranks = significance_ranks({"A": a, "B": b, "C": c}, higher_is_better=False)
    assert ranks == {"A": 1, "B": 1, "C": 2}
    assert significance_ranks({"A": a, "B": b, "C": c}, higher_is_better=True) == {"A": 2, "B": 1, "C": 1}


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
