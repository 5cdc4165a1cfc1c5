"""Hostile and broken checkpoints and .npz image sets: nothing is unpickled, and every bad file is one `error:` line
naming it (image folders: test_safety_folders.py).

Each case is checked twice: through the Python API (a FairbenchError naming the file) and through the CLI
(exit code 2, a single `error: ...` line naming the file, no traceback).
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fairbench.submission.checkpoint import load_checkpoint, safe_torch_load
from fairbench.errors import FairbenchError
from fairbench.submission.imagesets import load_image_set
from fairbench.scoring import ScoreOptions, score_checkpoint
from fairbench.task_registry import get_task
from tests.helpers.cli_errors import assert_cli_error

DIGITS = "digits-bicolor"


class CreatesFile:
    """A pickle payload that creates `path` when unpickled by an unsafe loader."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def real_checkpoint_dict(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------ checkpoints


def test_code_carrying_torch_pickle_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"format": "fairbench-generator/1", "payload": CreatesFile(marker)}, path)

    with pytest.raises(FairbenchError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert "weights_only" in message and "refused" in message
    assert not marker.exists()

    line = assert_cli_error(["score", str(path), "--device", "cpu"], path)
    assert "refused" in line
    assert not marker.exists()

    # The payload is real: an unsafe load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_code_carrying_plain_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump(CreatesFile(marker), fh, protocol=2)
    with pytest.raises(FairbenchError, match="weights_only") as info:
        safe_torch_load(path)
    assert "refused" in str(info.value)
    assert not marker.exists()
    assert_cli_error(["score", str(path), "--device", "cpu"], path)
    assert not marker.exists()
    with open(path, "rb") as fh:
        pickle.load(fh)  # noqa: S301 - proves the payload works
    assert marker.exists()


def _truncated(tmp_path: Path, ckpt: Path) -> Path:
    path = tmp_path / "truncated.pt"
    data = ckpt.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _random_bytes(tmp_path: Path, ckpt: Path) -> Path:
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _empty_file(tmp_path: Path, ckpt: Path) -> Path:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    return path


def _missing(tmp_path: Path, ckpt: Path) -> Path:
    return tmp_path / "nowhere" / "checkpoint.pt"


def _plain_dict(tmp_path: Path, ckpt: Path) -> Path:
    path = tmp_path / "dict.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    return path


def _plain_tensor(tmp_path: Path, ckpt: Path) -> Path:
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3, 3), path)
    return path


def _edited(name: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Path, Path], Path]:
    def build(tmp_path: Path, ckpt: Path) -> Path:
        raw = real_checkpoint_dict(ckpt)
        edit(raw)
        path = tmp_path / f"{name}.pt"
        torch.save(raw, path)
        return path

    return build


def _drop_first_weight(raw: dict[str, Any]) -> None:
    first = next(iter(raw["state_dict"]))
    del raw["state_dict"][first]


def _reshape_a_weight(raw: dict[str, Any]) -> None:
    key = next(k for k, v in raw["state_dict"].items() if v.ndim == 2)
    raw["state_dict"][key] = torch.zeros(3, 3)


