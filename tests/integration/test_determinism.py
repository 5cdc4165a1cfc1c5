"""Same inputs, same bytes: scores, result files, image-set scores and training are reproducible.

test_cli.py already checks that two scorings with --samples 600 agree on `metrics` and that the batch size
does not change `metrics` of a checkpoint or an npz. Here: the full default protocol compared byte for byte
(json.dumps of `metrics`, `group_proportions`, `per_condition`), the result files written to disk, image sets
(npz vs the same images as a folder, in any order, at any batch size), and training. Across batch sizes and
image orders the judge-based parts are compared byte for byte and the FID family to 1e-9 relative: its
feature sums are floating-point reductions whose rounding follows the batching.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fairbench import data
from fairbench.submission.checkpoint import load_checkpoint, safe_torch_load
from fairbench.cli import app
from fairbench.networks.judge import train_judge
from fairbench.task_registry import get_task
from fairbench.training import RunOptions, train

DIGITS = "digits-bicolor"
SCORED_PARTS = ("metrics", "group_proportions", "group_counts", "per_condition", "n_samples")
# Fields that legitimately differ between two scorings of the same thing: when, how long, and where.
VOLATILE = {"created", "elapsed_s"}


def score(*args: str) -> tuple[str, dict[str, Any]]:
    result = CliRunner().invoke(app, ["score", *args, "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result.stdout, json.loads(result.stdout)


def is_quality(metric: str) -> bool:
    """Feature-network metrics: float sums over feature vectors (see test_quality_metrics_exactly_batch_size_free)."""
    return metric.startswith(("fid", "kid", "precision", "recall", "density", "coverage", "vendi"))


def scored_bytes(result: dict[str, Any], quality: bool = True) -> str:
    parts = {part: result[part] for part in SCORED_PARTS}
    if not quality:
        parts["metrics"] = {k: v for k, v in result["metrics"].items() if not is_quality(k)}
    return json.dumps(parts, sort_keys=True)


def assert_same_scores(got: dict[str, Any], expected: dict[str, Any], same_order: bool = True) -> None:
    """Fairness parts byte for byte; quality metrics equal to float rounding (1e-9 relative). The FID-family
    bootstrap resamples images by position, so with the images in another order only its values must agree."""
    assert scored_bytes(got, quality=False) == scored_bytes(expected, quality=False)
    assert got["metrics"].keys() == expected["metrics"].keys()
    for name in filter(is_quality, expected["metrics"]):
        for key in ("value", "ci95") if same_order else ("value",):
            want = expected["metrics"][name][key]  # PRDC and Vendi have no interval (None)
            assert got["metrics"][name][key] == (want if want is None else pytest.approx(want, rel=1e-9)), name


def stable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def test_images() -> tuple[np.ndarray, np.ndarray]:
    """300 real held-out digits, NHWC uint8, with their classes."""
    split = data.load_split(get_task(DIGITS), "test")
    return split.images.numpy().transpose(0, 2, 3, 1)[:300].copy(), split.labels.numpy()[:300].copy()


def test_checkpoint_scores_and_result_files_are_byte_identical(digits_checkpoint: Path, tmp_path: Path) -> None:
    a_out, b_out, c_out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a_text, a = score(str(digits_checkpoint), "--out", str(a_out))
    b_text, b = score(str(digits_checkpoint), "--out", str(b_out))
    c_text, c = score(str(digits_checkpoint), "--out", str(c_out), "--batch-size", "333")
    assert a["n_samples"] == get_task(DIGITS).sampling.n_samples  # the full default protocol
    assert scored_bytes(a) == scored_bytes(b)
    assert stable(a) == stable(b)
    assert_same_scores(c, a)
    # The file on disk is the printed result, exactly.
    assert a_out.read_text() == a_text and b_out.read_text() == b_text and c_out.read_text() == c_text
    on_disk = json.loads(a_out.read_text())
    assert scored_bytes(on_disk) == scored_bytes(a)
    assert a["submission"]["sha256"] == c["submission"]["sha256"]


def test_quality_metrics_exactly_batch_size_free(digits_checkpoint: Path, tmp_path: Path) -> None:
    _, a = score(str(digits_checkpoint), "--out", str(tmp_path / "a.json"))
    _, b = score(str(digits_checkpoint), "--out", str(tmp_path / "b.json"), "--batch-size", "333")
    assert scored_bytes(a) == scored_bytes(b)


def test_npz_folder_order_and_batch_size_give_identical_scores(
    test_images: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    images, labels = test_images
    npz = tmp_path / "set.npz"
    np.savez(npz, images=images, labels=labels)
    order = np.random.default_rng(0).permutation(len(images))
    shuffled = tmp_path / "shuffled.npz"
    np.savez_compressed(shuffled, images=images[order], labels=labels[order])
    folder = tmp_path / "set"
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :, 0]).save(folder / str(int(label)) / f"{i:04d}.png")

    common = ["--task", DIGITS]
    _, first = score(*common, "--images", str(npz), "--out", str(tmp_path / "1.json"))
    _, again = score(*common, "--images", str(npz), "--out", str(tmp_path / "2.json"), "--batch-size", "1")
    _, reordered = score(*common, "--images", str(shuffled), "--out", str(tmp_path / "3.json"), "--batch-size", "64")
    _, as_folder = score(*common, "--images", str(folder), "--out", str(tmp_path / "4.json"), "--batch-size", "7")
    assert first["n_samples"] == 300
    _, repeat = score(*common, "--images", str(npz), "--out", str(tmp_path / "5.json"))
    assert scored_bytes(repeat) == scored_bytes(first)
    assert stable(repeat) == stable(first)  # same file, same everything (submission sha256 included)
    assert_same_scores(again, first)
    assert_same_scores(reordered, first, same_order=False)  # the order of the images changes no score
    assert_same_scores(as_folder, first, same_order=False)  # the same images as PNG folders score as the npz
    assert json.loads((tmp_path / "4.json").read_text()) == as_folder


def _options(out: Path, **changes: Any) -> RunOptions:
    base: dict[str, Any] = dict(method="repfair", task=get_task(DIGITS), seed=7, steps=8, out=out, device="cpu")
    base.update(changes)
    return RunOptions(**base)


def _tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested training state, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        return {k: v for key, value in obj.items() for k, v in _tensors(value, f"{prefix}/{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, value in enumerate(obj) for k, v in _tensors(value, f"{prefix}/{i}").items()}
    return {}


def test_training_twice_with_one_seed_gives_identical_weights_and_state(tmp_path: Path) -> None:
    first = train(_options(tmp_path / "a", checkpoint_every=3))
    second = train(_options(tmp_path / "b", checkpoint_every=100))  # the checkpoint interval changes nothing
    a, b = load_checkpoint(first).state_dict, load_checkpoint(second).state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state_a = _tensors(safe_torch_load(first.parent / "trainstate.pt"))
    state_b = _tensors(safe_torch_load(second.parent / "trainstate.pt"))
    assert state_a.keys() == state_b.keys() and len(state_a) > 10
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a), "optimiser and RNG states match too"

    other_seed = load_checkpoint(train(_options(tmp_path / "c", seed=8))).state_dict
    assert any(not torch.equal(a[k], other_seed[k]) for k in a), "the seed must matter"


def test_judge_training_is_reproducible(tmp_path: Path) -> None:
    """Same data, seed and thread count give the same judge file (its sha256 is what a task pins)."""
    task = get_task(DIGITS)
    first = train_judge(task, tmp_path / "a")
    second = train_judge(task, tmp_path / "b")
    assert first.sha256 == second.sha256
    assert (tmp_path / "a" / f"{task.judge.id}.json").read_text() == (tmp_path / "b" / f"{task.judge.id}.json").read_text()
