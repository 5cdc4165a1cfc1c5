"""Representational fairness of a generator: how far the judged group distribution is from uniform.

The metrics themselves (definitions, counting) are in `distribution`; this module adds what a point value lacks:
judge correction, intervals that cover, and tests.

Judge error biases p̂; `correction` undoes it (suffix ``_corrected``: the metrics on p̃).

Uncertainty. Each scalar metric's 95% interval inverts the profile likelihood of that metric alone
(`profile`), calibrated at the uniform point where the metrics have a kink and the bootstrap fails; the
p-value of "the generator is uniform" (`uniformity`) is the same test at 0, so it is below 0.05 exactly
when the interval excludes 0. The corrected figures include the uncertainty of the confusion matrix,
estimated from the judge's held-out counts. The group shares get a simultaneous 95% region (`regions`),
and so do the mean and worst case over conditions (a region that holds for all conditions at once,
Bonferroni; a metric's range over it). Beside them, a less biased KL estimate (`debias`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.metrics import corrected_profile
from fairbench.metrics.correction import Calibration, check_confusion, correct_rows
from fairbench.metrics.debias import debiased_kl, debiased_kl_corrected, debiased_worst, resample_tables
from fairbench.metrics.distribution import (
    FAIRNESS_METRICS,
    MAX_CATEGORIES,
    check_distribution,
    check_n_groups,
    fd_l1,
    fd_l2,
    group_counts,
    kl_uniform,
    kl_uniform_normalized,
    proportions,
)
from fairbench.metrics.profile import METRICS as SCALAR_METRICS
from fairbench.metrics.profile import metric_interval
from fairbench.metrics.regions import ProportionBox, clopper_pearson_box, metric_ranges, score_box
from fairbench.metrics.row_metrics import ROW_METRICS
from fairbench.metrics.uniformity import (
    CORRECTED,
    CORRECTED_WALD,
    UniformityTest,
    midp_critical_deviance,
    raw_tests,
    region_p_values,
    sidak_worst,
)

__all__ = [
    "FAIRNESS_METRICS",
    "Calibration",
    "ConditionalFairnessReport",
    "FairnessReport",
    "GroupShares",
    "MetricValue",
    "conditional_fairness_report",
    "correct_proportions",
    "fairness_report",
    "fd_l1",
    "fd_l2",
    "group_counts",
    "kl_uniform",
    "kl_uniform_normalized",
    "metric_intervals",
    "proportions",
]

ALPHA = 0.05  # every interval is 95%, every region simultaneous at 95%


@dataclass(frozen=True)
class MetricValue:
    """A point estimate with its 95% interval; the direction travels with it so tables need no lookup."""

    value: float
    ci95: tuple[float, float]
    higher_is_better: bool

    def to_json(self) -> dict:
        return {"value": self.value, "ci95": [self.ci95[0], self.ci95[1]], "higher_is_better": self.higher_is_better}


# ----------------------------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class GroupShares:
    """Per-group bounds of a simultaneous 95% region: all groups' intervals hold together."""

    lower: list[float]
    upper: list[float]

    def to_json(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper)}


@dataclass(frozen=True)
class FairnessReport:
    """Judged (p̂) and judge-corrected (p̃) distributions with every metric on both, their regions and tests."""

    observed: list[float]
    corrected: list[float]
    metrics: dict[str, MetricValue]
    counts: list[int]
    shares: dict[str, GroupShares]  # "observed", "corrected"
    tests: dict[str, UniformityTest]  # "uniform", "uniform_corrected"

    def to_json(self) -> dict:
        return {
            "observed": list(self.observed),
            "corrected": list(self.corrected),
            "counts": list(self.counts),
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
            "shares": {name: s.to_json() for name, s in self.shares.items()},
            "tests": {name: t.to_json() for name, t in self.tests.items()},
        }


@dataclass(frozen=True)
class ConditionalFairnessReport:
    """Per-condition reports plus their mean and worst case: averaging alone would hide one unfair prompt."""

    conditions: list[int]
    per_condition: list[FairnessReport]
    summary: dict[str, MetricValue]
    tests: dict[str, UniformityTest]  # "uniform_cond_worst", "uniform_corrected_cond_worst"

    def to_json(self) -> dict:
        return {
            "conditions": list(self.conditions),
            "per_condition": [r.to_json() for r in self.per_condition],
            "summary": {name: m.to_json() for name, m in self.summary.items()},
            "tests": {name: t.to_json() for name, t in self.tests.items()},
        }


