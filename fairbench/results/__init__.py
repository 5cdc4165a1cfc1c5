"""The result contract, in one place: the schema id and dataclasses (`schema`), the metric names (`names`), the
writer and strict reader (`io`), the report's figure index beside a result (`sidecar`) and the check that every
result file still loads (`python -m fairbench.results check PATH...`)."""

from fairbench.results.io import (
    LEGACY_KEYS, dumps, read_result, result_from_json, result_paths, sha256_path, write_result,
)
from fairbench.results.schema import SCHEMA, JudgeInfo, ScoreResult, Submission

__all__ = [
    "LEGACY_KEYS", "SCHEMA", "JudgeInfo", "ScoreResult", "Submission", "dumps", "read_result", "result_from_json",
    "result_paths", "sha256_path", "write_result",
]
