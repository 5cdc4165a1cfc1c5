"""The job grid: methods x tasks x seeds x `--set` values, each job one `fairbench run` + `fairbench score`.

Everything a job needs travels in a frozen, picklable `SweepJob`, so the same job runs in this process, in a
spawned worker or on a Ray node. The grid is checked when it is expanded (tasks, methods, every combination
of hyper-parameters), so a typo fails before any job starts rather than in every job.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairbench.entry_identity import config_hash
from fairbench.errors import FairbenchError
from fairbench.board import ResultRecord, read_result
from fairbench.task_registry import get_task
from fairbench.training import config_label, parse_config, run_dir

RESULT_NAME = "result.json"  # where `fairbench score CHECKPOINT` writes by default: a sweep writes the same


@dataclass(frozen=True)
class SweepSettings:
    """What every job of a sweep shares."""

    out: Path = Path("runs")
    steps: int | None = None  # None: each task's training.steps
    samples: int | None = None  # None: each task's sampling.n_samples
    device: str = "auto"
    data_root: Path | None = None
    batch_size: int | None = None  # training batch size; None: the task's
    checkpoint_every: int | None = None
    snapshot_every: int | None = None


@dataclass(frozen=True)
class SweepJob:
    method: str
    task: str  # as given (an id, alias or YAML path): the worker resolves it again
    task_id: str
    seed: int
    overrides: tuple[tuple[str, Any], ...]  # the method's hyper-parameters, sorted by name
    steps: int  # resolved: the result of a finished job reports exactly this many training steps
    run_dir: Path
    settings: SweepSettings

    @property
    def key(self) -> str:
        """The run folder relative to the sweep's out dir: unique per job, and what a user looks for."""
        return self.run_dir.relative_to(self.settings.out).as_posix()

    @property
    def result_path(self) -> Path:
        return self.run_dir / RESULT_NAME


def split_values(text: str) -> list[str]:
    """'0.1,0.2' -> ['0.1', '0.2'], keeping commas inside brackets: '[0.5,0.9],[0,0.9]' gives two lists."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{("
        depth -= char in "]})"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    if any(not p.strip() for p in parts):
        raise FairbenchError(f"empty value in {text!r}")
    return [p.strip() for p in parts]


def expand_grid(
    methods: list[str],
    tasks: list[str],
    seeds: list[int],
    grid: dict[str, list[Any]] | None = None,
    settings: SweepSettings = SweepSettings(),
) -> list[SweepJob]:
    """The cartesian product, in order task, method, hyper-parameters, seed; every combination checked."""
    if not methods or not tasks or not seeds:
        raise FairbenchError("a sweep needs at least one method, one task and one seed")
    grid = dict(sorted((grid or {}).items()))
    names = list(grid)
    jobs: list[SweepJob] = []
    for task_ref in dict.fromkeys(tasks):
        spec = get_task(task_ref)
        steps = spec.training.steps if settings.steps is None else settings.steps
        if steps < 1:
            raise FairbenchError("--steps must be positive")
        for method in dict.fromkeys(methods):
            for values in itertools.product(*(grid[n] for n in names)):
                overrides = dict(zip(names, values))
                config = parse_config(method, overrides)  # unknown keys and bad values fail here, once
                label = config_label(method, config)
                for seed in dict.fromkeys(seeds):
                    directory = run_dir(settings.out, spec.id, method, seed, label)
                    jobs.append(
                        SweepJob(method, task_ref, spec.id, seed, tuple(overrides.items()), steps, directory, settings)
                    )
    seen: dict[Path, SweepJob] = {}
    for job in jobs:
        if job.run_dir in seen:  # e.g. --set lr=2e-4,0.0002, or an alias listed beside its task
            raise FairbenchError(f"two grid points train the same run {job.key}; remove the duplicate value")
        seen[job.run_dir] = job
    return jobs


def finished(job: SweepJob) -> bool:
    """Whether the job's result exists and belongs to it (same task, method, seed and step count).

    An unreadable result or one of another step count (an earlier sweep with a different --steps) is not
    finished: the job runs again, resumes its training from the training state and overwrites the result.
    """
    record = _readable_result(job.result_path)
    if record is None:
        return False
    return (record.task, record.method, record.seed, record.steps) == (job.task_id, job.method, job.seed, job.steps)


def _readable_result(path: Path) -> ResultRecord | None:
    """The result at `path` as the leaderboard reads it; None when there is none or it cannot be read."""
    if not path.is_file():
        return None
    try:
        return read_result(path)
    except (FairbenchError, OSError, ValueError):
        return None


def board_result(job: SweepJob, board: Path) -> Path | None:
    """The job's result in a committed results folder (`<board>/<task>/<run folder>/seed<S>.json`, the layout
    leaderboard/collect.sh copies runs into), when it is this very job; else None.

    A campaign outlives the machines that run it: on a fresh checkout its run folders are gone but the board
    holds what they produced, and training it again would only cost hours. "This very job" is strict: the
    same task hash, method, resolved config, seed, training steps, batch size and number of samples. A result
    differing in any of them (an earlier budget, an edited task) is another entry, so the job runs.
    """
    path = Path(board) / f"{job.key}.json"
    record = _readable_result(path)
    if record is None:
        return None
    spec = get_task(job.task)
    config = dataclasses.asdict(parse_config(job.method, dict(job.overrides)))
    expected = (
        spec.task_hash, job.method, config_hash(config), job.seed, job.steps,
        job.settings.batch_size or spec.training.batch_size, job.settings.samples or spec.sampling.n_samples,
    )
    found = (
        record.task_hash, record.method, record.config_hash, record.seed, record.steps, record.batch_size,
        record.n_samples,
    )
    return path if found == expected else None


def existing_result(job: SweepJob, board: Path | None = None) -> Path | None:
    """Where the job's result already is: its own run folder's (`finished`), else the board's; None: run it."""
    if finished(job):
        return job.result_path
    return None if board is None else board_result(job, board)
