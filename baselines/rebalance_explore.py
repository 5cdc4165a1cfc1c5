"""Latent exploration for `rebalance` (arXiv 2308.08638): a balanced set of latents from a biased generator.

Two modes on the same contract, so `bench/rebalance.py` can compare them on one base:
- `rejection`: draw fresh latents until every group has `per_group` confident samples.
- `bfs`: draw one random pool, then for each group grow a breadth-first frontier of perturbed neighbours
  z' = z + sigma * noise of its confident members, keeping a neighbour while the auxiliary classifier's
  confidence for that group stays >= threshold. A rare group's region of latent space is thus searched
  locally instead of hit by chance; when its frontier dies out, more random latents refill it.
Both count generator calls (images generated) per group and stop with one clear error after `max_calls`
for a group that is essentially absent from the base (a collapsed base), instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fairbench.errors import FairbenchError

# generate(z, y) -> images; classify(images) -> N x |S| probabilities
GenerateFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
ClassifyFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ExploreConfig:
    mode: str = "bfs"  # bfs | rejection
    per_group: int = 50  # latents kept per group (per condition for conditional tasks)
    threshold: float = 0.9  # auxiliary-classifier confidence a latent needs to count for its group
    sigma: float = 0.3  # neighbour perturbation scale
    branching: int = 8  # neighbours tried per expanded latent
    pool: int = 256  # random latents drawn first (bfs) / per round (rejection)
    max_calls: int = 200_000  # generator calls per group (per condition) before giving up
    batch_size: int = 256


@dataclass(frozen=True)
class GroupLog:
    group: int
    condition: int | None
    generator_calls: int  # images generated until this group was full
    accepted: int  # confident latents found (before truncation to per_group)
    base_share: float  # share of the first random draws classified (argmax) as this group

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / max(1, self.generator_calls)


@dataclass(frozen=True)
class Explored:
    latents: torch.Tensor  # M x latent_dim, M = per_group * |S| * max(1, conditions)
    labels: torch.Tensor | None  # condition per latent (conditional tasks)
    groups: torch.Tensor  # the group each latent was accepted for
    logs: tuple[GroupLog, ...]


def _scored(generate: GenerateFn, classify: ClassifyFn, z: torch.Tensor, y: int | None, bs: int) -> torch.Tensor:
    probs = []
    for i in range(0, len(z), bs):
        zi = z[i : i + bs]
        yi = None if y is None else torch.full((len(zi),), y, dtype=torch.int64, device=zi.device)
        with torch.no_grad():
            probs.append(classify(generate(zi, yi)).float())
    return torch.cat(probs)


PRESENT_SHARE = 0.02  # argmax share above which a group the classifier is never confident about is not "absent"


def _not_found(group: int, condition: int | None, found: int, want: int, calls: int, names, share: float,
               best_confidence: float, threshold: float) -> FairbenchError:
    """Two different failures, told apart so the user fixes the right thing: the base never draws the group
    (a collapsed base), or it does but the auxiliary classifier is never confident enough (a weak classifier)."""
    where = f" for condition {condition}" if condition is not None else ""
    name = names[group] if names else str(group)
    seen = (f"{share:.1%} of the base's random latents are classified {name!r} (argmax), the best confidence "
            f"was {best_confidence:.3f}")
    if share >= PRESENT_SHARE and best_confidence < threshold:
        return FairbenchError(
            f"rebalance: the auxiliary classifier is never confident about group {name!r}{where}: {seen}, below "
            f"the threshold {threshold:g} in {calls} generator calls ({found} of {want} latents); lower "
            "--set threshold or strengthen the classifier (--set aux_steps=..., aux_width=...)"
        )
    return FairbenchError(
        f"rebalance: group {name!r}{where} is essentially absent from the base generator: {found} of {want} "
        f"confident latents after {calls} generator calls (max_calls; {seen}); the base has collapsed on it and "
        "cannot be rebalanced by exploration (lower threshold, raise max_calls, or use a less collapsed base)"
    )


def explore(
    generate: GenerateFn,
    classify: ClassifyFn,
    latent_dim: int,
    n_groups: int,
    conditions: int,
    config: ExploreConfig,
    rng: torch.Generator,
    group_names: list[str] | None = None,
    device: torch.device | str = "cpu",
) -> Explored:
    """Exactly `per_group` latents per group (and per condition when conditions > 0)."""
    parts = [
        explore_condition(generate, classify, latent_dim, n_groups, cond, config, rng, group_names, device)
        for cond in (range(conditions) if conditions > 0 else [None])
    ]
    return concat(parts)


def explore_condition(
    generate: GenerateFn,
    classify: ClassifyFn,
    latent_dim: int,
    n_groups: int,
    condition: int | None,
    config: ExploreConfig,
    rng: torch.Generator,
    group_names: list[str] | None = None,
    device: torch.device | str = "cpu",
) -> Explored:
    """One condition (None: an unconditional generator): the unit a resumable run saves and skips."""
    if config.mode not in ("bfs", "rejection"):
        raise FairbenchError(f"rebalance: explore mode must be bfs or rejection, got {config.mode!r}")
    if not 0 < config.threshold < 1 or config.per_group < 1 or config.sigma <= 0 or config.pool < 1:
        raise FairbenchError("rebalance: need 0 < threshold < 1, per_group >= 1, sigma > 0, pool >= 1")
    if config.branching < 1 or config.max_calls < 1 or config.batch_size < 1:
        raise FairbenchError("rebalance: need branching >= 1, max_calls >= 1, batch_size >= 1")
    run = _bfs if config.mode == "bfs" else _rejection
    per_group, logs = run(generate, classify, latent_dim, n_groups, condition, config, rng, group_names, device)
    zs = [z[: config.per_group] for z in per_group]
    gs = [torch.full((config.per_group,), g, dtype=torch.int64) for g in range(n_groups)]
    ys = None if condition is None else torch.full((config.per_group * n_groups,), condition, dtype=torch.int64)
    return Explored(torch.cat(zs).cpu(), ys, torch.cat(gs), tuple(logs))


def concat(parts: list[Explored]) -> Explored:
    labels = [p.labels for p in parts if p.labels is not None]
    return Explored(
        torch.cat([p.latents for p in parts]),
        torch.cat(labels) if labels else None,
        torch.cat([p.groups for p in parts]),
        tuple(log for p in parts for log in p.logs),
    )


def _draw(rng: torch.Generator, n: int, dim: int, device) -> torch.Tensor:
    return torch.randn(n, dim, generator=rng).to(device)


def _rejection(generate, classify, dim, n_groups, cond, config, rng, names, device):
    kept: list[list[torch.Tensor]] = [[] for _ in range(n_groups)]
    counts, full_at = [0] * n_groups, [0] * n_groups
    calls, first_share = 0, None
    best_conf = torch.zeros(n_groups)
    while not all(full_at):
        z = _draw(rng, config.pool, dim, device)
        probs = _scored(generate, classify, z, cond, config.batch_size)
        calls += len(z)
        if first_share is None:
            first_share = torch.bincount(probs.argmax(1), minlength=n_groups).float() / len(z)
        best_conf = torch.maximum(best_conf, probs.max(0).values.cpu())
        conf, best = probs.max(1)
        for g in range(n_groups):
            hit = z[(best == g) & (conf >= config.threshold)]
            if not full_at[g]:
                kept[g].append(hit.cpu())
                counts[g] += len(hit)
                if counts[g] >= config.per_group:
                    full_at[g] = calls
        if calls >= config.max_calls and not all(full_at):
            g = full_at.index(0)
            raise _not_found(g, cond, counts[g], config.per_group, calls, names, float(first_share[g]),
                             float(best_conf[g]), config.threshold)
    logs = [GroupLog(g, cond, full_at[g], counts[g], float(first_share[g])) for g in range(n_groups)]
    return [torch.cat(k) for k in kept], logs


def _bfs(generate, classify, dim, n_groups, cond, config, rng, names, device):
    z = _draw(rng, config.pool, dim, device)
    probs = _scored(generate, classify, z, cond, config.batch_size)
    share = torch.bincount(probs.argmax(1), minlength=n_groups).float() / len(z)
    out, logs = [], []
    for g in range(n_groups):
        calls = len(z)  # the shared pool is charged to every group: each one needed it
        best_conf = float(probs[:, g].max())
        members = [z[probs[:, g] >= config.threshold]]
        found = len(members[0])
        frontier = members[0]
        while found < config.per_group:
            if calls >= config.max_calls:
                raise _not_found(g, cond, found, config.per_group, calls, names, float(share[g]), best_conf,
                                 config.threshold)
            if len(frontier) == 0:  # the frontier died out (or never started): refill from random latents
                fresh = _draw(rng, config.pool, dim, device)
                p = _scored(generate, classify, fresh, cond, config.batch_size)
                calls += len(fresh)
                best_conf = max(best_conf, float(p[:, g].max()))
                frontier = fresh[p[:, g] >= config.threshold]
                members.append(frontier)
                found += len(frontier)
                continue
            room = max(1, (config.max_calls - calls) // config.branching)
            parents = frontier[:room].repeat_interleave(config.branching, dim=0)
            children = parents + config.sigma * torch.randn(parents.shape, generator=rng).to(device)
            p = _scored(generate, classify, children, cond, config.batch_size)
            calls += len(children)
            best_conf = max(best_conf, float(p[:, g].max()))
            frontier = children[p[:, g] >= config.threshold]  # breadth-first: the next level
            members.append(frontier)
            found += len(frontier)
        logs.append(GroupLog(g, cond, calls, found, float(share[g])))
        out.append(torch.cat(members).cpu())
    return out, logs
