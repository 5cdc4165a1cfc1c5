"""Cost of per-group PRDC and the Vendi score beside the FID part, measured in the same run.

10,000 generated samples of 128-d features (a domain network's size) against a 10,000-image reference, as
`scoring.quality` computes them, in three shapes:

- "2 groups": mnist-bicolor's shape, 5,000 + 5,000 a side, the reference groups' k-NN radii computed (a
  cold cache) and then read from the cache (warm: every run after the first against that reference);
- "1 group": the whole 10,000 against 10,000 in one comparison, PRDC's largest case (k-NN over all of it).

The FID part is fid and fid_balanced (one bootstrap of 100 resamples), fid_intra per group (100 each) and KID
(100 subsets of 1,000), against reference statistics already cached, on the same features. Each part runs in
a process of its own; its memory is the peak of what it allocates (tracemalloc, which numpy reports every
array to) above what was there before it started, and the process's peak resident size is printed beside.
Targets: diversity under 5 s and under 1 GB on 2 cores.

    python bench/diversity.py [--threads 2] [--samples 10000] [--dim 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def features(n: int, dim: int, groups: int):
    """Generated and reference features with a group structure (each group its own mean), both sides' groups."""
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=2.0, size=(groups, dim))
    ref_groups = np.repeat(np.arange(groups), n // groups)
    predicted = rng.permutation(np.repeat(np.arange(groups), n // groups))
    reference = rng.normal(size=(n, dim)) + centres[ref_groups]
    generated = rng.normal(scale=1.1, size=(n, dim)) + centres[predicted] + 0.1
    return generated, predicted, reference, ref_groups


def worker(part: str, n: int, dim: int, groups: int, repeats: int) -> None:
    import numpy as np

    from fairbench.metrics import frechet
    from fairbench.metrics.prdc import knn_square_radii
    from fairbench.scoring.quality import PRDC_K, QualityReport, prdc_per_group, vendi_whole_and_per_group

    generated, predicted, reference, ref_groups = features(n, dim, groups)
    names = [f"g{g}" for g in range(groups)]
    cached = {name: knn_square_radii(reference[ref_groups == g], PRDC_K) for g, name in enumerate(names)}
    stats = [frechet.feature_stats(reference)] * 2 + [frechet.feature_stats(reference[ref_groups == g]) for g in range(groups)]

    def diversity(warm: bool) -> None:
        report = QualityReport()
        radii_of = (lambda name, rows: cached[name]) if warm else None
        prdc_per_group(generated, predicted, names, reference, ref_groups, report, 0, radii_of)
        vendi_whole_and_per_group(generated, predicted, names, report)
        assert not report.skipped, report.skipped

    def fid_part() -> None:
        frechet.fid_with_intervals(generated, stats[:2], 100, 0)
        for g in range(groups):
            frechet.fid_with_interval(generated[predicted == g], stats[2 + g], 100, 0)
        frechet.kid(generated, reference, None, 100, 0)

    run = {"cold": lambda: diversity(False), "warm": lambda: diversity(True), "fid": fid_part}[part]
    seconds = []
    tracemalloc.start()
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    held, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"seconds": min(seconds), "peak_above_mb": (peak - held) / 2**20, "rss_mb": peak_rss_mb()}))


def measure(part: str, args: argparse.Namespace, groups: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OPENBLAS_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", part, "--samples", str(args.samples), "--dim", str(args.dim),
           "--groups", str(groups), "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many, each part")
    parser.add_argument("--groups", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.samples, args.dim, args.groups, args.repeats)
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the cores slows every figure alike
    print(f"{args.samples} generated vs {args.samples} reference, {args.dim}-d features, {args.threads} BLAS threads, "
          f"best of {args.repeats}, {os.cpu_count()} cores at load {load}; memory: peak allocated above what was there")
    for groups in (2, 1):
        fid = measure("fid", args, groups)
        for cache in ("cold", "warm"):
            div = measure(cache, args, groups)
            print(f"  {groups} group{'s' if groups > 1 else ''}, radii {cache}: PRDC + Vendi {div['seconds']:5.2f} s, "
                  f"{div['peak_above_mb']:5.0f} MB | FID part {fid['seconds']:5.2f} s, {fid['peak_above_mb']:5.0f} MB "
                  f"| time ratio {div['seconds'] / fid['seconds']:.2f}, memory ratio "
                  f"{div['peak_above_mb'] / max(fid['peak_above_mb'], 1.0):.2f}; targets: "
                  f"{div['seconds'] / 5:.2f} of 5 s, {div['peak_above_mb'] / 1024:.2f} of 1 GB "
                  f"(process peak RSS {div['rss_mb']:.0f} MB, FID's {fid['rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
