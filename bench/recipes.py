"""Screen GAN recipes for mode dropping: train each for a short budget and judge the group shares as it goes.

Issue 43: every label-free reference GAN drew one background only. This trains a named recipe (a set of
`--set` overrides of the `vanilla` GAN) on a task with the harness's own training loop (so a run is
resumable and exactly what `fairbench run --method vanilla --set ...` trains), keeps a generator snapshot
every `--every` steps, and judges each snapshot's group shares on `--samples` seeded samples with the task's
pinned judge. One JSON file per run (`<run>/screen.json`, written atomically) holds the curve, the time per
step and the final shares; `--table` prints the collected runs as a Markdown table.

    python bench/recipes.py --recipe fm10 --task mnist-bicolor-imbalanced --seed 0 --steps 1500
    python bench/recipes.py --collect leaderboard/recipes [--out runs/recipes]   # keep the records as data
    python bench/recipes.py --table leaderboard/recipes                           # the findings table

Not a test: the figures are measurements (threads are capped at one per process, so two runs share 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fairbench import atomic
from fairbench.judges import load_judge
from fairbench.submission.checkpoint import build_generator, load_checkpoint
from fairbench.submission.sampling import generate
from fairbench.tasks import get_task
from fairbench.training import RunOptions, resolve_run_dir, snapshot_path, train

RECIPES: dict[str, dict] = {
    "vanilla": {},
    "mbstd4": {"minibatch_std": True},
    "mbstd16": {"minibatch_std": True, "mbstd_group": 16},
    "mbstd32": {"minibatch_std": True, "mbstd_group": 32},
    "mbstd64": {"minibatch_std": True, "mbstd_group": 64},
    "fm1": {"feature_matching": 1.0},
    "fm10": {"feature_matching": 10.0},
    "ms1": {"mode_seeking": 1.0},
    "r1": {"r1_gamma": 10.0},
    "sg2": {"minibatch_std": True, "mbstd_group": 64, "r1_gamma": 10.0, "ema_decay": 0.999},
    "fm10-mbstd64": {"feature_matching": 10.0, "minibatch_std": True, "mbstd_group": 64},
    "lr1e-4": {"lr_g": 1e-4, "lr_d": 1e-4},
}


def judged_shares(checkpoint: Path, task, judge, n_samples: int) -> list[float]:
    ckpt = load_checkpoint(checkpoint)
    model = build_generator(ckpt, checkpoint)
    images, _ = generate(model, n_samples, task.sampling.seed, task.image_shape, task.num_classes if task.conditional else 0)
    counts = np.bincount(judge.predict(images), minlength=task.n_groups)
    return (counts / counts.sum()).round(5).tolist()


def screen(recipe: str, task_id: str, seed: int, steps: int, every: int, n_samples: int, out: Path) -> dict:
    task = get_task(task_id)
    options = RunOptions(method="vanilla", task=task, seed=seed, steps=steps, out=out, snapshot_every=every,
                         checkpoint_every=every, overrides=dict(RECIPES[recipe]), name=f"vanilla-{recipe}")
    final = train(options)
    directory = resolve_run_dir(options)
    judge = load_judge(task)
    curve = [{"step": s, "shares": judged_shares(snapshot_path(directory, s), task, judge, n_samples)}
             for s in range(every, steps + 1, every) if snapshot_path(directory, s).exists()]
    ckpt = load_checkpoint(final)
    record = {
        "recipe": recipe, "overrides": RECIPES[recipe], "task": task.id, "seed": seed, "steps": steps,
        "groups": list(task.groups.names), "samples": n_samples, "curve": curve,
        "final_shares": curve[-1]["shares"] if curve else None,
        "seconds_per_step": ckpt.train["wall_time_s"] / max(1, ckpt.train["steps"]),
        "checkpoint": str(final),
    }
    atomic.write_text(directory / "screen.json", json.dumps(record, indent=1))
    return record


def collect(out: Path, dest: Path) -> int:
    """Copy every finished screen record to DEST/<task>/<recipe>/seed<S>-<steps>.json (atomic writes)."""
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/*/seed*/screen.json"))]
    for r in records:
        slim = {k: v for k, v in r.items() if k != "checkpoint"}  # a path on the machine that trained it
        atomic.write_text(dest / r["task"] / r["recipe"] / f"seed{r['seed']}-{r['steps']}.json", json.dumps(slim, indent=1))
    return len(records)


def table(folder: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*/*/seed*.json"))]
    lines = ["| task | recipe | seed | steps | minority share by snapshot (%) | final min share (%) | s/step |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["task"], r["recipe"], r["seed"])):
        curve = " ".join(f"{100 * min(p['shares']):.1f}" for p in r["curve"])
        lines.append(f"| {r['task']} | {r['recipe']} | {r['seed']} | {r['steps']} | {curve} | "
                     f"{100 * min(r['final_shares']):.1f} | {r['seconds_per_step']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES))
    parser.add_argument("--task", default="mnist-bicolor-imbalanced")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collect", type=Path, metavar="DEST", help="copy finished records to DEST and exit")
    parser.add_argument("--table", type=Path, metavar="FOLDER", help="print the collected records and exit")
    args = parser.parse_args(argv)
    if args.collect:
        print(f"{collect(args.out, args.collect)} records in {args.collect}")
        return 0
    if args.table:
        print(table(args.table))
        return 0
    if args.recipe is None:
        parser.error("--recipe is required unless --table")
    torch.set_num_threads(args.threads)
    record = screen(args.recipe, args.task, args.seed, args.steps, args.every, args.samples, args.out)
    curve = " ".join(f"{s['step']}:{100 * min(s['shares']):.1f}%" for s in record["curve"])
    print(f"{args.recipe} {args.task} seed {args.seed}: minority {curve}; {record['seconds_per_step']:.3f} s/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
