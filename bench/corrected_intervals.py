"""Coverage and width of the judge-corrected intervals, by seeded simulation, beside the previous method.

For 2, 5 and 10 groups, N from 500 to 50,000 and the truths uniform, the issue's 5-group skew, a 10-group
geometric skew and one group at 0, judged counts are drawn from Multinomial(N, C^T p) with the confusion C
itself estimated from Multinomial calibration counts (`--cal` images per group, 93% on the diagonal); every
corrected scalar metric's 95% interval comes from the public `metric_intervals`, and the previous one (the
metric's range over the corrected shares' simultaneous region) beside it. Prints one Markdown table: coverage,
mean width over the estimator's own central 95% spread, and whether p < 0.05 exactly when the interval
excludes 0.

    python bench/corrected_intervals.py [--blocks 25 --per-block 20] [--cal 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fairbench.metrics import regions as rg
from fairbench.metrics.correction import Calibration
from fairbench.metrics.fairness import _analyse, _tests, metric_intervals
from fairbench.metrics.row_metrics import ROW_METRICS

SCALARS = ("kl_uniform", "fd_l1", "fd_l2")


def truths(k: int) -> dict[str, np.ndarray]:
    rest = np.linspace(1.0, 2.0, k - 1)
    skew = np.geomspace(1, 0.1, k)
    out = {"uniform": np.full(k, 1 / k), "skew": skew / skew.sum()}
    if k == 5:
        out["issue"] = np.array([0.6, 0.6, 1.0, 1.4, 1.4]) / 5
    if k > 2:
        out["one at 0"] = np.r_[0.0, rest / rest.sum()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=25, help="calibration sets per row")
    parser.add_argument("--per-block", type=int, default=20, help="judged runs per calibration set")
    parser.add_argument("--cal", type=int, default=500, help="held-out images per group")
    parser.add_argument("--accuracy", type=float, default=0.93)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, nargs="+", default=[500, 2000, 50_000])
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 5, 10])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print("| groups | N | truth | metric | coverage | width / spread | previous coverage | previous width / spread "
          "| test = interval |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---|")
    started = time.perf_counter()
    for k in args.groups:
        c = np.full((k, k), (1 - args.accuracy) / (k - 1))
        np.fill_diagonal(c, args.accuracy)
        for n in args.n:
            for label, p in truths(k).items():
                got = {m: ([], [], [], [], []) for m in SCALARS}
                agree = True
                for _ in range(args.blocks):
                    cal = Calibration.build(None, np.stack([rng.multinomial(args.cal, c[i]) for i in range(k)]), k)
                    counts = rng.multinomial(n, p @ c, size=args.per_block)
                    found = metric_intervals(counts, cal, 0.05, names=[f"{m}_corrected" for m in SCALARS])
                    rows = _analyse(counts.astype(np.float64), cal, 0.05)
                    old = rg.metric_ranges(rows.boxes["corrected"], {m: ROW_METRICS[m] for m in SCALARS})
                    rejects = np.array([t.p_value < 0.05 for t in _tests(counts, cal, rows)["uniform_corrected"]])
                    for m in SCALARS:
                        value, lo, hi = found[f"{m}_corrected"]
                        for store, v in zip(got[m], (value, lo, hi, *old[m])):
                            store.extend(v)
                        agree &= bool(np.array_equal(rejects, lo > 0))
                for m in SCALARS:
                    value, lo, hi, old_lo, old_hi = (np.array(v) for v in got[m])
                    true = float(ROW_METRICS[m](p[None])[0])
                    spread = float(np.subtract(*np.quantile(value, [0.975, 0.025])))

                    def cov(a, b):
                        return np.mean((a <= true + 1e-12) & (true - 1e-12 <= b))

                    flat = label == "uniform" or spread == 0
                    ratio = "-" if flat else f"{np.mean(hi - lo) / spread:.2f}"
                    previous = "-" if flat else f"{np.mean(old_hi - old_lo) / spread:.2f}"
                    print(f"| {k} | {n} | {label} | {m} | {cov(lo, hi):.3f} | {ratio} | {cov(old_lo, old_hi):.3f} | "
                          f"{previous} | {'yes' if agree else 'NO'} |", flush=True)
    reps = args.blocks * args.per_block
    print(f"\n{reps} replicates per row ({args.blocks} calibration sets of {args.cal} per group), seed {args.seed}, "
          f"{time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
