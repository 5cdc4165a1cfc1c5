"""Building the boards: group result records by task, check they are comparable, aggregate and rank entries.

`build_leaderboard` groups records by task and aggregates each entry (a method, or an image-set submission's
name) over its runs. Rules, each enforced with a FairbenchError rather than a guess:

- one task id, one task hash (and version, and N): results from different task specs are never mixed;
- the same (entry, seed) twice within a task is a duplicate, not a second run;
- a metric's direction (`higher_is_better`) must agree wherever the metric appears;
- the judge's weights (`judge.sha256`) must be the same file in every result (a user-supplied judge such as
  ffhq-race's FairFace has no pin in the task hash);
- a no-reference IQA metric's values must come from the same weight files (`iqa_weights`, sha256 per asset)
  wherever two runs of a task both report it; runs that lack the value or the record (older files) do not count;
- an entry's metric is *missing* when any of its runs lacks it (or reports null / a non-finite value);
  a missing metric has no mean, no std and no rank. It is never averaged over the runs that have it.

The quality gate: a fairness rank means something only for a generator of the task's images (a judge
splits noise evenly, so pure noise scores a near-perfect KL). An entry one of whose runs has more than
`GATE_BOUND` of its samples unrecognisable (`fairbench.scoring.recognisable`) is *below the gate*: shown after
the others with the reason, and ranked by no metric. An entry with a run that was not checked (a result older
than the check, or a task the check cannot calibrate) is ranked as before and marked "not checked". The
calibrations of a task's checked runs must be one (their `recognisable.calibration.key`): the same rule on the
same data and networks.

Aggregation: mean and sample standard deviation (ddof=1) over runs, runs taken in seed order so the
arithmetic does not depend on file order. With a single run the std is None (shown empty), since a
one-sample spread is undefined rather than zero. Ranks: `fairbench.board.ranking` (1 + the number of
entries shown better, by Holm-corrected pairwise tests that use the seed spread and each run's `ci95`, so
entries not shown to differ share a rank; each rank comes with its interval, best to worst). Rows are in order
of the primary metric's rank, then its mean (best first), then the entry name. Everything is sorted, so the
same inputs give the same boards.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.entry_identity import qualified
from fairbench.errors import FairbenchError
from fairbench.board.ranking import MIN_SEEDS, rank_entries, squared_distance
from fairbench.board.records import ResultRecord, _is_number
from fairbench.results.names import (
    COVERAGE_INTRA_WORST,
    DENSITY_INTRA_WORST,
    FID,
    FID_BALANCED,
    FID_INTRA_MEAN,
    FID_INTRA_WORST,
    KID,
    KL_UNIFORM,
    KL_UNIFORM_CORRECTED,
    PRECISION_INTRA_WORST,
    RECALL_INTRA_WORST,
    VENDI,
    VENDI_INTRA_WORST,
)

DEFAULT_PRIMARY_METRIC = KL_UNIFORM_CORRECTED
FALLBACK_PRIMARY_METRIC = KL_UNIFORM
# Metrics whose values depend on the feature network: their columns carry its id, so no column ever holds
# values from two networks.
FEATURE_METRICS = (
    FID, FID_BALANCED, FID_INTRA_MEAN, FID_INTRA_WORST, KID, PRECISION_INTRA_WORST, RECALL_INTRA_WORST,
    DENSITY_INTRA_WORST, COVERAGE_INTRA_WORST, VENDI, VENDI_INTRA_WORST,
)


# At most half of every run's samples unrecognisable. Why half: a share u of samples that the judge labels
# at random can move each group's judged share by up to u (p = (1 - u) q + u r, so |p - q| <= u), so above
# one half the fairness figure says more about what is not the task's images than about what is. Measured
# (docs/metrics.md): noise, stripes, blobs and 20-step generators 55-100% unrecognisable; trained generators
# of the digit tasks 0-37%, real held-out images about 1%.
GATE_BOUND = 0.5
GATE_PASS, GATE_BELOW, GATE_UNCHECKED = "pass", "below gate", "not checked"


@dataclass(frozen=True)
class Gate:
    """An entry's place with respect to the quality gate."""

    status: str  # GATE_PASS, GATE_BELOW or GATE_UNCHECKED
    shares: tuple[float | None, ...]  # each run's unrecognisable share, in seed order; None: not checked
    reason: str  # one line, for the board


