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
from fairbench.chunking import chunk_slices
from fairbench.errors import FairbenchError
from fairbench.pinned import find_pinned
from fairbench.registry import Registry

if TYPE_CHECKING:
    from fairbench.tasks import TaskSpec

PACKAGE_DIR = Path(__file__).resolve().parent / "weights"


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

    def activation_statistics(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Per image, each channel's spatial mean and standard deviation after every convolutional block:
        the space in which `fairbench.scoring.recognisable` asks whether the judge has seen images like it."""
        return conv_statistics(self.net, images_uint8.float() / 255.0)


class JudgeNet3(nn.Module):
    """Three conv blocks (batch-normalised, each max-pooled by 2) and a small MLP, for natural 32x32 images
    (CIFAR-10: 77.6% after 8 epochs). ~156k parameters; the shipped CIFAR judge took 19 minutes on one
    heavily shared CPU thread. Batch norm runs on its stored statistics at inference, so each image's output
    does not depend on its batch."""

    def __init__(self, in_channels: int, n_groups: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.net = nn.Sequential(
            *layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, 128), nn.ReLU(),
            nn.Linear(128, n_groups),
        )

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.net(images_uint8.float() / 255.0)

    def activation_statistics(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """As `JudgeNet.activation_statistics`."""
        return conv_statistics(self.net, images_uint8.float() / 255.0)


def conv_statistics(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """N x (2 x channels of every block): the spatial mean and standard deviation (ddof 0) of each channel
    wherever a ReLU follows a convolution, up to the first flattening layer. Statistics of a classifier's
    feature maps tell images it was trained on from ones it was not (Sastry & Oore, ICML 2020), and at every
    scale: noise, stripes and blobs that a pooled top layer maps among real images stand out here."""
    parts = []
    for layer in layers:
        if x.dim() != 4:
            break
        x = layer(x)
        if isinstance(layer, nn.ReLU) and x.dim() == 4:
            parts += [x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)]
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class JudgeArch:
    """A judge network and the recipe that trains it (so `fairbench judge train` reproduces it)."""

    build: Callable[[int, int, int], nn.Module]  # (in_channels, n_groups, width) -> network taking uint8 images
    lr: float = 1e-3  # Adam; constant, or the peak of a one-cycle schedule
    one_cycle: bool = False
    flip: bool = False  # augmentation: random horizontal flips (natural images; never for digits)
    shift: int = 0  # augmentation: random translation by up to this many pixels (edge padding)
    batch_size: int = 128

    def describe(self) -> dict:
        return {
            "optimizer": "adam", "lr": self.lr, "schedule": "one-cycle" if self.one_cycle else "constant",
            "batch_size": self.batch_size, "flip": self.flip, "shift_px": self.shift,
        }


DEFAULT_ARCH = "judge-cnn/1"
JUDGE_ARCHS: Registry[JudgeArch] = Registry("judge architecture")
JUDGE_ARCHS.register(DEFAULT_ARCH, JudgeArch(build=JudgeNet))
JUDGE_ARCHS.register(
    "judge-cnn3/1", JudgeArch(build=JudgeNet3, lr=3e-3, one_cycle=True, flip=True, shift=2)
)


def build_judge_net(arch: str | None, in_channels: int, n_groups: int, width: int = 16) -> nn.Module:
    return JUDGE_ARCHS.get(arch or DEFAULT_ARCH).build(in_channels, n_groups, width)


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
    width: int = 16  # JudgeNet's width (JudgeRef.width)
    class_weights: str = "none"  # "balanced": the training loss weighted by 1 / group frequency
    # counts[i][j]: test images of true group i the judge labelled j. The rates alone hide how precisely they
    # are known; the corrected intervals need the counts. Cards written before this field lack it (None).
    confusion_counts: list[list[int]] | None = None
    # Where the weights were trained (fairbench.reproduction.training_machine): float kernels, hence the exact
    # bytes, depend on them. Cards written before these fields lack them (None).
    torch_version: str | None = None
    threads: int | None = None
    cpu: str | None = None
    arch: str | None = None  # None: judge-cnn/1, the only architecture before the field existed
    training: dict | None = None  # the recipe (optimiser, schedule, augmentation)
    data_source: dict | None = None  # fairbench.data.data_source of the data it was trained on, where known
    first_use_key: str | None = None  # trained on first use: what it was trained from (fairbench.first_use)

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
    def predict(self, images: torch.Tensor) -> np.ndarray:
        """Group index per uint8 N x C x H x W image, on the device of the judge's weights, in fixed chunks
        (`fairbench.chunking`), so no batch-size setting can flip a near tie between two groups."""
        self.net.eval()
        weight = next(self.net.parameters(), None)
        device = images.device if weight is None else weight.device
        out = [self.net(images[part].to(device)).argmax(1).cpu() for part in chunk_slices(len(images))]
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def _search_dirs() -> list[Path]:
    return [PACKAGE_DIR, paths.fairbench_home() / "judges"]


JudgeLoader = Callable[["TaskSpec", "Path | None"], Judge]
# How a task's judge is read, by `judge.kind`: the one registry every judge goes through.
JUDGE_KINDS: Registry[JudgeLoader] = Registry("judge kind")


def load_judge(task: TaskSpec, data_root: Path | None = None) -> Judge:
    """The task's judge, by the loader its `judge.kind` names."""
    return JUDGE_KINDS.get(task.judge.kind)(task, data_root)


def load_pinned_judge(task: TaskSpec, data_root: Path | None = None) -> Judge:
    """A judge fairbench trains: refused unless its file hash matches the sha256 pinned in the task spec; for
    a judge trained on first use, the cached one trained on this data (`ensure_judge` trains it)."""
    ref = task.judge
    how = f"`fairbench judge train --task {task.id}`"
    if ref.trained_on_first_use:
        from fairbench import first_use

        weights, raw = first_use.find_cached("judge", ref.id, first_use_dir("judges"), task, data_root, how)
    else:
        assert ref.sha256 is not None  # the spec validator guarantees it
        weights, raw = find_pinned("judge", ref.id, ref.sha256, _search_dirs(), how)
    return _judge_from(weights, raw)


def load_judge_of_result(task: TaskSpec, sha256: str | None) -> Judge:
    """The judge a result was scored with: the pinned one, or for a judge trained on first use the cached file
    with the result's sha256 (whatever data it was trained on); refused when that file is gone or differs."""
    if not task.judge.trained_on_first_use:
        return load_judge(task)
    if sha256 is None:
        raise FairbenchError(f"task {task.id}: the result does not record its judge's sha256")
    how = f"`fairbench judge train --task {task.id}` on the data the result was scored on"
    weights, raw = find_pinned("judge", task.judge.id, sha256, [first_use_dir("judges")], how)
    return _judge_from(weights, raw)


def _judge_from(weights: Path, raw: dict) -> Judge:
    try:
        card = JudgeCard(**raw)
    except TypeError as exc:
        raise FairbenchError(f"{weights.with_suffix('.json')}: judge card invalid ({exc})") from None
    net = build_judge_net(card.arch, card.in_channels, len(card.groups), card.width)
    net.load_state_dict(load_file(str(weights)))
    return Judge(card=card, net=net.eval())


def first_use_dir(kind: str) -> Path:
    return paths.fairbench_home() / kind


def ensure_judge(task: TaskSpec, data_root: Path | None = None, progress=None, note=None) -> None:
    """Train a trained-on-first-use judge into `$FAIRBENCH_HOME/judges/` when none matches this data yet;
    `note(text)` says so first. A pinned judge needs nothing."""
    if not task.judge.trained_on_first_use:
        return
    from fairbench import first_use

    if first_use.is_cached(task.judge.id, first_use_dir("judges"), task, data_root):
        return
    if note is not None:
        note(
            f"judge {task.judge.id} is trained on first use: training it on your data now (seeded; "
            f"cached in {first_use_dir('judges')}; results record its sha256)"
        )
    train_judge(task, first_use_dir("judges"), data_root, progress=progress, threads=1)


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
    from fairbench.features import random_shift
    from fairbench.reproduction import training_machine

    machine = training_machine()
    torch.manual_seed(seed)
    epochs = task.judge.epochs
    arch = JUDGE_ARCHS.get(task.judge.arch or DEFAULT_ARCH)
    split = data.load_split(task, "judge", data_root)
    net = arch.build(task.image_shape[0], task.n_groups, task.judge.width)
    class_weights = _class_weights(task, split.groups)
    opt = torch.optim.Adam(net.parameters(), lr=arch.lr)
    rng = torch.Generator().manual_seed(seed)
    batch = arch.batch_size
    n_batches = (len(split) + batch - 1) // batch
    total = epochs * n_batches
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=arch.lr, total_steps=total) if arch.one_cycle else None
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(split), generator=rng)
        for b in range(n_batches):
            idx = order[b * batch : (b + 1) * batch]
            images = random_shift(split.images[idx], arch.shift, rng)
            if arch.flip:
                flip = torch.rand(len(idx), generator=rng) < 0.5
                images = torch.where(flip[:, None, None, None], images.flip(3), images)
            loss = nn.functional.cross_entropy(net(images), split.groups[idx], weight=class_weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if progress is not None:
                progress(epoch * n_batches + b + 1, total)
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
        width=task.judge.width,
        class_weights=task.judge.class_weights,
        confusion_counts=counts.tolist(),
        **machine,
        arch=task.judge.arch,
        training=arch.describe() if task.judge.arch else None,
        data_source=data.data_source(task, data_root),
        first_use_key=_first_use_key(task, data_root),
    )
    atomic.write_text(weights.with_suffix(".json"), json.dumps(asdict(card), indent=2) + "\n")
    return card


