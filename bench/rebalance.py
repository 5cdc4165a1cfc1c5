"""Cost of `rebalance`'s latent exploration: generator calls per accepted latent, BFS versus rejection sampling.

Both modes run on the same base generator with the same auxiliary classifier and settings in one process,
per group (summed over conditions on a conditional task); prints each mode's calls per accepted latent and
calls to fill the group, and the ratio rejection / BFS (above 1: BFS is cheaper). Not a test: the figures
depend on the base. The auxiliary classifier is taken from a rebalance run folder (--run) or trained here on
the task's training split (seconds on CPU).

    python bench/rebalance.py --base CKPT [--task T] [--run RUNDIR] [--per-group 50] [--threshold 0.9]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from baselines.rebalance import RebalanceConfig
from baselines.rebalance_aux import load_aux, train_aux
from baselines.rebalance_explore import ExploreConfig, explore
from baselines.rebalance_phases import check_base, load_base_generator
from fairbench import data
from fairbench.devices import resolve_device
from fairbench.errors import FairbenchError
from fairbench.plugins import load_plugins
from fairbench.task_registry import get_task


def aux_classifier(task, run: Path | None, aux_steps: int, seed: int, device):
    if run is not None:
        folder = run / "phases"
        key = json.loads((folder / "aux.json").read_text())["key"]
        net, card = load_aux(folder, key, task.image_shape[0], task.n_groups, key["width"])
        return net.to(device), card.balanced_accuracy
    cfg = RebalanceConfig()
    split = data.load_split(task, "train")
    net, acc, _, _ = train_aux(split, task.n_groups, cfg.aux_width, aux_steps, cfg.aux_batch_size, cfg.aux_lr,
                               seed, device)
    return net, acc


def per_group(explored, n_groups: int) -> list[tuple[int, int]]:
    """(generator calls, accepted latents) per group, summed over conditions."""
    out = []
    for g in range(n_groups):
        logs = [x for x in explored.logs if x.group == g]
        out.append((sum(x.generator_calls for x in logs), sum(x.accepted for x in logs)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--task", default=None, help="task id or YAML (default: the base's)")
    parser.add_argument("--run", type=Path, default=None, help="a rebalance run folder whose aux classifier to use")
    parser.add_argument("--per-group", type=int, default=50)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--max-calls", type=int, default=20_000)
    parser.add_argument("--aux-steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    load_plugins()
    device = resolve_device(args.device)
    ckpt, base = load_base_generator(args.base, device)
    task = get_task(args.task or ckpt.task)
    check_base(task, args.base)
    aux, accuracy = aux_classifier(task, args.run, args.aux_steps, args.seed, device)
    aux = aux.eval().requires_grad_(False)

    def classify(images):
        return torch.softmax(aux(images), dim=1)

    conditions = task.num_classes if task.conditional else 0
    print(f"{task.id}: base {args.base} ({ckpt.method}), aux balanced accuracy {accuracy:.3f}, "
          f"{args.per_group} latents per group{' per condition' if conditions else ''}, threshold {args.threshold}")
    results = {}
    for mode in ("bfs", "rejection"):
        cfg = ExploreConfig(mode=mode, per_group=args.per_group, threshold=args.threshold, sigma=args.sigma,
                            max_calls=args.max_calls)
        start = time.perf_counter()
        try:
            explored = explore(base, classify, base.latent_dim, task.n_groups, conditions, cfg,
                               torch.Generator().manual_seed(args.seed), list(task.groups.names), device)
        except FairbenchError as exc:
            print(f"{mode}: {exc}")
            results[mode] = None
            continue
        results[mode] = per_group(explored, task.n_groups)
        print(f"{mode}: {time.perf_counter() - start:.1f} s")
    fill = args.per_group * max(1, conditions)
    print(f"{'group':<12}{'mode':<11}{'calls':>9}{'accepted':>10}{'calls/accepted':>16}{'calls/kept':>12}")
    for g, name in enumerate(task.groups.names):
        for mode, rows in results.items():
            if rows is None:
                print(f"{name:<12}{mode:<11}{'collapsed (max_calls reached)':>58}")
                continue
            calls, accepted = rows[g]
            print(f"{name:<12}{mode:<11}{calls:>9}{accepted:>10}{calls / max(1, accepted):>16.2f}{calls / fill:>12.2f}")
        if all(results.get(m) for m in ("bfs", "rejection")):
            ratio = results["rejection"][g][0] / results["bfs"][g][0]
            print(f"{name:<12}ratio rejection/bfs generator calls to fill the group: {ratio:.2f}x")


if __name__ == "__main__":
    main()