def entry_gate(runs: Sequence[ResultRecord], bound: float = GATE_BOUND) -> Gate:
    """Below the gate when any run has more than `bound` of its samples unrecognisable; not checked when
    some run was not checked (and none is below); passed otherwise."""
    shares = tuple(run.unrecognisable_share for run in runs)

    def who(run: ResultRecord) -> str:
        return "the image set" if run.seed is None else f"seed {run.seed}"

    over = [run for run in runs if run.unrecognisable_share is not None and run.unrecognisable_share > bound]
    if over:
        listed = ", ".join(f"{who(run)} {100 * run.unrecognisable_share:.1f}%" for run in over)  # type: ignore[operator]
        return Gate(GATE_BELOW, shares, f"{listed} of samples unrecognisable (more than {100 * bound:g}%)")
    unchecked = [run for run in runs if run.unrecognisable_share is None]
    if unchecked:
        why = unchecked[0].recognisable_skipped or "scored before the check"
        listed = ", ".join(who(run) for run in unchecked)
        return Gate(GATE_UNCHECKED, shares, f"{listed}: {why}")
    return Gate(GATE_PASS, shares, f"every run at most {100 * bound:g}% unrecognisable")


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
    # per metric, the rank interval (best, worst) consistent with the pairwise decisions; None when missing
    rank_interval: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    train_steps: float | None = None  # mean over runs; None unless every run reports it
    train_wall_time_s: float | None = None
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)  # of the runs that report each metric
    runs: tuple[ResultRecord, ...] = ()  # the entry's result records, in seed order

    @property
    def gate(self) -> Gate:
        return entry_gate(self.runs)

    @property
    def below_gate(self) -> bool:
        """Shown after the line and ranked by no metric (see the module docstring)."""
        return self.gate.status == GATE_BELOW

    @property
    def shares(self) -> dict[str, float] | None:
        """Mean observed share per group over the runs; None unless every run records the same groups."""
        recorded = [run.shares for run in self.runs]
        if not recorded or any(s is None for s in recorded) or len({tuple(s) for s in recorded}) != 1:  # type: ignore[arg-type]
            return None
        groups = list(recorded[0])  # type: ignore[arg-type]
        return {g: float(np.mean([s[g] for s in recorded])) for g in groups}  # type: ignore[index]

    @property
    def seed_shares(self) -> list[dict[str, float]] | None:
        """Each run's observed shares, in seed order; None when `shares` is (runs record different groups)."""
        return None if self.shares is None else [dict(run.shares) for run in self.runs]  # type: ignore[arg-type]

    @property
    def seeds_disagree(self) -> bool:
        """Some group's share intervals (simultaneous 95%) of two runs do not overlap: the seeds drew
        detectably different generators, which the mean share would hide. False when a run lacks bounds."""
        bounds = [run.share_bounds for run in self.runs]
        if self.seed_shares is None or len(bounds) < 2 or any(b is None for b in bounds):
            return False
        return any(max(b[g][0] for b in bounds) > min(b[g][1] for b in bounds)  # type: ignore[index]
                   for g in self.shares)  # type: ignore[union-attr]

    @property
    def few_seeds(self) -> bool:
        """Fewer than MIN_SEEDS runs: flagged on the board, since its spread across seeds is barely known."""
        return self.n_runs < MIN_SEEDS


