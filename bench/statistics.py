"""Coverage and width of the fairness intervals, measured by seeded simulation, beside the previous method.

For 2, 5 and 10 groups, N from 500 to 50,000 and three truths (uniform, one group at 0 with the rest
unequal, a steep geometric skew), it draws `--reps` replicate runs, computes every observed scalar metric's
95% interval with `fairbench.metrics.fairness.metric_intervals` and, for comparison, the previous interval
(the metric's range over the simultaneous Clopper-Pearson region), and prints one Markdown table: coverage,
and mean width over the estimator's own central 95% spread (the 2.5-97.5% range of the metric's estimates),
the width criterion being <= 1.3 away from uniform. Also the level of the uniformity test at the uniform
truth. The docs' statistics table is this script's output.

    python bench/statistics.py [--reps 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fairbench.metrics import regions as rg
from fairbench.metrics.fairness import metric_intervals
from fairbench.metrics.row_metrics import ROW_METRICS

SCALARS = ("kl_uniform", "fd_l1", "fd_l2")


def truths(k: int) -> dict[str, np.ndarray]:
    geometric = np.geomspace(1, 0.02, k)
    rest = np.linspace(1.0, 2.0, k - 1)
    return {"uniform": np.full(k, 1 / k), "one at 0": np.r_[0.0, rest / rest.sum()],
            "geometric": geometric / geometric.sum()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print("| groups | N | truth | metric | coverage | width / spread | previous coverage | previous width / spread |")
    print("|---:|---:|---|---|---:|---:|---:|---:|")
    started = time.perf_counter()
    for k in (2, 5, 10):
        for n in (500, 2000, 50_000):
            for label, p in truths(k).items():
                if k == 2 and label == "one at 0":
                    continue  # a vertex: the estimate never varies
                counts = rng.multinomial(n, p, size=args.reps)
                found = metric_intervals(counts, None, 0.05, names=SCALARS)
                previous = rg.metric_ranges(rg.clopper_pearson_box(counts, 0.05),
                                            {m: ROW_METRICS[m] for m in SCALARS})
                for metric in SCALARS:
                    true = float(ROW_METRICS[metric](p[None])[0])
                    value, lo, hi = found[metric]
                    old_lo, old_hi = previous[metric]
                    spread = float(np.subtract(*np.quantile(value, [0.975, 0.025])))

                    def cov(a, b):
                        return np.mean((a <= true + 1e-12) & (true - 1e-12 <= b))

                    ratio = "-" if label == "uniform" or spread == 0 else f"{np.mean(hi - lo) / spread:.2f}"
                    old = "-" if label == "uniform" or spread == 0 else f"{np.mean(old_hi - old_lo) / spread:.2f}"
                    print(f"| {k} | {n} | {label} | {metric} | {cov(lo, hi):.3f} | {ratio} | {cov(old_lo, old_hi):.3f} | {old} |",
                          flush=True)
    print(f"\n{args.reps} replicates per row, seed {args.seed}, {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
