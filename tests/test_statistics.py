"""Seeded simulations proving the statistical claims: interval coverage, p-value uniformity, estimator bias.

numpy only (plus scipy's KS test), a few seconds. Each simulation draws many replicate score runs from a
known truth and checks the reported figures against it. `percentile_bootstrap` is the method fairbench used
before; the coverage test is run against it too, to show the test has the power to fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from fairbench.metrics import regions as rg
from fairbench.metrics.debias import debiased_kl, debiased_worst, resample_tables
from fairbench.metrics.row_metrics import ROW_METRICS as _ROW_METRICS
from fairbench.metrics.uniformity import corrected_statistic, pearson_statistic

MIN_COVERAGE = 0.93


def truth(p):
    return {name: float(fn(np.asarray(p, float)[None])[0]) for name, fn in _ROW_METRICS.items()}


def coverage(ranges, p):
    t = truth(p)
    return {n: float(np.mean((ranges[n][0] <= t[n] + 1e-12) & (t[n] - 1e-12 <= ranges[n][1]))) for n in t}


def profiles(k):
    geometric = np.geomspace(1, 0.02, k)
    return [np.full(k, 1 / k), np.r_[0.0, np.full(k - 1, 1 / (k - 1))], geometric / geometric.sum()]


def noisy(k, accuracy=0.8):
    c = np.full((k, k), (1 - accuracy) / (k - 1))
    np.fill_diagonal(c, accuracy)
    return c


@pytest.mark.parametrize("k", [2, 5, 10])
@pytest.mark.parametrize("n", [500, 50_000])
def test_observed_intervals_cover_everywhere_on_the_simplex(k, n):
    rng = np.random.default_rng(k * 7 + n)
    reps = 1000 if k == 2 else 300
    for p in profiles(k):
        box = rg.clopper_pearson_box(rng.multinomial(n, p, size=reps), 0.05)
        for name, cov in coverage(rg.metric_ranges(box, _ROW_METRICS), p).items():
            assert cov >= MIN_COVERAGE, (k, n, p[:3], name, cov)


@pytest.mark.parametrize("k", [2, 5, 10])
@pytest.mark.parametrize("m", [200, 5000])
@pytest.mark.parametrize("n", [500, 50_000])
def test_corrected_intervals_cover_with_an_estimated_confusion(k, m, n):
    rng = np.random.default_rng(k * 1000 + m + n)
    conf = np.array([[0.85, 0.15], [0.25, 0.75]]) if k == 2 else noisy(k)
    reps = 1000 if k == 2 else 250
    for p in profiles(k):
        cal = np.stack([rng.multinomial(m, conf[i], size=reps) for i in range(k)], axis=1) / m
        counts = rng.multinomial(n, p @ conf, size=reps)
        box = rg.score_box(counts / n, np.full(reps, n), cal, np.full((reps, k), m), 0.05)
        for name, cov in coverage(rg.metric_ranges(box, _ROW_METRICS), p).items():
            assert cov >= MIN_COVERAGE, (k, m, n, p[:3], name, cov)


def percentile_bootstrap(counts, rng, r=400):
    """The method fairbench used before: percentile interval of resampled metric values."""
    n = counts.sum()
    draws = rng.multinomial(n, counts / n, size=r) / n
    values = _ROW_METRICS["kl_uniform"](draws)
    return np.percentile(values, [2.5, 97.5])


def test_the_old_percentile_bootstrap_fails_this_coverage_test_at_the_uniform_point():
    rng = np.random.default_rng(3)
    hits = [percentile_bootstrap(rng.multinomial(10_000, [0.5, 0.5]), rng)[0] <= 0.0 for _ in range(200)]
    assert np.mean(hits) < MIN_COVERAGE  # it never contains the true 0: the kink


def test_the_worst_condition_interval_covers_a_fair_conditional_generator():
    rng = np.random.default_rng(5)
    reps, conditions, n = 300, 10, 1000
    counts = rng.multinomial(n, [0.5, 0.5], size=(reps, conditions)).reshape(-1, 2)
    box = rg.clopper_pearson_box(counts, 0.05 / conditions)
    lo, _ = rg.metric_ranges(box, _ROW_METRICS)["kl_uniform"]
    worst_lo = lo.reshape(reps, conditions).max(axis=1)
    assert np.mean(worst_lo <= 0.0) >= MIN_COVERAGE


@pytest.mark.parametrize("k", [2, 5, 10])
def test_p_values_are_uniform_for_a_fair_generator(k):
    rng = np.random.default_rng(11 + k)
    counts = rng.multinomial(2000, np.full(k, 1 / k), size=1500)
    p = scipy.stats.chi2.sf(pearson_statistic(counts), k - 1)
    assert scipy.stats.kstest(p, "uniform").pvalue > 0.01
    # corrected: an estimated confusion matrix, 500 held-out images per group
    conf = np.array([[0.85, 0.15], [0.25, 0.75]]) if k == 2 else noisy(k)
    cal = np.stack([rng.multinomial(500, conf[i], size=1500) for i in range(k)], axis=1) / 500
    judged = rng.multinomial(2000, np.full(k, 1 / k) @ conf, size=1500)
    pc = scipy.stats.chi2.sf(corrected_statistic(judged, cal, np.full((1500, k), 500)), k - 1)
    assert scipy.stats.kstest(pc, "uniform").pvalue > 0.01
    # and the test has power: a 45/55 generator is rejected most of the time at N = 2000 (k = 2)
    if k == 2:
        unfair = rng.multinomial(2000, [0.45, 0.55], size=500)
        assert np.mean(scipy.stats.chi2.sf(pearson_statistic(unfair), 1) < 0.05) > 0.9


def test_debiased_kl_removes_most_of_the_plug_in_bias():
    rng = np.random.default_rng(21)
    for k, n in ((2, 1000), (10, 1000)):
        for p in (np.full(k, 1 / k), profiles(k)[2]):
            counts = rng.multinomial(n, p, size=4000)
            true = truth(p)["kl_uniform"]
            plug = _ROW_METRICS["kl_uniform"](counts / n).mean() - true
            deb = debiased_kl(counts).mean() - true
            assert abs(deb) < abs(plug) / 2, (k, p[:2], plug, deb)


def test_debiased_worst_condition_is_far_less_biased():
    rng = np.random.default_rng(8)
    plug, deb = [], []
    for _ in range(60):
        table = rng.multinomial(1000, [0.5, 0.5], size=10)
        plug.append(_ROW_METRICS["kl_uniform"](table / 1000).max())
        deb.append(debiased_worst(table, debiased_kl, 200, rng))
    assert np.mean(deb) < np.mean(plug) / 2  # the truth is 0


def test_resampled_tables_are_multinomial_draws_of_each_condition():
    """The binomial chain behind the worst-condition bootstrap: totals kept, an empty group stays empty, and
    the mean and covariance of the draws are the multinomial's n p and n (diag p - p pᵀ)."""
    tables = np.array([[50, 30, 20, 0], [0, 0, 0, 7], [1, 1, 1, 1]])
    draws = resample_tables(tables, 100_000, np.random.default_rng(0))
    assert draws.shape == (100_000, 3, 4)
    assert np.all(draws.sum(axis=2) == tables.sum(axis=1))
    assert np.all(draws[:, 0, 3] == 0) and np.all(draws[:, 1, 3] == 7)
    for row, counts in enumerate(tables):
        n, p = counts.sum(), counts / counts.sum()
        np.testing.assert_allclose(draws[:, row].mean(axis=0), n * p, atol=0.05)
        np.testing.assert_allclose(np.cov(draws[:, row].T), n * (np.diag(p) - np.outer(p, p)), atol=0.15)