def _class_weights(task: TaskSpec, groups: torch.Tensor) -> torch.Tensor | None:
    """None (plain cross-entropy), or weights n / (|S| n_g) so that every group counts equally in the loss: on
    a skewed split (UTKFace: 4% Black) a plain judge learns to say the majority group and its confusion
    matrix becomes nearly singular, which leaves the correction undefined."""
    if task.judge.class_weights == "none":
        return None
    counts = torch.bincount(groups, minlength=task.n_groups).double()
    if bool((counts == 0).any()):
        missing = [task.groups.names[g] for g in range(task.n_groups) if counts[g] == 0]
        raise FairbenchError(f"task {task.id}: the judge split has no images of {', '.join(missing)}")
    return (counts.sum() / (task.n_groups * counts)).float()


def _first_use_key(task: TaskSpec, data_root: Path | None) -> str | None:
    if not task.judge.trained_on_first_use:
        return None
    from fairbench import first_use

    return first_use.first_use_key(task, first_use.judge_recipe(task), data_root)


def evaluate_judge(task: TaskSpec, data_root: Path | None = None) -> tuple[float, np.ndarray, int]:
    """Accuracy and row-normalised confusion of the pinned judge on the task's test split, recomputed now."""
    _require_pinned(task, "evaluate")
    judge = load_judge(task, data_root)
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
from fairbench.judges import fairface  # noqa: E402,F401  (registers "fairface")
