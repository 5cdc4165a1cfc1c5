"""A judge as scoring uses it, and the registry of the ways a task's judge is read (`judge.kind`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fairbench.networks.archs import predict_labels
from fairbench.networks.cards import JudgeCard
from fairbench.registry import Registry

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec


@dataclass
class Judge:
    card: JudgeCard
    net: nn.Module  # uint8 N x C x H x W images -> N x n_groups logits
    no_confusion_reason: str | None = None  # why `card.confusion` is None (shown for the skipped corrected metrics)

    @property
    def confusion(self) -> np.ndarray | None:
        return None if self.card.confusion is None else np.asarray(self.card.confusion, dtype=np.float64)

    def predict(self, images: torch.Tensor) -> np.ndarray:
        """Group index per uint8 N x C x H x W image, on the device of the judge's weights, in fixed chunks
        (`fairbench.chunking`), so no batch-size setting can flip a near tie between two groups."""
        return predict_labels(self.net, images)


JudgeLoader = Callable[["TaskSpec", "Path | None"], Judge]
# How a task's judge is read, by `judge.kind`: the one registry every judge goes through.
JUDGE_KINDS: Registry[JudgeLoader] = Registry("judge kind")
