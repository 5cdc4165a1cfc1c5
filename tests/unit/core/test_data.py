"""Real splits: sizes and dtypes, the bicolor transform against the raw source, seeding, disjoint splits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fairbench import data
from fairbench.errors import FairbenchError
from fairbench.task_registry import SplitSpec, get_task, list_tasks


@pytest.fixture
def fresh_split_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuild splits from disk instead of returning the process-wide cached ones."""
    monkeypatch.setattr(data, "_SPLIT_CACHE", {})


def binomial_tolerance(p: float, n: int, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------------------------ digits-bicolor


@pytest.mark.parametrize("split", ["train", "judge", "test"])
def test_digits_split_sizes_shapes_dtypes(split: str) -> None:
    task = get_task("digits-bicolor")
    spec: SplitSpec = getattr(task.dataset, split)
    real = data.load_split(task, split)
    n = spec.stop - spec.start
    assert len(real) == n
    assert real.images.shape == (n, 1, 16, 16)
    assert real.images.dtype == torch.uint8
    assert real.labels.shape == (n,) and real.labels.dtype == torch.int64
    assert real.groups.shape == (n,) and real.groups.dtype == torch.int64
    assert set(real.groups.unique().tolist()) == {0, 1}
    assert set(real.labels.unique().tolist()) == set(range(10))


def test_digits_split_sizes_are_the_specs() -> None:
    task = get_task("digits-bicolor")
    assert [len(data.load_split(task, s)) for s in ("train", "judge", "test")] == [1100, 350, 347]


@pytest.mark.parametrize("split", ["train", "test"])
def test_bicolor_white_is_exactly_255_minus_the_source(split: str) -> None:
    from sklearn.datasets import load_digits

    task = get_task("digits-bicolor")
    spec = getattr(task.dataset, split)
    digits = load_digits()
    raw = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None][spec.start : spec.stop]
    source = data.resize_uint8(raw, 16, 16)
    real = data.load_split(task, split)
    images = real.images.numpy()
    white = real.groups.numpy() == 1
    assert white.any() and (~white).any()
    np.testing.assert_array_equal(images[white], 255 - source[white])
    np.testing.assert_array_equal(images[~white], source[~white])
    np.testing.assert_array_equal(real.labels.numpy(), digits.target[spec.start : spec.stop])


def test_resize_uint8_keeps_range_and_identity() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 1, 8, 8), dtype=np.uint8)
    assert data.resize_uint8(images, 8, 8) is images
    up = data.resize_uint8(images, 16, 16)
    assert up.shape == (3, 1, 16, 16) and up.dtype == np.uint8
    flat = np.full((2, 1, 8, 8), 200, dtype=np.uint8)
    np.testing.assert_array_equal(data.resize_uint8(flat, 16, 16), np.full((2, 1, 16, 16), 200))


def test_digits_white_fraction_and_seeding(fresh_split_cache: None) -> None:
    task = get_task("digits-bicolor")
    first = data.load_split(task, "train")
    data._SPLIT_CACHE.clear()
    second = data.load_split(task, "train")
    assert first is not second
    torch.testing.assert_close(first.groups, second.groups, rtol=0, atol=0)
    torch.testing.assert_close(first.images, second.images, rtol=0, atol=0)
    fraction = first.groups.float().mean().item()
    assert abs(fraction - 0.5) < binomial_tolerance(0.5, len(first))


def test_splits_use_different_streams() -> None:
    """Judge and test splits are not the train split's white pattern re-used."""
    task = get_task("digits-bicolor")
    train = data.load_split(task, "train").groups[:300]
    judge = data.load_split(task, "judge").groups[:300]
    assert not torch.equal(train, judge)


