"""Shipped, sha256-pinned weights (judges, domain feature networks): find, verify, read their card.

Both kinds ship as `<id>.safetensors` + `<id>.json` inside the package, with `$FAIRBENCH_HOME/<kind dir>/`
as the place a user can put a reproduced or newer copy. A file whose hash differs from the pin is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairbench import atomic
from fairbench.errors import FairbenchError


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