def _metric_names() -> list[str]:
    names = []
    for name in ROW_METRICS:
        names += [name, f"{name}_corrected"]
    return names


DEBIASED = {"kl_uniform_debiased": "kl_uniform", "kl_uniform_corrected_debiased": "kl_uniform_corrected"}


@dataclass(frozen=True)
class _Rows:
    """Everything computed per row of a (R, k) count table at one confidence level."""

    p_hat: np.ndarray
    p_tilde: np.ndarray
    boxes: dict[str, ProportionBox]  # "observed", "corrected": simultaneous regions for the group shares
    gaussian: corrected_profile.CorrectedGaussian | None = None  # the corrected estimate's model, if corrected


def _boxes(counts: np.ndarray, p_hat: np.ndarray, p_tilde: np.ndarray, cal: Calibration | None, alpha: float):
    raw = clopper_pearson_box(counts, alpha)
    if cal is None or cal.perfect:
        return {"observed": raw, "corrected": raw}
    box = score_box(p_hat, counts.sum(axis=1), cal.rates, cal.row_sizes, alpha)
    # The point estimate is the simplex projection, which can sit just outside a box centred on the
    # unconstrained estimate; a reported value always lies inside its own interval.
    return {"observed": raw,
            "corrected": ProportionBox(np.minimum(box.lower, p_tilde), np.maximum(box.upper, p_tilde), box.level)}


# Normalised KL is a non-decreasing map of KL (clip(KL / ln k, 0, 1)), so its interval is the map of KL's.
_ENUMERATED = {name: fn for name, fn in ROW_METRICS.items() if name != "kl_uniform_normalized"}


def _with_normalized(found: dict[str, tuple[np.ndarray, np.ndarray]], k: int) -> dict:
    lo, hi = found["kl_uniform"]
    log_k = math.log(k)
    return {**found, "kl_uniform_normalized": (np.clip(lo / log_k, 0.0, 1.0), np.clip(hi / log_k, 0.0, 1.0))}


def _region_ranges(rows: _Rows) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each metric's range over the simultaneous regions: what the worst and mean over conditions need."""
    k = rows.p_hat.shape[1]
    observed = _with_normalized(metric_ranges(rows.boxes["observed"], _ENUMERATED), k)
    same = rows.boxes["corrected"] is rows.boxes["observed"]
    corrected = observed if same else _with_normalized(metric_ranges(rows.boxes["corrected"], _ENUMERATED), k)
    return {f"{name}{suffix}": found[name] for suffix, found in (("", observed), ("_corrected", corrected))
            for name in observed}


def _analyse(counts: np.ndarray, cal: Calibration | None, alpha: float) -> _Rows:
    c = np.asarray(counts, dtype=np.float64)
    p_hat = c / c.sum(axis=1, keepdims=True)
    p_tilde = p_hat if cal is None else correct_rows(p_hat, cal.rates)
    model = None
    if cal is not None and not cal.perfect and c.shape[1] <= corrected_profile.MAX_PROFILED_GROUPS:
        with np.errstate(all="ignore"):
            model = corrected_profile.gaussian(p_hat, c.sum(axis=1), cal.rates, cal.row_sizes, p_tilde)
    return _Rows(p_hat, p_tilde, _boxes(c, p_hat, p_tilde, cal, alpha), model)


