"""Where a network's files are and which one may be used: sha256-pinned files, and files trained on first use.

Both kinds of network (judges, domain feature networks) are stored as `<id>.safetensors` + `<id>.json` (the
card). A pinned file ships inside the package, with `$FAIRBENCH_HOME/<kind dir>/` as the place a user can put
a reproduced or newer copy; a file whose hash differs from the pin is refused.

Weights trained on first use are for tasks whose data cannot be obtained where fairbench is built (SVHN), so
no network can ship: they are trained, seeded, on the user's copy the first time a score needs them and cached
under `$FAIRBENCH_HOME/<kind dir>/`. Their card carries a `first_use_key`: a hash of what the weights were
trained from (the recipe, and the exact images, labels and groups of the split they learn from). A cached file
whose key differs (other data, another recipe) is not used; it is retrained. Two tasks whose judges learn from
identical splits (svhn-shaded and svhn-shaded-imbalanced: both judge splits are balanced) share one file. Every
result records the sha256 of the files it was scored with, and a board compares only results with identical
files, since two users' files differ.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairbench import atomic, data, paths
from fairbench.errors import FairbenchError

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec


def home_dir(kind_dir: str) -> Path:
    """`$FAIRBENCH_HOME/<kind_dir>`: where first-use files are cached and users put their own copies."""
    return paths.fairbench_home() / kind_dir


def find_pinned(kind: str, id: str, sha256: str, search_dirs: list[Path], how_to_create: str) -> tuple[Path, dict[str, Any]]:
    """(weights path, card JSON) for `id`, refused unless the weights hash to `sha256`."""
    for directory in search_dirs:
        weights = directory / f"{id}.safetensors"
        if weights.is_file():
            break
    else:
        raise FairbenchError(
            f"{kind} {id!r} not found: place {id}.safetensors (sha256 {sha256}) and its {id}.json card in "
            f"{search_dirs[-1]}/, or create them with {how_to_create}"
        )
    digest = atomic.sha256_file(weights)
    if digest != sha256:
        raise FairbenchError(
            f"{weights}: sha256 {digest[:12]}… does not match the pinned {kind} {sha256[:12]}…; "
            f"refusing to use a different {kind}"
        )
    card_path = weights.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise FairbenchError(f"{card_path}: {kind} card missing or invalid ({exc})") from None
    if not isinstance(card, dict):
        raise FairbenchError(f"{card_path}: {kind} card must be a JSON object")
    return weights, card


def first_use_key(task: TaskSpec, recipe: dict[str, Any], data_root: Path | None) -> str:
    """sha256 of the recipe and of the split (`recipe["split"]`) it trains on, as loaded from this data."""
    split = data.load_split(task, recipe["split"], data_root)
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())
    for tensor in (split.images, split.labels, split.groups):
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


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
    kind: str, id: str, directory: Path, task: TaskSpec, data_root: Path | None, how: str, recipe: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """The first-use file trained from this recipe on this data, or a FairbenchError saying how to create it."""
    found = cached_card(directory, id, first_use_key(task, recipe, data_root))
    if found is None:
        raise FairbenchError(
            f"{kind} {id!r} is trained on first use and none matches this data in {directory}/: create it with "
            f"{how} (`fairbench score` does so itself)"
        )
    return found


def is_cached(id: str, directory: Path, task: TaskSpec, data_root: Path | None, recipe: dict[str, Any]) -> bool:
    return cached_card(directory, id, first_use_key(task, recipe, data_root)) is not None
