"""Fairness metrics and their intervals, each checked against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from fairbench.errors import FairbenchError
from fairbench.metrics import regions
from fairbench.metrics.row_metrics import ROW_METRICS
from fairbench.metrics.fairness import (
    FAIRNESS_METRICS,
    MetricValue,
    conditional_fairness_report,
    correct_proportions,
    fairness_report,
    fd_l1,
    fd_l2,
    group_counts,
    kl_uniform,
    kl_uniform_normalized,
    proportions,
)
from tests.helpers import profile_reference as reference
from tests.helpers.confusion import noisy_confusion

BASE_METRICS = ["kl_uniform", "kl_uniform_normalized", "fd_l1", "fd_l2"]
ALL_METRICS = [m for name in BASE_METRICS for m in (name, f"{name}_corrected")]
DEBIASED = ["kl_uniform_debiased", "kl_uniform_corrected_debiased"]


def labels_with_counts(counts, seed=0):
    """Predicted labels with exactly these per-group counts, shuffled so order cannot matter."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


# ------------------------------------------------------------------------------------------ metric values


def test_hand_worked_two_groups():
    p = np.array([0.75, 0.25])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_uniform(p) == pytest.approx(kl, abs=1e-15)
    assert kl_uniform_normalized(p) == pytest.approx(kl / math.log(2), abs=1e-15)
    assert fd_l1(p) == pytest.approx(0.5, abs=1e-15)
    assert fd_l2(p) == pytest.approx(math.sqrt(0.125), abs=1e-15)


def test_hand_worked_three_groups():
    p = np.array([0.5, 0.3, 0.2])
    kl = 0.5 * math.log(1.5) + 0.3 * math.log(0.9) + 0.2 * math.log(0.6)
    assert kl_uniform(p) == pytest.approx(kl, abs=1e-15)
    assert fd_l1(p) == pytest.approx(1 / 6 + 1 / 30 + 2 / 15, abs=1e-15)
    assert fd_l2(p) == pytest.approx(math.sqrt((1 / 6) ** 2 + (1 / 30) ** 2 + (2 / 15) ** 2), abs=1e-15)


def test_kl_matches_scipy_entropy_on_random_distributions():
    rng = np.random.default_rng(123)
    for _ in range(200):
        k = int(rng.integers(2, 12))
        p = rng.dirichlet(np.full(k, rng.uniform(0.1, 3)))
        if rng.random() < 0.3:  # exact zeros exercise 0 ln 0 = 0
            p[rng.integers(0, k)] = 0.0
            p /= p.sum()
        uniform = np.full(k, 1.0 / k)
        assert kl_uniform(p) == pytest.approx(scipy.stats.entropy(p, uniform), abs=1e-12)
        assert kl_uniform_normalized(p) == pytest.approx(scipy.stats.entropy(p, uniform) / math.log(k), abs=1e-12)
        assert fd_l1(p) == pytest.approx(np.linalg.norm(p - uniform, ord=1), abs=1e-12)
        assert fd_l2(p) == pytest.approx(np.linalg.norm(p - uniform), abs=1e-12)


def test_registry_holds_the_public_functions():
    assert list(FAIRNESS_METRICS) == BASE_METRICS
    p = np.array([0.1, 0.6, 0.3])
    assert FAIRNESS_METRICS["kl_uniform"](p) == kl_uniform(p)
    assert FAIRNESS_METRICS["fd_l2"](p) == fd_l2(p)


def test_empty_groups_are_kept():
    pred = np.zeros(50, dtype=int)  # every sample judged as group 0 of 3
    counts = group_counts(pred, 3)
    assert counts.tolist() == [50, 0, 0]
    assert counts.dtype == np.int64
    p = proportions(counts)
    assert p.tolist() == [1.0, 0.0, 0.0]
    assert kl_uniform(p) == pytest.approx(math.log(3), abs=1e-15)
    assert kl_uniform_normalized(p) == pytest.approx(1.0, abs=1e-15)
    assert fd_l1(p) == pytest.approx(4 / 3, abs=1e-15)
    assert fd_l2(p) == pytest.approx(math.sqrt(2 / 3), abs=1e-15)

    # The bug we guard against: building p̂ only from the labels that occur.
    present, present_counts = np.unique(pred, return_counts=True)
    dropped = present_counts / present_counts.sum()
    assert float(np.sum(dropped * np.log(dropped * len(present)))) == 0.0  # "perfectly fair"

    # Same with two of three groups used equally: dropping gives 0 instead of ln 1.5.
    pred2 = labels_with_counts([10, 10, 0])
    assert kl_uniform(proportions(group_counts(pred2, 3))) == pytest.approx(math.log(1.5), abs=1e-15)
    _, c2 = np.unique(pred2, return_counts=True)
    assert scipy.stats.entropy(c2 / c2.sum(), np.full(len(c2), 1 / len(c2))) == 0.0


