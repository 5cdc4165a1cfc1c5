"""The phases `rebalance` runs before its training loop, each resumable from its files in `<run>/phases/`.

1. base: the given `--base` checkpoint, or the task's `vanilla` trained (resumably) in `phases/base/`.
2. aux: the method's own attribute classifier (baselines.rebalance_aux), trained on the training split only.
3. explore: a balanced set of the base generator's latents, one file per condition (`explore/cond<c>.pt`,
   `explore/all.pt` for an unconditional task), with the generated images; `explore.json` sums up the cost.
Every file records the inputs it was made from (its key); a rerun with other inputs is refused with one line
instead of mixing two runs' phases. Interrupted phases restart at the last finished file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from baselines.rebalance_explore import Explored, ExploreConfig, GroupLog, concat, explore_condition
from fairbench import atomic
from fairbench.submission.checkpoint import GeneratorCheckpoint, build_generator, load_checkpoint, safe_torch_load, save_torch
from fairbench.errors import FairbenchError
from fairbench.submission.sampling import to_uint8
from fairbench.task_registry import TaskSpec

Log = Callable[[str], None]


def check_base(task: TaskSpec, path: Path) -> GeneratorCheckpoint:
    """A base generator must be a fairbench checkpoint of this task, trained on the data it defines now."""
    ckpt = load_checkpoint(path)
    if ckpt.task != task.id:
        raise FairbenchError(f"--base {path}: a generator for task {ckpt.task!r}, not {task.id!r}")
    same = ckpt.data_hash == task.data_hash if ckpt.data_hash else ckpt.task_hash == task.task_hash
    if not same:
        raise FairbenchError(f"--base {path}: trained on another definition of task {task.id} (data hash differs)")
    return ckpt


def resolve_base(
    task: TaskSpec, folder: Path, given: Path | None, train_vanilla: Callable[[Path], Path], log: Log
) -> tuple[Path, dict]:
    """(base checkpoint path, its record {source, path, sha256}); the record is kept in `base.json`."""
    record_path = folder / "base.json"
    old = json.loads(record_path.read_text()) if record_path.is_file() else None
    if given is not None:
        check_base(task, given)
        record = {"source": "given", "path": str(given), "sha256": atomic.sha256_file(given)}
        if old is not None and (old["source"], old["sha256"]) != ("given", record["sha256"]):
            raise FairbenchError(
                f"{record_path}: this run folder was prepared from another base ({old['source']}, sha256 "
                f"{old['sha256'][:12]}…); choose another --out or remove {folder.parent}"
            )
        if old is None:
            atomic.write_text(record_path, json.dumps(record, indent=2) + "\n")
        return given, old or record
    if old is not None and old["source"] != "vanilla":
        raise FairbenchError(
            f"{record_path}: this run folder was prepared from --base {old['path']}; pass the same --base, "
            f"or choose another --out"
        )
    path = train_vanilla(folder / "base")  # resumes on its own; instant when finished
    record = {"source": "vanilla", "path": str(path.relative_to(folder.parent)), "sha256": atomic.sha256_file(path)}
    if old is not None and old["sha256"] != record["sha256"]:
        raise FairbenchError(f"{record_path}: the base checkpoint changed since this run began; remove {folder.parent}")
    if old is None:
        atomic.write_text(record_path, json.dumps(record, indent=2) + "\n")
        log(f"base: vanilla trained, {path}")
    return path, record


def load_base_generator(path: Path, device: torch.device) -> tuple[GeneratorCheckpoint, torch.nn.Module]:
    ckpt = load_checkpoint(path)
    return ckpt, build_generator(ckpt, path, device).eval()


def explore_phase(
    folder: Path,
    key: dict,
    base: torch.nn.Module,
    aux: torch.nn.Module,
    task: TaskSpec,
    config: ExploreConfig,
    seed: int,
    device: torch.device,
    log: Log,
) -> tuple[Explored, torch.Tensor]:
    """(balanced latents with their logs, their uint8 images), one saved file per condition."""
    conditions: list[int | None] = list(range(task.num_classes)) if task.conditional else [None]

    def generate(z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return base(z, y)

    def classify(images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(aux(images), dim=1)

    parts, images = [], []
    for cond in conditions:
        path = folder / ("all.pt" if cond is None else f"cond{cond}.pt")
        part = _load_part(path, key)
        if part is None:
            rng = torch.Generator().manual_seed((seed + 1) * 1_000_003 + (0 if cond is None else cond + 1))
            explored = explore_condition(
                generate, classify, base.latent_dim, task.n_groups, cond, config, rng, list(task.groups.names), device
            )
            made = _images(base, explored, config.batch_size, device)
            _save_part(path, key, explored, made)
            part = (explored, made)
            where = "" if cond is None else f" condition {task.class_names[cond]}:"
            log(f"explore:{where} " + ", ".join(
                f"{task.groups.names[g.group]} {g.generator_calls} calls" for g in explored.logs))
        parts.append(part[0])
        images.append(part[1])
    return concat(parts), torch.cat(images)


def _images(base, explored: Explored, batch_size: int, device) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(explored.latents), batch_size):
            z = explored.latents[i : i + batch_size].to(device)
            y = None if explored.labels is None else explored.labels[i : i + batch_size].to(device)
            out.append(to_uint8(base(z, y).float()).cpu())
    return torch.cat(out)


def _save_part(path: Path, key: dict, explored: Explored, images: torch.Tensor) -> None:
    save_torch(path, {
        "key": json.dumps(key, sort_keys=True),
        "latents": explored.latents,
        "labels": explored.labels,
        "groups": explored.groups,
        "images": images,
        "logs": [asdict(g) for g in explored.logs],
    })


def _load_part(path: Path, key: dict) -> tuple[Explored, torch.Tensor] | None:
    if not path.is_file():
        return None
    raw = safe_torch_load(path, "exploration file")
    if raw.get("key") != json.dumps(key, sort_keys=True):
        raise FairbenchError(
            f"{path}: explored with another base, classifier or settings; choose another --out or remove {path.parent}"
        )
    logs = tuple(GroupLog(**g) for g in raw["logs"])
    return Explored(raw["latents"], raw["labels"], raw["groups"], logs), raw["images"]


def summary(explored: Explored, task: TaskSpec, config: ExploreConfig) -> dict:
    """Per group (summed over conditions) and per condition: generator calls, accepted latents, rates."""
    groups = []
    for g, name in enumerate(task.groups.names):
        logs = [log for log in explored.logs if log.group == g]
        calls, accepted = sum(x.generator_calls for x in logs), sum(x.accepted for x in logs)
        groups.append({
            "group": name,
            "generator_calls": calls,
            "accepted": accepted,
            "kept": config.per_group * len(logs),
            "acceptance_rate": accepted / max(1, calls),
            "base_share": sum(x.base_share for x in logs) / len(logs),
        })
    per_condition = [{**asdict(x), "acceptance_rate": x.acceptance_rate} for x in explored.logs]
    return {"mode": config.mode, "config": asdict(config), "groups": groups, "per_condition": per_condition}


def write_summary(folder: Path, data: dict) -> Path:
    path = folder / "explore.json"
    atomic.write_text(path, json.dumps(data, indent=2) + "\n")
    return path
