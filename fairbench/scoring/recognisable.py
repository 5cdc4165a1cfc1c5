"""Which generated samples the task's networks cannot place: the share a fairness figure should not rest on.

Why. A judge splits anything it is shown, noise included: a generator trained for 20 steps (checkerboard
noise, FID ~1,900 on domain-digits) is judged half black, half white, and so scores a near-perfect KL to
uniform. A fairness figure means something only for samples that look like the task's images, so every
result reports the share of its samples that do not, and the board ranks fairness only among entries whose
samples mostly do (`fairbench.board.board.GATE_BOUND`).

The criterion: out-of-distribution by nearest neighbours (Sun et al., ICML 2022, "Out-of-distribution
detection with deep nearest neighbors"), in two feature spaces, each calibrated on real held-out images.

- Spaces. The judge's feature maps (each channel's spatial mean and standard deviation after every
  convolutional block, `JudgeNet.activation_statistics`: statistics of a classifier's activations tell its
  own kind of image from others, Sastry & Oore, ICML 2020) and, when the task has one, its domain feature
  network (the FID network, a classifier of the task's classes: it knows what a digit looks like, where a
  background judge does not), its features scaled to unit length as Sun et al. do. Each catches what the
  other misses (measured, docs/metrics.md): the judge's maps flag the stripes a 250-step digits generator
  draws, which the digit network places among thin 1s; the digit network flags blobs the judge calls typical.
  Neither catches everything: a 400-step cifar10-lt generator's grey blobs pass both.
- Score. A sample's Euclidean distance to its K-th nearest real image of the task's judge split (at most
  `MAX_REFERENCE`, seeded). K = 5, as PRDC's balls here: one odd real image does not make its neighbourhood
  recognisable.
- Threshold. Split-conformal, on the task's test split (never trained on by the judge; at most
  `MAX_CALIBRATION`, seeded): the even rows fit it, the odd rows check it. The threshold is the
  ceil((m + 1)(1 - a))-th smallest of the m fit scores, a = REAL_FLAG_RATE / 2 per space, so a real image
  exchangeable with the fit rows exceeds it with probability at most a (at least a - 1/(m + 1)); with m
  under 1/a - 1 it is the largest fit score (probability 1/(m + 1)). A sample is unrecognisable when it
  exceeds the threshold in either space: by the union bound, real images are flagged at most REAL_FLAG_RATE
  = 1% of the time (1.15% on digits-bicolor, whose 174 fit rows are too few for 0.5%). The rate measured on
  the check rows is recorded with the thresholds.

The calibration depends on the task's data and the two networks alone, so it is computed once and cached in
`$FAIRBENCH_HOME/recognisable/` (keyed by all of them, checked on load); every network call goes through
fixed chunks on the CPU, so it is the same bits wherever a run is scored. Not checked (the share is null and
`not_checked` says why): a task without judge and test splits (ffhq-race), a judge whose feature
maps fairbench cannot read (FairFace), a task whose data is not on disk.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import stats

from fairbench import atomic, data, paths
from fairbench.chunking import chunk_slices
from fairbench.errors import FairbenchError

if TYPE_CHECKING:
    from fairbench.judges import Judge
    from fairbench.task_registry import TaskSpec

CRITERION = "knn-judge+domain/1"  # changes whenever the rule does, so boards never compare two rules
K = 5
REAL_FLAG_RATE = 0.01  # at most this share of real images is flagged (REAL_FLAG_RATE / 2 per space)
MAX_REFERENCE = 10_000  # judge-split images the distances are taken to (seeded subsample beyond)
MAX_CALIBRATION = 10_000  # test-split images the thresholds are fitted (even rows) and checked (odd) on
SEED = 0
BLOCK = 1024  # query rows per distance block: 1024 x 10,000 float64 is 80 MB


@dataclass(frozen=True)
class Space:
    """One feature space: which network, and the uint8 images -> N x d float64 features it computes."""

    role: str  # "judge" | "domain"
    id: str
    sha256: str
    embed: Callable[[torch.Tensor], np.ndarray]


@dataclass(frozen=True)
class Calibration:
    """What a task's real images fix once: per space the reference features and the threshold."""

    key: str  # sha256 of the cache key fields: equal keys, the same rule on the same data and networks
    reference: dict[str, np.ndarray]  # role -> reference features
    thresholds: dict[str, float]  # role -> distance threshold
    real_flagged: dict[str, int]  # role -> check rows over the threshold; "any" for the union
    n_reference: int
    n_fit: int
    n_check: int


