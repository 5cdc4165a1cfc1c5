"""A tiny CIFAR-10 ImageFolder written by the tests (PNG: lossless, so pixels can be checked exactly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fairbench.sources.cifar10 import CLASSES

TASK_YAML = """
id: cifar10-lt-tiny
version: 1
dataset:
  source: cifar10
  image_shape: [3, 32, 32]
  num_classes: 10
  class_names: [airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck]
  train: {{part: train, start: 0, stop: {n_train}}}
  judge: {{part: train, start: 0, stop: {n_train}}}
  test: {{part: test, start: 0, stop: {n_test}}}
  judge_overlaps_train: true
groups:
  attribute: class
  names: [airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck]
transform:
  kind: long-tail
  params: {{rho: 4, max_per_class: {per_class}, num_classes: 10, seed: 7}}
conditional: false
judge: {{id: cifar10-tiny, trained_on_first_use: true, epochs: 1, arch: judge-cnn3/1}}
sampling: {{n_samples: 40, seed: 0}}
training: {{steps: 2, batch_size: 8, checkpoint_every: 1}}
bootstrap: {{n_resamples: 50, seed: 0}}
"""


def write_fake_cifar(root: Path, per_class: int = 6, test_per_class: int = 3, suffix: str = ".png", seed: int = 0):
    """ROOT/cifar10/{train,test}/<class>/NNNN.png with class-dependent random pixels; returns the arrays written
    (images N x 3 x 32 x 32 and labels, in class order) per part."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {}
    for part, n in (("train", per_class), ("test", test_per_class)):
        images, labels = [], []
        for label, name in enumerate(CLASSES):
            folder = root / "cifar10" / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                arr[:, :, label % 3] = np.uint8(25 * label)  # a class-dependent channel: learnable
                Image.fromarray(arr).save(folder / f"{i:04d}{suffix}", **({"quality": 75} if suffix == ".jpg" else {}))
                images.append(arr.transpose(2, 0, 1))
                labels.append(label)
        written[part] = (np.stack(images), np.asarray(labels, dtype=np.int64))
    return written


def tiny_task_file(tmp: Path, per_class: int = 6, test_per_class: int = 3) -> Path:
    path = tmp / "cifar10-lt-tiny.yaml"
    path.write_text(TASK_YAML.format(n_train=10 * per_class, n_test=10 * test_per_class, per_class=per_class))
    return path
