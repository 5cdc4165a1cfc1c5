"""Writing a result file and reading one back strictly: the inverse of each other for this schema."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from fairbench import atomic
from fairbench.results.schema import SCHEMA, JudgeInfo, ScoreResult, Submission
from fairbench.results.sidecar import is_report_path

# Keys older tools wrote into result files that are no part of the scoring output: read past, never returned.
# `report` listed a report's figures until they moved to a sidecar (fairbench.results.sidecar).
LEGACY_KEYS = ("report",)


def dumps(result: ScoreResult) -> str:
    return json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n"


def write_result(path: str | Path, result: ScoreResult) -> Path:
    path = Path(path)
    atomic.write_text(path, dumps(result))
    return path


def result_from_json(data: dict[str, Any]) -> ScoreResult:
    """The inverse of `to_json` for files of this schema; keys a newer writer added are refused by name."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} result: schema {data.get('schema')!r}")
    values = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
    names = {f.name for f in fields(ScoreResult)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown result keys: {', '.join(unknown)}")
    values["submission"] = Submission(**values["submission"])
    values["judge"] = JudgeInfo(**values["judge"])
    return ScoreResult(**values)


def read_result(path: str | Path) -> ScoreResult:
    return result_from_json(json.loads(Path(path).read_text()))


def result_paths(folder: str | Path) -> list[Path]:
    """Every `*.json` under `folder`, recursively, sorted: hidden names and report sidecars are not results."""
    root = Path(folder)
    return sorted(
        p
        for p in root.rglob("*.json")
        if p.is_file() and not is_report_path(p) and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder's sorted (relative name, file hash) pairs."""
    if path.is_file():
        return atomic.sha256_file(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path).as_posix()}\0{atomic.sha256_file(f)}\n".encode())
    return digest.hexdigest()