def test_single_sample_and_one_group_are_maximally_unfair():
    for k in (2, 3, 7):
        for pred in (np.array([k - 1]), np.full(1000, 1)):
            p = proportions(group_counts(pred, k))
            assert kl_uniform(p) == pytest.approx(math.log(k), abs=1e-12)
            assert kl_uniform_normalized(p) == pytest.approx(1.0, abs=1e-12)
            assert fd_l1(p) == pytest.approx(2 * (1 - 1 / k), abs=1e-12)
            assert fd_l2(p) == pytest.approx(math.sqrt(1 - 1 / k), abs=1e-12)


def test_uniform_scores_zero():
    for k in (2, 3, 5, 10):
        p = proportions(group_counts(labels_with_counts([7] * k), k))
        for fn in FAIRNESS_METRICS.values():
            assert fn(p) == pytest.approx(0.0, abs=1e-15)
            assert fn(p) >= 0.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12).filter(lambda w: sum(w) > 1e-6))
def test_bounds(weights):
    p = np.array(weights) / np.sum(weights)
    k = p.size
    assert 0.0 <= kl_uniform(p) <= math.log(k)
    assert 0.0 <= kl_uniform_normalized(p) <= 1.0
    assert 0.0 <= fd_l1(p) <= 2 * (1 - 1 / k) + 1e-12
    assert 0.0 <= fd_l2(p) <= math.sqrt(1 - 1 / k) + 1e-12


# ------------------------------------------------------------------------------------------- intervals


def test_report_structure_and_no_confusion_means_no_correction():
    pred = labels_with_counts([30, 50, 20])
    report = fairness_report(pred, 3, None, n_resamples=200)
    assert list(report.metrics) == ALL_METRICS + DEBIASED
    assert report.counts == [30, 50, 20]
    assert report.observed == pytest.approx([0.3, 0.5, 0.2])
    assert report.corrected == report.observed
    for name in BASE_METRICS:
        m, mc = report.metrics[name], report.metrics[f"{name}_corrected"]
        assert m == mc
        assert m.value == pytest.approx(FAIRNESS_METRICS[name](np.array([0.3, 0.5, 0.2])), abs=1e-15)
        assert m.higher_is_better is False
        assert m.to_json() == {"value": m.value, "ci95": [m.ci95[0], m.ci95[1]], "higher_is_better": False}


def test_corrected_metrics_use_the_corrected_distribution():
    c = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    pred = labels_with_counts([500, 300, 200])
    report = fairness_report(pred, 3, c, n_resamples=200, exact=True)
    p_tilde = correct_proportions(np.array([0.5, 0.3, 0.2]), c)
    assert report.corrected == pytest.approx(p_tilde.tolist(), abs=1e-14)
    for name in BASE_METRICS:
        assert report.metrics[f"{name}_corrected"].value == pytest.approx(FAIRNESS_METRICS[name](p_tilde), abs=1e-14)


def test_ci_contains_point_value_for_a_reasonable_sample():
    c = np.array([[0.85, 0.15], [0.2, 0.8]])
    report = fairness_report(labels_with_counts([1300, 700]), 2, c, n_resamples=1000, seed=3, exact=True)
    for name, m in report.metrics.items():
        assert m.ci95[0] <= m.value <= m.ci95[1], name
        assert m.ci95[0] < m.ci95[1], name


def test_unconditional_report_is_deterministic_and_needs_no_seed():
    """The intervals are ranges over a confidence region: no resampling, so no seed can move them."""
    pred = labels_with_counts([120, 200, 80])
    c = noisy_confusion(3, np.random.default_rng(0))
    a = fairness_report(pred, 3, c, n_resamples=300, seed=1, exact=True)
    assert a == fairness_report(pred, 3, c, n_resamples=300, seed=1, exact=True)
    assert a == fairness_report(pred, 3, c, n_resamples=20, seed=2, exact=True)


