"""Checkpoints that load cleanly but whose generator misbehaves: NaN output, wrong image shape, wrong task.

Each file is a well-formed `fairbench-generator/1` checkpoint (SECURITY.md, "What a submission may be") built
from the session's real digits checkpoint, so the fault is in what the network does, not in the file format.
Every case must be a FairbenchError naming the file through the API, and exit code 2 with one `error:` line
through the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from fairbench.chunking import SCORE_CHUNK
from fairbench.submission.checkpoint import load_checkpoint
from fairbench.errors import FairbenchError
from fairbench.submission.generators import ARCHITECTURES
from fairbench.scoring import ScoreOptions, score_checkpoint
from fairbench.task_registry import get_task
from tests.helpers.cli_errors import assert_cli_error

DIGITS = "digits-bicolor"
MNIST = "mnist-bicolor"


def raw(ckpt: Path) -> dict[str, Any]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def fresh_generator_weights(ckpt: Path, **kwargs_changes: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """arch_kwargs changed as asked, and weights of a network actually built with them (so they load)."""
    data = raw(ckpt)
    arch = kwargs_changes.pop("arch", data["arch"])
    kwargs = {**data["arch_kwargs"], **kwargs_changes}
    torch.manual_seed(0)
    net = ARCHITECTURES.get(arch)(**kwargs)
    return kwargs, {k: v.detach().clone() for k, v in net.state_dict().items()}


def _nan_output(tmp: Path, ckpt: Path) -> Path:
    data = raw(ckpt)
    bias = next(k for k in reversed(list(data["state_dict"])) if k.endswith("bias"))  # the output layer's
    data["state_dict"][bias] = torch.full_like(data["state_dict"][bias], float("nan"))
    torch.save(data, tmp / "nan.pt")
    return tmp / "nan.pt"


def _all_weights_nan(tmp: Path, ckpt: Path) -> Path:
    data = raw(ckpt)
    for key, value in data["state_dict"].items():
        if value.is_floating_point():
            data["state_dict"][key] = torch.full_like(value, float("nan"))
    torch.save(data, tmp / "all-nan.pt")
    return tmp / "all-nan.pt"


def _infinite_output(tmp: Path, ckpt: Path) -> Path:
    """The old `dcgan-conditional` layout (linear output: tanh generators cannot emit inf), output bias +inf."""
    data = raw(ckpt)
    data["arch"] = "dcgan-conditional"
    data["arch_kwargs"], data["state_dict"] = fresh_generator_weights(ckpt, arch="dcgan-conditional", width=8)
    bias = next(k for k in reversed(list(data["state_dict"])) if k.endswith("bias"))
    data["state_dict"][bias] = torch.full_like(data["state_dict"][bias], float("inf"))
    torch.save(data, tmp / "inf.pt")
    return tmp / "inf.pt"


def _rgb_generator(tmp: Path, ckpt: Path) -> Path:
    """arch_kwargs image_shape [3, 16, 16] with matching weights: loads, then draws RGB for a greyscale task."""
    data = raw(ckpt)
    data["arch_kwargs"], data["state_dict"] = fresh_generator_weights(ckpt, image_shape=[3, 16, 16])
    torch.save(data, tmp / "rgb.pt")
    return tmp / "rgb.pt"


def _mnist_shaped_claims_digits(tmp: Path, ckpt: Path) -> Path:
    """A 28x28 (mnist-bicolor-shaped) generator whose metadata says digits-bicolor, hashes included."""
    data = raw(ckpt)
    data["arch_kwargs"], data["state_dict"] = fresh_generator_weights(ckpt, image_shape=list(get_task(MNIST).image_shape))
    torch.save(data, tmp / "mnist-shaped.pt")
    return tmp / "mnist-shaped.pt"


def _digits_claims_mnist(tmp: Path, ckpt: Path) -> Path:
    """The real 16x16 digits generator relabelled as an mnist-bicolor checkpoint with mnist's hashes."""
    data = raw(ckpt)
    mnist = get_task(MNIST)
    data.update(task=MNIST, task_hash=mnist.task_hash, data_hash=mnist.data_hash)
    torch.save(data, tmp / "digits-as-mnist.pt")
    return tmp / "digits-as-mnist.pt"


def _image_shape_edited_only(tmp: Path, ckpt: Path) -> Path:
    """image_shape changed but the weights are still the 16x16 ones: refused before anything is sampled."""
    data = raw(ckpt)
    data["arch_kwargs"]["image_shape"] = [1, 28, 28]
    torch.save(data, tmp / "kwargs-only.pt")
    return tmp / "kwargs-only.pt"


def _fewer_classes(tmp: Path, ckpt: Path) -> Path:
    data = raw(ckpt)
    data["arch_kwargs"], data["state_dict"] = fresh_generator_weights(ckpt, num_classes=5)
    torch.save(data, tmp / "five-classes.pt")
    return tmp / "five-classes.pt"


def _unconditional(tmp: Path, ckpt: Path) -> Path:
    data = raw(ckpt)
    data["arch_kwargs"], data["state_dict"] = fresh_generator_weights(ckpt, num_classes=0)
    torch.save(data, tmp / "unconditional.pt")
    return tmp / "unconditional.pt"


