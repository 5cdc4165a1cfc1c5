"""The registry of network kinds: a judge and a domain feature network, each with its recipe, trainer, loader
and reproduction tolerance, so first-use training (`prepare`) and `fairbench judge|features train` are written
once for both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairbench.errors import FairbenchError
from fairbench.networks import domain, judge
from fairbench.networks.cards import Card
from fairbench.networks.reproduction import (
    FEATURE_TOLERANCE,
    JUDGE_TOLERANCE,
    ReproductionReport,
    Tolerance,
    feature_reproduction,
    judge_reproduction,
)
from fairbench.registry import Registry

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FirstUse:
    """A network a task declares trained on first use: what its cached file must have been trained from, and
    how to train it (`train(task, folder, data_root, progress)`)."""

    id: str
    recipe: dict[str, Any]
    train: Callable[[TaskSpec, Path, Path | None, Progress | None], Card]


@dataclass(frozen=True)
class Target:
    """What `fairbench <kind> train --task T` trains: network `id`, on the split of `source` (T itself, or the
    task the pinned network's recipe names), checked against `pinned_sha256` unless trained on first use."""

    id: str
    source: TaskSpec
    first_use: bool
    pinned_sha256: str | None
    threads: int | None  # intra-op threads to train with (None: torch's current setting)


@dataclass(frozen=True)
class NetworkKind:
    name: str  # in messages and progress bars: "judge", "feature network"
    home: str  # $FAIRBENCH_HOME/<home>: first-use files and users' own copies
    tolerance: Tolerance  # when a retrained network reproduces the pinned one
    first_use: Callable[[TaskSpec], FirstUse | None]  # the task's network of this kind trained on first use
    target: Callable[[TaskSpec], Target]  # what `train --task` trains (a FairbenchError when nothing)
    train: Callable[[Target, Path, Path | None, Progress | None], Card]
    reproduce: Callable[[Target, Path, Path | None], ReproductionReport]  # retrained weights vs the pin
    summary: Callable[[Card, Target], str]  # the line `train` prints first
    machine_lines_on_first_use: bool  # whether `train` says where a first-use file was trained (judges do)


KINDS: Registry[NetworkKind] = Registry("network kind")


# ------------------------------------------------------------------------------------------------ judges


def _judge_first_use(task: TaskSpec) -> FirstUse | None:
    if not task.judge.trained_on_first_use:
        return None
    return FirstUse(
        task.judge.id, judge.judge_recipe(task),
        lambda t, folder, root, progress: judge.train_judge(t, folder, root, progress=progress, threads=1),
    )


def _judge_target(task: TaskSpec) -> Target:
    first_use = task.judge.trained_on_first_use
    # First use: one thread, as every first-use file is made; otherwise the pins' thread count (same summation
    # order, hence the same bytes on this kind of machine).
    threads = 1 if first_use else _pinned_judge_threads(task)
    return Target(task.judge.id, task, first_use, task.judge.sha256, threads)


def _pinned_judge_threads(task: TaskSpec) -> int | None:
    """The thread count the pinned judge's card records (None when there is none, or it predates the field)."""
    if task.judge.kind != "pinned":
        return None  # a user-supplied judge: `train_judge` says why it cannot be trained
    try:
        card, _ = judge.judge_net_from(*judge.find_judge_file(task))
    except FairbenchError:
        return None
    return card.threads


def _judge_train(target: Target, folder: Path, data_root: Path | None, progress: Progress | None) -> Card:
    return judge.train_judge(target.source, folder, data_root, progress=progress, threads=target.threads)


KINDS.register("judge", NetworkKind(
    name="judge", home=judge.HOME, tolerance=JUDGE_TOLERANCE, first_use=_judge_first_use, target=_judge_target,
    train=_judge_train,
    reproduce=lambda target, weights, root: judge_reproduction(target.source, weights, root),
    summary=lambda card, target: f"judge {card.id}: accuracy {card.accuracy:.4f} on {card.n_test} test images",
    machine_lines_on_first_use=True,
))


# --------------------------------------------------------------------------------- domain feature networks


def _domain_first_use(task: TaskSpec) -> FirstUse | None:
    ref = task.quality.feature_network if task.quality is not None else None
    if ref is None or not ref.trained_on_first_use:
        return None
    recipe = domain.first_use_recipe(ref.id)
    if recipe is None:
        raise FairbenchError(f"task {task.id}: feature network {ref.id!r} has no first-use recipe")
    return FirstUse(
        ref.id, domain.recipe_dict(ref.id, recipe, recipe.epochs, 0),
        lambda t, folder, root, progress: domain.train_domain_network(
            t, folder, root, network_id=ref.id, progress=progress
        ),
    )


def _domain_target(task: TaskSpec) -> Target:
    from fairbench.task_registry import get_task  # the recipe names the task a pinned network is trained on

    if task.quality is None or task.quality.feature_network.id not in domain.DOMAIN_RECIPES:
        raise FairbenchError(f"task {task.id} names no shipped domain feature network")
    pinned = task.quality.feature_network
    # First use: trained on this task's own data and cached where scoring looks for it; otherwise on the
    # recipe's task (e.g. domain-mnist is trained on mnist-bicolor) and checked against the pin.
    first_use = pinned.trained_on_first_use
    source = task if first_use else get_task(domain.DOMAIN_RECIPES[pinned.id].task)
    return Target(pinned.id, source, first_use, pinned.sha256, 1)


def _domain_train(target: Target, folder: Path, data_root: Path | None, progress: Progress | None) -> Card:
    return domain.train_domain_network(
        target.source, folder, data_root, network_id=target.id, progress=progress, threads=target.threads or 1
    )


def _domain_reproduce(target: Target, weights: Path, data_root: Path | None) -> ReproductionReport:
    assert target.pinned_sha256 is not None  # a pinned network (first-use ones are not reproduced)
    return feature_reproduction(target.source, target.id, target.pinned_sha256, weights, data_root)


KINDS.register("feature network", NetworkKind(
    name="feature network", home=domain.HOME, tolerance=FEATURE_TOLERANCE, first_use=_domain_first_use,
    target=_domain_target, train=_domain_train, reproduce=_domain_reproduce,
    summary=lambda card, target: (
        f"{card.id}: class accuracy {card.accuracy:.4f} on {card.n_test} {target.source.id} test images"
    ),
    machine_lines_on_first_use=False,
))
