"""Property tests: arbitrary submissions and arbitrary metric inputs meet the contract, or fail cleanly.

- The image-set loader, fed any `.npz` (any dtypes, shapes, label values, missing and extra keys, raw or
  corrupted zip members), either returns images of the task's shape with in-range labels, exactly when the
  input is valid, or raises a one-line FairbenchError naming the file. Nothing else escapes.
- The fairness reports, fed any label arrays and group counts, either raise FairbenchError or return
  distributions on the simplex and metrics (point values and interval ends) within their proven ranges:
  0 <= kl <= ln|S|, 0 <= fd_l1 <= 2(1 - 1/|S|), 0 <= fd_l2 <= sqrt(1 - 1/|S|).

test_fairness_metrics.py already checks the metric functions on valid distributions; here the inputs are
the raw ones the reports receive (labels, conditions, confusion matrices), valid or not.
"""

from __future__ import annotations

import io
import math
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fairbench.errors import FairbenchError
from fairbench.submission.imagesets import MIN_SAMPLES, load_image_set
from fairbench.metrics.fairness import (
    FairnessReport,
    conditional_fairness_report,
    correct_proportions,
    fairness_report,
)
from fairbench.task_registry import get_task

TASK = get_task("digits-bicolor")
C, H, W = TASK.image_shape
K = TASK.num_classes
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# ------------------------------------------------------------------------------------------ image sets

DTYPES = [
    np.dtype(t)
    for t in (
        "u1", ">u1", "i1", "u2", ">u2", "i2", "i4", "u4", "i8", ">i8", "u8", "f2", "f4", "f8", "?", "c8",
        "<U3", "S2", "M8[s]", "m8[ms]",
    )
] + [np.dtype([("a", "u1"), ("b", "<f4")])]

VALID_IMAGE_SHAPES = st.one_of(st.integers(MIN_SAMPLES, 24), st.integers(MIN_SAMPLES, 24), st.integers(0, 24)).map(
    lambda n: (n, H, W, C)
)
ODD_IMAGE_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6),
    st.sampled_from([(12, H, W), (12, C, H, W), (12, H, W, 3), (12, 28, 28, 1), (12, W, H, C, 1)]),
)


def _array(dtype: st.SearchStrategy[np.dtype], shape: st.SearchStrategy) -> st.SearchStrategy[np.ndarray]:
    return st.tuples(dtype, shape).flatmap(lambda ds: hnp.arrays(ds[0], ds[1]))


@st.composite
def npz_contents(draw: st.DrawFn) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    n = None
    if draw(st.integers(0, 9)) > 0:  # images mostly present
        if draw(st.integers(0, 2)) > 0:
            images = draw(hnp.arrays(np.uint8, VALID_IMAGE_SHAPES))
        else:
            images = draw(_array(st.sampled_from(DTYPES), st.one_of(VALID_IMAGE_SHAPES, ODD_IMAGE_SHAPES)))
        arrays["images"] = images
        n = images.shape[0] if images.ndim else 0
    label_kind = draw(st.sampled_from(["valid", "valid", "valid", "huge-or-negative", "any", "absent"]))
    if label_kind == "valid" and n is not None:
        dtype = draw(st.sampled_from([np.dtype(t) for t in ("u1", "i2", "i4", "i8", ">i8", "u8")]))
        arrays["labels"] = draw(hnp.arrays(dtype, (n,), elements=st.integers(0, K - 1)))
    elif label_kind == "huge-or-negative" and n is not None:
        dtype = draw(st.sampled_from([np.dtype(t) for t in ("i1", "i8", "u8", ">i4")]))
        arrays["labels"] = draw(hnp.arrays(dtype, (n,)))  # the dtype's whole range
    elif label_kind == "any":
        arrays["labels"] = draw(_array(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=3, max_side=30)))
    for key in draw(st.lists(st.sampled_from(["extra", "Images", "images_0", "meta"]), max_size=2, unique=True)):
        arrays[key] = draw(_array(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)))
    return arrays


