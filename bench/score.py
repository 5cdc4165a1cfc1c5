"""Scoring cost, two figures in one run.

1. The fairness statistics alone (profile intervals, regions, tests, debiased estimates: today's
   `fairness_report` + `conditional_fairness_report`) against the method they replaced (every metric's
   range over the simultaneous regions, overall and per condition, beside Pearson tests; rebuilt here from
   today's region kernels), on the same judged labels: 10,000 labels over 10 conditions x 2 groups
   (mnist-bicolor's shape) and over 10 groups unconditional, each with a perfect and an imperfect judge.
2. End-to-end: sample, judge, fairness, and the FID family + KID on the task's domain network, for N samples.
   Each measurement runs in its own process, so its peak resident memory is its own: 10,000 samples with a
   cold reference-statistics cache, the same warm (targets: at most 5 s warm on 2 cores, peak under 2 GB),
   and 50,000 samples warm (memory should stay flat as N grows). Uses an untrained generator of the
   method's default architecture: cost does not depend on what the weights are. The same worker then times
   the unavoidable work alone (sampling, judging, domain features), the reference that makes the ratio
   comparable across machines: the 5 s target was set on one 2-core machine, and hosts differ by 1.5x.

    python bench/score.py [--task mnist-bicolor] [--samples 10000 50000] [--device cpu] [--architecture A]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """ru_maxrss is in KiB on Linux and bytes on macOS."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def worker(task_id: str, samples: int, device: str, architecture: str | None) -> None:
    import torch

    from fairbench.submission.checkpoint import GeneratorCheckpoint, save_checkpoint
    from fairbench.methods import METHODS
    from fairbench.plugins import load_plugins
    from fairbench.scoring import ScoreOptions, score_checkpoint
    from fairbench.task_registry import get_task
    from fairbench.training import parse_config

    load_plugins()
    task = get_task(task_id)
    torch.manual_seed(0)
    trainable = METHODS.get("vanilla").create(task, parse_config("vanilla", {} if architecture is None else {"architecture": architecture}), torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        save_checkpoint(
            path,
            GeneratorCheckpoint(
                arch=trainable.arch, arch_kwargs=trainable.arch_kwargs,
                state_dict=trainable.modules["generator"].state_dict(), task=task.id, task_hash=task.task_hash,
                data_hash=task.data_hash, method="vanilla", config={}, seed=0,
            ),
        )
        before = peak_rss_mb()
        start = time.perf_counter()
        result = score_checkpoint(path, ScoreOptions(n_samples=samples, device=device))
        elapsed = time.perf_counter() - start
    print(json.dumps({
        "samples": result.n_samples, "seconds": elapsed, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before,
        "metrics": len(result.metrics), "skipped": sorted(result.skipped),
        "feature_network": (result.feature_network or {}).get("id"),
        "bare_seconds": bare_work_seconds(task, trainable.modules["generator"], samples, device),
    }))


def bare_work_seconds(task, generator, samples: int, device: str) -> dict[str, float]:
    """The same-run reference: the work a score cannot avoid (sample, judge, domain features of the samples),
    timed alone with no statistics, so `score / bare` compares across machines where 5 s does not."""
    from fairbench.features import load_feature_network
    from fairbench.judges import load_judge
    from fairbench.submission.samples import judge_groups, samples_from_generator

    judge = load_judge(task, None)
    net = load_feature_network(task.quality.feature_network.id, task.quality.feature_network.sha256)
    timings = {}
    start = time.perf_counter()
    images = samples_from_generator(generator.to(device), task, samples, device=device).images
    timings["sample"] = time.perf_counter() - start
    start = time.perf_counter()
    judge_groups(judge, images, device)
    timings["judge"] = time.perf_counter() - start
    start = time.perf_counter()
    net.extract(images, 500, device)
    timings["features"] = time.perf_counter() - start
    return timings


def _previous_regions(predicted, conditions, k, n_cond, confusion, counts):
    """What fairbench computed before the profile intervals: each metric's range over the simultaneous region
    (exact Clopper-Pearson box observed, score box corrected) for the whole run and every condition, the
    Bonferroni regions for the summaries, and Pearson chi-square tests."""
    import numpy as np
    import scipy.stats

    from fairbench.metrics import regions
    from fairbench.metrics.row_metrics import ROW_METRICS

    table = np.bincount(conditions * k + predicted, minlength=n_cond * k).reshape(n_cond, k).astype(np.float64)
    sizes = counts.sum(axis=1)
    for rows, alpha in ((table.sum(axis=0)[None], 0.05), (table, 0.05), (table, 0.05 / n_cond)):
        n = rows.sum(axis=1)
        for box in (regions.clopper_pearson_box(rows, alpha),
                    regions.score_box(rows / n[:, None], n, confusion, sizes, alpha)):
            regions.metric_ranges(box, ROW_METRICS)
        expected = n[:, None] / k
        scipy.stats.chi2.sf((np.square(rows - expected) / expected).sum(axis=1), k - 1)


def statistics_timing(repeats: int = 3) -> list[tuple[str, float, float]]:
    """(scenario, new seconds, old seconds), each the best of `repeats` on the same labels."""
    import numpy as np

    from fairbench.metrics.fairness import conditional_fairness_report, fairness_report

    rng = np.random.default_rng(0)
    rows = []
    for k, n_cond in ((2, 10), (10, 1)):
        conditions = np.repeat(np.arange(n_cond), 10_000 // n_cond)
        true = rng.choice(k, size=len(conditions), p=np.linspace(1.0, 2.0, k) / np.linspace(1.0, 2.0, k).sum())
        for judge in ("perfect", "imperfect"):
            if judge == "perfect":
                confusion, counts, predicted = np.eye(k), np.diag(np.full(k, 1000)), true
            else:
                confusion = np.full((k, k), 0.2 / (k - 1)) + np.eye(k) * (0.8 - 0.2 / (k - 1))
                counts = np.rint(confusion * 1000).astype(np.int64)
                predicted = np.array([rng.choice(k, p=confusion[t]) for t in true])

            def new() -> None:
                fairness_report(predicted, k, confusion, calibration_counts=counts)
                if n_cond > 1:
                    conditional_fairness_report(predicted, conditions, k, n_cond, confusion, calibration_counts=counts)

            def old() -> None:
                _previous_regions(predicted, conditions, k, n_cond, confusion, counts)

            timings = []
            for fn in (new, old):
                best = float("inf")
                for _ in range(repeats):
                    start = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - start)
                timings.append(best)
            rows.append((f"{k} groups x {n_cond} condition{'s' if n_cond > 1 else ''}, {judge} judge", *timings))
    return rows


def run(task: str, samples: int, device: str, home: str, architecture: str | None = None) -> dict:
    env = {**os.environ, "FAIRBENCH_HOME": home}
    cmd = [sys.executable, __file__, "--worker", "--task", task, "--samples", str(samples), "--device", device]
    cmd += [] if architecture is None else ["--architecture", architecture]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-bicolor")
    parser.add_argument("--samples", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--architecture", default=None, help="generator architecture (default: vanilla's)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.task, args.samples[0], args.device, args.architecture)
        return
    print("fairness statistics on 10,000 judged labels (best of 3): profile intervals vs the previous regions")
    for scenario, new_s, old_s in statistics_timing():
        print(f"  {scenario:<42} new {new_s * 1000:7.1f} ms, old {old_s * 1000:7.1f} ms, ratio {new_s / old_s:.3f}")
    with tempfile.TemporaryDirectory() as home:  # a fresh fairbench home: the first run is cold
        rows = [("cold", run(args.task, args.samples[0], args.device, home, args.architecture))]
        rows += [("warm", run(args.task, n, args.device, home, args.architecture)) for n in args.samples]
    print(f"task {args.task} on {args.device}; fairness + FID family + KID on {rows[0][1]['feature_network']}")
    for cache, r in rows:
        print(f"  {r['samples']:>6} samples, {cache} cache: {r['seconds']:6.2f} s, peak RSS {r['peak_rss_mb']:6.0f} MB "
              f"(process before scoring {r['rss_before_mb']:.0f} MB), {r['metrics']} metrics, skipped {r['skipped']}")
    warm = next(r for c, r in rows if c == "warm" and r["samples"] == args.samples[0])
    print(f"warm {args.samples[0]}: time ratio to the 5 s target {warm['seconds'] / 5:.3f}; "
          f"memory ratio to the 2 GB target {warm['peak_rss_mb'] / 2048:.3f}")
    bare = warm["bare_seconds"]
    print(f"same-run reference, the unavoidable work alone (sample {bare['sample']:.2f} s, judge {bare['judge']:.2f} s, "
          f"features {bare['features']:.2f} s): whole score / bare work {warm['seconds'] / sum(bare.values()):.2f}")
    if len(args.samples) > 1:
        big = rows[-1][1]
        print(f"memory growth {args.samples[0]} -> {big['samples']} samples: x{big['peak_rss_mb'] / warm['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
