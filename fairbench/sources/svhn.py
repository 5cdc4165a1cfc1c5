"""SVHN cropped digits (Netzer et al. 2011), 32x32 RGB: `ROOT/svhn/{train,test}_32x32.mat`, the official files.

Downloaded by torchvision's `SVHN` (md5-checked) when missing and allowed. They are read here with
`scipy.io.loadmat` (a MATLAB container: arrays only, nothing executed) rather than through torchvision's
class, which refuses any file whose md5 is not the official one; that lets the tests write small files in
SVHN's own format. `X` is 32 x 32 x 3 x N uint8 and `y` is N x 1 with label 10 meaning digit 0, mapped to 0
here. Decoded parts are cached like CIFAR-10's; results record the content hash of the parts used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fairbench import netcheck, paths
from fairbench.errors import FairbenchError
from fairbench.sources.base import SOURCES, DataIdentity, RawPart
from fairbench.sources.cache import cached_part, fingerprint

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
# The official files' md5 (what torchvision checks when it downloads them).
MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373", "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}


class SVHN:
    downloads = True  # into the data root, which must exist (fairbench.paths.existing_data_root)

    def load(self, part: str, root: Path) -> RawPart:
        return self._load(part, root)[0]

    def identity(self, part: str, root: Path) -> DataIdentity:
        return DataIdentity(source="svhn", format="svhn-mat", sha256=self._load(part, root)[1])

    def _load(self, part: str, root: Path) -> tuple[RawPart, str]:
        if part not in FILES:
            raise FairbenchError(f"SVHN has parts 'train' and 'test'; the task asks for {part!r}")
        folder = Path(root) / "svhn"
        path = folder / FILES[part]
        if not path.is_file():
            _download(folder, part, path)
        return cached_part(f"svhn-{part}", fingerprint([path], folder), lambda: read_mat(path))


def _download(folder: Path, part: str, path: Path) -> None:
    if paths.offline():
        raise FairbenchError(_missing_message(path, "FAIRBENCH_OFFLINE is set"))
    import torchvision

    # Probed first: an unreachable host fails in seconds, not after torchvision's three tries.
    _, failed = netcheck.reachable([torchvision.datasets.SVHN.split_list[part][0]])
    if failed:
        raise FairbenchError(_missing_message(path, "download failed: " + "; ".join(failed)))
    try:
        with netcheck.read_timeout():
            torchvision.datasets.SVHN(str(folder), split=part, download=True)
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        raise FairbenchError(_missing_message(path, f"download failed: {exc}")) from None
    if not path.is_file():
        raise FairbenchError(_missing_message(path, "download did not produce it"))


def read_mat(path: Path) -> RawPart:
    """One SVHN `.mat` file as uint8 N x 3 x 32 x 32 images and int64 labels 0-9 (10 -> 0)."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except (OSError, ValueError, NotImplementedError, TypeError, MatReadError) as exc:
        raise FairbenchError(f"{path}: cannot read SVHN .mat file ({exc})") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise FairbenchError(f"{path}: an SVHN file holds arrays 'X' and 'y'")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise FairbenchError(f"{path}: 'X' must be uint8 32 x 32 x 3 x N, got {x.dtype} {x.shape}")
    labels = np.asarray(y).reshape(-1).astype(np.int64)
    if len(labels) != x.shape[3]:
        raise FairbenchError(f"{path}: 'y' has {len(labels)} labels for {x.shape[3]} images")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise FairbenchError(f"{path}: SVHN labels are 1-10 (10 for digit 0), found {labels.min()}..{labels.max()}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # H W C N -> N C H W
    return RawPart(images=images, labels=np.where(labels == 10, 0, labels))


def _missing_message(path: Path, why: str) -> str:
    return (
        f"SVHN file missing ({why}): place {path.name} (md5 {MD5[path.name]}, from "
        f"http://ufldl.stanford.edu/housenumbers/) at {path}, or pass --data-root / set FAIRBENCH_DATA to a folder "
        f"that has svhn/{path.name}"
    )


SOURCES.register("svhn", SVHN())