def _huge_width(tmp: Path, ckpt: Path) -> Path:
    """A 400 KB file whose arch_kwargs ask for a network of ~10^13 parameters: refused without allocating."""
    data = raw(ckpt)
    data["arch_kwargs"]["width"] = 1_000_000
    torch.save(data, tmp / "huge.pt")
    return tmp / "huge.pt"


FAULTS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "nan-output": (_nan_output, "NaN"),
    "all-weights-nan": (_all_weights_nan, "NaN"),
    "infinite-output": (_infinite_output, "infinite"),
    "rgb-for-greyscale-task": (_rgb_generator, f"expected ({SCORE_CHUNK}, 1, 16, 16)"),
    "mnist-shaped-claims-digits": (_mnist_shaped_claims_digits, f"returned shape ({SCORE_CHUNK}, 1, 28, 28)"),
    "digits-generator-claims-mnist": (_digits_claims_mnist, f"expected ({SCORE_CHUNK}, 1, 28, 28)"),
    "image-shape-edited-weights-not": (_image_shape_edited_only, "do not fit"),
    "fewer-classes-than-task": (_fewer_classes, "conditional on 5 classes; the task needs 10"),
    "unconditional-for-conditional-task": (_unconditional, "unconditional; the task needs 10"),
    "huge-arch-kwargs": (_huge_width, "do not fit"),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_generator_fault_is_refused_by_api(case: str, tmp_path: Path, digits_checkpoint: Path) -> None:
    build, expected = FAULTS[case]
    path = build(tmp_path, digits_checkpoint)
    load_checkpoint(path)  # the file itself is well-formed: the fault shows only when the network runs
    started = time.perf_counter()
    with pytest.raises(FairbenchError) as info:
        score_checkpoint(path, ScoreOptions(device="cpu"))
    assert time.perf_counter() - started < 20, "a faulty generator must be refused quickly"
    message = str(info.value)
    assert str(path) in message and expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize("case", list(FAULTS))
def test_generator_fault_is_one_assert_cli_error(case: str, tmp_path: Path, digits_checkpoint: Path) -> None:
    build, expected = FAULTS[case]
    path = build(tmp_path, digits_checkpoint)
    line = assert_cli_error(["score", str(path), "--device", "cpu"], path)
    assert expected in line
    assert not (path.parent / "result.json").exists(), "no result is written for a refused submission"


@pytest.mark.parametrize("case", ["nan-output", "mnist-shaped-claims-digits", "fewer-classes-than-task"])
def test_grid_refuses_the_same_faults(case: str, tmp_path: Path, digits_checkpoint: Path) -> None:
    build, expected = FAULTS[case]
    path = build(tmp_path, digits_checkpoint)
    out = tmp_path / "grid.png"
    line = assert_cli_error(["grid", str(path), "--out", str(out)], path)
    assert expected.replace(str(SCORE_CHUNK), "80") in line or expected in line
    assert not out.exists()


def test_honest_checkpoint_of_another_task_is_refused(tmp_path: Path, digits_checkpoint: Path) -> None:
    """A real mnist-bicolor-shaped checkpoint, labelled as such, scored against digits-bicolor."""
    path = _mnist_shaped_claims_digits(tmp_path, digits_checkpoint)
    data = raw(path)
    mnist = get_task(MNIST)
    data.update(task=MNIST, task_hash=mnist.task_hash, data_hash=mnist.data_hash)
    torch.save(data, path)
    with pytest.raises(FairbenchError, match="made for task 'mnist-bicolor', not 'digits-bicolor'") as info:
        score_checkpoint(path, ScoreOptions(device="cpu"), task=DIGITS)
    assert str(path) in str(info.value)
    line = assert_cli_error(["score", str(path), "--task", DIGITS, "--device", "cpu"], path)
    assert "made for task 'mnist-bicolor'" in line


# ------------------------------------------------------------------------ networks that misbehave in code


class _Crashes(nn.Module):
    latent_dim, num_classes = 4, 10

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (500x4 and 7x9)")


class _ReturnsTuple(_Crashes):
    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        return (torch.zeros(len(z), 1, 16, 16),)


@pytest.mark.parametrize(
    ("arch", "factory", "expected"),
    [
        ("test-crashes", _Crashes, "generator failed on a batch"),
        ("test-returns-tuple", _ReturnsTuple, "returned shape tuple"),
    ],
)
def test_registered_architecture_that_misbehaves(
    arch: str, factory: type, expected: str, tmp_path: Path, digits_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ARCHITECTURES._items, arch, factory)
    data = raw(digits_checkpoint)
    data.update(arch=arch, arch_kwargs={}, state_dict={"w": torch.zeros(1)})
    path = tmp_path / f"{arch}.pt"
    torch.save(data, path)
    with pytest.raises(FairbenchError, match=expected):
        score_checkpoint(path, ScoreOptions(device="cpu"))
    assert expected in assert_cli_error(["score", str(path), "--device", "cpu"], path)
