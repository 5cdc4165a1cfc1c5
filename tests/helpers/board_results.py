"""Result files written by hand for the leaderboard's tests: one result with every field a board reads, put where
read_results finds it, and the Markdown table read back as rows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fairbench.board import build_leaderboard, read_results

HASH_A = "a" * 64
HASH_B = "b" * 64

# Direction of each metric used below.
HIB = {"kl_uniform_corrected": False, "kl_uniform": False, "fd_l1": False, "accuracy_like": True}


def make_result(
    task: str = "digits-bicolor",
    method: str | None = "vanilla",
    seed: int | None = 0,
    metrics: dict[str, float | None] | None = None,
    task_hash: str = HASH_A,
    submission_name: str | None = None,
    train: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    metrics = {"kl_uniform_corrected": 0.1, "kl_uniform": 0.2} if metrics is None else metrics
    name = submission_name or method or "images"
    default_train = {"steps": 100, "wall_time_s": 2.0, "device": "cpu"}
    data: dict[str, Any] = {
        "schema": "fairbench-result/1",
        "task": task,
        "task_version": 1,
        "task_hash": task_hash,
        "method": method,
        "submission": {"kind": "checkpoint" if method else "npz", "name": name, "path": "x", "sha256": "0" * 64},
        "seed": seed,
        "train": train if train is not None else (default_train if method else None),
        "n_samples": 1000,
        "groups": ["black", "white"],
        "group_proportions": {"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
        "metrics": {
            k: {"value": v, "ci95": None if v is None else [v - 0.01, v + 0.01], "higher_is_better": HIB.get(k, False)}
            for k, v in metrics.items()
        },
        "per_condition": None,
        "judge": {"id": "j", "sha256": "1" * 64, "accuracy": 0.99, "confusion": [[0.99, 0.01], [0.01, 0.99]]},
        "feature_network": None,
        "versions": {"fairbench": "0.1.0"},
        "created": "2026-11-23T05:00:00+00:00",
        "elapsed_s": 1.0,
    }
    data.update(overrides)
    return data


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in make_result().items() if k != key}


def put(root: Path, data: Any, name: str | None = None) -> Path:
    if name is None:
        entry = data["method"] or data["submission"]["name"]
        name = f"{data['task']}/{entry}/seed{data['seed']}.json"
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def boards_for(root: Path, primary: str | None = None):
    return build_leaderboard(read_results(root), primary)


def row_of(board, entry):
    return next(r for r in board.rows if r.entry == entry)


def md_cells(line: str) -> list[str]:
    """A Markdown table row's cells (an escaped pipe `\\|` stays inside its cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def md_table(md: str, task: str | None = None) -> list[dict[str, str]]:
    """The rows of the board table (of `task`, else the first) as {header: cell}."""
    section = md.split(f"## {task} (")[1] if task else md
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| rank |"))
    header = md_cells(lines[start])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, md_cells(line))))
    return rows