def kth_neighbour_distance(queries: np.ndarray, reference: np.ndarray, k: int = K) -> np.ndarray:
    """Each query row's Euclidean distance to its k-th nearest reference row (no row of `reference` is the
    query itself: the spaces compare generated or held-out images with the judge split)."""
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if len(r) < k:
        raise FairbenchError(f"{len(r)} reference images; the {k}-th nearest neighbour needs at least {k}")
    r_norms = np.einsum("ij,ij->i", r, r)
    out = np.empty(len(q), dtype=np.float64)
    for start in range(0, len(q), BLOCK):
        block = q[start : start + BLOCK]
        d2 = np.einsum("ij,ij->i", block, block)[:, None] + r_norms[None, :] - 2.0 * (block @ r.T)
        out[start : start + BLOCK] = np.partition(d2, k - 1, axis=1)[:, k - 1]
    return np.sqrt(np.maximum(out, 0.0))


def conformal_threshold(fit_scores: np.ndarray, alpha: float) -> float:
    """The ceil((m + 1)(1 - alpha))-th smallest of m scores: a new score exchangeable with them exceeds it
    with probability at most alpha (split-conformal); with too few scores for that, the largest one."""
    scores = np.sort(np.asarray(fit_scores, dtype=np.float64))
    if scores.size == 0:
        raise FairbenchError("no calibration images to fit the threshold on")
    rank = math.ceil((scores.size + 1) * (1.0 - alpha))
    return float(scores[min(rank, scores.size) - 1])


def judge_space(judge: Judge) -> Space:
    """The judge's penultimate layer, on a CPU copy of its network (the same bits on every device)."""
    if getattr(judge.net, "activation_statistics", None) is None:
        raise FairbenchError(f"judge {judge.card.id} has no feature maps fairbench can read")
    net = copy.deepcopy(judge.net).cpu().eval()

    @torch.no_grad()
    def embed(images: torch.Tensor) -> np.ndarray:
        parts = [net.activation_statistics(images[part].cpu()).double() for part in chunk_slices(len(images))]
        return torch.cat(parts).numpy() if parts else np.zeros((0, 0))

    return Space("judge", judge.card.id, judge.card.sha256, embed)


def domain_space(task: TaskSpec, data_root: Path | None) -> Space | None:
    """The task's own domain feature network (its CPU `quality.feature_network`, whatever network FID was
    asked to use), or None when the task has none: a generic network (Inception) does not know the task."""
    from fairbench.features import load_domain_network, load_first_use_network
    from fairbench.networks.domain import DOMAIN_RECIPES

    ref = task.quality.feature_network if task.quality is not None else None
    if ref is None or ref.id not in DOMAIN_RECIPES:
        return None
    if ref.trained_on_first_use:
        net = load_first_use_network(task, ref.id, data_root)
    else:
        assert ref.sha256 is not None  # the spec validator guarantees it for a pinned network
        net = load_domain_network(ref.id, ref.sha256)
    def embed(images: torch.Tensor) -> np.ndarray:
        features = net.extract(images, 500, "cpu")
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    return Space("domain", net.id, net.sha256, embed)


def task_spaces(task: TaskSpec, judge: Judge, data_root: Path | None) -> list[Space]:
    if not task.has_training_data:
        raise FairbenchError(f"task {task.id} has no judge and test splits of real images to calibrate on")
    spaces = [judge_space(judge)]
    domain = domain_space(task, data_root)
    return spaces + ([domain] if domain is not None else [])


