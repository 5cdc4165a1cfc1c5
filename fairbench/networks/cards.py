"""The JSON card that ships beside a network's weights: provenance, input contract, held-out performance.

Judges and domain feature networks each keep their own field list, in the order their card files have always
been written (a dataclass base with fields would put those first and reorder every file); what they share is
behaviour: reading a card strictly, writing it atomically, and saying where the weights were trained.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fairbench import atomic
from fairbench.errors import FairbenchError

C = TypeVar("C", bound="Card")


class Card:
    """What both card types do. Subclasses are frozen dataclasses with `torch_version`, `threads` and `cpu`."""

    what = "network"  # in messages: "judge", "feature network"

    @classmethod
    def from_raw(cls: type[C], raw: dict[str, Any], weights: Path) -> C:
        """The card read from `raw` (its JSON), or a FairbenchError naming the card file."""
        try:
            return cls(**raw)
        except TypeError as exc:
            raise FairbenchError(f"{weights.with_suffix('.json')}: {cls.what} card invalid ({exc})") from None

    def write(self, weights: Path) -> None:
        """`<weights>.json`, written atomically beside the weights."""
        text = json.dumps(asdict(self), indent=2) + "\n"  # type: ignore[call-overload]
        atomic.write_text(weights.with_suffix(".json"), text)

    def machine_lines(self) -> list[str]:
        """Where the weights were trained, one fact per line; an older card records nothing."""
        if getattr(self, "torch_version", None) is None:
            return ["trained on: not recorded (card written before fairbench recorded it)"]
        threads = getattr(self, "threads")
        plural = f"{threads} thread{'s' if threads != 1 else ''}"
        return [
            f"trained with torch {getattr(self, 'torch_version')}, {plural}",
            f"trained on CPU: {getattr(self, 'cpu')}"[:80],
        ]


@dataclass(frozen=True)
class JudgeCard(Card):
    """What ships beside a judge's weights: provenance and held-out performance."""

    what = "judge"

    id: str
    sha256: str
    task: str
    groups: list[str]
    in_channels: int
    accuracy: float | None  # None: a user-supplied judge never measured on the task's images
    confusion: list[list[float]] | None  # row i: P(judge = j | true group i), on the task's test split; None: unknown
    n_test: int
    epochs: int
    seed: int
    width: int = 16  # JudgeNet's width (JudgeRef.width)
    class_weights: str = "none"  # "balanced": the training loss weighted by 1 / group frequency
    # counts[i][j]: test images of true group i the judge labelled j. The rates alone hide how precisely they
    # are known; the corrected intervals need the counts. Cards written before this field lack it (None).
    confusion_counts: list[list[int]] | None = None
    # Where the weights were trained (fairbench.networks.training.training_machine): float kernels, hence the
    # exact bytes, depend on them. Cards written before these fields lack them (None).
    torch_version: str | None = None
    threads: int | None = None
    cpu: str | None = None
    arch: str | None = None  # None: judge-cnn/1, the only architecture before the field existed
    training: dict | None = None  # the recipe (optimiser, schedule, augmentation)
    data_source: dict | None = None  # fairbench.data.data_source of the data it was trained on, where known
    first_use_key: str | None = None  # trained on first use: what it was trained from (fairbench.networks.store)

    def calibration_counts(self) -> np.ndarray | None:
        """The held-out counts behind `confusion`; for an old card, rebuilt from the rates and `n_test`.
        None when the judge has no confusion matrix at all (then nothing is corrected).

        Old cards give only rates and the test-set size, so the rows are taken as equal shares of `n_test`:
        an approximation, stated here, that the shipped cards no longer need.
        """
        if self.confusion_counts is not None:
            return np.asarray(self.confusion_counts, dtype=np.int64)
        if self.confusion is None:
            return None
        rates = np.asarray(self.confusion, dtype=np.float64)
        per_row = max(1, self.n_test // len(rates))
        return np.rint(rates * per_row).astype(np.int64)


@dataclass(frozen=True)
class FeatureCard(Card):
    """What ships beside a domain network's weights: provenance, input contract, held-out accuracy."""

    what = "feature network"

    id: str
    sha256: str
    task: str
    arch: str
    in_channels: int
    image_size: list[int]  # [H, W] the network accepts, as-is
    num_classes: int
    width: int
    dim: int
    resize_rule: str
    accuracy: float  # class accuracy on the task's test split
    n_test: int
    epochs: int
    seed: int
    training: dict[str, Any]  # the rest of the recipe: optimiser, schedule, batch size, augmentation
    # Where the weights were trained (fairbench.networks.training.training_machine): float kernels, hence the
    # exact bytes, depend on them. Cards written before these fields lack them (None).
    torch_version: str | None = None
    threads: int | None = None
    cpu: str | None = None
    first_use_key: str | None = None  # trained on first use: what it was trained from (fairbench.networks.store)