def _scalar_intervals(counts: np.ndarray, rows: _Rows, cal: Calibration | None, alpha: float,
                      names: tuple[str, ...] | None = None):
    """Every scalar metric's interval (NaN for those `names` leaves out); `_tests` are the tests they invert.

    Observed: the profile interval (`profile`). Corrected: the Gaussian profile interval of the corrected
    estimate (`corrected_profile`), both efficient; where that model cannot be built (more than
    `corrected_profile.MAX_PROFILED_GROUPS` groups, or a covariance singular in the plane) the metric's range
    over the corrected shares' region, whose own test is then the region's.
    """
    k = counts.shape[1]
    wanted = set(_metric_names()) if names is None else set(names)
    critical = midp_critical_deviance(counts.sum(axis=1), alpha) if k == 2 else None
    # Normalised KL is KL's interval mapped: computing it needs KL's.
    needed = [m for m in SCALAR_METRICS if m in wanted or (m == "kl_uniform" and "kl_uniform_normalized" in wanted)]
    if cal is None or cal.perfect:
        needed = [m for m in SCALAR_METRICS if m in needed or f"{m}_corrected" in wanted
                  or (m == "kl_uniform" and "kl_uniform_normalized_corrected" in wanted)]
    nan = (np.full(len(counts), np.nan),) * 2
    raw = {m: (metric_interval(counts, m, alpha, critical) if m in needed else nan) for m in SCALAR_METRICS}
    raw = _with_normalized(raw, k)
    if cal is None or cal.perfect:
        corrected = raw
    elif any(name.endswith("_corrected") for name in wanted):
        corrected = _with_normalized(_corrected_intervals(rows, alpha), k)
    else:
        corrected = {name: nan for name in raw}
    return {f"{name}{suffix}": found[name] for suffix, found in (("", raw), ("_corrected", corrected))
            for name in raw}


