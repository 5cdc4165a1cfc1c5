"""Finding what a report is made of: the result JSON, and the images it was scored on, judged again.

A report's grids must show the samples the result counted, so the images are reproduced, not approximated:
a checkpoint is re-sampled with the task's seeded sampler (the same N and seed as at scoring, so the same
images), an image set is read as submitted; either way the submission's sha256 must equal the one the result
recorded, or the images would belong to another submission. Relative submission paths (as `fairbench score`
records them) are tried against the current folder, then the result's folder and its parents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairbench.errors import FairbenchError
from fairbench.judges import load_judge_of_result
from fairbench.results import SCHEMA, sha256_path
from fairbench.submission.samples import samples_from_checkpoint, samples_from_imageset, with_judge_labels
from fairbench.task_registry import TaskSpec, get_task

RUN_RESULT = "result.json"  # what `fairbench score CHECKPOINT` writes beside the checkpoint by default


@dataclass(frozen=True)
class JudgedSamples:
    images: torch.Tensor  # uint8 N x C x H x W, as scored
    labels: np.ndarray | None  # condition per image, None for unconditional tasks
    judged: np.ndarray  # judged group index per image


def find_result(target: Path) -> Path:
    """A result JSON as given, or a run folder's `result.json`; one clear error otherwise."""
    target = Path(target)
    if target.is_dir():
        path = target / RUN_RESULT
        if not path.is_file():
            ckpt = target / "checkpoint.pt"
            hint = f"; score it first: fairbench score {ckpt}" if ckpt.is_file() else ""
            raise FairbenchError(f"{target}: no {RUN_RESULT} in this run folder{hint}")
        return path
    if not target.is_file():
        raise FairbenchError(f"{target}: no such result file or run folder")
    return target


def load_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FairbenchError(f"{path}: not a readable result JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise FairbenchError(f"{path}: not a fairbench result (schema {SCHEMA})")
    return data


def result_task(result: dict[str, Any], where: Path) -> TaskSpec:
    task = get_task(str(result.get("task")))
    if task.task_hash != result.get("task_hash"):
        raise FairbenchError(
            f"{where}: scored on task {task.id} with hash {str(result.get('task_hash'))[:12]}…, the installed spec "
            f"has {task.task_hash[:12]}…; its images cannot be reproduced with this fairbench"
        )
    return task


def find_submission(result: dict[str, Any], result_path: Path) -> Path:
    """The submission file or folder the result names, checked against its recorded sha256."""
    sub = result.get("submission") or {}
    recorded = Path(str(sub.get("path", "")))
    candidates = [recorded] if recorded.is_absolute() else [Path.cwd() / recorded]
    if not recorded.is_absolute():
        candidates += [parent / recorded for parent in Path(result_path).resolve().parents]
        candidates.append(Path(result_path).resolve().parent / recorded.name)
    what = "checkpoint" if sub.get("kind") == "checkpoint" else "image set"
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        raise FairbenchError(
            f"{result_path}: sample grids need the scored {what} {recorded} (sha256 {str(sub.get('sha256'))[:12]}…), "
            "which is not there (or run from the folder it was scored in)"
        )
    if sha256_path(found) != sub.get("sha256"):
        raise FairbenchError(
            f"{result_path}: sample grids need the scored {what}, and {found} is not it any more (its sha256 "
            f"differs from the recorded {str(sub.get('sha256'))[:12]}…; rescore it to draw them)"
        )
    return found


def scored_submission(result: dict[str, Any], result_path: Path) -> Path | None:
    """The scored submission when it is still there unchanged; None when it is gone or differs (retrained)."""
    try:
        return find_submission(result, result_path)
    except FairbenchError:
        return None


def judged_samples(
    result: dict[str, Any], result_path: Path, device: str | torch.device = "cpu", submission: Path | None = None
) -> JudgedSamples:
    """The images the result was scored on, reproduced, with the judge's verdict on each.

    `submission`, when given, is one `find_submission` already returned: it is not hashed a second time.
    """
    task = result_task(result, result_path)
    found = submission if submission is not None else find_submission(result, result_path)
    kind = (result.get("submission") or {}).get("kind")
    if kind == "checkpoint":
        seed = result.get("sampling_seed")
        samples = samples_from_checkpoint(found, task, int(result["n_samples"]), None if seed is None else int(seed),
                                          device)
    elif kind in ("npz", "folder"):
        samples = samples_from_imageset(found, task)
    else:
        raise FairbenchError(f"{result_path}: submission kind {kind!r} has no images to show; use --no-samples")
    judge = load_judge_of_result(task, (result.get("judge") or {}).get("sha256"))
    samples = with_judge_labels(samples, judge, device)
    labels = samples.conditions
    return JudgedSamples(samples.images, None if labels is None else labels.numpy(), samples.groups)