def test_bicolor_transform_seed_changes_assignment() -> None:
    from fairbench.transforms import Bicolor, BicolorParams

    images = np.zeros((500, 1, 4, 4), dtype=np.uint8)
    labels = np.zeros(500, dtype=np.int64)
    a_img, a = Bicolor().apply(images, labels, "train", BicolorParams(0.5, seed=1))
    _, b = Bicolor().apply(images, labels, "train", BicolorParams(0.5, seed=1))
    _, c = Bicolor().apply(images, labels, "train", BicolorParams(0.5, seed=2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert images.max() == 0, "apply must not modify its input in place"
    np.testing.assert_array_equal(a_img[a == 1], 255)
    _, none = Bicolor().apply(images, labels, "train", BicolorParams(0.0, seed=1))
    _, all_white = Bicolor().apply(images, labels, "train", BicolorParams(1.0, seed=1))
    assert none.sum() == 0 and all_white.sum() == 500
    _, evaluation = Bicolor().apply(images, labels, "test", BicolorParams(0.0, seed=1))
    assert 0 < evaluation.sum() < 500, "judge/test splits use eval_white_probability, not the train one"


# ---------------------------------------------------------------------------------------- split hygiene


@pytest.mark.parametrize("task", [t for t in list_tasks() if t.has_training_data], ids=lambda t: t.id)
def test_judge_and_test_splits_do_not_overlap_train(task) -> None:
    splits = {name: getattr(task.dataset, name) for name in ("train", "judge", "test")}
    for a in splits:
        for b in splits:
            if a < b and splits[a].part == splits[b].part:
                if {a, b} == {"judge", "train"} and task.dataset.judge_overlaps_train:
                    continue  # declared and justified in the spec (a classifier may see the methods' images)
                sa, sb = splits[a], splits[b]
                indices_a = set(range(sa.start, sa.stop))
                indices_b = set(range(sb.start, sb.stop))
                assert not indices_a & indices_b, f"{task.id}: {a} and {b} share images"


# ------------------------------------------------------------------------------------------------ MNIST


@pytest.mark.parametrize(("task_id", "probability"), [("mnist-bicolor", 0.5), ("mnist-bicolor-imbalanced", 0.1)])
def test_mnist_white_fraction_matches_spec(mnist_root: Path, task_id: str, probability: float) -> None:
    task = get_task(task_id)
    assert task.transform.params["white_probability"] == probability
    train = data.load_split(task, "train", mnist_root)
    assert train.images.shape == (50000, 1, 28, 28) and train.images.dtype == torch.uint8
    fraction = train.groups.float().mean().item()
    assert abs(fraction - probability) < binomial_tolerance(probability, len(train))
    test = data.load_split(task, "test", mnist_root)
    assert len(test) == 10000
    assert abs(test.groups.float().mean().item() - 0.5) < binomial_tolerance(0.5, len(test))


def test_mnist_bicolor_is_seeded_and_exact(mnist_root: Path, fresh_split_cache: None) -> None:
    import torchvision

    task = get_task("mnist-bicolor-imbalanced")
    first = data.load_split(task, "judge", mnist_root)
    data._SPLIT_CACHE.clear()
    second = data.load_split(task, "judge", mnist_root)
    assert torch.equal(first.groups, second.groups)
    raw = torchvision.datasets.MNIST(str(mnist_root), train=True, download=False)
    source = raw.data[50000:60000, None]
    white = first.groups == 1
    assert torch.equal(first.images[white], 255 - source[white])
    assert torch.equal(first.images[~white], source[~white])
    assert torch.equal(first.labels, raw.targets[50000:60000])


def test_mnist_offline_and_missing_names_files_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "1")
    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(FairbenchError) as info:
        data.load_split(get_task("mnist-bicolor"), "train", empty)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert "train-labels-idx1-ubyte" in message
    assert str(empty / "MNIST" / "raw") in message
    assert "OFFLINE" in message
    assert not (empty / "MNIST").exists(), "offline mode must not start a download"


def test_mnist_offline_missing_through_env_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "1")
    monkeypatch.setenv("FAIRBENCH_DATA", str(tmp_path))
    with pytest.raises(FairbenchError, match="t10k-images-idx3-ubyte") as info:
        data.load_split(get_task("mnist"), "test")
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)