CHECKPOINT_CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "truncated": (_truncated, "corrupt or truncated"),
    "random-bytes": (_random_bytes, "not a readable checkpoint"),
    "empty-file": (_empty_file, "not a readable checkpoint"),
    "missing": (_missing, "not found"),
    "plain-dict": (_plain_dict, "not a fairbench generator checkpoint"),
    "plain-tensor": (_plain_tensor, "not a fairbench generator checkpoint"),
    "state-dict-missing-key": (_edited("sd-missing", _drop_first_weight), "do not fit"),
    "state-dict-wrong-shape": (_edited("sd-shape", _reshape_a_weight), "do not fit"),
    "state-dict-not-tensors": (_edited("sd-type", lambda r: r.update(state_dict={"w": [1, 2]})), "tensors"),
    "unknown-arch": (_edited("arch", lambda r: r.update(arch="stylegan9")), "stylegan9"),
    "bad-arch-kwargs": (_edited("kwargs", lambda r: r.update(arch_kwargs={"colour": 1})), "cannot build"),
    "negative-width": (
        _edited("width", lambda r: r["arch_kwargs"].update(width=-1)),
        "cannot build",
    ),
    "unknown-task": (_edited("task", lambda r: r.update(task="mnist-tricolor")), "mnist-tricolor"),
    "data-hash-mismatch": (_edited("hash", lambda r: r.update(data_hash="0" * 64)), "different data"),
    "old-task-hash-mismatch": (
        _edited("oldhash", lambda r: (r.pop("data_hash"), r.update(task_hash="0" * 64))), "different data"
    ),
    "missing-keys": (_edited("keys", lambda r: r.pop("arch")), "lacks arch"),
    "extra-keys": (_edited("extra", lambda r: r.update(secret=1)), "unknown keys secret"),
    "wrong-format": (_edited("format", lambda r: r.update(format="fairbench-generator/99")), "format"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint_is_refused_by_api(case: str, tmp_path: Path, digits_checkpoint: Path) -> None:
    build, expected = CHECKPOINT_CASES[case]
    path = build(tmp_path, digits_checkpoint)
    with pytest.raises(FairbenchError) as info:
        score_checkpoint(path, ScoreOptions(device="cpu"))
    assert str(path) in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint_is_one_cli_error_line(case: str, tmp_path: Path, digits_checkpoint: Path) -> None:
    build, expected = CHECKPOINT_CASES[case]
    path = build(tmp_path, digits_checkpoint)
    line = assert_cli_error(["score", str(path), "--device", "cpu"], path)
    assert expected in line
    assert not (path.parent / "result.json").exists()


def test_real_checkpoint_loads_and_is_plain_data(digits_checkpoint: Path) -> None:
    ckpt = load_checkpoint(digits_checkpoint)
    assert ckpt.format == "fairbench-generator/1"
    assert ckpt.task == DIGITS and ckpt.method == "vanilla" and ckpt.seed == 0
    assert all(isinstance(v, torch.Tensor) for v in ckpt.state_dict.values())


# --------------------------------------------------------------------------------------------- npz sets


def _valid_arrays(n: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 256, size=(n, 16, 16, 1), dtype=np.uint8),
        "labels": np.arange(n, dtype=np.int64) % 10,
    }


def _npz(name: str, **changes: Any) -> Callable[[Path], Path]:
    def build(tmp_path: Path) -> Path:
        arrays = _valid_arrays()
        arrays.update(changes)
        arrays = {k: v for k, v in arrays.items() if v is not None}
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        return path

    return build


def _object_array(tmp_path: Path) -> Path:
    path = tmp_path / "objects.npz"
    payload = np.empty(20, dtype=object)
    payload[:] = [CreatesFile(tmp_path / "PWNED") for _ in range(20)]
    np.savez(path, images=payload, labels=np.arange(20) % 10)  # savez pickles object arrays
    return path


def _not_a_zip(tmp_path: Path) -> Path:
    path = tmp_path / "text.npz"
    path.write_text("these are not images\n")
    return path


def _npy_named_npz(tmp_path: Path) -> Path:
    path = tmp_path / "array.npz"
    with open(path, "wb") as fh:
        np.save(fh, _valid_arrays()["images"])
    return path


