"""PRDC and the Vendi score against the reference implementations on PyPI (`prdc`, `vendi-score`) and against
values known by construction, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest

from fairbench.errors import FairbenchError
from fairbench.metrics import prdc as prdc_mod
from fairbench.metrics.prdc import knn_radii, prdc
from fairbench.metrics.vendi import vendi_score

reference_prdc = pytest.importorskip("prdc")
reference_vendi = pytest.importorskip("vendi_score.vendi")


@pytest.mark.parametrize(("n_real", "n_fake", "dim", "shift", "k"), [
    (300, 250, 16, 0.0, 5), (300, 250, 16, 0.8, 5), (200, 400, 64, 0.3, 3), (120, 90, 2, 1.5, 10),
])
def test_prdc_agrees_with_the_reference_implementation(n_real: int, n_fake: int, dim: int, shift: float, k: int) -> None:
    rng = np.random.default_rng(n_real + dim)
    real = rng.normal(size=(n_real, dim))
    fake = rng.normal(loc=shift, scale=1.2, size=(n_fake, dim))
    ours = prdc(real, fake, k)
    theirs = reference_prdc.compute_prdc(real, fake, k)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ours, name) == pytest.approx(theirs[name], abs=1e-6), name


def test_prdc_on_real_features_agrees_with_the_reference() -> None:
    """Real images' features: the digits' own pixels (64-d), one half against the other."""
    from sklearn.datasets import load_digits

    pixels = load_digits().data.astype(np.float64)
    ours = prdc(pixels[:800], pixels[800:1600], 5)
    theirs = reference_prdc.compute_prdc(pixels[:800], pixels[800:1600], 5)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ours, name) == pytest.approx(theirs[name], abs=1e-6), name


def test_prdc_does_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(500, 8)), rng.normal(0.2, 1.0, size=(300, 8))
    whole = prdc(real, fake)
    monkeypatch.setattr(prdc_mod, "BLOCK", 7)
    assert prdc(real, fake) == whole


def test_prdc_known_values() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 4))
    far = rng.normal(size=(150, 4)) + 100.0  # nowhere near the real data
    result = prdc(real, far)
    assert (result.precision, result.recall, result.density, result.coverage) == (0.0, 0.0, 0.0, 0.0)
    # a generator that draws one real image again and again: full precision, no diversity
    collapsed = np.repeat(real[:1], 50, axis=0)
    result = prdc(real, collapsed)
    assert result.precision == 1.0
    assert result.coverage == pytest.approx(1 / 200 * np.sum(np.linalg.norm(real - real[0], axis=1) < knn_radii(real, 5)))
    assert result.recall == 0.0  # the generated balls have radius 0: nothing real is strictly inside


def test_prdc_refuses_too_few_samples_with_the_reason() -> None:
    rng = np.random.default_rng(2)
    with pytest.raises(FairbenchError, match="group white has 5 samples; PRDC with k = 5 needs at least 6"):
        prdc(rng.normal(size=(50, 3)), rng.normal(size=(5, 3)), 5, label="group white")
    with pytest.raises(FairbenchError, match="the real reference for group white has 3 samples"):
        prdc(rng.normal(size=(3, 3)), rng.normal(size=(50, 3)), 5, label="group white")
    with pytest.raises(FairbenchError, match="dims"):
        prdc(rng.normal(size=(50, 3)), rng.normal(size=(50, 4)))


def test_knn_radii_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 5))
    brute = np.array([np.sort(np.linalg.norm(x - row, axis=1))[3] for row in x])  # [0] is the row itself
    np.testing.assert_allclose(knn_radii(x, 3), brute, rtol=1e-12)


@pytest.mark.parametrize(("n", "dim"), [(500, 16), (50, 128), (2000, 3)])
def test_vendi_agrees_with_the_reference_implementation(n: int, dim: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, dim)) + rng.normal(size=dim)  # not centred: the cosine kernel sees the offset
    assert vendi_score(x) == pytest.approx(float(reference_vendi.score_dual(x)), rel=1e-6)


def test_vendi_known_values() -> None:
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (40, 1))) == pytest.approx(1.0)  # one direction: one sample
    assert vendi_score(np.eye(6) * 3.0) == pytest.approx(6.0)  # orthogonal: all distinct
    # two equally used orthogonal directions: two effective samples, however many copies
    assert vendi_score(np.vstack([np.tile([1.0, 0.0], (30, 1)), np.tile([0.0, 2.0], (30, 1))])) == pytest.approx(2.0)
    with pytest.raises(FairbenchError, match="all-zero feature vector"):
        vendi_score(np.zeros((3, 2)))
    with pytest.raises(FairbenchError, match="no samples"):
        vendi_score(np.zeros((0, 2)))
