"""CIFAR-10 source (ImageFolder and torchvision layouts, decoded-array cache, data identity), the long-tail
transform with the published counts, and the cifar10-lt tasks on the harness (tiny nets, few steps)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fairbench import data, transforms
from fairbench.errors import FairbenchError
from fairbench.sources import SOURCES, cache
from fairbench.sources.cifar10 import CLASSES
from fairbench.task_registry import get_task, load_task_file
from tests.helpers.cifar_fake import tiny_task_file, write_fake_cifar

RHO100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
RHO10 = [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]


def _independent_sha(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.astype(np.uint8).tobytes() + labels.astype(np.int64).tobytes()).hexdigest()


# ----------------------------------------------------------------------------------------------- long tail


def test_long_tail_counts_are_the_published_ones() -> None:
    params = transforms.LongTailParams(rho=100, seed=0)
    assert transforms.long_tail_counts(params) == RHO100 and sum(RHO100) == 12406
    assert transforms.long_tail_counts(transforms.LongTailParams(rho=10, seed=0)) == RHO10
    # The formula, written out independently: int(5000 * (1/rho) ** (c / 9)).
    assert [int(5000 * 0.01 ** (c / 9)) for c in range(10)] == RHO100
    assert transforms.long_tail_counts(transforms.LongTailParams(rho=1, seed=0)) == [5000] * 10


def test_long_tail_selection_is_seeded_per_class_and_leaves_other_splits_alone() -> None:
    labels = np.repeat(np.arange(10), 20)
    rng = np.random.default_rng(3)
    labels = labels[rng.permutation(len(labels))]
    transform = transforms.TRANSFORMS.get("long-tail")
    params = transforms.LongTailParams(rho=10, seed=5, max_per_class=20)
    keep = transform.select(labels, "train", params)
    assert np.array_equal(np.bincount(labels[keep], minlength=10), transforms.long_tail_counts(params))
    assert np.array_equal(keep, np.unique(keep))  # sorted, no repeats: original order kept
    assert np.array_equal(keep, transform.select(labels, "train", params))
    other = transform.select(labels, "train", transforms.LongTailParams(rho=10, seed=6, max_per_class=20))
    assert not np.array_equal(keep, other)
    for split in ("judge", "test", "reference"):
        assert transform.select(labels, split, params) is None
    images = np.zeros((len(labels), 3, 2, 2), dtype=np.uint8)
    out, groups = transform.apply(images, labels, "test", params)
    assert np.array_equal(groups, labels)
    with pytest.raises(FairbenchError, match="class 0 has 20"):
        transform.select(labels, "train", transforms.LongTailParams(rho=10, seed=5, max_per_class=21))


def test_long_tail_params_are_checked() -> None:
    from fairbench.task_registry import TransformSpec

    with pytest.raises(FairbenchError, match="rho"):
        transforms.parse_params(TransformSpec("long-tail", {"rho": 0.5, "seed": 0}), "t")


# ------------------------------------------------------------------------------------------ ImageFolder source


def test_imagefolder_pixels_labels_order_and_identity(tmp_path: Path) -> None:
    written = write_fake_cifar(tmp_path)
    source = SOURCES.get("cifar10")
    for part in ("train", "test"):
        raw = source.load(part, tmp_path)
        images, labels = written[part]
        assert raw.images.dtype == np.uint8 and raw.images.shape == images.shape
        assert np.array_equal(raw.images, images) and np.array_equal(raw.labels, labels)
        identity = source.identity(part, tmp_path)
        assert identity.format == "imagefolder-png"
        assert identity.sha256 == _independent_sha(images, labels)
    # Label order is CIFAR-10's, by folder name: 'cat' is 3, 'truck' is 9.
    raw = source.load("train", tmp_path)
    assert CLASSES.index("cat") == 3 and set(raw.labels[18:24].tolist()) == {3}


def test_jpeg_copy_has_another_format_and_hash(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path / "png")
    write_fake_cifar(tmp_path / "jpg", suffix=".jpg")
    source = SOURCES.get("cifar10")
    png, jpg = source.identity("test", tmp_path / "png"), source.identity("test", tmp_path / "jpg")
    assert jpg.format == "imagefolder-jpeg" and png.format == "imagefolder-png"
    assert png.sha256 != jpg.sha256


def test_decoded_parts_are_cached_as_plain_npz_and_a_bad_cache_is_redone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cache, "_MEMO", {})
    written = write_fake_cifar(tmp_path)
    source = SOURCES.get("cifar10")
    source.load("train", tmp_path)
    files = list((cache.cache_dir()).glob("cifar10-train-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as z:  # readable without pickle
        assert np.array_equal(z["images"], written["train"][0])
    cache._MEMO.clear()
    with np.load(files[0], allow_pickle=False) as z:
        tampered = {k: z[k].copy() for k in z.files}
    tampered["images"][0, 0, 0, 0] ^= 1
    np.savez(files[0], **tampered)
    raw = source.load("train", tmp_path)  # the hash inside no longer matches: decoded afresh, not trusted
    assert np.array_equal(raw.images, written["train"][0])
    # An edited image changes the fingerprint, hence the cache entry and the identity.
    cache._MEMO.clear()
    before = source.identity("train", tmp_path).sha256
    from PIL import Image

    path = tmp_path / "cifar10" / "train" / "bird" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path)
    os.utime(path, ns=(1, 1))
    assert source.identity("train", tmp_path).sha256 != before


def test_imagefolder_problems_are_one_line_errors(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path)
    source = SOURCES.get("cifar10")
    (tmp_path / "cifar10" / "test" / "cat").rename(tmp_path / "cifar10" / "test" / "kitten")
    with pytest.raises(FairbenchError, match="one folder per CIFAR-10 class"):
        source.load("test", tmp_path)
    (tmp_path / "cifar10" / "train" / "dog" / "0000.png").write_bytes(b"not an image")
    with pytest.raises(FairbenchError, match="cannot decode"):
        source.load("train", tmp_path)
    with pytest.raises(FairbenchError, match="parts 'train' and 'test'"):
        source.load("all", tmp_path)


def test_offline_without_data_names_both_layouts(tmp_path: Path) -> None:
    with pytest.raises(FairbenchError) as err:
        SOURCES.get("cifar10").load("train", tmp_path)
    message = str(err.value)
    assert "FAIRBENCH_OFFLINE" in message and "cifar-10-batches-py" in message and "cifar10/{train,test}" in message
    assert "\n" not in message


def test_torchvision_layout_is_transposed_and_labelled_original(tmp_path: Path, monkeypatch) -> None:
    """torchvision's CIFAR10 (md5-checked batches) is used when no ImageFolder exists; stand it in here."""
    import torchvision

    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            assert download is False
            self.data, self.targets = nhwc, [1, 2, 3, 4, 5, 6, 7]

    (tmp_path / "cifar-10-batches-py").mkdir()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    from fairbench.sources.cifar10 import Cifar10

    source = Cifar10()
    raw = source.load("test", tmp_path)
    assert np.array_equal(raw.images, nhwc.transpose(0, 3, 1, 2)) and raw.labels.tolist() == [1, 2, 3, 4, 5, 6, 7]
    identity = source.identity("test", tmp_path)
    assert identity.format == "cifar10-python" and identity.sha256 == _independent_sha(raw.images, raw.labels)


