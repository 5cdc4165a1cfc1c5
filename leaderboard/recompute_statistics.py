"""Recompute the fairness statistics of committed results from what they record, after a change of method.

    python leaderboard/recompute_statistics.py [RESULTS_DIR ...]   (default: leaderboard/results)

Each result keeps its judged group counts, per-condition counts and the judge's calibration counts, so its
intervals, tests and shares are computed again with today's statistics (`fairbench.scoring.recompute_fairness`)
without sampling anything; point values do not change, and neither does anything outside the fairness figures.
Files are rewritten atomically. Prints, per task, how many results changed, how many tests of fairness
changed their verdict at 0.05, and the median ratio of new to old kl_uniform interval widths; a result that
lacks what is needed is named and left as it is.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from fairbench import atomic
from fairbench.errors import FairbenchError
from fairbench.scoring import recompute_fairness
from fairbench.task_registry import get_task


def _width(result: dict, name: str) -> float | None:
    metric = result["metrics"].get(name)
    return None if metric is None else metric["ci95"][1] - metric["ci95"][0]


def main(argv: list[str]) -> int:
    folders = [Path(a) for a in argv] or [Path(__file__).resolve().parent / "results"]
    changed, flipped, ratios, missing = defaultdict(int), defaultdict(int), defaultdict(list), []
    for folder in folders:
        for path in sorted(folder.rglob("*.json")):
            old = json.loads(path.read_text(encoding="utf-8"))
            if "group_counts" not in old or "metrics" not in old:
                continue  # not a result (a sidecar or an index)
            try:
                new = recompute_fairness(old, get_task(old["task"]))
            except (FairbenchError, KeyError) as exc:
                missing.append(f"{path}: {exc}")
                continue
            task = old["task"]
            if new != old:
                changed[task] += 1
                atomic.write_text(path, json.dumps(new, indent=2, allow_nan=False) + "\n")
            before, after = (r.get("fairness_tests", {}).get("uniform", {}).get("p_value") for r in (old, new))
            if before is not None and after is not None and (before < 0.05) != (after < 0.05):
                flipped[task] += 1
            w_old, w_new = _width(old, "kl_uniform"), _width(new, "kl_uniform")
            if w_old and w_new is not None:
                ratios[task].append(w_new / w_old)
    for task in sorted(set(changed) | set(ratios)):
        median = statistics.median(ratios[task]) if ratios[task] else float("nan")
        print(f"{task}: {changed[task]} results recomputed, {flipped[task]} uniformity verdicts changed at 0.05, "
              f"kl_uniform interval width new/old median {median:.2f}")
    for line in missing:
        print(f"not recomputed: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
