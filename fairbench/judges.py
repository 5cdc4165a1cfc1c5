"""Judges: the pinned attribute classifiers h that tell which group a generated image belongs to.

Each task names a judge by id and sha256. Weights ship inside the package as safetensors (no pickle), with
a JSON card holding the held-out accuracy and confusion matrix, so every user scores with the identical
judge, offline. `train_judge` retrains them from the task's reserved judge split; on another CPU the bytes
differ, so a retrained judge is checked by its agreement with the pinned one (`fairbench.reproduction`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fairbench import atomic, data, paths
from fairbench.errors import FairbenchError
from fairbench.pinned import find_pinned
from fairbench.registry import Registry

if TYPE_CHECKING:
    from fairbench.tasks import TaskSpec

PACKAGE_DIR = Path(__file__).resolve().parent / "judge_weights"


class JudgeNet(nn.Module):
    """Two conv blocks, pooled to 4x4, and a small MLP: a few hundred KB, fast on CPU."""

    def __init__(self, in_channels: int, n_groups: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, 64),
            nn.ReLU(),
            nn.Linear(64, n_groups),
        )

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.net(images_uint8.float() / 255.0)


@dataclass(frozen=True)
class JudgeCard:
    """What ships beside the weights: provenance and held-out performance."""

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
    # counts[i][j]: test images of true group i the judge labelled j. The rates alone hide how precisely they
    # are known; the corrected intervals need the counts. Cards written before this field lack it (None).
    confusion_counts: list[list[int]] | None = None
    # Where the weights were trained (fairbench.reproduction.training_machine): float kernels, hence the exact
    # bytes, depend on them. Cards written before these fields lack them (None).
    torch_version: str | None = None
    threads: int | None = None
    cpu: str | None = None

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


@dataclass
class Judge:
    card: JudgeCard
    net: nn.Module  # uint8 N x C x H x W images -> N x n_groups logits
    no_confusion_reason: str | None = None  # why `card.confusion` is None (shown for the skipped corrected metrics)

    @property
    def confusion(self) -> np.ndarray | None:
        return None if self.card.confusion is None else np.asarray(self.card.confusion, dtype=np.float64)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
        """Group index per uint8 N x C x H x W image. Per-image results: batch size cannot change them."""
        self.net.eval()
        out = [self.net(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]
        return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.int64)


def _search_dirs() -> list[Path]:
    return [PACKAGE_DIR, paths.fairbench_home() / "judges"]


JudgeLoader = Callable[["TaskSpec"], Judge]
# How a task's judge is read, by `judge.kind`: the one registry every judge goes through.
JUDGE_KINDS: Registry[JudgeLoader] = Registry("judge kind")


def load_judge(task: TaskSpec) -> Judge:
    """The task's judge, by the loader its `judge.kind` names."""
    return JUDGE_KINDS.get(task.judge.kind)(task)


def load_pinned_judge(task: TaskSpec) -> Judge:
    """A shipped judge, refused unless its file hash matches the sha256 pinned in the task spec."""
    ref = task.judge
    weights, raw = find_pinned(
        "judge", ref.id, ref.sha256, _search_dirs(), f"`fairbench judge train --task {task.id}`"
    )
    try:
        card = JudgeCard(**raw)
    except TypeError as exc:
        raise FairbenchError(f"{weights.with_suffix('.json')}: judge card invalid ({exc})") from None
    net = JudgeNet(card.in_channels, len(card.groups))
    net.load_state_dict(load_file(str(weights)))
    return Judge(card=card, net=net.eval())


JUDGE_KINDS.register("pinned", load_pinned_judge)


