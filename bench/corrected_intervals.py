"""Coverage and width of the judge-corrected intervals, by seeded simulation, beside the previous method.

For 2, 5 and 10 groups, N from 500 to 50,000 and the truths uniform, the issue's 5-group skew, a 10-group
geometric skew and one group at 0, every replicate draws its own calibration set (Multinomial counts, `--cal`
images per group, 93% on the diagonal) and its own judged counts from Multinomial(N, C^T p). A calibration set
shared by several replicates would make them one draw at large N, where the calibration noise dominates (at
5 groups and N = 50,000 it is about 80% of the corrected estimate's variance): coverage counted over 20 runs
per calibration set has the standard error of the number of sets, not of runs. Each corrected scalar metric's
95% interval is computed as `fairness.metric_intervals` computes it (Gaussian profile, `corrected_profile`),
batched over the replicates' own confusions; the first rows of every cell are checked against
`metric_intervals` itself. Beside it the previous interval: the metric's range over the corrected shares'
simultaneous region. Prints (and with --out writes) one Markdown table: coverage, mean width over the
estimator's own central 95% spread, and whether p < 0.05 exactly when the interval excludes 0.

    python bench/corrected_intervals.py [--reps 1000] [--cal 500] [--seed 0] [--out leaderboard/corrected_intervals.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fairbench import atomic
from fairbench.metrics import corrected_profile
from fairbench.metrics import regions as rg
from fairbench.metrics.correction import Calibration, correct_rows
from fairbench.metrics.fairness import metric_intervals
from fairbench.metrics.row_metrics import ROW_METRICS

SCALARS = ("kl_uniform", "fd_l1", "fd_l2")
_CHECKED_ROWS = 3


def truths(k: int) -> dict[str, np.ndarray]:
    rest = np.linspace(1.0, 2.0, k - 1)
    skew = np.geomspace(1, 0.1, k)
    out = {"uniform": np.full(k, 1 / k), "skew": skew / skew.sum()}
    if k == 5:
        out["issue"] = np.array([0.6, 0.6, 1.0, 1.4, 1.4]) / 5
    if k > 2:
        out["one at 0"] = np.r_[0.0, rest / rest.sum()]
    return out


def confusion(k: int, accuracy: float) -> np.ndarray:
    c = np.full((k, k), (1 - accuracy) / (k - 1))
    np.fill_diagonal(c, accuracy)
    return c


def corrected_rows(counts: np.ndarray, tables: np.ndarray, alpha: float = 0.05):
    """Per row, with row r's own calibration table tables[r]: {metric: (value, lower, upper, previous lower,
    previous upper)} and whether the corrected test rejects; rows whose Gaussian model cannot be built take the
    region's range, as in `fairness`."""
    counts = np.asarray(counts, dtype=np.float64)
    r, k = counts.shape
    n = counts.sum(axis=1)
    q = counts / n[:, None]
    rates = tables / tables.sum(axis=2, keepdims=True)
    sizes = tables.sum(axis=2).astype(np.float64)
    p_tilde = np.concatenate([correct_rows(q[i:i + 1], rates[i]) for i in range(r)])
    box = rg.score_box(q, n, rates, sizes, alpha)
    box = rg.ProportionBox(np.minimum(box.lower, p_tilde), np.maximum(box.upper, p_tilde), box.level)
    old = rg.metric_ranges(box, {m: ROW_METRICS[m] for m in SCALARS})
    with np.errstate(all="ignore"):
        model = corrected_profile.gaussian(q, n, rates, sizes, p_tilde)
    out = {}
    for m in SCALARS:
        value = ROW_METRICS[m](p_tilde)
        lo, hi = corrected_profile.interval(model, m, alpha)
        lo = np.where(model.ok, np.minimum(lo, value), old[m][0])
        hi = np.where(model.ok, np.maximum(hi, value), old[m][1])
        out[m] = (value, lo, hi, *old[m])
    return out, np.where(model.ok, model.p_values() < alpha, np.nan), model.ok