def test_most_uniform_point_matches_a_bisection_on_the_water_level():
    """The exact water-filling point against an independent 200-step bisection of sum(clip(t, L, U)) = 1."""
    rng = np.random.default_rng(5)
    for k in (2, 3, 10, 20):
        counts = rng.multinomial(300, rng.dirichlet(np.full(k, 0.4)), size=50)
        counts[0] = 0
        counts[0, 0] = 300  # one group has everything: the box touches a vertex
        box = rg.clopper_pearson_box(counts, 0.05)
        lo, hi = np.zeros(len(counts)), np.ones(len(counts))
        for _ in range(200):
            mid = (lo + hi) / 2
            above = np.clip(mid[:, None], box.lower, box.upper).sum(axis=1) > 1.0
            hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
        expected = np.clip(((lo + hi) / 2)[:, None], box.lower, box.upper)
        expected /= expected.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(rg.most_uniform_point(box), expected, atol=1e-12)


def test_corrected_variance_is_the_diagonal_of_the_covariance():
    rng = np.random.default_rng(6)
    for k in (2, 5, 10):
        conf = rng.dirichlet(np.ones(k), size=k) * 0.3 + np.eye(k) * 0.7
        q, w = rng.dirichlet(np.ones(k), size=40), rng.dirichlet(np.ones(k), size=40)
        n, m = rng.integers(10, 10_000, 40), rng.integers(100, 5000, k)
        full = np.diagonal(rg.corrected_covariance(q, n, conf, m, w), axis1=1, axis2=2)
        np.testing.assert_allclose(rg.corrected_variance(q, n, conf, m, w), full, rtol=1e-9, atol=1e-15)
        per_row = np.broadcast_to(conf, (40, k, k))
        np.testing.assert_allclose(rg.corrected_variance(q, n, per_row, m, w), full, rtol=1e-9, atol=1e-15)