def is_valid_submission(arrays: dict[str, np.ndarray]) -> bool:
    """The contract, stated independently of the loader: docs/metrics.md 'What gets scored' and SECURITY.md
    'What a submission may be'."""
    images, labels = arrays.get("images"), arrays.get("labels")
    if images is None or images.dtype != np.uint8 or images.shape[1:] != (H, W, C) or images.ndim != 4:
        return False
    n = images.shape[0]
    if n < MIN_SAMPLES or labels is None or labels.dtype.kind not in "iu" or labels.shape != (n,):
        return False
    return bool(labels.min() >= 0 and labels.max() < K)


def load_or_error(path: Path):
    """The loader's result, or None after checking the error is one line naming the file."""
    try:
        loaded = load_image_set(TASK, path)
    except FairbenchError as exc:
        message = str(exc)
        assert str(path) in message, message
        assert "\n" not in message, message
        event(f"refused: {message.removeprefix(str(path) + ': ')[:40]}")
        return None
    event("loaded")
    return loaded


@SETTINGS
@given(arrays=npz_contents(), compressed=st.booleans())
def test_any_npz_loads_exactly_when_valid(arrays: dict[str, np.ndarray], compressed: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "submission.npz"
        (np.savez_compressed if compressed else np.savez)(path, **arrays)
        loaded = load_or_error(path)
    assert (loaded is not None) == is_valid_submission(arrays)
    if loaded is not None:
        n = arrays["images"].shape[0]
        assert loaded.images.shape == (n, C, H, W) and loaded.images.dtype.is_floating_point is False
        np.testing.assert_array_equal(loaded.images.numpy(), arrays["images"].transpose(0, 3, 1, 2))
        assert loaded.labels is not None and loaded.labels.tolist() == arrays["labels"].astype(np.int64).tolist()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


VALID_IMAGES_NPY = _npy_bytes(np.zeros((12, H, W, C), np.uint8))
VALID_LABELS_NPY = _npy_bytes(np.arange(12) % K)


@st.composite
def member_bytes(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from([VALID_IMAGES_NPY, VALID_LABELS_NPY]))
    how = draw(st.sampled_from(["as-is", "as-is", "truncate", "flip", "huge-shape", "random"]))
    if how == "truncate":
        return base[: draw(st.integers(0, len(base) - 1))]
    if how == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, 127))  # the magic string and the header, where parsing happens
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "huge-shape":
        shape = repr(draw(st.tuples(st.integers(-5, 10**15), st.integers(0, 10**6)))).encode()
        old = b"(12, 16, 16, 1)" if base is VALID_IMAGES_NPY else b"(12,)"
        return base.replace(old, shape.ljust(len(old)) if len(shape) < len(old) else shape)
    if how == "random":
        return draw(st.binary(max_size=300))
    return base


MEMBER = st.tuples(member_bytes(), st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))


@st.composite
def zip_members(draw: st.DrawFn) -> list[tuple[str, bytes, int]]:
    """Mostly an images and a labels member (either may be raw, cut, bit-flipped or claim a huge shape)."""
    members = []
    for name in ("images", "labels"):
        if draw(st.integers(0, 4)) > 0:
            suffix = draw(st.sampled_from([".npy", ".npy", ".npy", ""]))
            members.append((name + suffix, *draw(MEMBER)))
    if draw(st.integers(0, 3)) == 0:
        members.append((draw(st.sampled_from(["other.npy", "d/images.npy", "x"])), *draw(MEMBER)))
    if members and draw(st.integers(0, 5)) == 0:
        members.append(members[0])  # the same name twice
    return draw(st.permutations(members))


