"""Fréchet distance, KID and feature statistics, checked against computations written independently here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg
from threadpoolctl import threadpool_limits

from fairbench.errors import FairbenchError
from fairbench.metrics import frechet
from fairbench.metrics.frechet import (
    FeatureStats,
    StatsAccumulator,
    feature_stats,
    fid_with_interval,
    fid_with_intervals,
    frechet_distance,
    kid,
    load_stats,
    save_stats,
)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # Other processes share the cores; oversubscribed BLAS threads are many times slower than one.
    with threadpool_limits(1):
        yield


def random_spd(rng: np.random.Generator, d: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d + 3))
    return scale * (a @ a.T) / d + 1e-3 * np.eye(d)


def fd_reference(mu1, s1, mu2, s2) -> float:
    """The textbook formula through scipy's general matrix square root (as pytorch-fid / clean-fid do)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def stats_of(mean, cov, n=1000) -> FeatureStats:
    return FeatureStats(n=n, mean=np.asarray(mean, float), cov=np.asarray(cov, float))


# --------------------------------------------------------------------------------------- Fréchet


@pytest.mark.parametrize("d", [1, 5, 32])
def test_fd_matches_scipy_sqrtm(d: int) -> None:
    rng = np.random.default_rng(d)
    for _ in range(3):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d, scale=3.0)
        ours = frechet_distance(stats_of(mu1, s1), stats_of(mu2, s2))
        assert ours == pytest.approx(fd_reference(mu1, s1, mu2, s2), rel=1e-8, abs=1e-9)
        # symmetric in its arguments
        assert frechet_distance(stats_of(mu2, s2), stats_of(mu1, s1)) == pytest.approx(ours, rel=1e-9)


def test_identical_sets_give_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 64)) @ rng.normal(size=(64, 64)) + 3.0
    s = feature_stats(x)
    assert abs(frechet_distance(s, s)) < 1e-6
    # rank-deficient covariance (fewer samples than dims) still gives ~0, never NaN
    few = feature_stats(rng.normal(size=(10, 64)))
    assert abs(frechet_distance(few, few)) < 1e-6


def test_same_covariance_gives_squared_mean_distance() -> None:
    rng = np.random.default_rng(1)
    cov = random_spd(rng, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance(stats_of(mu1, cov), stats_of(mu2, cov)) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_diagonal_covariances_analytic() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.1, 4, size=10), rng.uniform(0.1, 4, size=10)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2))
    got = frechet_distance(stats_of(mu1, np.diag(a)), stats_of(mu2, np.diag(b)))
    assert got == pytest.approx(expected, rel=1e-10)


def test_sampled_gaussians_approach_analytic_value() -> None:
    rng = np.random.default_rng(3)
    d, n = 4, 200_000
    a, b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 1.0, 0.5, 0.25])
    mu1, mu2 = np.zeros(d), np.array([0.5, -0.5, 0.0, 1.0])
    x = rng.normal(size=(n, d)) * np.sqrt(a) + mu1
    y = rng.normal(size=(n, d)) * np.sqrt(b) + mu2
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2))
    assert frechet_distance(feature_stats(x), feature_stats(y)) == pytest.approx(expected, abs=0.02)


def test_fd_needs_two_samples_each() -> None:
    one = feature_stats(np.ones((1, 3)))
    two = feature_stats(np.arange(6.0).reshape(2, 3))
    with pytest.raises(FairbenchError, match="1 sample"):
        frechet_distance(one, two)
    with pytest.raises(FairbenchError, match="at least 2"):
        frechet_distance(two, one)
    with pytest.raises(FairbenchError, match="dimensions"):
        frechet_distance(two, feature_stats(np.arange(8.0).reshape(2, 4)))


# --------------------------------------------------------------------------------------- streaming


def test_feature_stats_match_numpy() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 7)) * 5 + 1000.0  # far from zero: naive sums would lose digits
    s = feature_stats(x)
    assert s.n == 300
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False), rtol=1e-10)


def test_batch_size_and_order_do_not_change_stats() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 12)) @ rng.normal(size=(12, 12)) + 50.0
    whole = feature_stats(x)
    ref = feature_stats(rng.normal(size=(800, 12)))
    fd_whole = frechet_distance(whole, ref)
    for batch, perm_seed in itertools.product([1, 7, 128, 1000], [None, 0]):
        order = np.arange(len(x)) if perm_seed is None else np.random.default_rng(perm_seed).permutation(len(x))
        acc = StatsAccumulator()
        for i in range(0, len(x), batch):
            acc.add(x[order[i : i + batch]])
        acc.add(np.zeros((0, 12)))  # empty batches are harmless
        s = acc.stats()
        assert s.n == whole.n
        np.testing.assert_allclose(s.mean, whole.mean, rtol=1e-10)
        np.testing.assert_allclose(s.cov, whole.cov, rtol=1e-10, atol=1e-10 * np.abs(whole.cov).max())
        assert frechet_distance(s, ref) == pytest.approx(fd_whole, rel=1e-10)


