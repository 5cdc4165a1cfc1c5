"""Group transforms: turn a real dataset into one with a sensitive attribute whose groups we know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.registry import Registry
from fairbench.strict import from_dict

SPLIT_INDEX = {"train": 0, "judge": 1, "test": 2, "reference": 3}


class GroupTransform(Protocol):
    params_cls: type
    n_groups: int

    def apply(
        self, images: np.ndarray, labels: np.ndarray, split: str, params: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (images, group index per image); images are uint8 NCHW and must not be modified in place."""
        ...


TRANSFORMS: Registry[GroupTransform] = Registry("group transform")


@dataclass(frozen=True)
class BicolorParams:
    white_probability: float  # probability that a *training* image gets a white background
    seed: int
    eval_white_probability: float = 0.5  # judge and test splits are balanced so the judge sees both groups


class Bicolor:
    """Group 0 `black`: the original image; group 1 `white`: exactly 255 - original."""

    params_cls = BicolorParams
    n_groups = 2

    def apply(
        self, images: np.ndarray, labels: np.ndarray, split: str, params: BicolorParams
    ) -> tuple[np.ndarray, np.ndarray]:
        # The quality reference split is grouped like the training split, so plain FID sees its imbalance.
        train_like = split in ("train", "reference")
        probability = params.white_probability if train_like else params.eval_white_probability
        rng = np.random.default_rng([params.seed, SPLIT_INDEX[split]])
        white = rng.random(len(images)) < probability
        out = images.copy()
        out[white] = 255 - out[white]
        return out, white.astype(np.int64)


TRANSFORMS.register("bicolor", Bicolor())


@dataclass(frozen=True)
class NaturalLabelParams:
    """No parameters: the groups are whatever attribute the source labels its images with."""


class NaturalLabel:
    """Images unchanged; the group is the source's own label (UTKFace: race from the file name). The split is
    grouped as the source's slice is: a stratified source keeps the dataset's natural mix in every split."""

    params_cls = NaturalLabelParams
    n_groups = 0  # as many as the task names

    def apply(
        self, images: np.ndarray, labels: np.ndarray, split: str, params: NaturalLabelParams
    ) -> tuple[np.ndarray, np.ndarray]:
        return images, labels.astype(np.int64, copy=True)


TRANSFORMS.register("natural-label", NaturalLabel())


def parse_params(spec: Any, where: str) -> Any:
    """Validate a TransformSpec's params against its transform's typed dataclass."""
    transform = TRANSFORMS.get(spec.kind)
    params = from_dict(transform.params_cls, spec.params, f"{where}.params")
    for name in ("white_probability", "eval_white_probability"):
        value = getattr(params, name, None)
        if value is not None and not 0.0 <= value <= 1.0:
            raise FairbenchError(f"{where}.params.{name}: must be within [0, 1], got {value}")
    return params