def test_single_sample_cannot_exclude_fair_or_maximally_unfair():
    """One sample says almost nothing: the interval runs from 0 (uniform is possible) to ln 3 (one group)."""
    report = fairness_report(np.array([1]), 3, None, n_resamples=50)
    m = report.metrics["kl_uniform"]
    assert m.value == pytest.approx(math.log(3))
    assert m.ci95 == (0.0, pytest.approx(math.log(3)))
    # The G test: 2 * 1 * ln(1 * 3 / 1) on 2 degrees of freedom, whose survival function is exp(-G / 2) = 1/3.
    assert report.tests["uniform"].p_value == pytest.approx(scipy.stats.chi2.sf(2 * math.log(3), 2))


def test_ci_width_shrinks_like_one_over_sqrt_n():
    widths = []
    for n in (400, 6400):
        pred = labels_with_counts([int(0.7 * n), n - int(0.7 * n)])
        m = fairness_report(pred, 2, None, n_resamples=2000, seed=0).metrics["fd_l1"]
        widths.append(m.ci95[1] - m.ci95[0])
    # Theory: fd_l1 = 2|p - 1/2|, width ≈ 2 * 3.92 * sqrt(p(1-p)/N); N x16 -> width /4.
    assert widths[0] == pytest.approx(2 * 3.92 * math.sqrt(0.21 / 400), rel=0.15)
    assert 2.5 < widths[0] / widths[1] < 6.0


def test_group_shares_are_the_exact_bonferroni_box():
    """The simultaneous region for the shares: each group's Clopper-Pearson interval from scipy at 1 - 0.05/3."""
    counts = [260, 160, 80]
    report = fairness_report(labels_with_counts(counts), 3, None)
    level = 1 - 0.05 / 3
    for g, c in enumerate(counts):
        ci = scipy.stats.binomtest(c, 500).proportion_ci(confidence_level=level, method="exact")
        assert report.shares["observed"].lower[g] == pytest.approx(ci.low, rel=1e-9)
        assert report.shares["observed"].upper[g] == pytest.approx(ci.high, rel=1e-9)


@pytest.mark.parametrize("metric", ["kl_uniform", "fd_l1", "fd_l2"])
@pytest.mark.parametrize("counts", [[260, 160, 80], [180, 170, 150], [0, 300, 200]])
def test_metric_interval_matches_a_brute_force_profile_on_the_3_simplex(metric, counts):
    """Independent check of the profile interval (tests/helpers/profile_reference.py): the deviance on a grid of
    the 3-simplex with step 1/1200, c(r) by brentq on scipy's noncentral chi-square."""
    report = fairness_report(labels_with_counts(counts), 3, None)
    lo, hi = report.metrics[metric].ci95
    ref_lo, ref_hi = reference.grid_interval(counts, metric, reference.simplex_grid(3, 1 / 1200))
    tol = {"kl_uniform": 2e-3, "fd_l1": 4e-3, "fd_l2": 3e-3}[metric]  # the grid's resolution in the metric
    assert lo == pytest.approx(ref_lo, abs=tol) and hi == pytest.approx(ref_hi, abs=tol)
    assert (lo == 0.0) == (report.tests["uniform"].p_value >= 0.05)


@pytest.mark.parametrize("counts", [[540, 460], [520, 480], [820, 180], [1000, 0], [3, 2], [5, 0]])
def test_two_group_interval_matches_a_brute_force_profile_with_the_mid_p_test(counts):
    """Two groups: the exact mid-p binomial test sets the critical deviance at 0 (its p-value from scipy's
    binomial), and the interval is {KL(p) : D(p) <= scale c(r)} on a grid of 200,001 points."""
    n = sum(counts)
    report = fairness_report(labels_with_counts(counts), 2, None)
    low = min(counts)
    if 2 * low == n:
        midp = 1 - 0.5 * scipy.stats.binom.pmf(low, n, 0.5)
    else:
        midp = 2 * scipy.stats.binom.cdf(low - 1, n, 0.5) + scipy.stats.binom.pmf(low, n, 0.5)
    assert report.tests["uniform"].p_value == pytest.approx(midp, rel=1e-9)
    scale = reference.midp_scale(n)
    ref_lo, ref_hi = reference.grid_interval(counts, "kl_uniform", reference.simplex_grid(2, 1 / 200_000), scale=scale)
    lo, hi = report.metrics["kl_uniform"].ci95
    assert lo == pytest.approx(ref_lo, abs=2e-5) and hi == pytest.approx(ref_hi, abs=2e-5)
    assert (lo == 0.0) == (midp >= 0.05)


# ---------------------------------------------------------------------------------- conditional report