def train_judge(
    task: TaskSpec, out_dir: Path, data_root: Path | None = None, seed: int = 0, progress=None,
    threads: int | None = None,
) -> JudgeCard:
    """Train on the task's judge split, evaluate on its test split, write `<id>.safetensors` + `<id>.json`.

    The same seed, data, thread count, CPU type and torch version give the same bytes; on another machine the
    weights differ in their last bits and the judge is checked by agreement instead
    (`fairbench.reproduction.judge_reproduction`). `threads` (default: torch's current setting) is the intra-op
    thread count to train with; the card records it with the torch version and CPU.
    """
    _require_pinned(task, "train")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train_judge(task, Path(out_dir), data_root, seed, progress)
    finally:
        torch.set_num_threads(previous)


def _train_judge(task: TaskSpec, out_dir: Path, data_root: Path | None, seed: int, progress) -> JudgeCard:
    from fairbench.reproduction import training_machine

    machine = training_machine()
    torch.manual_seed(seed)
    epochs = task.judge.epochs
    split = data.load_split(task, "judge", data_root)
    net = JudgeNet(task.image_shape[0], task.n_groups)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = torch.Generator().manual_seed(seed)
    batch = 128
    n_batches = (len(split) + batch - 1) // batch
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(split), generator=rng)
        for b in range(n_batches):
            idx = order[b * batch : (b + 1) * batch]
            loss = nn.functional.cross_entropy(net(split.images[idx]), split.groups[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if progress is not None:
                progress(epoch * n_batches + b + 1, epochs * n_batches)
    test = data.load_split(task, "test", data_root)
    judge = Judge(card=None, net=net.eval())  # type: ignore[arg-type]
    predicted = judge.predict(test.images)
    confusion = confusion_matrix(test.groups.numpy(), predicted, task.n_groups)
    counts = confusion_counts(test.groups.numpy(), predicted, task.n_groups)
    accuracy = float((predicted == test.groups.numpy()).mean())

    weights = out_dir / f"{task.judge.id}.safetensors"
    with atomic.atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    card = JudgeCard(
        id=task.judge.id,
        sha256=atomic.sha256_file(weights),
        task=task.id,
        groups=list(task.groups.names),
        in_channels=task.image_shape[0],
        accuracy=accuracy,
        confusion=confusion.tolist(),
        n_test=len(test),
        epochs=epochs,
        seed=seed,
        confusion_counts=counts.tolist(),
        **machine,
    )
    atomic.write_text(weights.with_suffix(".json"), json.dumps(asdict(card), indent=2) + "\n")
    return card


def evaluate_judge(task: TaskSpec, data_root: Path | None = None) -> tuple[float, np.ndarray, int]:
    """Accuracy and row-normalised confusion of the pinned judge on the task's test split, recomputed now."""
    _require_pinned(task, "evaluate")
    judge = load_judge(task)
    test = data.load_split(task, "test", data_root)
    predicted = judge.predict(test.images)
    truth = test.groups.numpy()
    return float((predicted == truth).mean()), confusion_matrix(truth, predicted, task.n_groups), len(test)


def _require_pinned(task: TaskSpec, verb: str) -> None:
    if task.judge.kind != "pinned" or not task.has_training_data:
        raise FairbenchError(
            f"task {task.id}'s judge {task.judge.id} is user-supplied ({task.judge.kind}); fairbench cannot {verb} it: "
            f"the task has no labelled split"
        )


def confusion_counts(truth: np.ndarray, predicted: np.ndarray, n_groups: int) -> np.ndarray:
    """counts[i, j] = number of images of true group i labelled j."""
    counts = np.zeros((n_groups, n_groups), dtype=np.int64)
    np.add.at(counts, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return counts


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_groups: int) -> np.ndarray:
    """Row-normalised: entry [i, j] = P(predicted j | true i); a group absent from `truth` gets the identity row."""
    counts = confusion_counts(truth, predicted, n_groups).astype(np.float64)
    totals = counts.sum(1, keepdims=True)
    eye = np.eye(n_groups)
    return np.where(totals > 0, counts / np.maximum(totals, 1.0), eye)


# Imported last so that the module's own names exist when the FairFace judge registers itself here; every
# caller of load_judge then finds every kind registered.
from fairbench import judges_fairface  # noqa: E402,F401  (registers "fairface")
