"""Judge correction (fairbench.metrics.correction): the least-squares inversion of the judge's confusion onto the
simplex, checked against a general-purpose solver, a grid search, the KKT conditions and a closed form."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from fairbench.metrics.correction import simplex_lsq
from fairbench.metrics.fairness import correct_proportions, fairness_report
from tests.helpers.confusion import noisy_confusion


def slsqp_simplex_lsq(c, p_hat):
    """Reference solution of min over the simplex of ‖Cᵀp − p̂‖² by a general-purpose solver."""
    k = c.shape[0]
    res = scipy.optimize.minimize(
        lambda p: float(np.sum((c.T @ p - p_hat) ** 2)),
        np.full(k, 1.0 / k),
        jac=lambda p: 2 * c @ (c.T @ p - p_hat),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones(k)}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert res.success, res.message
    return res.x


def objective(c, p, p_hat):
    return float(np.sum((c.T @ p - p_hat) ** 2))


# ------------------------------------------------------------------------------------------- correction


@pytest.mark.parametrize("k", [2, 3, 5])
def test_correction_recovers_known_proportions(k):
    rng = np.random.default_rng(k)
    for _ in range(20):
        c = noisy_confusion(k, rng, accuracy=rng.uniform(0.55, 0.95))
        p_true = rng.dirichlet(np.ones(k))
        p_hat = c.T @ p_true
        got = correct_proportions(p_hat, c)
        np.testing.assert_allclose(got, p_true, atol=1e-10)
        assert np.all(got >= 0) and abs(got.sum() - 1) <= 1e-12


@pytest.mark.parametrize("k", [2, 3, 5])
def test_identity_confusion_returns_p_hat(k):
    p_hat = np.random.default_rng(0).dirichlet(np.ones(k))
    np.testing.assert_allclose(correct_proportions(p_hat, np.eye(k)), p_hat, atol=1e-14)


@pytest.mark.parametrize("k", [3, 4, 5, 8])
def test_projection_outside_the_feasible_image_matches_slsqp(k):
    rng = np.random.default_rng(100 + k)
    outside = 0
    for _ in range(15):
        c = noisy_confusion(k, rng, accuracy=rng.uniform(0.5, 0.9))
        # Sparse p̂: a judge with these errors could not produce it from any distribution, so it projects.
        p_hat = rng.dirichlet(np.full(k, 0.3))
        p_hat[rng.integers(0, k)] = 0.0
        p_hat /= p_hat.sum()
        outside += bool(np.any(np.linalg.solve(c.T, p_hat) < 0))
        got = correct_proportions(p_hat, c)
        ref = slsqp_simplex_lsq(c, p_hat)
        assert np.all(got >= 0) and abs(got.sum() - 1) <= 1e-12
        np.testing.assert_allclose(got, ref, atol=1e-6)
        assert objective(c, got, p_hat) <= objective(c, ref, p_hat) + 1e-13
    assert outside >= 10  # the test really exercises the constrained case


def test_projection_matches_grid_search_three_groups():
    c = np.array([[0.7, 0.2, 0.1], [0.15, 0.75, 0.1], [0.1, 0.3, 0.6]])
    step = 1 / 400
    a, b = np.meshgrid(np.arange(0, 1 + step / 2, step), np.arange(0, 1 + step / 2, step), indexing="ij")
    grid = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], axis=1)
    grid = grid[grid[:, 2] >= -1e-12].clip(0, 1)
    for p_hat in ([1.0, 0.0, 0.0], [0.0, 0.05, 0.95], [0.5, 0.5, 0.0], [0.02, 0.9, 0.08]):
        p_hat = np.array(p_hat)
        got = correct_proportions(p_hat, c)
        losses = np.sum((grid @ c - p_hat) ** 2, axis=1)
        best = grid[np.argmin(losses)]
        assert objective(c, got, p_hat) <= losses.min() + 1e-15
        np.testing.assert_allclose(got, best, atol=3 * step)


def test_kkt_conditions_hold_on_constrained_solutions():
    """Certificate of optimality independent of the solver: stationarity, complementary slackness, signs."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        k = int(rng.integers(3, 9))
        c = noisy_confusion(k, rng, accuracy=rng.uniform(0.4, 0.9))
        p_hat = rng.dirichlet(np.full(k, 0.2))
        x = correct_proportions(p_hat, c)
        grad = 2 * c @ (c.T @ x - p_hat)
        support = x > 1e-12
        lam = grad[support].mean()
        np.testing.assert_allclose(grad[support], lam, atol=1e-10)  # equal gradient on the support
        assert np.all(grad[~support] >= lam - 1e-10)  # no descent into a zero coordinate


def test_two_group_closed_form_equals_cleam_and_general_solver():
    rng = np.random.default_rng(11)
    outside = 0
    for _ in range(500):
        c00, c11 = rng.uniform(0.05, 1.0, size=2)
        c = np.array([[c00, 1 - c00], [1 - c11, c11]])
        if abs(np.linalg.det(c)) < 0.05:
            continue
        p1 = rng.uniform()
        p_hat = np.array([1 - p1, p1])
        got = correct_proportions(p_hat, c)
        c01 = c[0, 1]
        cleam = min(1.0, max(0.0, (p1 - c01) / (c11 - c01)))
        outside += not 0.0 < (p1 - c01) / (c11 - c01) < 1.0
        assert got[1] == pytest.approx(cleam, abs=1e-12)
        general = simplex_lsq(c.T, p_hat[None, :])[0]
        np.testing.assert_allclose(got, general, atol=1e-10)
    assert outside > 50


def test_batched_solver_matches_one_row_at_a_time():
    rng = np.random.default_rng(5)
    c = noisy_confusion(6, rng, accuracy=0.6)
    b = rng.dirichlet(np.full(6, 0.3), size=40)
    batched = simplex_lsq(c.T, b)
    for i in range(len(b)):
        np.testing.assert_allclose(batched[i], simplex_lsq(c.T, b[i : i + 1])[0], atol=1e-12)


def test_simulated_judge_noise_is_undone():
    rng = np.random.default_rng(2024)
    n = 200_000
    for p_true, c in (
        (np.array([0.3, 0.7]), np.array([[0.8, 0.2], [0.25, 0.75]])),
        (np.array([0.5, 0.2, 0.3]), np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.05, 0.25, 0.7]])),
    ):
        k = p_true.size
        true_groups = rng.choice(k, size=n, p=p_true)
        # The judge says j for a sample of true group i with probability C[i, j] (inverse-CDF per row).
        u = rng.random(n)
        judged = (u[:, None] > np.cumsum(c, axis=1)[true_groups]).sum(axis=1).clip(0, k - 1)
        report = fairness_report(judged, k, c, n_resamples=100, seed=0, exact=True)
        assert np.max(np.abs(np.array(report.corrected) - p_true)) < 0.01
        assert np.max(np.abs(np.array(report.observed) - p_true)) > 0.05