def check_against_public(counts: np.ndarray, tables: np.ndarray, found: dict) -> None:
    """The batched computation is `metric_intervals`' own (to rounding: per-row inverses)."""
    k = counts.shape[1]
    for i in range(_CHECKED_ROWS):
        cal = Calibration.build(None, tables[i], k)
        public = metric_intervals(counts[i:i + 1], cal, 0.05, names=[f"{m}_corrected" for m in SCALARS])
        for m in SCALARS:
            got = np.array([found[m][j][i] for j in range(3)])
            want = np.array([v[0] for v in public[f"{m}_corrected"]])
            if not np.allclose(got, want, rtol=1e-7, atol=1e-12):
                raise AssertionError(f"batched {m} {got} differs from metric_intervals {want}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="replicates per row, each with its own calibration")
    parser.add_argument("--reps-10", type=int, default=None, help="replicates per row at 10 groups (default --reps)")
    parser.add_argument("--cal", type=int, default=500, help="held-out images per group")
    parser.add_argument("--accuracy", type=float, default=0.93)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, nargs="+", default=[500, 2000, 50_000])
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    lines = ["| groups | N | truth | metric | coverage | width / spread | previous coverage | previous width / spread "
             "| test = interval |", "|---:|---:|---|---|---:|---:|---:|---:|---|"]
    for line in lines:
        print(line)
    started = time.perf_counter()
    unmodelled = 0
    for k in args.groups:
        c = confusion(k, args.accuracy)
        reps = args.reps_10 if k == 10 and args.reps_10 else args.reps
        for n in args.n:
            for label, p in truths(k).items():
                tables = np.stack([rng.multinomial(args.cal, c[i], size=reps) for i in range(k)], axis=1)
                counts = rng.multinomial(n, p @ c, size=reps)
                found, rejects, ok = corrected_rows(counts, tables)
                check_against_public(counts, tables, found)
                unmodelled += int(np.count_nonzero(~ok))
                for m in SCALARS:
                    value, lo, hi, old_lo, old_hi = found[m]
                    agree = bool(np.array_equal(rejects[ok] > 0, lo[ok] > 0))
                    true = float(ROW_METRICS[m](p[None])[0])
                    spread = float(np.subtract(*np.quantile(value, [0.975, 0.025])))

                    def cov(a, b):
                        return np.mean((a <= true + 1e-12) & (true - 1e-12 <= b))

                    flat = label == "uniform" or spread == 0
                    ratio = "-" if flat else f"{np.mean(hi - lo) / spread:.2f}"
                    previous = "-" if flat else f"{np.mean(old_hi - old_lo) / spread:.2f}"
                    line = (f"| {k} | {n} | {label} | {m} | {cov(lo, hi):.3f} | {ratio} | {cov(old_lo, old_hi):.3f} | "
                            f"{previous} | {'yes' if agree else 'NO'} |")
                    lines.append(line)
                    print(line, flush=True)
    reps_note = f"{args.reps} replicates per row" + (
        f" ({args.reps_10} at 10 groups)" if args.reps_10 and 10 in args.groups else "")
    footer = (f"{reps_note}, each with its own calibration set of {args.cal} images per group "
              f"({args.accuracy:.0%} on the diagonal), seed {args.seed}; {unmodelled} rows without a Gaussian model "
              "(the region's range).")
    print(f"\n{footer} {time.perf_counter() - started:.0f} s.")
    if args.out:
        command = "python bench/corrected_intervals.py " + " ".join(argv if argv is not None else sys.argv[1:])
        header = ("# Coverage and width of the judge-corrected intervals\n\n"
                  f"Generated by `{command.strip()}`; do not edit. Judge-corrected shares, 95% intervals; width / "
                  "spread is the mean interval width over the 2.5-97.5% range of the corrected metric's own estimates "
                  "(not defined at the uniform truth). \"previous\": the metric's range over the corrected shares' "
                  "simultaneous region. \"test = interval\": p < 0.05 exactly when the interval excludes 0.\n\n")
        atomic.write_text(args.out, header + "\n".join(lines) + f"\n\n{footer}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
