"""`rebalance` (arXiv 2308.08638): fix a biased generator without giving it the training data again.

Phases (baselines.rebalance_phases, each resumable): the base generator (`--base CKPT`, or the task's
`vanilla` trained first in the same run folder); the method's own auxiliary attribute classifier, trained on
the training split only (baselines.rebalance_aux); latent exploration of the base until every group (per
condition) has `per_group` confidently classified latents (baselines.rebalance_explore). Then the harness's
training loop retrains a generator (from the base weights or from scratch) as a GAN whose "real" images are
that balanced synthetic set, plus the bias-mitigation loss (baselines.rebalance_loss) on its own samples,
weighted up for the groups the base under-produced. The training split is never drawn from in that loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from baselines.cdcgan import CDCGANDiscriminator
from baselines.gan import GANConfig, _optimizers, check_config, discriminator_update
from baselines.rebalance_aux import AuxClassifier, load_aux, save_aux, train_aux
from baselines.rebalance_explore import ExploreConfig
from baselines.rebalance_loss import bias_mitigation_loss, deficit_weights, scheduled_weight
from baselines.rebalance_phases import (
    check_base,
    explore_phase,
    load_base_generator,
    resolve_base,
    summary,
    write_summary,
)
from fairbench import data
from fairbench.submission.checkpoint import GeneratorCheckpoint, build_generator
from fairbench.errors import FairbenchError
from fairbench.submission.generators import ARCHITECTURES
from fairbench.methods import METHODS, BatchSource, PhaseContext, Trainable
from fairbench.task_registry import TaskSpec

WEAK_AUX = 0.8  # hold-out balanced accuracy below which the auxiliary classifier is reported as weak


@dataclass(frozen=True)
class RebalanceConfig(GANConfig):
    """GANConfig's keys configure the base `vanilla` (when no --base is given) and the retraining D/optimisers.

    The base defaults to D with a minibatch standard-deviation channel over the whole batch: the plain
    vanilla base draws one group only on the bicolor tasks (digits included), and a base that never draws a
    group gives exploration nothing to find (leaderboard/recipes/screen.md measures the recipes)."""

    minibatch_std: bool = True
    mbstd_group: int = 64

    base_steps: int = 0  # vanilla steps for the base (0: the task's training.steps)
    base_batch_size: int = 0  # 0: the task's training.batch_size
    aux_width: int = 16  # channels of the auxiliary group classifier trained on the real training split
    aux_steps: int = 400  # its training steps
    aux_batch_size: int = 128  # its batch size
    aux_lr: float = 1e-3  # its learning rate
    explore: Literal["bfs", "rejection"] = "bfs"  # latent search: breadth-first from found latents, or rejection
    per_group: int = 50  # synthetic latents per group (per condition on conditional tasks)
    threshold: float = 0.9  # auxiliary confidence a latent needs to count for its group
    sigma: float = 0.3  # BFS neighbour scale
    branching: int = 8  # neighbours tried per expanded latent (bfs)
    pool: int = 256  # random latents drawn first (bfs) / per round (rejection)
    max_calls: int = 20_000  # generator calls per group (per condition) before a collapsed base is declared
    explore_batch_size: int = 256  # generator calls per forward pass while exploring
    init: Literal["base", "scratch"] = "base"  # retrained generator's starting weights
    fairness_weight: float = 1.0  # lambda of the bias-mitigation loss
    fairness_warmup: int = 0  # steps of linear warm-up of lambda (0: full weight from the start)

    def explore_config(self) -> ExploreConfig:
        return ExploreConfig(self.explore, self.per_group, self.threshold, self.sigma, self.branching, self.pool,
                             self.max_calls, self.explore_batch_size)


@dataclass
class Prepared:
    """What the phases hand the training loop; rebuilt from the phase files on every start."""

    provenance: dict
    base: GeneratorCheckpoint
    base_path: Path
    aux: AuxClassifier
    images: torch.Tensor  # uint8 balanced synthetic set, on the device
    labels: torch.Tensor  # condition per image (zeros on an unconditional task)
    weights: torch.Tensor  # deficit weights of the bias-mitigation loss


def _check(config: RebalanceConfig) -> None:
    check_config(config)
    if config.base_steps < 0 or config.base_batch_size < 0:
        raise FairbenchError("base_steps and base_batch_size must be >= 0 (0: the task's)")
    if min(config.aux_width, config.aux_steps, config.aux_batch_size) < 1 or not config.aux_lr > 0:
        raise FairbenchError("aux_width, aux_steps, aux_batch_size and aux_lr must be positive")
    if config.fairness_weight < 0 or config.fairness_warmup < 0:
        raise FairbenchError("fairness_weight and fairness_warmup must be >= 0")


class Rebalance:
    """Model rebalancing: explore a biased base generator's latent space for each group, build a balanced
    synthetic set from what it finds, and retrain G on it with a bias-mitigation loss (--base, or a vanilla
    base trained first)."""

    config_cls = RebalanceConfig
    accepts_base = True  # `fairbench run --base CKPT`

    def check_base(self, task: TaskSpec, path: Path) -> None:
        check_base(task, path)

    def prepare(self, task: TaskSpec, config: RebalanceConfig, context: PhaseContext) -> Prepared:
        _check(config)
        log = context.progress or (lambda line: None)
        folder = context.directory
        folder.mkdir(parents=True, exist_ok=True)

        def train_vanilla(out: Path) -> Path:
            from fairbench.training import RunOptions, train  # late: training imports the method registry

            gan = {f.name: getattr(config, f.name) for f in dataclasses.fields(GANConfig)}
            options = RunOptions(
                method="vanilla", task=task, seed=context.seed, steps=config.base_steps or None, out=out,
                data_root=context.data_root, device=str(context.device),
                batch_size=config.base_batch_size or None, overrides=gan,
            )
            total = config.base_steps or task.training.steps
            log(f"base: training vanilla on {task.id} for {total} steps (resumable) in {out}")
            marks = {max(1, total * k // 4) for k in (1, 2, 3)}
            return train(options, lambda s, t, logs: log(f"base: step {s}/{t}") if s in marks else None)

        base_path, base_record = resolve_base(task, folder, context.base, train_vanilla, log)
        base_ckpt, base = load_base_generator(base_path, context.device)

        aux_key = {"width": config.aux_width, "steps": config.aux_steps,
                   "batch_size": config.aux_batch_size, "lr": config.aux_lr, "seed": context.seed,
                   "data_hash": task.data_hash}
        c = task.image_shape[0]
        loaded = load_aux(folder, aux_key, c, task.n_groups, config.aux_width)
        if loaded is None:
            split = data.load_split(task, "train", context.data_root)  # the training split and nothing else
            log(f"aux: training the auxiliary classifier on the training split ({len(split)} images)")
            net, acc, confusion, n_hold = train_aux(split, task.n_groups, config.aux_width, config.aux_steps,
                                                    config.aux_batch_size, config.aux_lr, context.seed, context.device)
            card = save_aux(folder, net, aux_key, acc, confusion, n_hold)
        else:
            net, card = loaded
        aux = net.to(context.device).eval().requires_grad_(False)
        quality = "WEAK: exploration and the loss can only be as good as it" if card.balanced_accuracy < WEAK_AUX else "ok"
        log(f"aux: balanced accuracy {card.balanced_accuracy:.3f} on {card.n_holdout} held-out training images ({quality})")

        explore_key = {"base_sha256": base_record["sha256"], "aux_sha256": card.sha256, "seed": context.seed,
                       **dataclasses.asdict(config.explore_config())}
        explore_config = config.explore_config()
        explored, images = explore_phase(folder / "explore", explore_key, base, aux, task, explore_config,
                                         context.seed, context.device, log)
        report = summary(explored, task, explore_config)
        write_summary(folder, report)
        for g in report["groups"]:
            log(f"explore {explore_config.mode}: {g['group']}: {g['generator_calls']} generator calls, "
                f"{g['accepted']} accepted ({100 * g['acceptance_rate']:.2f}%), base share {100 * g['base_share']:.1f}%")
        share = torch.tensor([g["base_share"] for g in report["groups"]], dtype=torch.float64)
        weights = deficit_weights(share)
        provenance = {
            "base": {**base_record, "method": base_ckpt.method, "seed": base_ckpt.seed,
                     "steps": base_ckpt.train.get("steps")},
            "aux": {"sha256": card.sha256, "balanced_accuracy": card.balanced_accuracy, "n_holdout": card.n_holdout},
            "explore": {"mode": explore_config.mode, "per_group": explore_config.per_group,
                        "n_images": len(images), "base_share": [round(float(s), 6) for s in share],
                        "generator_calls": [g["generator_calls"] for g in report["groups"]]},
            "loss_weights": [round(float(w), 6) for w in weights],
        }
        labels = explored.labels if explored.labels is not None else torch.zeros(len(images), dtype=torch.int64)
        return Prepared(provenance, base_ckpt, base_path, aux, images.to(context.device),
                        labels.to(context.device), weights.float().to(context.device))

    def create(self, task: TaskSpec, config: RebalanceConfig, device: torch.device, prepared: Prepared) -> Trainable:
        gen = build_generator(prepared.base, prepared.base_path, device)
        if config.init == "scratch":
            gen = ARCHITECTURES.get(prepared.base.arch)(**prepared.base.arch_kwargs).to(device)  # harness-seeded
        disc = CDCGANDiscriminator(gen.num_classes, list(task.image_shape), config.width,
                                   minibatch_std=config.minibatch_std, group_size=config.mbstd_group).to(device)
        return Trainable(
            modules={"generator": gen.train(), "discriminator": disc},
            optimizers=_optimizers(gen, disc, config),
            generator="generator",
            arch=prepared.base.arch,
            arch_kwargs=dict(prepared.base.arch_kwargs),
        )

    def step(
        self, trainable: Trainable, config: RebalanceConfig, batches: BatchSource, batch_size: int, step: int
    ) -> dict[str, float]:
        p: Prepared = trainable.prepared
        gen, disc = trainable.modules["generator"], trainable.modules["discriminator"]
        # Indices into the balanced synthetic set from the harness's seeded noise (restored on resume).
        u = 0.5 * (1 + torch.erf(batches.noise(batch_size, 1)[:, 0] / 2**0.5))
        idx = (u * len(p.images)).long().clamp_(0, len(p.images) - 1)
        real = p.images[idx].float().div_(127.5).sub_(1.0)
        y = p.labels[idx]
        logs = discriminator_update(trainable, real, y, batches.noise(batch_size, gen.latent_dim), None)
        labels = y if gen.num_classes > 0 else None
        fake = gen(batches.noise(batch_size, gen.latent_dim), labels)
        adversarial = F.softplus(-disc(fake, labels)).mean()
        fairness = bias_mitigation_loss(torch.softmax(p.aux(fake), dim=1), p.weights)
        lam = scheduled_weight(config.fairness_weight, config.fairness_warmup, step)
        loss = adversarial + lam * fairness
        opt = trainable.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        logs.update({"loss_g": adversarial.item(), "loss_fair": fairness.item()})
        return logs


METHODS.register("rebalance", Rebalance())
