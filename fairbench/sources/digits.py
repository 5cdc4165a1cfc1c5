"""scikit-learn's bundled UCI digits (8x8, values 0-16): real data that needs no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.sources.base import SOURCES, RawPart


class SklearnDigits:
    def load(self, part: str, root: Path) -> RawPart:
        if part != "all":
            raise FairbenchError(f"sklearn-digits has one part, 'all'; the task asks for {part!r}")
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        return RawPart(images=images, labels=digits.target.astype(np.int64))


SOURCES.register("sklearn-digits", SklearnDigits())
