"""End-to-end scoring cost: sample, judge and compute every fairness metric with intervals for N samples.

Prints wall seconds and peak resident memory of the scoring itself (targets for 10,000 mnist-bicolor
samples on 2 CPU cores: under 30 s and under 2 GB). Uses an untrained generator: cost does not depend on
what the weights are.

    python bench/score.py [--task mnist-bicolor] [--samples 10000] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from fairbench.checkpoint import GeneratorCheckpoint, save_checkpoint
from fairbench.methods import METHODS
from fairbench.plugins import load_plugins
from fairbench.scoring import ScoreOptions, score_checkpoint
from fairbench.tasks import get_task
from fairbench.training import parse_config


def peak_rss_mb() -> float:
    """ru_maxrss is in KiB on Linux and bytes on macOS."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-bicolor")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    load_plugins()
    task = get_task(args.task)
    torch.manual_seed(0)
    trainable = METHODS.get("vanilla").create(task, parse_config("vanilla", {}), torch.device("cpu"))
    gen = trainable.modules["generator"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        save_checkpoint(
            path,
            GeneratorCheckpoint(
                arch=trainable.arch, arch_kwargs=trainable.arch_kwargs, state_dict=gen.state_dict(), task=task.id,
                task_hash=task.task_hash, method="vanilla", config={}, seed=0,
            ),
        )
        before = peak_rss_mb()
        start = time.perf_counter()
        result = score_checkpoint(path, ScoreOptions(n_samples=args.samples, batch_size=args.batch_size, device=args.device))
        elapsed = time.perf_counter() - start
    peak = peak_rss_mb()
    print(f"task {task.id}: scored {result.n_samples} samples on {result.device} in {elapsed:.2f} s "
          f"({len(result.metrics)} metrics with {task.bootstrap.n_resamples} bootstrap resamples)")
    print(f"peak RSS {peak:.0f} MB (process before scoring: {before:.0f} MB; includes torch itself)")
    print(f"time ratio to the 30 s target {elapsed / 30:.3f}; memory ratio to the 2 GB target {peak / 2048:.3f}")


if __name__ == "__main__":
    main()
