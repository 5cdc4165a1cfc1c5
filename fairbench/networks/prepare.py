"""The explicit first-use step: before scoring, train the networks a task declares trained on first use and
that this data has none of yet, so the metric code after it only ever loads networks.

Without its judge nothing can be scored: one error saying the judge needs the task's data. Without the feature
network only the FID family is lost: the reason is kept, and scoring skips those metrics with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fairbench.errors import FairbenchError
from fairbench.networks.kinds import KINDS, NetworkKind
from fairbench.networks.store import home_dir, is_cached

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec

StageProgress = Callable[[str, int, int], None]  # (stage, done, total), as scoring reports its stages
Note = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """What the step leaves for scoring: why the FID family cannot be scored (its network could not be
    trained), or None."""

    feature_network_problem: str | None = None


def prepare(
    task: TaskSpec, data_root: str | Path | None = None, progress: StageProgress | None = None,
    note: Note | None = None, quality_task: TaskSpec | None = None,
) -> Prepared:
    """Train the judge of `task` and the feature network of `quality_task` (default: `task`; scoring passes the
    task with the `--feature-network` it was asked for) when declared trained on first use and absent.
    `note(text)` says so first, once per network trained; `progress(stage, done, total)` follows the training."""
    quality_task = task if quality_task is None else quality_task
    try:
        ensure(KINDS.get("judge"), task, data_root, progress, note)
    except FairbenchError as exc:
        raise FairbenchError(
            f"task {task.id}: its judge {task.judge.id} is trained on first use from your copy of the task's "
            f"data, so even fairness cannot be scored without it: {exc}"
        ) from None
    if quality_task.quality is not None and quality_task.quality.metrics:
        try:
            ensure(KINDS.get("feature network"), quality_task, data_root, progress, note)
        except FairbenchError as exc:
            return Prepared(f"feature network {quality_task.quality.feature_network.id} not available: {exc}")
    return Prepared()


def ensure(
    kind: NetworkKind, task: TaskSpec, data_root: str | Path | None = None, progress: StageProgress | None = None,
    note: Note | None = None,
) -> None:
    """Train the task's network of this `kind` into `$FAIRBENCH_HOME/<kind home>/` when it is trained on first
    use and none matches this data yet; nothing for a pinned network."""
    needed = kind.first_use(task)
    if needed is None:
        return
    folder = home_dir(kind.home)
    root = None if data_root is None else Path(data_root)
    if is_cached(needed.id, folder, task, root, needed.recipe):
        return
    if note is not None:
        note(
            f"{kind.name} {needed.id} is trained on first use: training it on your data now (seeded; "
            f"cached in {folder}; results record its sha256)"
        )
    stage = f"training {kind.name}"
    needed.train(task, folder, root, (lambda d, t: progress(stage, d, t)) if progress else None)
