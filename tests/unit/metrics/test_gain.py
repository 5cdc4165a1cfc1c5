"""Fairness gain KL(base) / KL(new): independent computations on known counts, edge cases, and seeded
simulations of both intervals' coverage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.metrics.correction import Calibration
from fairbench.metrics.gain import pair_gain, pair_gains, seed_gain
from tests.helpers import profile_reference as reference
from tests.helpers import FIXTURE_DIR

BOARD = FIXTURE_DIR / "board" / "results"
# Archived results never change, so the figures asserted below stay theirs when the board is retrained.
ARCHIVE = FIXTURE_DIR / "board" / "archive" / "utkface-race-1.5k"


def _kl2(p_white: float) -> float:
    """KL((1 - p, p) || (1/2, 1/2)), written out."""
    return sum(q * math.log(2 * q) for q in (p_white, 1 - p_white) if q > 0)


def test_two_groups_match_a_hand_computation() -> None:
    base, new = [820, 180], [540, 460]
    gain = pair_gain(base, new)["kl_uniform"]
    assert gain.base == pytest.approx(_kl2(0.18), rel=1e-12)
    assert gain.new == pytest.approx(_kl2(0.46), rel=1e-12)
    assert gain.ratio == pytest.approx(_kl2(0.18) / _kl2(0.46), rel=1e-12)
    # Each run's KL interval at 97.5% (Bonferroni over the two runs), from the brute-force profile of
    # tests/helpers/profile_reference.py with the two-group test's own critical deviance at alpha = 0.025.
    grid = reference.simplex_grid(2, 1 / 200_000)
    b_lo, b_hi = reference.grid_interval(base, "kl_uniform", grid, 0.025, reference.midp_scale(1000, 0.025))
    n_lo, n_hi = reference.grid_interval(new, "kl_uniform", grid, 0.025, reference.midp_scale(1000, 0.025))
    assert gain.ci95[0] == pytest.approx(b_lo / n_hi, rel=2e-3)
    assert gain.ci95[1] == pytest.approx(b_hi / n_lo, rel=2e-3)
    # A perfect judge: the corrected figures are the observed ones.
    corrected = pair_gain(base, new)["kl_uniform_corrected"]
    assert (corrected.base, corrected.new, corrected.ratio, corrected.ci95) == (gain.base, gain.new, gain.ratio, gain.ci95)


def test_edge_cases_uniform_collapsed_and_bad_input() -> None:
    fair = pair_gain([1000, 0], [500, 500])["kl_uniform"]  # collapsed base, exactly uniform new run
    assert fair.base == pytest.approx(math.log(2)) and fair.new == 0.0
    assert math.isinf(fair.ratio) and math.isinf(fair.ci95[1]) and fair.ci95[0] > 50
    both = pair_gain([500, 500], [500, 500])["kl_uniform"]
    assert math.isnan(both.ratio) and both.ci95 == (0.0, math.inf)  # nothing to learn: the interval says so
    worse = pair_gain([500, 500], [900, 100])["kl_uniform"]
    assert worse.ratio == 0.0 and worse.ci95[0] == 0.0 and worse.ci95[1] < 0.05
    for bad in (([1, 2], [1, 2, 3]), ([0, 0], [5, 5]), ([-1, 3], [2, 2]), ([5], [5])):
        with pytest.raises(FairbenchError):
            pair_gain(*bad)
    with pytest.raises(FairbenchError, match="alpha"):
        pair_gain([5, 5], [6, 4], alpha=1.5)


def _kl(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(np.sum(p * np.log(p * 3)))


def test_pair_interval_covers_the_true_gain_in_a_seeded_simulation() -> None:
    rng = np.random.default_rng(20261204)
    p_base, p_new = np.array([0.62, 0.28, 0.10]), np.array([0.40, 0.34, 0.26])
    truth = _kl(p_base) / _kl(p_new)
    reps, n = 600, 800
    base, new = rng.multinomial(n, p_base, reps), rng.multinomial(n, p_new, reps)
    _, _, _, lo, hi = pair_gains(base, new, metrics=("kl_uniform",))["kl_uniform"]
    assert np.mean((lo <= truth) & (truth <= hi)) >= 0.95  # at least the nominal level (Bonferroni: conservative)
    assert np.all(lo[:50] > 1)  # and not vacuous: a 3x gain at n = 800 is always detected
    one = pair_gain(base[0], new[0])["kl_uniform"]  # the one-pair face gives the same figures
    assert one.ci95 == (lo[0], hi[0])


def test_corrected_interval_covers_with_a_noisy_judge_in_a_seeded_simulation() -> None:
    rng = np.random.default_rng(7)
    confusion = np.array([[0.9, 0.1], [0.15, 0.85]])  # rows: true group, columns: judged group
    p_base, p_new = np.array([0.85, 0.15]), np.array([0.6, 0.4])
    truth = _kl2(0.15) / _kl2(0.4)
    reps, n, m = 500, 2000, 500
    hits = []
    for _ in range(reps):
        table = np.stack([rng.multinomial(m, row) for row in confusion])  # the judge's held-out counts
        cal = Calibration.build(table / m, table, 2)
        base = rng.multinomial(n, p_base @ confusion)
        new = rng.multinomial(n, p_new @ confusion)
        lo, hi = pair_gain(base, new, cal, metrics=("kl_uniform_corrected",))["kl_uniform_corrected"].ci95
        hits.append(lo <= truth <= hi)
    coverage = float(np.mean(hits))
    assert coverage >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / reps)  # asymptotic region: nominal within noise
    # The observed gain is biased towards 1 by the judge's errors, which is why the corrected one exists.
    assert pair_gain(rng.multinomial(n, p_base @ confusion), rng.multinomial(n, p_new @ confusion))[
        "kl_uniform"].ratio < truth


def test_seed_gain_is_a_geometric_mean_with_a_t_interval() -> None:
    ratios = [0.69, 2.87, 0.88]
    s = seed_gain(ratios)
    logs = np.log(ratios)
    half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
    assert s.geometric_mean == pytest.approx(math.exp(logs.mean()))
    assert s.ci95 == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert seed_gain([2.0]).ci95 is None and "one seed" in seed_gain([2.0]).reason
    assert seed_gain([2.0, math.inf]).geometric_mean is None and "infinite" in seed_gain([2.0, math.inf]).reason
    assert seed_gain([2.0, 0.0]).ci95 is None
    assert "both exactly uniform" in seed_gain([2.0, math.nan]).reason


def test_seed_interval_covers_at_its_level_in_a_seeded_simulation() -> None:
    rng = np.random.default_rng(3)
    true_log_gain, reps = math.log(2.5), 3000
    hits = 0
    for _ in range(reps):
        lo, hi = seed_gain(np.exp(rng.normal(true_log_gain, 0.6, size=3))).ci95
        hits += lo <= math.exp(true_log_gain) <= hi
    se = math.sqrt(0.95 * 0.05 / reps)
    assert abs(hits / reps - 0.95) <= 3 * se  # exact for log-normal gains: neither liberal nor conservative


def _board(task: str, folder: str, seed: int, root: Path = BOARD) -> Path:
    return root / task / folder / f"seed{seed}.json"


def test_cli_pairs_seeds_prints_each_gain_and_writes_json(tmp_path: Path) -> None:
    rebalanced = "rebalance@aux_steps=3000,aux_width=32,threshold=0.5"
    args = ["gain"]
    for seed in range(3):
        base, new = _board("utkface-race", "vanilla", seed, ARCHIVE), _board("utkface-race", rebalanced, seed, ARCHIVE)
        args += ["--base", str(base), "--new", str(new)]
    out = tmp_path / "gain.json"
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "kl_uniform, 3 seeds: mean gain 1.2 [" in result.output
    assert "0.135→0.196" in result.output  # seed 0's kl_uniform, base to rebalanced
    payload = json.loads(out.read_text())
    first = payload["pairs"][0]
    base = json.loads(_board("utkface-race", "vanilla", 0, ARCHIVE).read_text())
    new = json.loads(_board("utkface-race", rebalanced, 0, ARCHIVE).read_text())
    # The point gain is the ratio of the two scored kl_uniform values, and the FID pair is the scored one.
    assert first["gain"]["kl_uniform"]["ratio"] == pytest.approx(
        base["metrics"]["kl_uniform"]["value"] / new["metrics"]["kl_uniform"]["value"], rel=1e-9)
    assert first["quality"]["fid"] == {"base": base["metrics"]["fid"]["value"], "new": new["metrics"]["fid"]["value"]}
    assert payload["over_seeds"]["kl_uniform"]["n"] == 3


def test_cli_refuses_mismatched_runs() -> None:
    utk, cifar = _board("utkface-race", "vanilla", 0), _board("cifar10-lt", "vanilla", 0)
    mixed = CliRunner().invoke(app, ["gain", "--base", str(utk), "--new", str(cifar)])
    assert mixed.exit_code == 2 and "task 'cifar10-lt'" in mixed.output
    uneven = CliRunner().invoke(app, ["gain", "--base", str(utk), "--base", str(utk), "--new", str(utk)])
    assert uneven.exit_code == 2 and "as many --new as --base" in uneven.output