# ----------------------------------------------------------------------------------------------- tasks


def test_tiny_task_splits_and_data_source(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path)
    task = load_task_file(tiny_task_file(tmp_path))
    train = data.load_split(task, "train", tmp_path)
    counts = transforms.long_tail_counts(transforms.LongTailParams(rho=4, seed=7, max_per_class=6))
    assert np.bincount(train.groups.numpy(), minlength=10).tolist() == counts
    assert torch.equal(train.groups, train.labels)
    assert len(data.load_split(task, "judge", tmp_path)) == 60  # balanced, overlapping train by declaration
    source = data.data_source(task, tmp_path)
    assert source["format"] == "imagefolder-png" and set(source["sha256"]) == {"train", "test"}


def test_judge_overlapping_train_needs_the_declaration(tmp_path: Path) -> None:
    text = tiny_task_file(tmp_path).read_text().replace("  judge_overlaps_train: true\n", "")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(FairbenchError, match="overlap"):
        load_task_file(path)


def test_builtin_cifar_tasks_are_listed_and_aliased() -> None:
    assert get_task("cifar10").id == "cifar10-lt"
    for task_id, rho in (("cifar10-lt", 100), ("cifar10-lt-10", 10)):
        task = get_task(task_id)
        assert task.conditional is False and task.image_shape == (3, 32, 32) and task.n_groups == 10
        assert task.transform.params["rho"] == rho
        assert task.groups.names == list(CLASSES)


@pytest.fixture(scope="module")
def cifar_root() -> Path:
    root = Path(os.environ.get("FAIRBENCH_DATA", "../shared/data")).expanduser()
    if not (root / "cifar10" / "train").is_dir():
        pytest.skip("real CIFAR-10 not found (set FAIRBENCH_DATA)")
    return root


def test_real_cifar10_lt_counts_exactly(cifar_root: Path) -> None:
    for task_id, expected in (("cifar10-lt", RHO100), ("cifar10-lt-10", RHO10)):
        task = get_task(task_id)
        train = data.load_split(task, "train", cifar_root)
        assert np.bincount(train.groups.numpy(), minlength=10).tolist() == expected
    task = get_task("cifar10-lt")
    assert np.bincount(data.load_split(task, "judge", cifar_root).groups.numpy()).tolist() == [5000] * 10
    assert np.bincount(data.load_split(task, "test", cifar_root).groups.numpy()).tolist() == [1000] * 10
    assert data.data_source(task, cifar_root)["format"] == "imagefolder-jpeg"


@pytest.mark.parametrize("method", ["vanilla", "repfair", "groupcond", "mbstd"])
def test_methods_train_and_sample_unconditional_rgb(tmp_path: Path, method: str) -> None:
    from fairbench.submission import checkpoint as ckpt_io
    from fairbench.submission import sampling
    from fairbench.training import RunOptions, train

    write_fake_cifar(tmp_path)
    task = load_task_file(tiny_task_file(tmp_path))
    path = train(
        RunOptions(
            method=method, task=task, seed=0, steps=2, out=tmp_path / "runs", data_root=tmp_path, device="cpu",
            batch_size=8, checkpoint_every=1, overrides={"width": 8, "latent_dim": 8},
        )
    )
    ckpt = ckpt_io.load_checkpoint(path)
    model = ckpt_io.build_generator(ckpt, path, torch.device("cpu"))
    images, labels = sampling.generate(model, 12, 0, task.image_shape, 0, device=torch.device("cpu"))
    assert images.shape == (12, 3, 32, 32) and images.dtype == torch.uint8 and labels is None