def test_a_corrected_share_the_data_put_below_zero_keeps_a_width():
    """Judged counts that the calibration cannot explain (group 0 never judged, though group 1's images are
    judged 0 a fifth of the time) put the unconstrained estimate of p_0 at -0.25. Its interval must still say
    how large p_0 could be, not collapse to [0, 0]: [0, z sd] with the variance taken at p_0 = 0."""
    confusion = np.array([[0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]])
    q = np.array([[0.0, 0.5, 0.5]])
    assert rg.linear_inverse(q, confusion)[0, 0] == pytest.approx(-0.25)
    box = rg.score_box(q, np.array([10_000]), confusion, np.array([5000, 5000, 5000]), 0.05)
    z = scipy.stats.norm.ppf(1 - 0.05 / 3 / 2)
    at_zero = np.array([[0.0, 0.6, 0.4]])  # the rest shared as the clipped estimate (0, .75, .5)/1.25 shares it
    sd = np.sqrt(rg.corrected_variance(at_zero @ confusion, np.array([10_000]), confusion, np.full(3, 5000), at_zero))
    assert box.lower[0, 0] == 0.0
    assert box.upper[0, 0] == pytest.approx(z * sd[0, 0], rel=1e-9)
    assert box.upper[0, 0] > 0.01


def test_debiased_worst_condition_never_exceeds_ln_k():
    """A case hypothesis found: the bootstrap correction (2 x worst - mean of resampled worsts) went past ln 2,
    a KL no distribution has. The estimate is clipped to the metric's range."""
    from fairbench.metrics.fairness import conditional_fairness_report

    labels = np.array([0, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    conditions = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    confusion = np.array([[0.875, 0.125], [0.125, 0.875]])
    report = conditional_fairness_report(labels, conditions, 2, 2, confusion)
    for name, metric in report.summary.items():
        if name.startswith("kl_uniform") and "normalized" not in name:
            assert 0.0 <= metric.value <= np.log(2) + 1e-12, (name, metric.value)
