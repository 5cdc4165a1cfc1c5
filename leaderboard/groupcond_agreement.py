"""How recognisably a `groupcond` generator draws each group: the share of the task's seeded samples that the
task's judge assigns to the group each was drawn for (`baselines.groupcond.asked_group_agreement`). The
CIFAR-10-LT recognisability reading in docs/findings.md comes from here.

    FAIRBENCH_DATA=/path/to/data .venv/bin/python leaderboard/groupcond_agreement.py CHECKPOINT... [-n 10000]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from baselines.groupcond import group_agreement
from fairbench.errors import FairbenchError
from fairbench.judges import load_judge
from fairbench.plugins import load_plugins
from fairbench.submission.checkpoint import load_checkpoint
from fairbench.submission.samples import samples_from_checkpoint
from fairbench.task_registry import get_task


def report(path: str, n_samples: int | None) -> str:
    ckpt = load_checkpoint(path)
    if ckpt.method != "groupcond":
        raise FairbenchError(f"{path}: a {ckpt.method!r} checkpoint; only groupcond says which group it drew")
    task = get_task(ckpt.task)
    n = n_samples or task.sampling.n_samples
    agreement = group_agreement(samples_from_checkpoint(path, task, n, judge=load_judge(task), checkpoint=ckpt))
    per_group = ", ".join(f"{name} {100 * a:.1f}%" for name, a in zip(task.groups.names, agreement))
    mean = 100 * np.nanmean(agreement)
    return f"{path}: judge agrees on {mean:.1f}% on average over groups ({n} samples): {per_group}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("-n", "--samples", type=int, default=None, help="samples (default: the task's)")
    args = parser.parse_args()
    load_plugins()
    try:
        for path in args.checkpoints:
            print(report(path, args.samples))
    except FairbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
