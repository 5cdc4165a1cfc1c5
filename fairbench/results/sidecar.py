"""A report's index of figures, kept in a sidecar beside the result (`seed0.json` -> `seed0.report.json`).

A result file is scoring output and no tool rewrites it, so `fairbench report` lists the figures it drew here
instead. The sidecar names the run it indexes (the result's `created` time and submission sha256): a result
replaced by another run's under the same name does not inherit the old run's figures. Result files written
before the sidecar carry the same listing under a `report` key; it is read when no sidecar is for the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairbench import atomic

REPORT_SCHEMA = "fairbench-report/1"
REPORT_SUFFIX = ".report.json"  # never a result: result folders are read with these names left out
LEGACY_REPORT_KEY = "report"  # where result files written before the sidecar list their figures


def report_path(result_path: str | Path) -> Path:
    """The sidecar of a result file: its name with `.json` replaced by `.report.json`."""
    result_path = Path(result_path)
    return result_path.with_name(f"{result_path.with_suffix('').name}{REPORT_SUFFIX}")


def is_report_path(path: str | Path) -> bool:
    return Path(path).name.endswith(REPORT_SUFFIX)


def _run(result: dict[str, Any]) -> dict[str, Any]:
    """What tells one scored run from another written to the same path later."""
    submission = result.get("submission")
    return {
        "created": result.get("created"),
        "submission_sha256": submission.get("sha256") if isinstance(submission, dict) else None,
    }


def write_report_index(result_path: str | Path, result: dict[str, Any], figures: dict[str, Any]) -> Path:
    """Write the sidecar of `result_path` (whose parsed JSON is `result`) listing `figures`: file names
    relative to the result's folder."""
    result_path = Path(result_path)
    index = {"schema": REPORT_SCHEMA, "result": result_path.name, "run": _run(result), "figures": figures}
    path = report_path(result_path)
    atomic.write_text(path, json.dumps(index, indent=2, allow_nan=False) + "\n")
    return path


def read_report_index(result_path: str | Path, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The figures listed for a result: from its sidecar while that indexes this run, else from the result's
    own legacy `report` key, else nothing. `result`, when given, is the result file's parsed JSON."""
    result_path = Path(result_path)
    if result is None:
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
    if not isinstance(result, dict):
        return {}
    sidecar = report_path(result_path)
    if sidecar.is_file():
        try:
            index = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            index = None
        if (
            isinstance(index, dict)
            and index.get("schema") == REPORT_SCHEMA
            and isinstance(index.get("figures"), dict)
            and index.get("run") == _run(result)
        ):
            return index["figures"]
    legacy = result.get(LEGACY_REPORT_KEY)
    return legacy if isinstance(legacy, dict) else {}
