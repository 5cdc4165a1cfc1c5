"""MNIST in torchvision's layout (`ROOT/MNIST/raw/*-ubyte`), downloaded by torchvision when allowed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fairbench import netcheck, paths
from fairbench.errors import FairbenchError
from fairbench.sources.base import SOURCES, RawPart

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# sha256 of the uncompressed IDX files, named in the "place file X at path Y" message.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class TorchvisionMNIST:
    downloads = True  # into the data root, which must exist (fairbench.paths.existing_data_root)

    def load(self, part: str, root: Path) -> RawPart:
        if part not in MNIST_FILES:
            raise FairbenchError(f"MNIST has parts 'train' and 'test'; the task asks for {part!r}")
        import torchvision

        raw = root / "MNIST" / "raw"
        missing = [name for name in MNIST_FILES[part] if not (raw / name).is_file()]
        if missing:
            if paths.offline():
                raise FairbenchError(_missing_mnist_message(raw, missing, "FAIRBENCH_OFFLINE is set"))
            _download(root, part, raw, missing)
        try:
            ds = torchvision.datasets.MNIST(str(root), train=part == "train", download=False)
        except Exception as exc:
            raise FairbenchError(f"{raw}: cannot read MNIST ({exc})") from None
        return RawPart(images=ds.data.numpy()[:, None].copy(), labels=ds.targets.numpy().astype(np.int64))


def _download(root: Path, part: str, raw: Path, missing: list[str]) -> None:
    """torchvision's download from the mirrors that answer (probed first: an unreachable network fails in
    seconds, not after three stalled tries per mirror), each tried once."""
    import torchvision

    first = torchvision.datasets.MNIST.resources[0][0]
    mirrors = list(torchvision.datasets.MNIST.mirrors)
    answered, failed = netcheck.reachable([mirror + first for mirror in mirrors])
    if not answered:
        raise FairbenchError(_missing_mnist_message(raw, missing, "download failed: " + "; ".join(failed)))
    # The folder name comes from the class name (MNIST/raw), so the subclass keeps it.
    mnist = type("MNIST", (torchvision.datasets.MNIST,), {"mirrors": [u[: -len(first)] for u in answered]})
    try:
        with netcheck.read_timeout():
            mnist(str(root), train=part == "train", download=True)
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        raise FairbenchError(_missing_mnist_message(raw, missing, f"download failed: {exc}")) from None


def _missing_mnist_message(raw: Path, missing: list[str], why: str) -> str:
    files = ", ".join(f"{name} (sha256 {MNIST_SHA256[name]})" for name in missing)
    return (
        f"MNIST files missing ({why}): place {files} (uncompressed IDX, torchvision layout) in "
        f"{raw}/, or pass --data-root / set FAIRBENCH_DATA to a folder that has MNIST/raw/"
    )


SOURCES.register("torchvision-mnist", TorchvisionMNIST())
