"""Weights trained on first use: for tasks whose data cannot be obtained where fairbench is built (SVHN), so
no judge or feature network can ship. They are trained, seeded, on the user's copy the first time a score
needs them and cached under `$FAIRBENCH_HOME/{judges,features}/<id>.safetensors` with a JSON card.

The card carries a `first_use_key`: a hash of what the weights were trained from (the recipe, and the exact
images, labels and groups of the split they learn from). A cached file whose key differs (other data, another
recipe) is not used; it is retrained. Two tasks whose judges learn from identical splits (svhn-shaded and
svhn-shaded-imbalanced: both judge splits are balanced) share one file. Every result records the sha256 of the files it
was scored with, and a board compares only results with identical files, since two users' files differ.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fairbench import atomic, data
from fairbench.errors import FairbenchError
from fairbench.tasks import TaskSpec


def first_use_key(task: TaskSpec, recipe: dict[str, Any], data_root: Path | None) -> str:
    """sha256 of the recipe and of the split (`recipe["split"]`) it trains on, as loaded from this data."""
    split = data.load_split(task, recipe["split"], data_root)
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())
    for tensor in (split.images, split.labels, split.groups):
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def judge_recipe(task: TaskSpec) -> dict[str, Any]:
    ref = task.judge
    return {"kind": "judge", "id": ref.id, "epochs": ref.epochs, "arch": ref.arch, "seed": 0, "split": "judge"}


def _read_card(weights: Path) -> dict[str, Any] | None:
    try:
        card = json.loads(weights.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def cached_card(directory: Path, id: str, key: str) -> tuple[Path, dict[str, Any]] | None:
    """(weights, card) when `<id>` is cached with this key and its file still hashes to its card's sha256."""
    weights = directory / f"{id}.safetensors"
    if not weights.is_file():
        return None
    card = _read_card(weights)
    if card is None or card.get("first_use_key") != key:
        return None
    if atomic.sha256_file(weights) != card.get("sha256"):
        return None
    return weights, card


def find_cached(
    kind: str, id: str, directory: Path, task: TaskSpec, data_root: Path | None, how: str, recipe: dict | None = None
) -> tuple[Path, dict[str, Any]]:
    key = first_use_key(task, judge_recipe(task) if recipe is None else recipe, data_root)
    found = cached_card(directory, id, key)
    if found is None:
        raise FairbenchError(
            f"{kind} {id!r} is trained on first use and none matches this data in {directory}/: create it with "
            f"{how} (`fairbench score` does so itself)"
        )
    return found


def is_cached(id: str, directory: Path, task: TaskSpec, data_root: Path | None, recipe: dict | None = None) -> bool:
    key = first_use_key(task, judge_recipe(task) if recipe is None else recipe, data_root)
    return cached_card(directory, id, key) is not None
