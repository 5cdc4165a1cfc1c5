"""`fairbench.submission.samples`: the one path from a submission to a task's images (and the judge's groups),
checked against the same computation written out here by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fairbench.errors import FairbenchError
from fairbench.judges import load_judge
from fairbench.results import sha256_path
from fairbench.submission import checkpoint as ckpt_io
from fairbench.submission.samples import (
    judge_groups,
    samples_from,
    samples_from_checkpoint,
    samples_from_generator,
    samples_from_imageset,
    with_judge_labels,
)
from fairbench.task_registry import get_task

TASK = get_task("digits-bicolor")  # conditional on 10 digits, 2 groups, 1 x 16 x 16; its judge ships


@torch.no_grad()
def _by_hand(model: torch.nn.Module, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The task's sampler written out: seeded latents drawn at once, digits 0..9 in turn, calls of 250."""
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(n) % 10
    model.eval()
    out = torch.cat([model(z[i : i + 250], y[i : i + 250]) for i in range(0, n, 250)])
    return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8), y


@torch.no_grad()
def _judged_by_hand(images: torch.Tensor) -> np.ndarray:
    net = load_judge(TASK).net.eval()
    return torch.cat([net(images[i : i + 250]).argmax(1) for i in range(0, len(images), 250)]).numpy()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def test_a_checkpoint_gives_the_images_and_labels_of_the_task_sampler_by_hand(digits_checkpoint: Path) -> None:
    samples = with_judge_labels(samples_from_checkpoint(digits_checkpoint, n=310), load_judge(TASK), "cpu")
    model = ckpt_io.build_generator(ckpt_io.load_checkpoint(digits_checkpoint), digits_checkpoint)
    images, conditions = _by_hand(model, 310, TASK.sampling.seed)
    assert samples.images.dtype == torch.uint8 and samples.images.shape == (310, 1, 16, 16)
    assert torch.equal(samples.images, images)
    assert torch.equal(samples.conditions, conditions)
    assert np.array_equal(samples.groups, _judged_by_hand(images))
    assert (samples.kind, samples.name, samples.path, samples.seed) == (
        "checkpoint", "vanilla", digits_checkpoint, TASK.sampling.seed)
    assert samples.task.id == TASK.id and len(samples) == 310
    assert samples.submission().sha256 == sha256_path(digits_checkpoint)


def test_another_seed_gives_other_images_and_the_same_conditions(digits_checkpoint: Path) -> None:
    base = samples_from_checkpoint(digits_checkpoint, TASK, 40)
    other = samples_from_checkpoint(digits_checkpoint, TASK, 40, seed=TASK.sampling.seed + 1)
    model = ckpt_io.build_generator(ckpt_io.load_checkpoint(digits_checkpoint), digits_checkpoint)
    assert torch.equal(other.images, _by_hand(model, 40, TASK.sampling.seed + 1)[0])
    assert not torch.equal(base.images, other.images)
    assert torch.equal(base.conditions, other.conditions) and other.seed == TASK.sampling.seed + 1


def test_no_way_of_asking_changes_the_images(digits_checkpoint: Path) -> None:
    """There is no batch size to set: calls are cut at 250 whoever asks. Progress is only told, a checkpoint the
    caller loaded is the one read from the file, and a dispatch is the same call. (A smaller N is not a prefix of
    a larger one: torch draws the last few normals of a tensor another way, so N is part of what is scored.)"""
    seen: list[tuple[int, int]] = []
    full = samples_from_checkpoint(digits_checkpoint, TASK, 600, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(250, 600), (500, 600), (600, 600)]
    ckpt = ckpt_io.load_checkpoint(digits_checkpoint)
    loaded = samples_from_checkpoint(digits_checkpoint, TASK, 600, checkpoint=ckpt)
    assert torch.equal(loaded.images, full.images)
    assert torch.equal(samples_from(digits_checkpoint, n=600).images, full.images)


def test_a_generator_in_memory_is_sampled_the_same_way() -> None:
    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        latent_dim, num_classes = 3, 10

        def __init__(self) -> None:
            super().__init__()
            self.embed, self.out = torch.nn.Embedding(10, 3), torch.nn.Linear(3, 256)

        def forward(self, z, y=None):
            return torch.tanh(self.out(z + self.embed(y))).view(-1, 1, 16, 16) * 1.2  # some pixels clamp

    model = Tiny()
    samples = samples_from_generator(model, TASK, 260, seed=7)
    images, conditions = _by_hand(model, 260, 7)
    assert torch.equal(samples.images, images) and torch.equal(samples.conditions, conditions)
    assert (samples.kind, samples.path, samples.latent_dim, samples.groups) == ("generator", None, 3, None)
    assert _one_line(pytest.raises(FairbenchError, samples.submission)).startswith("generator:")


def test_an_image_set_round_trips_as_a_file_and_as_a_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 16, 16, 1), dtype=np.uint8)
    labels = np.arange(20) % 10
    npz = tmp_path / "mine.npz"
    np.savez(npz, images=images, labels=labels)
    folder = tmp_path / "mine-folder"
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :, 0], mode="L").save(folder / str(label) / f"{i:03d}.png")
    judge = load_judge(TASK)
    for path, kind, name in ((npz, "npz", "mine"), (folder, "folder", "mine-folder")):
        samples = samples_from(path, TASK, judge=judge)
        order = np.argsort(samples.conditions.numpy(), kind="stable")  # a folder is read class by class
        assert (samples.kind, samples.name, samples.path, samples.seed) == (kind, name, path, None)
        got = samples.images.permute(0, 2, 3, 1).numpy()
        expected_order = np.argsort(labels, kind="stable")
        assert np.array_equal(got[order], images[expected_order])
        assert np.array_equal(samples.conditions.numpy()[order], labels[expected_order])
        assert np.array_equal(samples.groups, _judged_by_hand(samples.images))
        assert samples.submission().sha256 == sha256_path(path)
    assert samples_from_imageset(npz, TASK).groups is None


def test_judge_groups_move_the_judge_only_when_asked() -> None:
    judge = load_judge(TASK)
    images = torch.zeros(3, 1, 16, 16, dtype=torch.uint8)
    assert np.array_equal(judge_groups(judge, images), judge_groups(judge, images, "cpu"))
    assert next(judge.net.parameters()).device.type == "cpu"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ckpt, npz: samples_from_checkpoint(ckpt, TASK, 0), "the number of samples must be positive, got 0"),
        (lambda ckpt, npz: samples_from(npz), "an image set does not say its task; name the task"),
        (lambda ckpt, npz: samples_from(npz, TASK, n=5), "an image set is scored as submitted"),
        (lambda ckpt, npz: samples_from(npz.with_name("absent.pt"), TASK), "absent.pt"),
        (lambda ckpt, npz: samples_from_checkpoint(ckpt, get_task("cifar10-lt"), 10), "the task needs no classes"),
    ],
)
def test_bad_inputs_are_one_line_errors(call, message: str, digits_checkpoint: Path, tmp_path: Path) -> None:
    npz = tmp_path / "set.npz"
    np.savez(npz, images=np.zeros((10, 16, 16, 1), dtype=np.uint8), labels=np.arange(10))
    with pytest.raises(FairbenchError) as exc:
        call(digits_checkpoint, npz)
    assert message in _one_line(exc)
