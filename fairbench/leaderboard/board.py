"""The leaderboard: a pure function of result files (DESIGN.md §7).

`read_results` loads every `fairbench-result/1` JSON under a folder, `build_leaderboard` groups them by task
and aggregates each entry (a method, or an image-set submission's name) over its runs, and the renderers
turn the boards into Markdown and CSV. Rules, each enforced with a FairbenchError rather than a guess:

- one task id, one task hash (and version, and N): results from different task specs are never mixed;
- the same (entry, seed) twice within a task is a duplicate, not a second run;
- a metric's direction (`higher_is_better`) must agree wherever the metric appears;
- a no-reference IQA metric's values must come from the same weight files (`iqa_weights`, sha256 per asset)
  wherever two runs of a task both report it; runs that lack the value or the record (older files) do not count;
- an entry's metric is *missing* when any of its runs lacks it (or reports null / a non-finite value);
  a missing metric has no mean, no std and no rank. It is never averaged over the runs that have it.

Aggregation: mean and sample standard deviation (ddof=1) over runs, runs taken in seed order so the
arithmetic does not depend on file order. With a single run the std is None (shown empty), since a
one-sample spread is undefined rather than zero. Ranks: 1 = best by the metric's direction; equal means
share the lowest rank of the tie ("min" method). Output is byte-identical for the same inputs: everything
is sorted and nothing time- or path-dependent is written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairbench.atomic import write_text
from fairbench.errors import FairbenchError

RESULT_SCHEMA = "fairbench-result/1"
DEFAULT_PRIMARY_METRIC = "kl_uniform_corrected"
MISSING_MD = "—"
# The Markdown board shows these (when present) after the primary metric; the CSV always has every metric.
HEADLINE_METRICS = (
    "kl_uniform_corrected",
    "kl_uniform",
    "fd_l1_corrected",
    "kl_uniform_corrected_cond_worst",
    "fid",
    "fid_balanced",
    "fid_intra_worst",
    "kid",
)


# --------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RecordMetric:
    """One metric of one run as stored in a result file; `value` is None when the run could not compute it."""

    value: float | None
    ci95: tuple[float, float] | None
    higher_is_better: bool


@dataclass(frozen=True)
class ResultRecord:
    path: Path
    task: str
    task_version: int
    task_hash: str
    entry: str  # the method, or submission.name when method is null (image sets, external generators)
    seed: int | None
    metrics: dict[str, RecordMetric]
    train: dict[str, Any] | None
    n_samples: int
    is_method: bool = True  # False for submissions without a method (image sets, TorchScript generators)
    feature_network: dict[str, Any] | None = None
    # IQA metric -> {asset id: sha256} of the weight files its value came from; empty in files older than it.
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)


def read_results(results_dir: Path) -> list[ResultRecord]:
    """Load every `*.json` under `results_dir` (recursively, hidden names skipped), sorted by path."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FairbenchError(f"results directory {root} does not exist or is not a directory")
    paths = sorted(
        p
        for p in root.rglob("*.json")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not paths:
        raise FairbenchError(f"no result files in {root}")
    return [read_result(p) for p in paths]


def read_result(path: Path) -> ResultRecord:
    """Parse and check one result file; every problem is a one-line FairbenchError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FairbenchError(f"{path}: cannot read result file ({_one_line(exc)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FairbenchError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    return _parse_record(path, data)


def _parse_record(path: Path, data: Any) -> ResultRecord:
    def fail(problem: str) -> FairbenchError:
        return FairbenchError(f"{path}: {problem}")

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != RESULT_SCHEMA:
        raise fail(f"schema is {schema!r}, expected {RESULT_SCHEMA!r}")
    for key in ("task", "task_version", "task_hash", "method", "seed", "n_samples", "metrics"):
        if key not in data:
            raise fail(f"missing required field {key!r}")

    task = data["task"]
    if not isinstance(task, str) or not task:
        raise fail("field 'task' must be a non-empty string")
    task_version = data["task_version"]
    if not _is_int(task_version):
        raise fail("field 'task_version' must be an integer")
    task_hash = data["task_hash"]
    if not _is_sha256(task_hash):
        raise fail("field 'task_hash' must be 64 lowercase hex characters (a sha256)")

    method = data["method"]
    if method is not None:
        if not isinstance(method, str) or not method:
            raise fail("field 'method' must be a non-empty string or null")
        entry = method
    else:
        submission = data.get("submission")
        name = submission.get("name") if isinstance(submission, dict) else None
        if not isinstance(name, str) or not name:
            raise fail("field 'method' is null and 'submission.name' is missing; cannot name the entry")
        entry = name

    seed = data["seed"]
    if seed is not None and not _is_int(seed):
        raise fail("field 'seed' must be an integer or null")
    n_samples = data["n_samples"]
    if not _is_int(n_samples) or n_samples <= 0:
        raise fail("field 'n_samples' must be a positive integer")

    train = data.get("train")
    if train is not None and not isinstance(train, dict):
        raise fail("field 'train' must be an object or null")
    feature_network = data.get("feature_network")
    if feature_network is not None and not isinstance(feature_network, dict):
        raise fail("field 'feature_network' must be an object or null")
    iqa_weights = _parse_iqa_weights(data.get("iqa_weights"), fail)

    raw_metrics = data["metrics"]
    if not isinstance(raw_metrics, dict) or not raw_metrics:
        raise fail("field 'metrics' must be a non-empty object")
    metrics: dict[str, RecordMetric] = {}
    for name in sorted(raw_metrics):
        metrics[name] = _parse_metric(raw_metrics[name], f"metrics.{name}", fail)

    return ResultRecord(
        path=path,
        task=task,
        task_version=int(task_version),
        task_hash=task_hash,
        entry=entry,
        seed=None if seed is None else int(seed),
        metrics=metrics,
        train=train,
        n_samples=int(n_samples),
        is_method=method is not None,
        feature_network=feature_network,
        iqa_weights=iqa_weights,
    )


# Metric names and asset ids as fairbench writes them; anything else could make the CSV's compact
# `metric=asset:sha;...` string ambiguous.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _parse_iqa_weights(raw: Any, fail: Any) -> dict[str, dict[str, str]]:
    """{IQA metric: {asset id: sha256}}; optional, since files written before the field lack it (null reads alike)."""
    if raw is None:
        return {}
    shape = "field 'iqa_weights' must be an object of {asset id: sha256} objects"
    if not isinstance(raw, dict):
        raise fail(shape)
    out: dict[str, dict[str, str]] = {}
    for metric in sorted(raw):
        weights = raw[metric]
        if not _NAME.fullmatch(metric) or not isinstance(weights, dict):
            raise fail(f"{shape}; bad entry {metric!r}")
        for asset_id in sorted(weights):
            if not _NAME.fullmatch(asset_id) or not _is_sha256(weights[asset_id]):
                raise fail(f"iqa_weights.{metric}.{asset_id} must be 64 lowercase hex characters (a sha256)")
        out[metric] = {asset_id: weights[asset_id] for asset_id in sorted(weights)}
    return out


def _parse_metric(raw: Any, where: str, fail: Any) -> RecordMetric:
    if not isinstance(raw, dict):
        raise fail(f"{where} must be an object with value, ci95 and higher_is_better")
    for key in ("value", "higher_is_better"):
        if key not in raw:
            raise fail(f"{where} is missing {key!r}")
    value = raw["value"]
    if value is not None and not _is_number(value):
        raise fail(f"{where}.value must be a number or null")
    hib = raw["higher_is_better"]
    if not isinstance(hib, bool):
        raise fail(f"{where}.higher_is_better must be true or false")
    ci = raw.get("ci95")
    if ci is not None:
        if not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(c) for c in ci)):
            raise fail(f"{where}.ci95 must be [low, high] or null")
        ci = (float(ci[0]), float(ci[1]))
    # NaN / inf (which Python's json accepts) count as "not computed", exactly like null.
    number = None if value is None or not math.isfinite(float(value)) else float(value)
    return RecordMetric(value=number, ci95=ci, higher_is_better=hib)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_sha256(x: Any) -> bool:
    return isinstance(x, str) and len(x) == 64 and all(c in "0123456789abcdef" for c in x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class MetricSummary:
    mean: float | None  # None = missing (some run lacks the metric)
    std: float | None  # sample std (ddof=1); None when missing or with fewer than 2 runs
    n: int  # runs that reported a value; equals the entry's n_runs unless the metric is missing


@dataclass(frozen=True)
class LeaderboardRow:
    task: str
    entry: str
    n_runs: int
    seeds: tuple[int | None, ...]  # sorted, None (image sets) last
    metrics: dict[str, MetricSummary]
    rank: dict[str, int | None]  # per metric; None when the metric is missing for this entry
    train_steps: float | None = None  # mean over runs; None unless every run reports it
    train_wall_time_s: float | None = None
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)  # of the runs that report each metric


@dataclass(frozen=True)
class TaskBoard:
    task: str
    task_version: int
    task_hash: str
    metric_names: tuple[str, ...]  # primary first, then sorted
    higher_is_better: dict[str, bool]
    rows: tuple[LeaderboardRow, ...]  # by primary rank (missing last), ties by entry name
    primary_metric: str
    n_samples: int = 0
    feature_network: dict[str, Any] | None = None
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)  # one set per IQA metric (checked)

    @property
    def n_results(self) -> int:
        return sum(row.n_runs for row in self.rows)


def build_leaderboard(records: Sequence[ResultRecord], primary_metric: str | None = None) -> list[TaskBoard]:
    """One board per task id, sorted by task id. See the module docstring for the rules."""
    if not records:
        raise FairbenchError("no results to build a leaderboard from")
    _check_directions(records)
    by_task: dict[str, list[ResultRecord]] = {}
    for rec in records:
        by_task.setdefault(rec.task, []).append(rec)
    return [_build_task(task, by_task[task], primary_metric) for task in sorted(by_task)]


def _check_directions(records: Iterable[ResultRecord]) -> None:
    seen: dict[str, tuple[bool, Path]] = {}
    for rec in sorted(records, key=lambda r: str(r.path)):
        for name, metric in rec.metrics.items():
            if name not in seen:
                seen[name] = (metric.higher_is_better, rec.path)
            elif seen[name][0] != metric.higher_is_better:
                first, where = seen[name]
                raise FairbenchError(
                    f"metric {name!r} has conflicting directions: higher_is_better={first} in {where} "
                    f"but {metric.higher_is_better} in {rec.path}"
                )


def _check_same(task: str, records: list[ResultRecord], what: str, key: Any, show: Any = str) -> None:
    """Refuse to mix records of one task that differ in `key` (task hash, version, N, feature network)."""
    first_file: dict[str, Path] = {}
    for rec in sorted(records, key=lambda r: str(r.path)):
        first_file.setdefault(show(key(rec)), rec.path)
    if len(first_file) > 1:
        listing = "; ".join(f"{value} (e.g. {path})" for value, path in sorted(first_file.items()))
        raise FairbenchError(f"task {task!r}: results with different {what} cannot be compared: {listing}")


def _build_task(task: str, records: list[ResultRecord], primary_metric: str | None) -> TaskBoard:
    _check_same(task, records, "task hashes", lambda r: r.task_hash, lambda h: h[:12])
    _check_same(task, records, "task versions", lambda r: r.task_version)
    _check_same(task, records, "sample counts (n_samples)", lambda r: r.n_samples)
    _check_same(task, records, "feature networks", lambda r: r.feature_network, _canonical)
    _check_iqa_weights(task, records)

    by_entry: dict[str, list[ResultRecord]] = {}
    for rec in records:
        by_entry.setdefault(rec.entry, []).append(rec)
    for entry, runs in by_entry.items():
        _check_entry(task, entry, runs)

    higher_is_better: dict[str, bool] = {}
    for rec in records:
        for name, metric in rec.metrics.items():
            higher_is_better[name] = metric.higher_is_better
    known = sorted(higher_is_better)
    if primary_metric is not None:
        if primary_metric not in higher_is_better:
            raise FairbenchError(
                f"task {task!r}: unknown primary metric {primary_metric!r}; known metrics: {', '.join(known)}"
            )
        primary = primary_metric
    else:
        primary = DEFAULT_PRIMARY_METRIC if DEFAULT_PRIMARY_METRIC in higher_is_better else known[0]
    metric_names = (primary, *(m for m in known if m != primary))

    summaries = {entry: _summarise(runs, metric_names) for entry, runs in by_entry.items()}
    ranks: dict[str, dict[str, int | None]] = {entry: {} for entry in by_entry}
    for name in metric_names:
        means = {entry: summaries[entry][name].mean for entry in by_entry}
        for entry, rank in _rank(means, higher_is_better[name]).items():
            ranks[entry][name] = rank

    rows = []
    for entry, runs in by_entry.items():
        ordered = _seed_order(runs)
        rows.append(
            LeaderboardRow(
                task=task,
                entry=entry,
                n_runs=len(runs),
                seeds=tuple(r.seed for r in ordered),
                metrics=summaries[entry],
                rank=ranks[entry],
                train_steps=_train_mean(ordered, "steps"),
                train_wall_time_s=_train_mean(ordered, "wall_time_s"),
                iqa_weights=_merged_weights(ordered),
            )
        )
    big = len(rows) + 1
    rows.sort(key=lambda row: (row.rank[primary] if row.rank[primary] is not None else big, row.entry))
    first = records[0]
    return TaskBoard(
        task=task,
        task_version=first.task_version,
        task_hash=first.task_hash,
        metric_names=metric_names,
        higher_is_better={name: higher_is_better[name] for name in metric_names},
        rows=tuple(rows),
        primary_metric=primary,
        n_samples=first.n_samples,
        feature_network=first.feature_network,
        iqa_weights=_merged_weights(records),
    )


def _used_weights(rec: ResultRecord, name: str) -> dict[str, str] | None:
    """The weights behind `rec`'s value of IQA metric `name`; None when it has no value or no record of them."""
    metric = rec.metrics.get(name)
    if metric is None or metric.value is None:
        return None
    return rec.iqa_weights.get(name)


def _check_iqa_weights(task: str, records: list[ResultRecord]) -> None:
    """Refuse a task whose runs report an IQA metric computed with different weight files (user-supplied
    weights such as EQ-Face's have no published hash, so equal names do not mean equal files)."""
    ordered = sorted(records, key=lambda r: str(r.path))
    for name in sorted({m for rec in records for m in rec.iqa_weights}):
        first_file: dict[tuple[tuple[str, str], ...], Path] = {}
        for rec in ordered:
            weights = _used_weights(rec, name)
            if weights is not None:
                first_file.setdefault(tuple(sorted(weights.items())), rec.path)
        if len(first_file) < 2:
            continue
        variants = sorted(first_file)
        width = 12 if len({_weights_label(dict(v), 12) for v in variants}) == len(variants) else 64
        listing = "; ".join(f"{_weights_label(dict(v), width)} (e.g. {first_file[v]})" for v in variants)
        raise FairbenchError(
            f"task {task!r}: results with different weights for IQA metric {name!r} cannot be compared: {listing}"
        )


def _merged_weights(runs: Iterable[ResultRecord]) -> dict[str, dict[str, str]]:
    """Per IQA metric, the (already checked, hence single) weights of the runs that report a value for it."""
    merged: dict[str, dict[str, str]] = {}
    for rec in runs:
        for name in rec.iqa_weights:
            weights = _used_weights(rec, name)
            if weights is not None:
                merged.setdefault(name, weights)
    return {name: merged[name] for name in sorted(merged)}


def _weights_label(weights: Mapping[str, str], width: int = 12) -> str:
    """'asset-a 1a2b3c4d5e6f, asset-b 0f9e8d7c6b5a': the files one IQA metric used, by sha256 prefix."""
    return ", ".join(f"{asset} {sha[:width]}" for asset, sha in sorted(weights.items())) or "no weight files"


def _weights_compact(weights: Mapping[str, Mapping[str, str]]) -> str | None:
    """The CSV form: 'metric=asset:sha12+asset:sha12;metric=...', or None when nothing was recorded."""
    parts = [
        f"{name}=" + "+".join(f"{asset}:{sha[:12]}" for asset, sha in sorted(weights[name].items()))
        for name in sorted(weights)
    ]
    return ";".join(parts) or None


def _check_entry(task: str, entry: str, runs: list[ResultRecord]) -> None:
    kinds = {r.is_method for r in runs}
    if len(kinds) > 1:
        method_file = next(r.path for r in sorted(runs, key=lambda r: str(r.path)) if r.is_method)
        sub_file = next(r.path for r in sorted(runs, key=lambda r: str(r.path)) if not r.is_method)
        raise FairbenchError(
            f"task {task!r}: entry {entry!r} names both a method ({method_file}) and a submission without a "
            f"method ({sub_file}); rename the submission"
        )
    seen: dict[int | None, Path] = {}
    for rec in sorted(runs, key=lambda r: str(r.path)):
        if rec.seed in seen:
            raise FairbenchError(
                f"task {task!r}: duplicate result for entry {entry!r} seed {rec.seed}: {seen[rec.seed]} and {rec.path}"
            )
        seen[rec.seed] = rec.path


def _seed_order(runs: list[ResultRecord]) -> list[ResultRecord]:
    return sorted(runs, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))


