"""Ranks that do not over-claim: entries share a rank unless their difference is significant across seeds.

Why not rank by the mean: a method's score varies with its training seed, and a board has few seeds (three,
typically). With three seeds each, 0.564 ± 0.224 (mean ± sample std) is not better than 0.693 ± 0.000: the
gap is about one standard error, well within what reseeding alone produces. Ranking by the mean would call the
first "rank 1" and the second "rank 2" on seed luck.

The rule. For one metric, entry A is *significantly better* than entry B when both

- A's mean is better than B's by the metric's direction (`higher_is_better`), and
- a two-sided Welch t-test on the two entries' per-run values (one value per result file, i.e. per training
  seed) rejects equal means: p < `ALPHA` (0.05).

The rank of an entry is 1 + the number of entries significantly better than it. So:

- entries whose differences are not significant share a rank, and ranks may repeat and skip (1, 1, 3);
- the rank does not depend on the order of the entries or files: every pair is judged on its own values;
- "not significantly different" is not transitive, and the rule does not pretend it is: with A ~ B and
  B ~ C but A significantly better than C, A and B get rank 1 and C gets rank 2 (only A is shown to beat it).
  A rank says how many entries are shown to be better, nothing more.

Why Welch: methods differ in their seed-to-seed spread (a collapsed generator gives the same score every seed,
spread 0, while another's swings widely), so a pooled-variance test would be wrong; Welch's test does not assume
equal variances, and its Welch-Satterthwaite degrees of freedom are computed in a form that stays finite when one
side's spread is zero (the test then reduces to a one-sample t-test of the other side against that constant,
df = n - 1).

Edge cases, decided rather than left to NaN:

- an entry with fewer than 2 runs is never significantly different from any other: one run gives no estimate
  of the spread across seeds, so its distance from another entry cannot be told from seed luck;
- when both entries have at least 2 runs and every run of each gives the same value (both spreads 0), the two
  differ significantly exactly when their means differ (the t statistic is infinite, p = 0);
- values are compared to `DIGITS` (12) significant digits, so that floating-point noise in the last bits of a
  deterministic score neither separates two entries nor makes a spread out of identical runs;
- a missing metric (some run lacks it) gets no rank (None), and is never compared.

What the test does not see: the sampling uncertainty within a run (the judge's and the bootstrap's, each
result's `ci95`) — only the variation across training seeds; and it is not corrected for multiple
comparisons (k entries make k(k - 1)/2 tests at 0.05 each). `MIN_SEEDS` is the number of runs below which
the renderers flag an entry: with fewer, even a large gap is weak evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05  # two-sided significance level of the pairwise Welch t-tests
MIN_SEEDS = 3  # entries with fewer runs are flagged on the board
DIGITS = 12  # values are compared to this many significant digits (far below any difference worth a rank)


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test for equal means of `a` and `b`; None when either has < 2 values.

    Equals `scipy.stats.ttest_ind(a, b, equal_var=False).pvalue` wherever that is defined (up to the rounding
    to `DIGITS` significant digits), and is also defined, without warnings, where one or both spreads are 0:
    both 0 gives p = 0 if the values differ, else 1.
    """
    x, y = _values(a), _values(b)
    if x.size < 2 or y.size < 2:
        return None
    diff = _mean(x) - _mean(y)
    vx = _variance(x) / x.size  # squared standard errors of the means
    vy = _variance(y) / y.size
    se2 = vx + vy
    if not math.isfinite(se2):
        return 1.0
    if se2 == 0.0:
        return 0.0 if diff != 0.0 else 1.0
    if diff == 0.0:
        return 1.0
    # Welch-Satterthwaite df = se2^2 / (vx^2/(nx-1) + vy^2/(ny-1)), written with the shares wx + wy = 1 so that
    # a zero (or underflowing) spread on one side cannot divide by zero: df lies in [min(n) - 1, nx + ny - 2].
    wx, wy = vx / se2, vy / se2
    df = 1.0 / (wx * wx / (x.size - 1) + wy * wy / (y.size - 1))
    t = abs(diff) / math.sqrt(se2)  # Python floats: an overflow is inf, not a warning
    if not math.isfinite(t):
        return 0.0
    return float(min(1.0, 2.0 * stats.t.sf(t, df)))


def significantly_better(
    a: Sequence[float], b: Sequence[float], higher_is_better: bool, alpha: float = ALPHA
) -> bool:
    """Whether the runs `a` are significantly better than the runs `b` (see the module docstring)."""
    p = welch_p_value(a, b)
    if p is None or not p < alpha:
        return False
    mean_a, mean_b = _mean(_values(a)), _mean(_values(b))
    return mean_a > mean_b if higher_is_better else mean_a < mean_b


def _values(values: Sequence[float]) -> np.ndarray:
    """The values to `DIGITS` significant digits: floating-point noise in the last bits of a deterministic
    score (ln 2 summed in another order) is no difference between entries, and no spread within one."""
    return np.asarray([float(f"{float(v):.{DIGITS}g}") for v in values], dtype=np.float64)


def _mean(x: np.ndarray) -> float:
    # identical values have exactly that mean (np.mean of [0.1, 0.1, 0.1] is 0.10000000000000002)
    return float(x[0]) if np.all(x == x[0]) else float(np.mean(x))


def _variance(x: np.ndarray) -> float:
    """Sample variance (ddof=1); exactly 0 when every value is the same (np.var may leave ~1e-34 there)."""
    if np.all(x == x[0]):
        return 0.0
    with np.errstate(over="ignore"):  # a spread beyond 1e154 overflows to inf: no evidence of anything
        return float(np.var(x, ddof=1))


def significance_ranks(
    runs: Mapping[str, Sequence[float] | None], higher_is_better: bool, alpha: float = ALPHA
) -> dict[str, int | None]:
    """{entry: 1 + number of entries significantly better}, for one metric; None for a missing metric.

    `runs` maps each entry to its per-run values of the metric (in seed order), or to None when the metric is
    missing for the entry (some run lacks it).
    """
    present = {entry: list(values) for entry, values in runs.items() if values is not None and len(values) > 0}
    ranks: dict[str, int | None] = {}
    for entry in runs:
        if entry not in present:
            ranks[entry] = None
            continue
        mine = present[entry]
        ranks[entry] = 1 + sum(
            1
            for other, theirs in present.items()
            if other != entry and significantly_better(theirs, mine, higher_is_better, alpha)
        )
    return ranks