def make_conditional(n=3000, k=3, n_conditions=5, seed=0, skip=None):
    rng = np.random.default_rng(seed)
    conds = rng.integers(0, n_conditions, size=n)
    if skip is not None:
        conds[conds == skip] = (skip + 1) % n_conditions
    # Each condition has its own skew, so per-condition values really differ.
    skews = rng.dirichlet(np.ones(k), size=n_conditions)
    pred = np.array([rng.choice(k, p=skews[c]) for c in conds])
    return pred, conds


def test_per_condition_equals_unconditional_on_the_subset():
    pred, conds = make_conditional()
    c = noisy_confusion(3, np.random.default_rng(1))
    report = conditional_fairness_report(pred, conds, 3, 5, c, n_resamples=200, seed=4, exact=True)
    assert report.conditions == [0, 1, 2, 3, 4]
    for cond, sub in zip(report.conditions, report.per_condition):
        alone = fairness_report(pred[conds == cond], 3, c, n_resamples=200, seed=4, exact=True)
        assert sub.counts == alone.counts
        assert sub.observed == alone.observed
        assert sub.corrected == alone.corrected
        for name in ALL_METRICS:
            assert sub.metrics[name].value == alone.metrics[name].value


def test_summary_values_are_mean_and_max_over_conditions():
    pred, conds = make_conditional(seed=3)
    report = conditional_fairness_report(pred, conds, 3, 5, noisy_confusion(3, np.random.default_rng(2)), 200, exact=True)
    assert set(report.summary) == {f"{m}_cond_{s}" for m in ALL_METRICS + DEBIASED for s in ("mean", "worst")}
    for name in ALL_METRICS:
        values = np.array([r.metrics[name].value for r in report.per_condition])
        assert report.summary[f"{name}_cond_mean"].value == pytest.approx(np.mean(values), abs=1e-15)
        assert report.summary[f"{name}_cond_worst"].value == np.max(values)
        for s in ("mean", "worst"):
            m = report.summary[f"{name}_cond_{s}"]
            assert m.higher_is_better is False
            assert m.ci95[0] <= m.value <= m.ci95[1]


def test_summary_intervals_hold_for_all_conditions_at_once():
    """Rebuild cond_worst / cond_mean by hand for two groups: Clopper-Pearson at 1 - 0.05/C per condition
    (scipy), KL's range over [lo, hi] in closed form (0 if 1/2 is inside, else the near end; the far end)."""
    pred, conds = make_conditional(n=800, k=2, n_conditions=4, seed=8)
    report = conditional_fairness_report(pred, conds, 2, 4, None, n_resamples=300, seed=5)
    lows, highs = [], []
    for cond in range(4):
        counts = np.bincount(pred[conds == cond], minlength=2)
        ci = scipy.stats.binomtest(int(counts[1]), int(counts.sum())).proportion_ci(1 - 0.05 / 4, method="exact")
        kl = lambda t: scipy.stats.entropy([1 - t, t], [0.5, 0.5])  # noqa: E731
        lows.append(0.0 if ci.low <= 0.5 <= ci.high else min(kl(ci.low), kl(ci.high)))
        highs.append(max(kl(ci.low), kl(ci.high)))
    np.testing.assert_allclose(report.summary["kl_uniform_cond_worst"].ci95, (max(lows), max(highs)), atol=1e-9)
    np.testing.assert_allclose(report.summary["kl_uniform_cond_mean"].ci95, (np.mean(lows), np.mean(highs)), atol=1e-9)


def test_single_condition_summary_equals_its_report():
    pred = labels_with_counts([40, 25, 35])
    conds = np.full(pred.size, 2)
    report = conditional_fairness_report(pred, conds, 3, 4, None, n_resamples=150, seed=9)
    assert report.conditions == [2]
    alone = fairness_report(pred, 3, None, n_resamples=150, seed=9)
    assert report.per_condition == [alone]
    # The summaries' intervals are ranges over the shares' region (for one condition, the report's own).
    box = regions.ProportionBox(np.array([alone.shares["observed"].lower]), np.array([alone.shares["observed"].upper]), 0.95)
    ranges = regions.metric_ranges(box, ROW_METRICS)
    for name in ALL_METRICS:
        base = name.removesuffix("_corrected")  # no judge: corrected = observed
        for stat in ("mean", "worst"):
            summary = report.summary[f"{name}_cond_{stat}"]
            assert summary.value == alone.metrics[name].value
            assert summary.ci95 == pytest.approx(ranges[base][0].tolist() + ranges[base][1].tolist())


