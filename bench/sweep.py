"""Sweep backends side by side: the same short jobs run sequentially, on the local process pool and on a
local Ray instance, in one run; prints each wall time and the ratios.

Each backend trains and scores the same grid (one method, one task, N seeds) into a folder of its own, so
nothing is skipped; a warm-up job first fills the caches every backend reads (reference statistics, the
page cache), untimed. `sequential` runs the jobs in this process one after another with every core; the
pool and Ray run `--workers` jobs at once with max(1, cores // workers) threads each, and pay for starting
their workers (Ray also for starting itself) inside their time, as a user would.

    python bench/sweep.py [--jobs 8] [--steps 100] [--samples 500] [--workers CORES] [--task digits-bicolor]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from fairbench.sweep import LocalPool, SerialBackend, SweepSettings, expand_grid, run_sweep, threads_per_worker
from fairbench.sweep.job import usable_cores


def timed(name: str, backend, jobs) -> float:
    quiet = Console(file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115
    started = time.perf_counter()
    outcome = run_sweep(jobs, backend, quiet)
    seconds = time.perf_counter() - started
    if not outcome.ok or any(s.status != "done" for s in outcome.states.values()):
        sys.exit(f"{name}: not every job finished: {[(s.key, s.status, s.error) for s in outcome.states.values()]}")
    print(f"{name:<11} {seconds:7.1f} s  ({seconds / len(jobs):.1f} s per job)", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--workers", type=int, default=usable_cores())
    parser.add_argument("--task", default="digits-bicolor")
    parser.add_argument("--method", default="vanilla")
    parser.add_argument("--no-ray", action="store_true", help="Skip the Ray backend (Ray not installed).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fairbench-bench-sweep-") as tmp:
        root = Path(tmp)

        def grid(folder: str, seeds: list[int]):
            settings = SweepSettings(out=root / folder, steps=args.steps, samples=args.samples, device="cpu")
            return expand_grid([args.method], [args.task], seeds, {}, settings)

        cores = usable_cores()
        print(f"{args.jobs} jobs: {args.method} on {args.task}, {args.steps} steps, {args.samples} samples scored; "
              f"{cores} cores, {args.workers} workers x {threads_per_worker(args.workers)} threads; "
              f"load average before {os.getloadavg()[0]:.1f}", flush=True)
        seeds = list(range(args.jobs))
        timed("warm-up", SerialBackend(threads_per_worker(1)), grid("warmup", [1000]))
        sequential = timed("sequential", SerialBackend(threads_per_worker(1)), grid("sequential", seeds))
        pool = timed("local pool", LocalPool(args.workers, threads_per_worker(args.workers)), grid("local", seeds))
        ray = None
        if not args.no_ray:
            from fairbench.sweep.ray_backend import RayBackend

            ray = timed("ray local", RayBackend(args.workers), grid("ray", seeds))
        print(f"load average after {os.getloadavg()[0]:.1f}")
        print(f"speed-up over sequential: local pool {sequential / pool:.2f}x"
              + (f", ray local {sequential / ray:.2f}x; ray / local pool time {ray / pool:.2f}" if ray else ""))


if __name__ == "__main__":
    main()
