"""The judge kind: the pinned attribute classifiers fairbench trains on a task's reserved judge split.

Weights ship inside the package (`fairbench/judges/weights`) as safetensors with a JSON card holding the
held-out accuracy and confusion matrix, so every user scores with the identical judge, offline. On another
CPU retrained bytes differ, so a retrained judge is checked by its agreement with the pinned one
(`fairbench.networks.reproduction`). SVHN's judges are trained on first use instead (`fairbench.networks.store`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fairbench import atomic, data
from fairbench.errors import FairbenchError
from fairbench.metrics.confusion import confusion_counts, confusion_matrix
from fairbench.networks.archs import DEFAULT_ARCH, JUDGE_ARCHS, build_judge_net, predict_labels
from fairbench.networks.cards import JudgeCard
from fairbench.networks.store import find_cached, find_pinned, first_use_key, home_dir
from fairbench.networks.training import Fit, fit, torch_threads, training_machine

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "judges" / "weights"
HOME = "judges"  # $FAIRBENCH_HOME/judges: first-use judges, and users' own copies of pinned ones


def search_dirs() -> list[Path]:
    return [PACKAGE_DIR, home_dir(HOME)]


def judge_recipe(task: TaskSpec) -> dict[str, Any]:
    """What a first-use judge is trained from, as its `first_use_key` hashes it."""
    ref = task.judge
    return {"kind": "judge", "id": ref.id, "epochs": ref.epochs, "arch": ref.arch, "seed": 0, "split": "judge"}


def judge_net_from(weights: Path, raw: dict) -> tuple[JudgeCard, nn.Module]:
    """The card and the network (in eval mode) of a judge file whose card JSON is `raw`."""
    card = JudgeCard.from_raw(raw, weights)
    net = build_judge_net(card.arch, card.in_channels, len(card.groups), card.width)
    net.load_state_dict(load_file(str(weights)))
    return card, net.eval()


def find_judge_file(task: TaskSpec, data_root: Path | None = None) -> tuple[Path, dict]:
    """The task's judge file: refused unless its hash matches the sha256 pinned in the task spec; for a judge
    trained on first use, the cached one trained on this data (`fairbench.networks.prepare` trains it)."""
    ref = task.judge
    how = f"`fairbench judge train --task {task.id}`"
    if ref.trained_on_first_use:
        return find_cached("judge", ref.id, home_dir(HOME), task, data_root, how, judge_recipe(task))
    assert ref.sha256 is not None  # the spec validator guarantees it
    return find_pinned("judge", ref.id, ref.sha256, search_dirs(), how)


def find_judge_of_result(task: TaskSpec, sha256: str) -> tuple[Path, dict]:
    """A first-use judge file by the sha256 a result recorded (whatever data it was trained on)."""
    how = f"`fairbench judge train --task {task.id}` on the data the result was scored on"
    return find_pinned("judge", task.judge.id, sha256, [home_dir(HOME)], how)


def require_pinned(task: TaskSpec, verb: str) -> None:
    """Only fairbench's own judges, on a task with a labelled split, can be trained or evaluated."""
    if task.judge.kind != "pinned" or not task.has_training_data:
        raise FairbenchError(
            f"task {task.id}'s judge {task.judge.id} is user-supplied ({task.judge.kind}); fairbench cannot {verb} it: "
            f"the task has no labelled split"
        )


def train_judge(
    task: TaskSpec, out_dir: Path, data_root: Path | None = None, seed: int = 0, progress=None,
    threads: int | None = None,
) -> JudgeCard:
    """Train on the task's judge split, evaluate on its test split, write `<id>.safetensors` + `<id>.json`.

    The same seed, data, thread count, CPU type and torch version give the same bytes; on another machine the
    weights differ in their last bits and the judge is checked by agreement instead
    (`fairbench.networks.reproduction.judge_reproduction`). `threads` (default: torch's current setting) is the
    intra-op thread count to train with; the card records it with the torch version and CPU.
    """
    require_pinned(task, "train")
    with torch_threads(threads):
        return _train_judge(task, Path(out_dir), data_root, seed, progress)


def _train_judge(task: TaskSpec, out_dir: Path, data_root: Path | None, seed: int, progress) -> JudgeCard:
    machine = training_machine()
    torch.manual_seed(seed)
    epochs = task.judge.epochs
    arch = JUDGE_ARCHS.get(task.judge.arch or DEFAULT_ARCH)
    split = data.load_split(task, "judge", data_root)
    net = arch.build(task.image_shape[0], task.n_groups, task.judge.width)
    weights_per_group = class_weights(task, split.groups)
    plan = Fit(epochs=epochs, lr=arch.lr, batch_size=arch.batch_size, one_cycle=arch.one_cycle, shift=arch.shift,
               flip=arch.flip)
    fit(net, split.images, split.groups, plan, seed, weights_per_group, progress)
    test = data.load_split(task, "test", data_root)
    net.eval()
    predicted = predict_labels(net, test.images)
    truth = test.groups.numpy()
    weights = out_dir / f"{task.judge.id}.safetensors"
    with atomic.atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    card = JudgeCard(
        id=task.judge.id,
        sha256=atomic.sha256_file(weights),
        task=task.id,
        groups=list(task.groups.names),
        in_channels=task.image_shape[0],
        accuracy=float((predicted == truth).mean()),
        confusion=confusion_matrix(truth, predicted, task.n_groups).tolist(),
        n_test=len(test),
        epochs=epochs,
        seed=seed,
        width=task.judge.width,
        class_weights=task.judge.class_weights,
        confusion_counts=confusion_counts(truth, predicted, task.n_groups).tolist(),
        **machine,
        arch=task.judge.arch,
        training=arch.describe() if task.judge.arch else None,
        data_source=data.data_source(task, data_root),
        first_use_key=first_use_key(task, judge_recipe(task), data_root) if task.judge.trained_on_first_use else None,
    )
    card.write(weights)
    return card


def class_weights(task: TaskSpec, groups: torch.Tensor) -> torch.Tensor | None:
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