def _truncated_npz(tmp_path: Path) -> Path:
    path = _npz("full")(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _wrong_extension(tmp_path: Path) -> Path:
    path = tmp_path / "images.txt"
    path.write_text("x")
    return path


def _zip_members(name: str, members: dict[str, bytes]) -> Callable[[Path], Path]:
    """An .npz zip written by hand, for what numpy.savez never produces but a hostile file may hold."""

    def build(tmp_path: Path) -> Path:
        path = tmp_path / f"{name}.npz"
        with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
            warnings.simplefilter("ignore")  # zipfile warns about a duplicate name, which is the point
            for member, data in members.items():
                archive.writestr(member.split("#")[0], data)  # "#n" suffix: the same name again
        return path

    return build


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


_LABELS_NPY = _npy(np.arange(20) % 10)
# A 300-byte member whose header declares 2.5 PB of images: refused before numpy allocates anything.
_HUGE_HEADER_NPY = _npy(np.zeros((1, 16, 16, 1), np.uint8)).replace(b"(1, 16, 16, 1)", b"(10000000000000, 16, 16, 1)")


def _corrupt_deflate(tmp_path: Path) -> Path:
    path = tmp_path / "deflate.npz"
    np.savez_compressed(path, **_valid_arrays(200))
    data = bytearray(path.read_bytes())
    for i in range(300, 600):  # inside the images member's compressed stream
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


NPZ_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "wrong-dtype": (_npz("float", images=_valid_arrays()["images"].astype(np.float32)), "uint8"),
    "nchw-shape": (_npz("nchw", images=_valid_arrays()["images"].transpose(0, 3, 1, 2).copy()), "NHWC"),
    "three-channels": (_npz("rgb", images=np.zeros((20, 16, 16, 3), np.uint8)), "16 x 16 x 1"),
    "wrong-size": (_npz("size", images=np.zeros((20, 28, 28, 1), np.uint8)), "16 x 16 x 1"),
    "no-channel-axis": (_npz("nhw", images=np.zeros((20, 16, 16), np.uint8)), "NHWC"),
    "too-few": (_npz("few", images=np.zeros((5, 16, 16, 1), np.uint8), labels=np.arange(5)), "at least"),
    "missing-labels": (_npz("nolabels", labels=None), "'labels'"),
    "labels-out-of-range": (_npz("range", labels=np.arange(20) + 5), "[0, 10)"),
    "negative-labels": (_npz("negative", labels=np.arange(20) - 1), "[0, 10)"),
    "float-labels": (_npz("floatlabels", labels=np.zeros(20, np.float32)), "integers"),
    "labels-wrong-length": (_npz("length", labels=np.arange(19) % 10), "shape"),
    "missing-images": (_npz("noimages", images=None), "'images'"),
    "object-array": (_object_array, "refused"),
    "not-a-zip": (_not_a_zip, "not a readable .npz"),
    "npy-bytes": (_npy_named_npz, "not a readable .npz"),
    "truncated": (_truncated_npz, "not a readable .npz"),
    "wrong-extension": (_wrong_extension, ".npz"),
    "missing-file": (lambda tmp: tmp / "absent.npz", "no such file"),
    "raw-member-not-npy": (_zip_members("raw", {"images": b"raw bytes", "labels.npy": _LABELS_NPY}), "not a .npy array"),
    "same-array-twice": (
        _zip_members("twice", {"images.npy": _npy(_valid_arrays()["images"]), "images.npy#2": _LABELS_NPY}),
        "stored twice",
    ),
    "huge-declared-shape": (_zip_members("huge", {"images.npy": _HUGE_HEADER_NPY, "labels.npy": _LABELS_NPY}), "truncated"),
    "corrupt-compressed-data": (_corrupt_deflate, "corrupt compressed data"),
    "garbled-npy-header": (  # numpy's own parser raises tokenize.TokenError on this one
        _zip_members("garbled", {"images.npy": _npy(_valid_arrays()["images"]).replace(b"'|u1',", b"'|u1'(")}),
        "unreadable .npy header",
    ),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_bad_npz_is_refused_by_api(case: str, tmp_path: Path) -> None:
    build, expected = NPZ_CASES[case]
    path = build(tmp_path)
    with pytest.raises(FairbenchError) as info:
        load_image_set(get_task(DIGITS), path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_bad_npz_is_one_cli_error_line(case: str, tmp_path: Path) -> None:
    build, expected = NPZ_CASES[case]
    path = build(tmp_path)
    line = assert_cli_error(["score", "--task", DIGITS, "--images", str(path), "--device", "cpu"], path)
    assert expected in line
    assert not (tmp_path / "PWNED").exists()


def test_object_array_payload_is_real(tmp_path: Path) -> None:
    path = _object_array(tmp_path)
    with np.load(path, allow_pickle=True) as npz:
        npz["images"]
    assert (tmp_path / "PWNED").exists()


def test_path_with_brackets_is_printed_verbatim(tmp_path: Path) -> None:
    """Error lines are not rich markup: a file named like a style tag must appear as it is."""
    path = _npz("samples[red]", labels=np.arange(20) + 10)(tmp_path)
    assert_cli_error(["score", "--task", DIGITS, "--images", str(path)], path)


def test_valid_npz_loads_as_nchw_with_labels(tmp_path: Path) -> None:
    arrays = _valid_arrays()
    path = _npz("valid")(tmp_path)
    image_set = load_image_set(get_task(DIGITS), path)
    assert image_set.images.shape == (20, 1, 16, 16) and image_set.images.dtype == torch.uint8
    np.testing.assert_array_equal(image_set.images.numpy(), arrays["images"].transpose(0, 3, 1, 2))
    assert image_set.labels is not None and image_set.labels.tolist() == arrays["labels"].tolist()
