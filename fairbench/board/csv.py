"""The CSV boards: `leaderboard.csv` (one row per task and entry, every metric) and, on demand,
`leaderboard_runs.csv` (one row per result file, every metric's per-run value and 95% interval).

The quality gate (`fairbench.board.board`): `gate` is "pass", "below gate" (every rank empty) or "not
checked", with `gate_bound` and the runs' `unrecognisable_share_mean` and `_max` (empty unless every run was
checked); `leaderboard_runs.csv` has each run's `unrecognisable_share`.

Each rank column (`primary_rank`, `<metric>_rank`) has a `_worst` twin: the rank interval runs from the rank
to it (`fairbench.board.ranking`). Missing values are empty cells, never zeros; floats are written with
full (round-trip) precision; rows and columns are sorted, so the same inputs give the same bytes. A metric
whose unit is easy to misread (KID, stored unscaled where papers print it x 10^3) has a `_unit` column beside
its values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fairbench.board.board import GATE_BOUND, TaskBoard, _column, _feature_network_label
from fairbench.board.columns import METRIC_UNITS
from fairbench.board.records import _is_number


def _weights_compact(weights: Mapping[str, Mapping[str, str]]) -> str | None:
    """The CSV form: 'metric=asset:sha12+asset:sha12;metric=...', or None when nothing was recorded."""
    parts = [
        f"{name}=" + "+".join(f"{asset}:{sha[:12]}" for asset, sha in sorted(weights[name].items()))
        for name in sorted(weights)
    ]
    return ";".join(parts) or None


def leaderboard_frame(boards: Sequence[TaskBoard]) -> pd.DataFrame:
    """One row per (task, entry); metric columns are the union over tasks, sorted by name."""
    all_metrics = sorted({_column(board, name) for board in boards for name in board.metric_names})
    # Only boards with recorded IQA weights add the column, so older leaderboards rebuild byte for byte.
    with_weights = any(board.iqa_weights for board in boards)
    # Likewise the entry's config columns, only once some result records its config (fairbench.entry_identity).
    with_config = any(run.config_hash for board in boards for row in board.rows for run in row.runs)
    # Each group's mean judged share (the percentage on the Markdown board, here as a fraction), per group name.
    groups = sorted({g for board in boards for row in board.rows for g in (row.shares or {})})
    records = []
    for board in boards:
        for row in board.rows:
            rec: dict[str, Any] = {
                "task": board.task,
                "task_version": board.task_version,
                "task_hash": board.task_hash,
                "entry": row.entry,
                **({"method": row.runs[0].method, "config_hash": row.runs[0].config_hash} if with_config else {}),
                "n_runs": row.n_runs,
                "seeds": ";".join(str(s) for s in row.seeds if s is not None) or None,
                "few_seeds": row.few_seeds,
                "primary_metric": board.primary_metric,
                "primary_rank": row.rank[board.primary_metric],
                "primary_rank_worst": _worst(row.rank_interval.get(board.primary_metric)),
                "n_samples": board.n_samples,
                "feature_network": _feature_network_label(board.feature_network),
                **({"iqa_weights": _weights_compact(row.iqa_weights)} if with_weights else {}),
                "train_steps_mean": row.train_steps,
                "train_wall_time_s_mean": row.train_wall_time_s,
                **{f"judged_share_{g}_mean": (row.shares or {}).get(g) for g in groups},
                **_gate_columns(row.gate.status, row.gate.shares),
            }
            own = {_column(board, name): name for name in board.metric_names}
            for column in all_metrics:
                name = own.get(column)
                summary = row.metrics.get(name) if name else None
                rec[f"{column}_mean"] = summary.mean if summary else None
                rec[f"{column}_std"] = summary.std if summary else None
                rec[f"{column}_n"] = summary.n if summary else None
                rec[f"{column}_rank"] = row.rank.get(name) if name else None
                rec[f"{column}_rank_worst"] = _worst(row.rank_interval.get(name)) if name else None
                rec[f"{column}_higher_is_better"] = board.higher_is_better.get(name) if name else None
                if _base(column) in METRIC_UNITS:
                    rec[f"{column}_unit"] = METRIC_UNITS[_base(column)] if name else None
            records.append(rec)
    frame = pd.DataFrame.from_records(records)
    for col in frame.columns:
        if col.startswith("unrecognisable_share_") or col == "gate_bound":
            frame[col] = frame[col].astype("float64")
        elif col.endswith(("_n", "_rank", "_rank_worst")) or col in ("task_version", "n_samples", "n_runs"):
            frame[col] = frame[col].astype("Int64")
        elif col.endswith(("_mean", "_std")):  # judged_share_*_mean too: NaN (empty) where a task lacks the group
            frame[col] = frame[col].astype("float64")
        elif col.endswith("_higher_is_better") or col == "few_seeds":
            frame[col] = frame[col].astype("boolean")
    return frame


def render_csv(boards: Sequence[TaskBoard]) -> str:
    """Long-ish wide CSV: missing values are empty; floats are written with full (round-trip) precision."""
    return leaderboard_frame(boards).to_csv(index=False, lineterminator="\n")


def runs_frame(boards: Sequence[TaskBoard], results_dir: Path | None = None) -> pd.DataFrame:
    """One row per result file (board order, then seed order): every metric's value and 95% interval.

    `file` is the result's path relative to `results_dir` (POSIX form) when given, else the path as read.
    A metric the run lacks (or could not compute) is empty, as are the metrics of other tasks.
    """
    all_metrics = sorted({_column(board, name) for board in boards for name in board.metric_names})
    records = []
    for board in boards:
        own = {_column(board, name): name for name in board.metric_names}
        for row in board.rows:
            for run in row.runs:
                path = run.path
                if results_dir is not None:
                    try:
                        path = run.path.relative_to(results_dir)
                    except ValueError:
                        pass
                rec: dict[str, Any] = {
                    "task": board.task,
                    "task_version": board.task_version,
                    "task_hash": board.task_hash,
                    "entry": row.entry,
                    "seed": run.seed,
                    "few_seeds": row.few_seeds,
                    "file": path.as_posix(),
                    "train_steps": _train_value(run.train, "steps"),
                    "train_wall_time_s": _train_value(run.train, "wall_time_s"),
                    "unrecognisable_share": run.unrecognisable_share,
                }
                for column in all_metrics:
                    name = own.get(column)
                    metric = run.metrics.get(name) if name else None
                    value = metric.value if metric is not None else None
                    ci = metric.ci95 if metric is not None and value is not None else None
                    rec[column] = value
                    rec[f"{column}_ci95_low"] = ci[0] if ci else None
                    rec[f"{column}_ci95_high"] = ci[1] if ci else None
                    rec[f"{column}_higher_is_better"] = board.higher_is_better.get(name) if name else None
                    if _base(column) in METRIC_UNITS:
                        rec[f"{column}_unit"] = METRIC_UNITS[_base(column)] if name else None
                records.append(rec)
    frame = pd.DataFrame.from_records(records)
    metric_columns = set(all_metrics)
    for col in frame.columns:
        if col in ("task_version", "seed"):
            frame[col] = frame[col].astype("Int64")
        elif (col in metric_columns or col.endswith(("_ci95_low", "_ci95_high")) or col.startswith("train_")
              or col == "unrecognisable_share"):
            frame[col] = frame[col].astype("float64")
        elif col.endswith("_higher_is_better") or col == "few_seeds":
            frame[col] = frame[col].astype("boolean")
    return frame


def render_runs_csv(boards: Sequence[TaskBoard], results_dir: Path | None = None) -> str:
    """`leaderboard_runs.csv`: the per-run values behind the board (see `runs_frame`)."""
    return runs_frame(boards, results_dir).to_csv(index=False, lineterminator="\n")


def _train_value(train: Mapping[str, Any] | None, key: str) -> float | None:
    value = train.get(key) if train else None
    return float(value) if _is_number(value) and math.isfinite(float(value)) else None


def _gate_columns(status: str, shares: Sequence[float | None]) -> dict[str, Any]:
    """The gate's status and bound, and the runs' mean and largest unrecognisable share (None unless every
    run was checked: never a summary of some runs)."""
    checked = [s for s in shares if s is not None]
    complete = bool(checked) and len(checked) == len(shares)
    return {"gate": status, "gate_bound": GATE_BOUND,
            "unrecognisable_share_mean": sum(checked) / len(checked) if complete else None,
            "unrecognisable_share_max": max(checked) if complete else None}


def _worst(interval: tuple[int, int] | None) -> int | None:
    """The worst rank of a rank interval (its best is the rank itself)."""
    return None if interval is None else interval[1]


def _base(column: str) -> str:
    """The metric behind a column: `kid@domain-mnist` -> `kid`."""
    return column.split("@", 1)[0]