def _corrected_intervals(rows: _Rows, alpha: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The corrected metrics' intervals: Gaussian profile where the model holds, the region's range elsewhere;
    each holds its own point value (the simplex projection p-tilde, which the model's centre may leave)."""
    model = rows.gaussian
    r = rows.p_hat.shape[0]
    ok = np.zeros(r, dtype=bool) if model is None else model.ok
    found = {name: (np.full(r, np.nan), np.full(r, np.nan)) for name in _ENUMERATED}
    if not ok.all():
        box = rows.boxes["corrected"]
        rest = np.flatnonzero(~ok)
        ranges = metric_ranges(ProportionBox(box.lower[rest], box.upper[rest], box.level), _ENUMERATED)
        for name, (lo, hi) in ranges.items():
            found[name][0][rest], found[name][1][rest] = lo, hi
    if ok.any():
        for name in _ENUMERATED:
            lo, hi = corrected_profile.interval(model, name, alpha)
            value = ROW_METRICS[name](rows.p_tilde)
            found[name][0][ok] = np.minimum(lo, value)[ok]
            found[name][1][ok] = np.maximum(hi, value)[ok]
    return found


def _tests(counts: np.ndarray, cal: Calibration | None, rows: _Rows | None = None) -> dict[str, list[UniformityTest]]:
    """The tests of uniformity that the intervals invert at 0 (`uniformity`), one per row."""
    tests = {"uniform": raw_tests(counts)}
    if cal is None or cal.perfect:
        tests["uniform_corrected"] = tests["uniform"]
    else:
        rows = _analyse(counts, cal, ALPHA) if rows is None else rows
        n = counts.sum(axis=1)
        model = rows.gaussian
        ok = np.zeros(len(counts), dtype=bool) if model is None else model.ok
        found: list[UniformityTest | None] = [None] * len(counts)
        if ok.any():
            p_values = model.p_values()
            for i in np.flatnonzero(ok):
                found[i] = UniformityTest(float(p_values[i]), float(model.statistic[i]), model.df, CORRECTED_WALD)
        rest = np.flatnonzero(~ok)
        if rest.size:
            p_values = region_p_values(counts[rest] / n[rest, None], n[rest], cal.rates, cal.row_sizes)
            for i, p in zip(rest, p_values):
                found[i] = UniformityTest(float(p), None, None, CORRECTED)
        tests["uniform_corrected"] = found
    return tests


def _point_values(rows: _Rows, counts: np.ndarray, cal: Calibration | None) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for name, fn in ROW_METRICS.items():
        values[name] = fn(rows.p_hat)
        values[f"{name}_corrected"] = fn(rows.p_tilde)
    values["kl_uniform_debiased"] = debiased_kl(counts)
    values["kl_uniform_corrected_debiased"] = _debias_corrected(counts, cal, rows.p_tilde)
    return values


def _debias_corrected(counts: np.ndarray, cal: Calibration | None, p_tilde: np.ndarray | None = None) -> np.ndarray:
    if cal is None or cal.perfect:
        return debiased_kl(counts)
    return debiased_kl_corrected(counts, cal.rates, cal.row_sizes, p_tilde)


def _reports(counts: np.ndarray, cal: Calibration | None) -> list[FairnessReport]:
    """One report per row of a (R, k) count table, intervals at 95% each."""
    rows = _analyse(counts, cal, ALPHA)
    values = _point_values(rows, counts, cal)
    ranges, tests = _scalar_intervals(counts, rows, cal, ALPHA), _tests(counts, cal, rows)
    out = []
    for r in range(counts.shape[0]):
        metrics = {}
        for name in [*_metric_names(), *DEBIASED]:
            lo, hi = ranges[DEBIASED.get(name, name)]
            point = float(values[name][r])
            # A debiased value can sit below the interval's lower end; its interval is the metric's own.
            metrics[name] = MetricValue(point, (float(lo[r]), float(hi[r])), higher_is_better=False)
        out.append(
            FairnessReport(
                observed=rows.p_hat[r].tolist(),
                corrected=rows.p_tilde[r].tolist(),
                metrics=metrics,
                counts=[int(v) for v in counts[r]],
                shares={
                    kind: GroupShares(box.lower[r].tolist(), box.upper[r].tolist()) for kind, box in rows.boxes.items()
                },
                tests={name: results[r] for name, results in tests.items()},
            )
        )
    return out


def metric_intervals(
    counts: np.ndarray, cal: Calibration | None, alpha: float, names: Sequence[str] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per row of a (R, k) count table: (value, lower, upper) of every scalar metric, observed and
    `_corrected`, at confidence 1 - alpha. For statistics built from several reports at once (a gain over
    a base needs each run's interval at 1 - alpha/2), where the reports' fixed 95% would not do. `names`
    limits the work to those metrics."""
    counts = np.asarray(counts, dtype=np.float64)
    rows = _analyse(counts, cal, alpha)
    values = _point_values(rows, counts, cal)
    ranges = _scalar_intervals(counts, rows, cal, alpha, None if names is None else tuple(names))
    return {name: (values[name], *ranges[name]) for name in ranges if names is None or name in names}


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise FairbenchError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_n_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise FairbenchError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    return int(n_resamples)


def fairness_report(
    predicted: np.ndarray,
    n_groups: int,
    confusion: np.ndarray | None,
    n_resamples: int = 1000,
    seed: int = 0,
    calibration_counts: np.ndarray | None = None,
    exact: bool = False,
) -> FairnessReport:
    """All fairness metrics on p̂ and p̃ with 95% intervals, the uniformity tests and the debiased KL.

    `calibration_counts` (the judge's held-out counts) give the confusion and its estimation noise; a
    `confusion` without them is refused unless `exact=True` says it is known without error. Neither means
    no correction (p̃ = p̂). `n_resamples`
    and `seed` drive only the bootstrap of the worst-condition bias in conditional reports; they are
    checked here so both reports accept the same arguments.
    """
    counts = group_counts(predicted, n_groups)
    _check_n_resamples(n_resamples)
    _check_seed(seed)
    proportions(counts)  # refuses zero samples with its own message
    cal = Calibration.build(confusion, calibration_counts, n_groups, exact)
    return _reports(counts[None, :], cal)[0]


def conditional_fairness_report(
    predicted: np.ndarray,
    conditions: np.ndarray,
    n_groups: int,
    n_conditions: int,
    confusion: np.ndarray | None,
    n_resamples: int = 1000,
    seed: int = 0,
    calibration_counts: np.ndarray | None = None,
    exact: bool = False,
) -> ConditionalFairnessReport:
    """Fairness per condition (e.g. prompt or class) plus the mean and worst case over conditions.

    Per-condition intervals are 95% each. The summaries' intervals come from regions that hold for every
    condition at once (Bonferroni: each condition's region at level 1 - 0.05 / C), so the mean's interval is
    the mean of the per-condition extremes and the worst case's the maximum of them, and both cover with
    probability at least 95%. Conditions without samples are skipped rather than counted as fair or unfair.
    """
    k = check_n_groups(n_groups)
    if isinstance(n_conditions, bool) or not isinstance(n_conditions, (int, np.integer)):
        raise FairbenchError(f"n_conditions must be an integer, got {n_conditions!r}")
    if not 1 <= n_conditions <= MAX_CATEGORIES:
        raise FairbenchError(f"n_conditions must be within [1, {MAX_CATEGORIES}], got {n_conditions}")
    _check_seed(seed)
    labels = np.asarray(predicted)
    conds = np.asarray(conditions)
    if conds.ndim != 1:
        raise FairbenchError(f"conditions must be a 1-D array of condition ids, got shape {conds.shape}")
    if labels.ndim != 1 or labels.shape != conds.shape:
        raise FairbenchError(
            f"predicted and conditions must be 1-D arrays of the same length, got {labels.shape} and {conds.shape}"
        )
    if conds.size and not np.issubdtype(conds.dtype, np.integer):
        raise FairbenchError(f"conditions must be integers, got dtype {conds.dtype}")
    if conds.size and (conds.min() < 0 or conds.max() >= n_conditions):
        bad = int(conds.min()) if conds.min() < 0 else int(conds.max())
        raise FairbenchError(f"condition id {bad} is outside [0, {n_conditions})")
    group_counts(labels, k)  # validates labels once, with the whole-array error message
    if labels.size == 0:
        raise FairbenchError("no samples: every condition is empty")
    cal = Calibration.build(confusion, calibration_counts, k, exact)
    r = _check_n_resamples(n_resamples)

    # counts[condition, group] in one pass.
    table = np.bincount(conds.astype(np.int64) * k + labels.astype(np.int64), minlength=n_conditions * k)
    table = table.reshape(n_conditions, k).astype(np.int64)
    present = [int(i) for i in np.flatnonzero(table.sum(axis=1) > 0)]
    counts = table[present]
    reports = _reports(counts, cal)

    joint = _region_ranges(_analyse(counts, cal, ALPHA / len(present)))
    summary: dict[str, MetricValue] = {}
    for name in _metric_names():
        values = np.array([rep.metrics[name].value for rep in reports])
        lo, hi = joint[name]
        # All metrics are lower-is-better, so the worst condition is the maximum.
        summary[f"{name}_cond_mean"] = MetricValue(float(values.mean()), (float(lo.mean()), float(hi.mean())), False)
        summary[f"{name}_cond_worst"] = MetricValue(float(values.max()), (float(lo.max()), float(hi.max())), False)
    rng = np.random.default_rng(seed)
    draws = None
    debiasers = {
        "kl_uniform_debiased": debiased_kl,
        "kl_uniform_corrected_debiased": lambda t: _debias_corrected(t, cal),
    }
    for name, debias in debiasers.items():
        base = DEBIASED[name]
        values = np.array([rep.metrics[name].value for rep in reports])
        summary[f"{name}_cond_mean"] = MetricValue(float(values.mean()), summary[f"{base}_cond_mean"].ci95, False)
        if len(present) == 1:
            worst = float(values.max())
        elif name == "kl_uniform_corrected_debiased" and (cal is None or cal.perfect):
            worst = summary["kl_uniform_debiased_cond_worst"].value  # corrected = observed: same estimate
        else:
            if draws is None:
                draws = resample_tables(counts, r, rng)  # one set of redraws serves both estimates
            # 2 x worst - mean can pass ln k, which no KL exceeds: clipping toward the possible range only helps.
            worst = min(debiased_worst(counts, debias, r, rng, draws), math.log(k))
        summary[f"{name}_cond_worst"] = MetricValue(float(worst), summary[f"{base}_cond_worst"].ci95, False)
    tests = {
        f"{name}_cond_worst": sidak_worst(np.array([rep.tests[name].p_value for rep in reports]))
        for name in ("uniform", "uniform_corrected")
    }
    return ConditionalFairnessReport(conditions=present, per_condition=reports, summary=summary, tests=tests)


def correct_proportions(p_hat: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """Undo judge error: the simplex point p̃ whose expected judged distribution Cᵀp̃ is closest to p̂."""
    p = check_distribution(p_hat, "p_hat")
    c = check_confusion(confusion, p.size)
    return correct_rows(p[None, :], c)[0]