def test_accumulator_errors() -> None:
    acc = StatsAccumulator()
    with pytest.raises(FairbenchError, match="0 samples"):
        acc.stats()
    acc.add(np.zeros((3, 4)))
    with pytest.raises(FairbenchError, match="4"):
        acc.add(np.zeros((3, 5)))
    with pytest.raises(FairbenchError, match="NaN"):
        acc.add(np.full((1, 4), np.nan))
    with pytest.raises(FairbenchError, match="2-D"):
        acc.add(np.zeros(4))


# --------------------------------------------------------------------------------------- bootstrap


def test_fid_with_interval_point_value_and_determinism() -> None:
    rng = np.random.default_rng(6)
    gen = rng.normal(size=(400, 8))
    ref = feature_stats(rng.normal(size=(600, 8)) + 0.3)
    value, (lo, hi) = fid_with_interval(gen, ref, n_resamples=50, seed=1)
    assert value == pytest.approx(frechet_distance(feature_stats(gen), ref), rel=1e-10)
    assert lo < hi
    assert fid_with_interval(gen, ref, n_resamples=50, seed=1) == (value, (lo, hi))
    assert fid_with_interval(gen, ref, n_resamples=50, seed=2)[1] != (lo, hi)
    assert fid_with_interval(gen, ref, n_resamples=0, seed=1) == (value, (value, value))


def test_fid_bootstrap_weights_equal_explicit_resampling() -> None:
    """The multinomial-weight shortcut gives the same resample statistics as copying rows, up to the float32
    rounding of its scatter products (~1e-7 relative here; a wrong weight or shift would be off by percents)."""
    rng = np.random.default_rng(7)
    gen = rng.normal(size=(50, 3))
    ref = feature_stats(rng.normal(size=(80, 3)))
    _, (lo, hi) = fid_with_interval(gen, ref, n_resamples=40, seed=3)
    draw = np.random.default_rng(3)
    values = []
    for _ in range(40):
        counts = draw.multinomial(len(gen), np.full(len(gen), 1 / len(gen)))
        values.append(fd_reference(*_mean_cov(np.repeat(gen, counts, axis=0)), ref.mean, ref.cov))
    value = fd_reference(*_mean_cov(gen), ref.mean, ref.cov)
    bias = np.mean(values) - value
    lo_ref, hi_ref = np.maximum(np.percentile(values, [2.5, 97.5]) - bias, 0.0)
    assert lo == pytest.approx(lo_ref, rel=1e-5)
    assert hi == pytest.approx(hi_ref, rel=1e-5)


def test_one_bootstrap_against_several_references_equals_one_bootstrap_each() -> None:
    """fid and fid_balanced share a bootstrap; sharing must not change either figure."""
    rng = np.random.default_rng(9)
    gen = rng.normal(size=(300, 6))
    refs = [feature_stats(rng.normal(size=(500, 6)) + shift) for shift in (0.0, 0.4, 1.5)]
    shared = fid_with_intervals(gen, refs, n_resamples=30, seed=4)
    for ref, (value, (lo, hi)) in zip(refs, shared):
        alone_value, (alone_lo, alone_hi) = fid_with_interval(gen, ref, n_resamples=30, seed=4)
        assert value == pytest.approx(alone_value, rel=1e-12)
        assert (lo, hi) == pytest.approx((alone_lo, alone_hi), rel=1e-10, abs=1e-12)
    assert len({round(v, 6) for v, _ in shared}) == 3  # three different references, three different values


def test_fid_interval_is_bias_corrected_around_the_value() -> None:
    """Plain percentiles sat wholly above the value (FD's finite-sample bias); the corrected interval covers it."""
    rng = np.random.default_rng(8)
    gen = rng.normal(size=(2000, 32))
    ref = feature_stats(rng.normal(size=(4000, 32)))
    value, (lo, hi) = fid_with_interval(gen, ref, n_resamples=60, seed=0)
    assert lo <= value <= hi


def _mean_cov(x):
    return x.mean(0), np.cov(x, rowvar=False)