def _rows(n: int, cap: int) -> np.ndarray:
    """All rows, or a seeded sorted subsample of `cap` of them."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, size=cap, replace=False))


def _key_fields(task: TaskSpec, spaces: list[Space], data_root: Path | None) -> dict[str, Any]:
    with paths.no_downloads():
        source = data.data_source(task, data_root)
    splits = {name: [s.part, s.start, s.stop] for name in ("judge", "test") for s in [task.split_spec(name)]}
    return {
        "criterion": CRITERION, "k": K, "real_flag_rate": REAL_FLAG_RATE, "seed": SEED,
        "max_reference": MAX_REFERENCE, "max_calibration": MAX_CALIBRATION,
        "data_hash": task.data_hash, "splits": splits, "data_source": source,
        "networks": [[s.role, s.id, s.sha256] for s in spaces],
    }


def calibrate(task: TaskSpec, spaces: list[Space], data_root: Path | None = None) -> Calibration:
    """The task's calibration for these spaces: from the cache, or computed from its judge and test splits."""
    fields = _key_fields(task, spaces, data_root)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(text.encode()).hexdigest()
    path = paths.fairbench_home() / "recognisable" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if str(npz["key"]) == text:
                    meta = json.loads(str(npz["meta"]))
                    reference = {s.role: np.asarray(npz[f"reference_{s.role}"], dtype=np.float64) for s in spaces}
                    return Calibration(key, reference, **meta)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            pass  # unreadable or another key's: computed again and overwritten
    with paths.no_downloads():
        judge_split = data.load_split(task, "judge", data_root)
        test_split = data.load_split(task, "test", data_root)
    ref_images = judge_split.images[torch.from_numpy(_rows(len(judge_split), MAX_REFERENCE))]
    cal_images = test_split.images[torch.from_numpy(_rows(len(test_split), MAX_CALIBRATION))]
    fit = np.arange(len(cal_images)) % 2 == 0
    if len(ref_images) < K or fit.sum() < 1 or (~fit).sum() < 1:
        raise FairbenchError(f"task {task.id}: too few real images to calibrate on ({len(ref_images)} judge, "
                             f"{len(cal_images)} test)")
    reference, thresholds, flagged_any = {}, {}, np.zeros(int((~fit).sum()), dtype=bool)
    real_flagged: dict[str, int] = {}
    for space in spaces:
        reference[space.role] = space.embed(ref_images)
        scores = kth_neighbour_distance(space.embed(cal_images), reference[space.role])
        thresholds[space.role] = conformal_threshold(scores[fit], REAL_FLAG_RATE / len(spaces))
        over = scores[~fit] > thresholds[space.role]
        real_flagged[space.role] = int(over.sum())
        flagged_any |= over
    real_flagged["any"] = int(flagged_any.sum())
    meta = {"thresholds": thresholds, "real_flagged": real_flagged, "n_reference": len(ref_images),
            "n_fit": int(fit.sum()), "n_check": int((~fit).sum())}
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, key=np.array(text), meta=np.array(json.dumps(meta)),
                 **{f"reference_{role}": values for role, values in reference.items()})
    return Calibration(key, reference, **meta)


def share_interval(count: int, n: int) -> list[float]:
    """Clopper-Pearson 95% interval of a share count / n (exact: it never undercovers, even at 0 or n)."""
    low = 0.0 if count == 0 else float(stats.beta.ppf(0.025, count, n - count + 1))
    high = 1.0 if count == n else float(stats.beta.ppf(0.975, count + 1, n - count))
    return [low, high]


def recognisable_report(task: TaskSpec, images: torch.Tensor, judge: Judge,
                        data_root: Path | None = None) -> dict[str, Any]:
    """The result's `recognisable` field for these samples; a FairbenchError says why it cannot be checked."""
    spaces = task_spaces(task, judge, data_root)
    cal = calibrate(task, spaces, data_root)
    n = len(images)
    flagged = np.zeros(n, dtype=bool)
    networks = []
    for space in spaces:
        over = kth_neighbour_distance(space.embed(images), cal.reference[space.role]) > cal.thresholds[space.role]
        flagged |= over
        networks.append({
            "role": space.role, "id": space.id, "sha256": space.sha256,
            "threshold": cal.thresholds[space.role],
            "unrecognisable": int(over.sum()),
            "real_flagged": cal.real_flagged[space.role],
        })
    count = int(flagged.sum())
    return {
        "criterion": CRITERION,
        "unrecognisable_share": count / n if n else None,
        "unrecognisable_ci95": share_interval(count, n) if n else None,
        "unrecognisable": count,
        "n_samples": n,
        "networks": networks,
        "calibration": {
            "key": cal.key, "k": K, "real_flag_rate": REAL_FLAG_RATE,
            "reference": {"split": "judge", "n": cal.n_reference},
            "fit": {"split": "test", "rows": "even", "n": cal.n_fit},
            "check": {"split": "test", "rows": "odd", "n": cal.n_check},
            "real_flagged": cal.real_flagged["any"],
            "real_flagged_share": cal.real_flagged["any"] / cal.n_check,
        },
    }