@dataclass(frozen=True)
class TaskBoard:
    task: str
    task_version: int
    task_hash: str
    metric_names: tuple[str, ...]  # primary first, then sorted
    higher_is_better: dict[str, bool]
    rows: tuple[LeaderboardRow, ...]  # by primary rank (missing last), then primary mean, then entry
    primary_metric: str
    n_samples: int = 0
    feature_network: dict[str, Any] | None = None
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)  # one set per IQA metric (checked)
    data_source: dict[str, Any] | None = None  # the one data source of all its runs (checked), where recorded

    @property
    def n_results(self) -> int:
        return sum(row.n_runs for row in self.rows)

    @property
    def ranked_rows(self) -> tuple[LeaderboardRow, ...]:
        """The rows above the quality gate's line (passed or not checked), in board order."""
        return tuple(row for row in self.rows if not row.below_gate)

    @property
    def below_gate_rows(self) -> tuple[LeaderboardRow, ...]:
        """The rows below the line: shown with the reason, ranked by no metric."""
        return tuple(row for row in self.rows if row.below_gate)

    @property
    def gate_checked(self) -> bool:
        """Some run was checked: only then do the boards give the gate a column (a board of results older
        than the check says so in one line, and rebuilds as before)."""
        return any(run.unrecognisable_share is not None for row in self.rows for run in row.runs)

    @property
    def real_flagged_share(self) -> float | None:
        """The share of real held-out images the board's (one) gate calibration flags; None when no run was checked."""
        return next((run.real_flagged_share for row in self.rows for run in row.runs
                     if run.real_flagged_share is not None), None)


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
    # Pinned judges are in the task hash already; judges trained on first use or supplied by the user differ
    # from user to user.
    _check_same(task, records, "judge weights (sha256)", lambda r: r.judge_sha256, lambda h: (h or "unrecorded")[:12])
    _check_same(task, records, "data sources", lambda r: r.data_source, _canonical)
    _check_iqa_weights(task, records)
    _check_same(task, [r for r in records if r.recognisable_key is not None], "quality-gate calibrations (rule, "
                "networks or data)", lambda r: r.recognisable_key, lambda k: k[:12])

    by_key: dict[tuple[Any, ...], list[ResultRecord]] = {}
    for rec in records:
        by_key.setdefault(rec.key, []).append(rec)
    names = _display_names(task, by_key)
    by_entry = {names[key]: runs for key, runs in by_key.items()}
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
        # A judge without a confusion matrix (ffhq-race's FairFace) has no corrected metrics: rank by the observed KL.
        fallbacks = [m for m in (DEFAULT_PRIMARY_METRIC, FALLBACK_PRIMARY_METRIC) if m in higher_is_better]
        primary = fallbacks[0] if fallbacks else known[0]
    metric_names = (primary, *(m for m in known if m != primary))

    summaries = {entry: _summarise(runs, metric_names) for entry, runs in by_entry.items()}
    below = {entry for entry, runs in by_entry.items() if entry_gate(_seed_order(runs)).status == GATE_BELOW}
    ranks: dict[str, dict[str, int | None]] = {entry: {} for entry in by_entry}
    intervals: dict[str, dict[str, tuple[int, int] | None]] = {entry: {} for entry in by_entry}
    for name in metric_names:
        values = {entry: None if entry in below else _run_values(_seed_order(runs), name)
                  for entry, runs in by_entry.items()}
        cis = {entry: [r.metrics[name].ci95 if name in r.metrics else None for r in _seed_order(runs)]
               for entry, runs in by_entry.items()}
        ranked = rank_entries(values, higher_is_better[name], intervals=cis, squared=squared_distance(name))
        for entry, place in ranked.items():
            ranks[entry][name] = None if place is None else place.rank
            intervals[entry][name] = None if place is None else (place.rank, place.worst)

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
                rank_interval=intervals[entry],
                train_steps=_train_mean(ordered, "steps"),
                train_wall_time_s=_train_mean(ordered, "wall_time_s"),
                iqa_weights=_merged_weights(ordered),
                runs=tuple(ordered),
            )
        )
    rows.sort(key=lambda row: _row_order(row, primary, higher_is_better[primary]))
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
        data_source=first.data_source,
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


