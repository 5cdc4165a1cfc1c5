"""Hostile and broken image folders: every bad folder is one `error:` line naming the file or folder at fault.

Each case is checked twice: through the Python API (a FairbenchError naming the path) and through the CLI
(exit code 2, a single `error: ...` line naming the path, no traceback).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fairbench.errors import FairbenchError
from fairbench.submission.imagesets import load_image_set
from fairbench.task_registry import get_task
from tests.helpers.cli_errors import assert_cli_error

DIGITS = "digits-bicolor"


# ------------------------------------------------------------------------------------------ image folders


def _save(path: Path, size: tuple[int, int] = (16, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, 40, dtype=np.uint8)).save(path)


def _class_folders(tmp_path: Path, per_class: int = 2) -> Path:
    root = tmp_path / "samples"
    for c in range(10):
        for i in range(per_class):
            _save(root / str(c) / f"{i}.png")
    return root


def _non_image(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "3" / "notes.txt"
    bad.write_text("not an image")
    return root, bad


def _corrupt_png(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "4" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    return root, bad


def _mixed_sizes(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "5" / "big.png"
    _save(bad, (28, 28))
    return root, bad


def _empty_folder(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "samples"
    root.mkdir()
    return root, root


def _empty_class_folders(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "samples"
    (root / "0").mkdir(parents=True)
    return root, root


def _wrong_class_name(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "cat"
    _save(bad / "0.png")
    return root, bad


def _class_index_too_large(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "10"
    _save(bad / "0.png")
    return root, bad


def _loose_file_in_conditional_root(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "stray.png"
    _save(bad)
    return root, bad


def _too_few_images(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "samples"
    for i in range(3):
        _save(root / "0" / f"{i}.png")
    return root, root


def _rgb_in_greyscale_task(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "6" / "colour.png"
    Image.fromarray(np.full((16, 16, 3), 40, dtype=np.uint8)).save(bad)
    return root, bad


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _decompression_bomb(tmp_path: Path) -> tuple[Path, Path]:
    root = _class_folders(tmp_path)
    bad = root / "7" / "bomb.png"
    bad.write_bytes(_png_header_only(40_000, 40_000))
    return root, bad


def _huge_png_header(tmp_path: Path) -> tuple[Path, Path]:
    """Under Pillow's bomb limit but 81 MB of pixels: refused from the header, before any decoding."""
    root = _class_folders(tmp_path)
    bad = root / "8" / "huge.png"
    bad.write_bytes(_png_header_only(9000, 9000))
    return root, bad


FOLDER_CASES: dict[str, tuple[Callable[[Path], tuple[Path, Path]], str]] = {
    "rgb-in-greyscale-task": (_rgb_in_greyscale_task, "needs greyscale"),
    "non-image-file": (_non_image, "not an image file"),
    "corrupt-png": (_corrupt_png, "cannot read image"),
    "mixed-sizes": (_mixed_sizes, "28x28"),
    "empty-folder": (_empty_folder, "no images"),
    "empty-class-folders": (_empty_class_folders, "no images"),
    "wrong-class-name": (_wrong_class_name, "not a class"),
    "class-index-too-large": (_class_index_too_large, "not a class"),
    "loose-file": (_loose_file_in_conditional_root, "one folder per class"),
    "too-few": (_too_few_images, "at least"),
    "decompression-bomb": (_decompression_bomb, "decompression bomb"),
    "huge-png-header": (_huge_png_header, "image is 9000x9000"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_bad_folder_is_refused_by_api(case: str, tmp_path: Path) -> None:
    build, expected = FOLDER_CASES[case]
    root, named = build(tmp_path)
    with pytest.raises(FairbenchError) as info:
        load_image_set(get_task(DIGITS), root)
    assert str(named) in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_bad_folder_is_one_cli_error_line(case: str, tmp_path: Path) -> None:
    build, expected = FOLDER_CASES[case]
    root, named = build(tmp_path)
    line = assert_cli_error(["score", "--task", DIGITS, "--images", str(root), "--device", "cpu"], named)
    assert expected in line


def test_valid_folder_loads_labels_from_folder_names(tmp_path: Path) -> None:
    root = _class_folders(tmp_path, per_class=3)
    image_set = load_image_set(get_task(DIGITS), root)
    assert image_set.images.shape == (30, 1, 16, 16)
    assert image_set.images.dtype == torch.uint8
    assert int(image_set.images[0, 0, 0, 0]) == 40
    assert image_set.labels is not None
    assert sorted(image_set.labels.tolist()) == sorted(list(range(10)) * 3)