def test_empty_condition_is_skipped():
    pred, conds = make_conditional(skip=2)
    report = conditional_fairness_report(pred, conds, 3, 5, None, n_resamples=100)
    assert report.conditions == [0, 1, 3, 4]
    assert len(report.per_condition) == 4
    values = [r.metrics["fd_l1"].value for r in report.per_condition]
    assert report.summary["fd_l1_cond_mean"].value == pytest.approx(np.mean(values), abs=1e-15)


def test_conditional_report_is_deterministic():
    pred, conds = make_conditional(n=500)
    a = conditional_fairness_report(pred, conds, 3, 5, None, n_resamples=100, seed=1)
    b = conditional_fairness_report(pred, conds, 3, 5, None, n_resamples=100, seed=1)
    assert a == b
    assert a.to_json() == b.to_json()


# ----------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "pred, k",
    [
        (np.array([0, 1, 3]), 3),  # label out of range
        (np.array([0, -1]), 3),  # negative label
        (np.array([0, 1]), 1),  # fewer than 2 groups
        (np.array([0, 1]), True),  # not an integer count
        (np.array([0.0, 1.5]), 3),  # non-integer labels
        (np.zeros((2, 3), dtype=int), 3),  # one-hot rather than ids
    ],
)
def test_group_counts_rejects_bad_input(pred, k):
    with pytest.raises(FairbenchError):
        group_counts(pred, k)


def test_empty_input_is_an_error():
    assert group_counts(np.array([], dtype=int), 3).tolist() == [0, 0, 0]
    with pytest.raises(FairbenchError):
        proportions(np.zeros(3, dtype=np.int64))
    with pytest.raises(FairbenchError):
        fairness_report(np.array([], dtype=int), 3, None)


@pytest.mark.parametrize("p", [[0.5, 0.4], [1.2, -0.2], [1.0], [[0.5, 0.5]], [np.nan, 1.0]])
def test_metrics_reject_non_distributions(p):
    for fn in FAIRNESS_METRICS.values():
        with pytest.raises(FairbenchError):
            fn(np.array(p))


@pytest.mark.parametrize(
    "confusion",
    [
        np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]]),  # not square
        np.eye(2),  # wrong size for 3 groups
        np.array([[0.9, 0.1, np.nan], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]]),  # non-finite
        np.array([[1.1, -0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]]),  # negative
        np.array([[0.9, 0.2, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]]),  # row sums to 1.1
        np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.1, 0.9]]),  # singular: groups 0, 1 indistinguishable
    ],
)
def test_bad_confusion_matrix(confusion):
    p_hat = np.array([0.2, 0.3, 0.5])
    with pytest.raises(FairbenchError):
        correct_proportions(p_hat, confusion)
    with pytest.raises(FairbenchError):
        fairness_report(labels_with_counts([2, 3, 5]), 3, confusion, n_resamples=10, exact=True)


def test_conditional_report_rejects_bad_input():
    pred = np.array([0, 1, 1, 0])
    conds = np.array([0, 1, 1, 0])
    with pytest.raises(FairbenchError):  # mismatched lengths
        conditional_fairness_report(pred, conds[:3], 2, 2, None)
    with pytest.raises(FairbenchError):  # condition id out of range
        conditional_fairness_report(pred, np.array([0, 1, 2, 0]), 2, 2, None)
    with pytest.raises(FairbenchError):  # negative condition id
        conditional_fairness_report(pred, np.array([0, -1, 1, 0]), 2, 2, None)
    with pytest.raises(FairbenchError):  # no condition has samples
        conditional_fairness_report(np.array([], dtype=int), np.array([], dtype=int), 2, 2, None)
    with pytest.raises(FairbenchError):  # label out of range
        conditional_fairness_report(np.array([0, 2, 1, 0]), conds, 2, 2, None)
    with pytest.raises(FairbenchError):  # n_conditions must be positive
        conditional_fairness_report(pred, conds, 2, 0, None)
    with pytest.raises(FairbenchError):  # n_groups < 2
        conditional_fairness_report(np.zeros(4, dtype=int), conds, 1, 2, None)
    with pytest.raises(FairbenchError):  # bad confusion
        conditional_fairness_report(pred, conds, 2, 2, np.eye(3), exact=True)


def test_bad_n_resamples():
    with pytest.raises(FairbenchError):
        fairness_report(np.array([0, 1]), 2, None, n_resamples=0)


def test_metric_value_json_round_trip():
    m = MetricValue(0.25, (0.1, 0.4), higher_is_better=False)
    assert m.to_json() == {"value": 0.25, "ci95": [0.1, 0.4], "higher_is_better": False}
    assert list(m.to_json()) == ["value", "ci95", "higher_is_better"]