def _display_names(task: str, by_key: Mapping[tuple[Any, ...], list[ResultRecord]]) -> dict[tuple[Any, ...], str]:
    """Each entry key's name on the board. Derived names that several keys share get what tells them apart
    (`repfair[steps=200]`, then batch size, then the config hash); a given name (--name) or an image set's
    name shared by different entries is refused, since renaming it would misreport what the user named."""
    by_name: dict[str, list[tuple[Any, ...]]] = {}
    for key, runs in by_key.items():
        by_name.setdefault(runs[0].entry, []).append(key)
    out: dict[tuple[Any, ...], str] = {}
    for name, keys in sorted(by_name.items()):
        if len(keys) == 1:
            out[keys[0]] = name
            continue
        first = {key: min(by_key[key], key=lambda r: str(r.path)) for key in keys}
        fixed = [rec for rec in first.values() if rec.name_given or not rec.is_method]
        if fixed:
            kinds = {rec.is_method for rec in first.values()}
            files = " and ".join(str(rec.path) for rec in sorted(first.values(), key=lambda r: str(r.path))[:2])
            if len(kinds) > 1:
                raise FairbenchError(
                    f"task {task!r}: entry {name!r} names both a method and a submission without a method "
                    f"({files}); rename the submission with --name"
                )
            raise FairbenchError(
                f"task {task!r}: entry name {name!r} is given to runs that differ (config, training steps, batch "
                f"size or submission), e.g. {files}; give each its own --name"
            )
        settings: dict[tuple[Any, ...], dict[str, Any]] = {key: {} for key in keys}
        for label, value in (
            ("steps", lambda r: r.steps),
            ("batch_size", lambda r: r.batch_size),
            ("config", lambda r: r.config_hash[:8] if r.config_hash else "unrecorded"),
        ):
            values = {key: value(first[key]) for key in keys}
            if len(set(values.values())) > 1:
                for key in keys:
                    settings[key][label] = "unrecorded" if values[key] is None else values[key]
            if len({tuple(settings[k].items()) for k in keys}) == len(keys):
                break
        for key in keys:
            out[key] = qualified(name, settings[key])
    taken: dict[str, tuple[Any, ...]] = {}
    for key, name in sorted(out.items(), key=lambda kv: kv[1]):
        if name in taken:  # a derived, qualified name met a given one: say so rather than guess
            files = f"{by_key[taken[name]][0].path} and {by_key[key][0].path}"
            raise FairbenchError(f"task {task!r}: two different entries are both named {name!r} ({files}); use --name")
        taken[name] = key
    return out


def _check_entry(task: str, entry: str, runs: list[ResultRecord]) -> None:
    seen: dict[int | None, Path] = {}
    for rec in sorted(runs, key=lambda r: str(r.path)):
        if rec.seed in seen:
            raise FairbenchError(
                f"task {task!r}: duplicate result for entry {entry!r} seed {rec.seed}: {seen[rec.seed]} and {rec.path}"
            )
        seen[rec.seed] = rec.path


def _seed_order(runs: list[ResultRecord]) -> list[ResultRecord]:
    return sorted(runs, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))


def _row_order(row: LeaderboardRow, primary: str, higher_is_better: bool) -> tuple[Any, ...]:
    """Above the quality gate's line first; then the primary rank (missing last), the primary mean, best
    first, and the entry name. Below the line (no ranks), by the primary mean."""
    rank, mean = row.rank[primary], row.metrics[primary].mean
    best_first = 0.0 if mean is None else (-mean if higher_is_better else mean)
    if row.below_gate:
        return (2, mean is None, best_first, row.entry)
    if rank is None or mean is None:
        return (1, 0, 0.0, row.entry)
    return (0, rank, best_first, row.entry)


def _run_values(ordered: Sequence[ResultRecord], name: str) -> list[float] | None:
    """The per-run values of metric `name` in the given (seed) order; None when any run lacks it."""
    values = [r.metrics[name].value if name in r.metrics else None for r in ordered]
    if not values or any(v is None for v in values):
        return None
    return [float(v) for v in values if v is not None]


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


def _column(board: TaskBoard, name: str) -> str:
    """A metric's column name: feature-network metrics carry the network's id (`fid@domain-mnist`)."""
    fn = board.feature_network
    if name in FEATURE_METRICS and fn:
        return f"{name}@{fn.get('id', '?')}"
    return name


def data_source_label(source: Mapping[str, Any] | None) -> str | None:
    """`cifar10 imagefolder-jpeg (test 56408e16fefe, train 1b85ea14a6ec)`: format and content hashes."""
    if not source:
        return None
    hashes = source.get("sha256") if isinstance(source.get("sha256"), dict) else {}
    parts = ", ".join(f"{part} {str(sha)[:12]}" for part, sha in sorted(hashes.items()))
    label = f"{source.get('source', '?')} {source.get('format', '?')}"
    return f"{label} ({parts})" if parts else label


def _feature_network_label(fn: Mapping[str, Any] | None) -> str | None:
    if not fn:
        return None
    ident = str(fn.get("id", "?"))
    sha = fn.get("sha256")
    return f"{ident} ({str(sha)[:12]})" if isinstance(sha, str) and sha else ident
