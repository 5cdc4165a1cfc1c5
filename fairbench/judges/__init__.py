"""Judges: the attribute classifiers h that tell which group a generated image belongs to.

Each task names a judge by `judge.kind` and id: fairbench's own (`pinned`: trained by `fairbench.networks`,
pinned by sha256 or trained on first use) or a user-supplied one (`fairface`). Scoring reads it with
`load_judge`; a result is re-read with the very judge it was scored with (`load_judge_of_result`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fairbench import data
from fairbench.errors import FairbenchError
from fairbench.judges import fairface, pinned  # noqa: F401  (register "fairface", "pinned")
from fairbench.judges.base import JUDGE_KINDS, Judge, JudgeLoader
from fairbench.metrics.confusion import confusion_counts, confusion_matrix
from fairbench.networks.cards import JudgeCard
from fairbench.networks.judge import find_judge_of_result, judge_net_from, require_pinned

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec

__all__ = [
    "JUDGE_KINDS", "Judge", "JudgeCard", "JudgeLoader", "confusion_counts", "confusion_matrix", "evaluate_judge",
    "load_judge", "load_judge_of_result",
]


def load_judge(task: TaskSpec, data_root: Path | None = None) -> Judge:
    """The task's judge, by the loader its `judge.kind` names."""
    return JUDGE_KINDS.get(task.judge.kind)(task, data_root)


def load_judge_of_result(task: TaskSpec, sha256: str | None) -> Judge:
    """The judge a result was scored with: the pinned one, or for a judge trained on first use the cached file
    with the result's sha256 (whatever data it was trained on); refused when that file is gone or differs."""
    if not task.judge.trained_on_first_use:
        return load_judge(task)
    if sha256 is None:
        raise FairbenchError(f"task {task.id}: the result does not record its judge's sha256")
    return Judge(*judge_net_from(*find_judge_of_result(task, sha256)))


def evaluate_judge(task: TaskSpec, data_root: Path | None = None) -> tuple[float, np.ndarray, int]:
    """Accuracy and row-normalised confusion of the pinned judge on the task's test split, recomputed now."""
    require_pinned(task, "evaluate")
    judge = load_judge(task, data_root)
    test = data.load_split(task, "test", data_root)
    predicted = judge.predict(test.images)
    truth = test.groups.numpy()
    return float((predicted == truth).mean()), confusion_matrix(truth, predicted, task.n_groups), len(test)
