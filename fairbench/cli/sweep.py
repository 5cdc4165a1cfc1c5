"""`fairbench sweep`: parse the grid, call fairbench.sweep, print failures and the sweep's leaderboard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from fairbench.cli.common import err, on_interrupt, parse_overrides, user_errors
from fairbench.cli.guard import data_root_given, writable_folder
from fairbench.errors import FairbenchError


def _names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise FairbenchError(f"{option} expects a comma-separated list, got {text!r}")
    return names


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _names(text, "--seeds")]
    except ValueError:
        raise FairbenchError(f"--seeds expects integers like 0,1,2, got {text!r}") from None


def _grid(items: list[str]) -> dict[str, list[Any]]:
    """['lr_g=1e-4,2e-4', 'width=32'] -> {'lr_g': [0.0001, 0.0002], 'width': [32]}, values read like `run --set`."""
    from fairbench.sweep import split_values

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FairbenchError(f"--set expects KEY=V1,V2,..., got {item!r}")
        if key in grid:
            raise FairbenchError(f"--set {key} given twice; list its values once, comma-separated")
        grid[key] = [parse_overrides([f"{key}={v}"])[key] for v in split_values(values)]
    return grid


EXIT_TIME_LIMIT = 75  # sysexits' EX_TEMPFAIL: not failed, not finished; the same command continues
_NUMBER = r"(\d+(?:\.\d*)?)"


def _duration(text: str) -> float:
    """'90', '90s', '15m', '2h', '1h30m' -> seconds."""
    match = re.fullmatch(rf"(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?|{_NUMBER}", text.strip())
    if match is None or not any(match.groups()):
        raise FairbenchError(f"--time-limit expects a duration like 90s, 15m, 2h or 1h30m, got {text!r}")
    hours, minutes, seconds, bare = (float(g) if g else 0.0 for g in match.groups())
    total = 3600 * hours + 60 * minutes + seconds + bare
    if total <= 0:
        raise FairbenchError(f"--time-limit must be positive, got {text!r}")
    return total


@user_errors
def sweep_cmd(
    methods: str = typer.Option(..., "--methods", "-m", help="Comma-separated methods, e.g. vanilla,repfair."),
    tasks: str = typer.Option(..., "--tasks", "-t", help="Comma-separated task ids, aliases or YAML paths."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated training seeds, e.g. 0,1,2."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Hyper-parameter values to sweep, e.g. --set clip_norm=1,10 (repeatable: every combination)."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Training steps per job (default: each task's)."),
    samples: int | None = typer.Option(None, "--samples", "-n", help="Samples to score (default: each task's)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Runs folder (the sweep's leaderboard is written here)."),
    backend: str = typer.Option("local", "--backend", help="local (process pool), ray, or serial (in process)."),
    workers: int | None = typer.Option(
        None, "--workers", "-j", help="Jobs at once (default: jobs or cores, fewer; with --address: jobs)."
    ),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: start Ray here)."),
    retries: int = typer.Option(1, "--retries", help="Reruns of a job whose worker process died."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Dataset root (default: $FAIRBENCH_DATA)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Training batch size (default: the task's)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    snapshot_every: int | None = typer.Option(
        None, "--snapshot-every", help="Also keep each generator every N steps (RUN/snapshots/)."
    ),
    rank_by: str | None = typer.Option(None, "--rank-by", help="Leaderboard's primary metric."),
    time_limit: str | None = typer.Option(
        None, "--time-limit", help="Stop after this long (90s, 15m, 2h, 1h30m) as on Ctrl-C, saving; exit 75."
    ),
    plan: bool = typer.Option(
        False, "--plan", help="Only list each job's state (done, saved step, not started) and the steps left."
    ),
    board: Path | None = typer.Option(
        None, "--board", help="Results folder laid out like leaderboard/results: skip jobs whose result it holds."
    ),
) -> None:
    """Train and score every combination; rerun the same command to resume.

    Exit 1 if a job failed, 130 if interrupted, 75 if stopped at --time-limit (rerun to resume)."""
    if not plan:  # --plan only reads
        writable_folder(out, "--out")
    data_root_given(data_root)
    on_interrupt("every job keeps the training state it saved; rerun the same command to resume")
    from fairbench.sweep import SweepInterrupted, SweepTimeLimit, SweepSettings, expand_grid, make_backend, run_sweep
    from fairbench.sweep.job import usable_cores
    from fairbench.sweep.local import LOG_FOLDER

    limit = None if time_limit is None else _duration(time_limit)
    settings = SweepSettings(
        out=out, steps=steps, samples=samples, device=device, data_root=data_root, batch_size=batch_size,
        checkpoint_every=checkpoint_every, snapshot_every=snapshot_every,
    )
    if samples is not None and samples < 1:
        raise FairbenchError("--samples must be positive")
    jobs = expand_grid(
        _names(methods, "--methods"), _names(tasks, "--tasks"), _seeds(seeds), _grid(overrides), settings
    )
    if board is not None and not board.is_dir():
        raise FairbenchError(f"--board: no folder {board}")
    if plan:
        from fairbench.sweep.plan import plan_job, render_plan

        typer.echo(render_plan([plan_job(job, board) for job in jobs]), nl=False)
        return
    if workers is None:  # on a cluster every job may run at once; here, no more jobs than cores
        workers = len(jobs) if address is not None else max(1, min(len(jobs), usable_cores()))
    runner = make_backend(backend, workers, address, retries, log_dir=out / LOG_FOLDER)
    try:
        outcome = run_sweep(jobs, runner, err, rank_by, time_limit=limit, board=board)
    except SweepInterrupted as stop:
        err.print(str(stop), highlight=False)
        raise typer.Exit(EXIT_TIME_LIMIT if isinstance(stop, SweepTimeLimit) else 130) from None
    for state in outcome.failed:
        err.print(f"[bold red]failed:[/] {escape(state.key)}: {escape(state.error)}", highlight=False, soft_wrap=True)
    if outcome.leaderboard_error:
        err.print(f"[bold red]error:[/] {escape(outcome.leaderboard_error)}", highlight=False, soft_wrap=True)
    if outcome.leaderboard_md is not None:
        typer.echo(outcome.leaderboard_md, nl=False)  # unwrapped: a wrapped table row is a broken row
    if outcome.leaderboard_files is not None:
        for path in outcome.leaderboard_files:
            typer.echo(str(path))
    if not outcome.ok:
        raise typer.Exit(1)
