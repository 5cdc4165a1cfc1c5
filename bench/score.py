"""End-to-end scoring cost: sample, judge, fairness metrics with intervals, and the FID family + KID on the
task's domain network, for N samples.

Each measurement runs in its own process, so its peak resident memory is its own. Reports, for
mnist-bicolor on CPU: 10,000 samples with a cold reference-statistics cache, the same warm (targets: under
30 s warm on 2 cores, peak under 2 GB), and 50,000 samples warm (memory should stay flat as N grows).
Uses an untrained generator: cost does not depend on what the weights are.

    python bench/score.py [--task mnist-bicolor] [--samples 10000 50000] [--device cpu]
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


def worker(task_id: str, samples: int, device: str) -> None:
    import torch

    from fairbench.checkpoint import GeneratorCheckpoint, save_checkpoint
    from fairbench.methods import METHODS
    from fairbench.plugins import load_plugins
    from fairbench.scoring import ScoreOptions, score_checkpoint
    from fairbench.tasks import get_task
    from fairbench.training import parse_config

    load_plugins()
    task = get_task(task_id)
    torch.manual_seed(0)
    trainable = METHODS.get("vanilla").create(task, parse_config("vanilla", {}), torch.device("cpu"))
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
    }))


def run(task: str, samples: int, device: str, home: str) -> dict:
    env = {**os.environ, "FAIRBENCH_HOME": home}
    cmd = [sys.executable, __file__, "--worker", "--task", task, "--samples", str(samples), "--device", device]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-bicolor")
    parser.add_argument("--samples", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.task, args.samples[0], args.device)
        return
    with tempfile.TemporaryDirectory() as home:  # a fresh fairbench home: the first run is cold
        rows = [("cold", run(args.task, args.samples[0], args.device, home))]
        rows += [("warm", run(args.task, n, args.device, home)) for n in args.samples]
    print(f"task {args.task} on {args.device}; fairness + FID family + KID on {rows[0][1]['feature_network']}")
    for cache, r in rows:
        print(f"  {r['samples']:>6} samples, {cache} cache: {r['seconds']:6.2f} s, peak RSS {r['peak_rss_mb']:6.0f} MB "
              f"(process before scoring {r['rss_before_mb']:.0f} MB), {r['metrics']} metrics, skipped {r['skipped']}")
    warm = next(r for c, r in rows if c == "warm" and r["samples"] == args.samples[0])
    print(f"warm {args.samples[0]}: time ratio to the 30 s target {warm['seconds'] / 30:.3f}; "
          f"memory ratio to the 2 GB target {warm['peak_rss_mb'] / 2048:.3f}")
    if len(args.samples) > 1:
        big = rows[-1][1]
        print(f"memory growth {args.samples[0]} -> {big['samples']} samples: x{big['peak_rss_mb'] / warm['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