def _summarise(runs: list[ResultRecord], metric_names: Sequence[str]) -> dict[str, MetricSummary]:
    ordered = _seed_order(runs)
    out: dict[str, MetricSummary] = {}
    for name in metric_names:
        values = [r.metrics[name].value for r in ordered if name in r.metrics and r.metrics[name].value is not None]
        out[name] = _aggregate(values, complete=len(values) == len(ordered))
    return out


def _aggregate(values: list[float], complete: bool) -> MetricSummary:
    if not complete or not values:
        return MetricSummary(mean=None, std=None, n=len(values))
    arr = np.asarray(values, dtype=np.float64)
    std = float(np.std(arr, ddof=1)) if arr.size >= 2 else None
    return MetricSummary(mean=float(np.mean(arr)), std=std, n=int(arr.size))


def _rank(means: Mapping[str, float | None], higher_is_better: bool) -> dict[str, int | None]:
    """1 = best; equal means share the smallest rank of their tie; missing means get None."""
    present = [m for m in means.values() if m is not None]
    ranks: dict[str, int | None] = {}
    for entry, mean in means.items():
        if mean is None:
            ranks[entry] = None
        elif higher_is_better:
            ranks[entry] = 1 + sum(1 for other in present if other > mean)
        else:
            ranks[entry] = 1 + sum(1 for other in present if other < mean)
    return ranks


