"""`ffhq-folder`: a user-supplied folder of FFHQ images, the optional FID reference of `ffhq-race`.

Layout: `<data root>/ffhq/` holding the FFHQ images (e.g. `images1024x1024/00000/00000.png`, any depth), taken
in the order of their relative paths, so part `all` slice [0, 10000) is FFHQ 00000-09999. Each image is resized
(bilinear, antialiased: `fairbench.sources.base.resize_uint8`) to the task's size as it is read, so 10,000 1024 px
images never sit in memory at full size. Nothing is downloaded: FFHQ's terms ask users to obtain it themselves.

The folder's content is not pinned by any published hash, so `fingerprint` (sha256 over the sliced files'
relative names and sha256s) keys the cached reference statistics and is recorded with the FID results: values
computed against different folders are never mixed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from fairbench import atomic
from fairbench.sources.base import SOURCES, RawPart, resize_uint8
from fairbench.errors import FairbenchError

FOLDER = "ffhq"
SUFFIXES = (".png", ".jpg", ".jpeg")


class FFHQFolder:
    """Part `all`: every image under `<root>/ffhq/`, in relative-path order."""

    user_supplied = True  # scoring skips the FID family with the reason when the folder is absent

    def files(self, part: str, root: Path) -> list[Path]:
        if part != "all":
            raise FairbenchError(f"ffhq-folder has one part, 'all'; the task asks for {part!r}")
        folder = Path(root) / FOLDER
        if not folder.is_dir():
            raise FairbenchError(
                f"no FFHQ reference images: place the FFHQ images (e.g. images1024x1024/) in {folder}/ "
                f"(or pass --data-root / set FAIRBENCH_DATA to a folder that has ffhq/)"
            )
        found = sorted((p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()),
                       key=lambda p: p.relative_to(folder).as_posix())
        return found

    def _slice(self, split_spec, root: Path, where: str) -> list[Path]:
        files = self.files(split_spec.part, root)
        if split_spec.stop > len(files):
            raise FairbenchError(
                f"{where} wants FFHQ images up to {split_spec.stop}, {Path(root) / FOLDER} has {len(files)}"
            )
        return files[split_spec.start : split_spec.stop]

    def load_slice(self, split_spec, root: Path, image_shape, where: str) -> tuple[np.ndarray, np.ndarray]:
        c, h, w = image_shape
        out = np.empty((split_spec.stop - split_spec.start, c, h, w), dtype=np.uint8)
        for i, path in enumerate(self._slice(split_spec, root, where)):
            try:
                with Image.open(path) as img:
                    rgb = np.asarray(img.convert("RGB" if c == 3 else "L"))
            except OSError as exc:
                raise FairbenchError(f"{path}: cannot read image ({exc})") from None
            chw = rgb.transpose(2, 0, 1)[None] if rgb.ndim == 3 else rgb[None, None]
            out[i] = resize_uint8(np.ascontiguousarray(chw), h, w)[0]
        return out, np.zeros(len(out), dtype=np.int64)

    def fingerprint(self, split_spec, root: Path) -> str:
        folder = Path(root) / FOLDER
        digest = hashlib.sha256()
        for path in self._slice(split_spec, root, "the reference"):
            digest.update(f"{path.relative_to(folder).as_posix()}\0{atomic.sha256_file(path)}\n".encode())
        return digest.hexdigest()

    def load(self, part: str, root: Path) -> RawPart:
        raise FairbenchError("ffhq-folder is read by slices (load_slice), never whole")


SOURCES.register("ffhq-folder", FFHQFolder())