def test_fid_with_interval_errors() -> None:
    ref = feature_stats(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(FairbenchError, match="group white has 1 generated sample; FID needs at least 2"):
        fid_with_interval(np.zeros((1, 3)), ref, 10, 0, label="group white")
    with pytest.raises(FairbenchError, match="dims"):
        fid_with_interval(np.zeros((5, 4)), ref, 10, 0)


# --------------------------------------------------------------------------------------- KID


def kid_brute_force(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)^3 by explicit double loops."""
    m, d = x.shape

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_unbiased_estimator() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(7, 4)) + 0.5
    # subsets of all rows: every subset is a permutation, so each equals the full estimator
    mean, (lo, hi) = kid(x, y, subset_size=None, n_subsets=3, seed=0)
    expected = kid_brute_force(x, y)
    assert mean == pytest.approx(expected, rel=1e-10)
    assert lo == pytest.approx(expected, rel=1e-10) and hi == pytest.approx(expected, rel=1e-10)
    # subset size defaults to min(1000, N_gen, N_ref): a smaller side sets it
    z = rng.normal(size=(12, 4))
    sub_mean, _ = kid(x, z, subset_size=None, n_subsets=5, seed=1)
    draw = np.random.default_rng(1)
    manual = []
    for _ in range(5):
        xs = x[draw.choice(7, 7, replace=False)]
        zs = z[draw.choice(12, 7, replace=False)]
        manual.append(kid_brute_force(xs, zs))
    assert sub_mean == pytest.approx(np.mean(manual), rel=1e-10)


def test_kid_over_several_kernel_blocks_matches_the_full_kernel_matrices() -> None:
    """Subsets larger than a kernel block (and not a multiple of it) sum the upper block triangle exactly like
    the full matrices: an independent computation with whole matrices and an explicit off-diagonal mask."""
    rng = np.random.default_rng(10)
    m = 2 * frechet._KERNEL_BLOCK + 37
    x, y = rng.normal(size=(m, 5)), rng.normal(size=(m, 5)) * 1.2

    def full(a, b):
        return (a @ b.T / a.shape[1] + 1.0) ** 3

    off = ~np.eye(m, dtype=bool)
    expected = (full(x, x)[off].sum() + full(y, y)[off].sum()) / (m * (m - 1)) - 2 * full(x, y).mean()
    mean, _ = kid(x, y, subset_size=m, n_subsets=1, seed=0)
    assert mean == pytest.approx(expected, rel=1e-9)


def test_kid_same_distribution_near_zero_and_different_positive() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    shifted = rng.normal(size=(1000, 16)) + 0.5
    same, (lo, hi) = kid(x, y, subset_size=200, n_subsets=20, seed=0)
    different, (dlo, _) = kid(shifted, y, subset_size=200, n_subsets=20, seed=0)
    assert lo <= same <= hi
    assert abs(same) < 0.05 * different
    assert dlo > hi
    assert kid(x, y, subset_size=200, n_subsets=20, seed=0) == (same, (lo, hi))


def test_kid_errors() -> None:
    ref = np.zeros((10, 3))
    with pytest.raises(FairbenchError, match="group white has 1 generated sample; KID needs at least 2"):
        kid(np.zeros((1, 3)), ref, None, 10, 0, label="group white")
    with pytest.raises(FairbenchError, match="reference .* 1 sample"):
        kid(ref, np.zeros((1, 3)), None, 10, 0)
    with pytest.raises(FairbenchError, match="subset size"):
        kid(ref, ref, 1, 10, 0)
    with pytest.raises(FairbenchError, match="dims"):
        kid(ref, np.zeros((10, 4)), None, 10, 0)


# --------------------------------------------------------------------------------------- files


def test_save_load_roundtrip(tmp_path) -> None:
    rng = np.random.default_rng(10)
    s = feature_stats(rng.normal(size=(40, 5)))
    path = tmp_path / "sub" / "stats.npz"
    save_stats(path, s, {"task": "digits-bicolor", "n": 40})
    loaded, meta = load_stats(path)
    assert meta == {"task": "digits-bicolor", "n": 40}
    assert loaded.n == 40
    np.testing.assert_array_equal(loaded.mean, s.mean)
    np.testing.assert_array_equal(loaded.cov, s.cov)
    assert [p.name for p in path.parent.iterdir()] == ["stats.npz"]  # no temp files left behind


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.write_bytes(b"not a zip file at all"),
        lambda p: np.savez(p, n=np.array(3), mean=np.zeros(2)),  # keys missing
        lambda p: np.savez(p, format=np.array(["other/1"]), n=np.array(3), mean=np.zeros(2), cov=np.eye(2),
                           meta=np.array(["{}"])),
        lambda p: np.savez(p, format=np.array(["fairbench-feature-stats/1"]), n=np.array(3), mean=np.zeros(2),
                           cov=np.eye(3), meta=np.array(["{}"])),
        lambda p: np.savez(p, format=np.array(["fairbench-feature-stats/1"]), n=np.array(3), mean=np.zeros(2),
                           cov=np.eye(2), meta=np.array(["{not json"])),
        lambda p: np.savez(p, format=np.array(["fairbench-feature-stats/1"]), n=np.array(3),
                           mean=np.array([np.nan, 0]), cov=np.eye(2), meta=np.array(["{}"])),
        lambda p: np.savez(p, format=np.array(["fairbench-feature-stats/1"]), n=np.array(3), mean=np.zeros(2),
                           cov=np.array([{"a": 1}], dtype=object), meta=np.array(["{}"])),  # a pickle
    ],
)
def test_load_corrupt_is_fairbench_error(tmp_path, damage) -> None:
    path = tmp_path / "stats.npz"
    save_stats(path, feature_stats(np.random.default_rng(0).normal(size=(5, 2))), {})
    damage(path)
    with pytest.raises(FairbenchError, match="stats.npz"):
        load_stats(path)


def test_load_missing_file(tmp_path) -> None:
    with pytest.raises(FairbenchError, match="not found"):
        load_stats(tmp_path / "nope.npz")