def _train_mean(runs: list[ResultRecord], key: str) -> float | None:
    values = []
    for rec in runs:
        value = rec.train.get(key) if rec.train else None
        if not _is_number(value) or not math.isfinite(float(value)):
            return None  # the same rule as metrics: no mean over a subset
        values.append(float(value))
    return float(np.mean(values)) if values else None


def _canonical(value: Any) -> str:
    return "none" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------------- rendering


def _fmt(x: float) -> str:
    """Four significant digits, trailing zeros kept so columns read alike ("0.4200", "1.000e-05", "1125")."""
    return f"{x + 0.0:#.4g}".removesuffix(".")  # + 0.0 turns -0.0 into 0.0; "1125." reads as a typo


def _fmt_seeds(seeds: Sequence[int | None]) -> str:
    shown = [str(s) for s in seeds if s is not None]
    return ", ".join(shown) if shown else MISSING_MD


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _fmt_steps(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


# Metrics whose values depend on the feature network: their columns carry its id, so no column ever holds
# values from two networks.
FEATURE_METRICS = ("fid", "fid_balanced", "fid_intra_mean", "fid_intra_worst", "kid")


def _column(board: TaskBoard, name: str) -> str:
    fn = board.feature_network
    if name in FEATURE_METRICS and fn:
        return f"{name}@{fn.get('id', '?')}"
    return name


def _feature_network_label(fn: Mapping[str, Any] | None) -> str | None:
    if not fn:
        return None
    ident = str(fn.get("id", "?"))
    sha = fn.get("sha256")
    return f"{ident} ({str(sha)[:12]})" if isinstance(sha, str) and sha else ident


def render_markdown(boards: Sequence[TaskBoard]) -> str:
    n_files = sum(board.n_results for board in boards)
    lines = [
        "# fairbench leaderboard",
        "",
        f"Generated by `fairbench leaderboard` from {n_files} result file{'' if n_files == 1 else 's'}; do not edit.",
        "",
        "Each cell is the mean ± sample standard deviation (ddof=1) over an entry's runs (the std only with two",
        "or more runs). ↓ lower is better, ↑ higher is better; rank 1 is best by the primary metric (first",
        f"metric column) and equal means share a rank. {MISSING_MD} marks a metric that at least one run of the",
        "entry lacks: it is never averaged over the runs that have it. Boards never mix task hashes.",
    ]
    for board in boards:
        lines += ["", f"## {board.task} (v{board.task_version}, hash `{board.task_hash[:12]}`)", ""]
        info = [f"Primary metric: `{board.primary_metric}` {_arrow(board.higher_is_better[board.primary_metric])}"]
        info.append(f"samples per run: {board.n_samples}")
        fn = _feature_network_label(board.feature_network)
        if fn:
            info.append(f"feature network: {fn}")
        for name, weights in board.iqa_weights.items():
            info.append(f"{name} weights: {_weights_label(weights)}")
        lines += ["; ".join(info) + ".", ""]

        shown = _markdown_metrics(board)
        if len(shown) < len(board.metric_names):
            lines += [f"{len(shown)} of {len(board.metric_names)} metrics shown; all are in leaderboard.csv.", ""]
        show_steps = any(row.train_steps is not None for row in board.rows)
        show_wall = any(row.train_wall_time_s is not None for row in board.rows)
        header = ["rank", "entry", "runs", "seeds"]
        header += [f"{_column(board, name)} {_arrow(board.higher_is_better[name])}" for name in shown]
        align = ["---:", "---", "---:", "---"] + ["---:"] * len(shown)
        if show_steps:
            header.append("train steps")
            align.append("---:")
        if show_wall:
            header.append("train time (s)")
            align.append("---:")
        lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        lines.append("|" + "|".join(align) + "|")
        for row in board.rows:
            rank = row.rank[board.primary_metric]
            cells = [str(rank) if rank is not None else MISSING_MD, _md_escape(row.entry), str(row.n_runs)]
            cells.append(_fmt_seeds(row.seeds))
            for name in shown:
                summary = row.metrics[name]
                if summary.mean is None:
                    cells.append(MISSING_MD)
                elif summary.std is None:
                    cells.append(_fmt(summary.mean))
                else:
                    cells.append(f"{_fmt(summary.mean)} ± {_fmt(summary.std)}")
            if show_steps:
                cells.append(_fmt_steps(row.train_steps) if row.train_steps is not None else MISSING_MD)
            if show_wall:
                cells.append(f"{row.train_wall_time_s:.1f}" if row.train_wall_time_s is not None else MISSING_MD)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown_metrics(board: TaskBoard) -> list[str]:
    """Primary metric first, then the headline metrics the board has; every metric if it has none of them."""
    rest = [m for m in HEADLINE_METRICS if m in board.metric_names and m != board.primary_metric]
    if not rest:
        rest = [m for m in board.metric_names if m != board.primary_metric]
    return [board.primary_metric, *rest]


def leaderboard_frame(boards: Sequence[TaskBoard]) -> pd.DataFrame:
    """One row per (task, entry); metric columns are the union over tasks, sorted by name."""
    all_metrics = sorted({_column(board, name) for board in boards for name in board.metric_names})
    # Only boards with recorded IQA weights add the column, so older leaderboards rebuild byte for byte.
    with_weights = any(board.iqa_weights for board in boards)
    records = []
    for board in boards:
        for row in board.rows:
            rec: dict[str, Any] = {
                "task": board.task,
                "task_version": board.task_version,
                "task_hash": board.task_hash,
                "entry": row.entry,
                "n_runs": row.n_runs,
                "seeds": ";".join(str(s) for s in row.seeds if s is not None) or None,
                "primary_metric": board.primary_metric,
                "primary_rank": row.rank[board.primary_metric],
                "n_samples": board.n_samples,
                "feature_network": _feature_network_label(board.feature_network),
                **({"iqa_weights": _weights_compact(row.iqa_weights)} if with_weights else {}),
                "train_steps_mean": row.train_steps,
                "train_wall_time_s_mean": row.train_wall_time_s,
            }
            own = {_column(board, name): name for name in board.metric_names}
            for column in all_metrics:
                name = own.get(column)
                summary = row.metrics.get(name) if name else None
                rec[f"{column}_mean"] = summary.mean if summary else None
                rec[f"{column}_std"] = summary.std if summary else None
                rec[f"{column}_n"] = summary.n if summary else None
                rec[f"{column}_rank"] = row.rank.get(name) if name else None
                rec[f"{column}_higher_is_better"] = board.higher_is_better.get(name) if name else None
            records.append(rec)
    frame = pd.DataFrame.from_records(records)
    for col in frame.columns:
        if col.endswith(("_n", "_rank")) or col in ("task_version", "n_samples", "n_runs", "primary_rank"):
            frame[col] = frame[col].astype("Int64")
        elif col.endswith(("_mean", "_std")):
            frame[col] = frame[col].astype("float64")
        elif col.endswith("_higher_is_better"):
            frame[col] = frame[col].astype("boolean")
    return frame


def render_csv(boards: Sequence[TaskBoard]) -> str:
    """Long-ish wide CSV: missing values are empty; floats are written with full (round-trip) precision."""
    return leaderboard_frame(boards).to_csv(index=False, lineterminator="\n")


def write_leaderboard(results_dir: Path, out_dir: Path, primary_metric: str | None = None) -> tuple[Path, Path]:
    """Read results, build the boards, write `leaderboard.csv` and `leaderboard.md` atomically into `out_dir`."""
    boards = build_leaderboard(read_results(Path(results_dir)), primary_metric)
    out = Path(out_dir)
    csv_path, md_path = out / "leaderboard.csv", out / "leaderboard.md"
    csv_text, md_text = render_csv(boards), render_markdown(boards)  # render both before writing either
    write_text(csv_path, csv_text)
    write_text(md_path, md_text)
    return csv_path, md_path