@SETTINGS
@given(members=zip_members())
def test_raw_and_corrupt_zip_members_never_escape(members: list[tuple[str, bytes, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crafted.npz"
        with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
            warnings.simplefilter("ignore")  # duplicate member names are part of the test
            for name, data, compression in members:
                archive.writestr(name, data, compress_type=compression)
        loaded = load_or_error(path)
    if loaded is not None:
        assert loaded.images.shape[1:] == (C, H, W) and len(loaded.images) >= MIN_SAMPLES
        assert loaded.labels is not None and loaded.labels.shape == (len(loaded.images),)


VALID_NPZ = io.BytesIO()
np.savez_compressed(VALID_NPZ, images=np.zeros((12, H, W, C), np.uint8), labels=np.arange(12) % K)


@SETTINGS
@given(
    cut=st.one_of(st.none(), st.integers(0, len(VALID_NPZ.getvalue()) - 1)),
    flips=st.lists(st.tuples(st.integers(0, len(VALID_NPZ.getvalue()) - 1), st.integers(0, 255)), max_size=6),
)
def test_corrupted_npz_file_never_escapes(cut: int | None, flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID_NPZ.getvalue())
    for index, value in flips:
        data[index] = value
    if cut is not None:
        data = data[:cut]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corrupt.npz"
        path.write_bytes(bytes(data))
        loaded = load_or_error(path)
    if loaded is not None:  # a flip in a harmless place (a timestamp, say) may leave a valid file
        assert loaded.images.shape == (12, C, H, W)
        assert loaded.labels is not None and loaded.labels.tolist() == (np.arange(12) % K).tolist()


# ---------------------------------------------------------------------------------------- fairness metrics


def metric_limits(k: int) -> dict[str, float]:
    return {"kl_uniform": math.log(k), "kl_uniform_normalized": 1.0, "fd_l1": 2 * (1 - 1 / k), "fd_l2": math.sqrt(1 - 1 / k)}


def assert_within_bounds(report: FairnessReport, k: int) -> None:
    limits = metric_limits(k)
    for kind in ("observed", "corrected"):
        p = np.array(getattr(report, kind))
        assert p.shape == (k,) and np.all(p >= 0) and abs(p.sum() - 1) <= 1e-9, (kind, p)
    assert len(report.metrics) == 2 * len(limits) + 2  # and the two debiased KL estimates
    for name, metric in report.metrics.items():
        limit = limits[name.removesuffix("_debiased").removesuffix("_corrected")]
        lo, hi = metric.ci95
        for value in (metric.value, lo, hi):
            assert math.isfinite(value) and -1e-12 <= value <= limit + 1e-12, (name, value, limit)
        assert lo <= hi + 1e-12 and metric.higher_is_better is False


INT_LABEL_DTYPES = st.sampled_from([np.dtype(t) for t in ("i1", "u1", "i2", "i4", "i8", ">i8", "u4", "u8")])
LABEL_DTYPES = st.one_of(INT_LABEL_DTYPES, st.sampled_from([np.dtype(t) for t in ("f4", "f8", "?")]))
ODD_N_GROUPS = st.one_of(st.integers(-2, 40), st.booleans(), st.floats(-3, 12), st.just(np.int64(3)), st.just(2.0))
N_GROUPS = st.sampled_from(["valid", "valid", "valid", "odd"]).flatmap(
    lambda kind: st.integers(2, 12) if kind == "valid" else ODD_N_GROUPS
)


@st.composite
def confusions(draw: st.DrawFn, k: int, allow_none: bool = True) -> np.ndarray | None:
    kind = draw(st.sampled_from(["none", "noisy", "noisy", "any"] if allow_none else ["noisy", "noisy", "any"]))
    if kind == "none":
        return None
    if kind == "noisy" and k >= 2:
        accuracy = draw(st.floats(0.5, 1.0))
        off = np.array(draw(st.lists(st.floats(0.01, 1), min_size=k * k, max_size=k * k))).reshape(k, k)
        np.fill_diagonal(off, 0.0)
        off = off / off.sum(axis=1, keepdims=True) * (1 - accuracy)
        np.fill_diagonal(off, accuracy)
        return off
    side = st.integers(0, 4) if kind == "any" else st.just(max(k, 0))
    return draw(hnp.arrays(np.float64, st.tuples(side, side)))  # NaN, inf, negatives, rows off 1


def _labels(n_groups_hint: int) -> st.SearchStrategy[np.ndarray]:
    """Mostly non-empty in-range label vectors (so most examples get scored), else any array at all."""
    top = max(int(n_groups_hint), 1)
    in_range = st.tuples(INT_LABEL_DTYPES, st.integers(1, 60)).flatmap(
        lambda ds: hnp.arrays(ds[0], ds[1], elements=st.integers(0, min(top - 1, np.iinfo(ds[0]).max)))
    )
    anything = st.tuples(LABEL_DTYPES, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=40)).flatmap(
        lambda ds: hnp.arrays(ds[0], ds[1])
    )
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: in_range if ok else anything)


@SETTINGS
@given(data=st.data(), n_groups=N_GROUPS)
def test_fairness_report_is_bounded_or_a_clean_error(data: st.DataObject, n_groups: object) -> None:
    hint = int(n_groups) if isinstance(n_groups, (int, float, np.integer)) and not isinstance(n_groups, bool) else 2
    labels = data.draw(_labels(hint), "labels")
    confusion = data.draw(confusions(max(hint, 0)), "confusion")
    try:
        report = fairness_report(labels, n_groups, confusion, n_resamples=50, seed=0, exact=True)
    except FairbenchError as exc:
        event(f"refused: {str(exc)[:40]}")
        return
    event("scored")
    k = int(n_groups)
    assert_within_bounds(report, k)
    assert sum(report.counts) == labels.size and len(report.counts) == k
    np.testing.assert_allclose(report.observed, np.bincount(labels.astype(np.int64), minlength=k) / labels.size)
    if confusion is None:
        assert report.corrected == report.observed


@SETTINGS
@given(data=st.data(), n_groups=st.integers(2, 6), n_conditions=st.integers(-1, 8))
def test_conditional_report_is_bounded_or_a_clean_error(data: st.DataObject, n_groups: int, n_conditions: int) -> None:
    labels = data.draw(_labels(n_groups), "labels")
    size = labels.shape[0] if labels.ndim == 1 else data.draw(st.integers(0, 5), "size")
    matching = hnp.arrays(np.int64, size, elements=st.integers(0, max(n_conditions, 1) - 1))
    anything = st.tuples(LABEL_DTYPES, st.integers(0, 40)).flatmap(lambda ds: hnp.arrays(ds[0], ds[1]))
    conditions = data.draw(st.sampled_from([True, True, False]).flatmap(lambda ok: matching if ok else anything))
    confusion = data.draw(confusions(n_groups), "confusion")
    try:
        result = conditional_fairness_report(labels, conditions, n_groups, n_conditions, confusion, n_resamples=30, exact=True)
    except FairbenchError as exc:
        event(f"refused: {str(exc)[:40]}")
        return
    event("scored")
    assert result.conditions and result.conditions == sorted(result.conditions)
    assert all(0 <= c < n_conditions for c in result.conditions)
    assert sum(sum(r.counts) for r in result.per_condition) == labels.size
    for report in result.per_condition:
        assert_within_bounds(report, n_groups)
    for name, metric in result.summary.items():  # mean and worst case over conditions: the same ranges
        base = name.rsplit("_cond_", 1)[0].removesuffix("_debiased").removesuffix("_corrected")
        for value in (metric.value, *metric.ci95):
            assert -1e-12 <= value <= metric_limits(n_groups)[base] + 1e-12, (name, value)


@SETTINGS
@given(data=st.data(), k=st.integers(2, 6))
def test_correction_lands_on_the_simplex_or_is_refused(data: st.DataObject, k: int) -> None:
    p_hat = data.draw(
        st.one_of(
            st.lists(st.floats(1e-3, 1), min_size=k, max_size=k).map(lambda w: np.array(w) / sum(w)),
            st.lists(st.integers(0, 5), min_size=k, max_size=k).filter(any).map(lambda w: np.array(w) / sum(w)),
            hnp.arrays(np.float64, st.integers(0, 7)),
        ),
        "p_hat",
    )
    confusion = data.draw(confusions(k, allow_none=False), "confusion")
    try:
        p = correct_proportions(p_hat, confusion)
    except FairbenchError as exc:
        event(f"refused: {str(exc)[:40]}")
        return
    event("corrected")
    assert p.shape == (k,) and np.all(p >= 0) and abs(p.sum() - 1) <= 1e-9


@pytest.mark.parametrize(
    "call",
    [
        lambda: fairness_report(np.array([0, 1]), 2, "not a matrix", n_resamples=10, exact=True),
        lambda: fairness_report(np.array([0, 1]), 2, None, n_resamples=10, seed=-1),
        lambda: fairness_report(np.array([0, 1]), 10**13, None, n_resamples=10),
        lambda: conditional_fairness_report(np.array([0, 1]), np.array([0, 1]), 2, 10**13, None, n_resamples=10),
    ],
    ids=["string-confusion", "negative-seed", "huge-n-groups", "huge-n-conditions"],
)
def test_formerly_escaping_inputs_are_user_errors(call) -> None:
    with pytest.raises(FairbenchError):
        call()
