"""`fairbench judge` and `fairbench features`: retrain, evaluate and check the networks a task scores with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from fairbench.cli.common import progress_bar, user_errors
from fairbench.cli.guard import data_root_given, writable_folder

if TYPE_CHECKING:  # the module imports torch; the CLI imports it only when a command runs
    from fairbench.networks.reproduction import ReproductionReport

T = TypeVar("T")

features_app = typer.Typer(no_args_is_help=True, help="Reproduce the shipped domain feature networks.")
judge_app = typer.Typer(no_args_is_help=True, help="Train or evaluate a task's pinned judge (attribute classifier).")


@judge_app.command("train")
@user_errors
def judge_train_cmd(
    task: str = typer.Option(..., "--task", "-t"),
    out: Path | None = typer.Option(None, "--out", help="Folder for the weights (default: $FAIRBENCH_HOME/judges)."),
    data_root: Path | None = typer.Option(None, "--data-root"),
) -> None:
    """Reproduce a task's judge from its reserved split and measure it against the pinned one.

    Exits 1 when the retrained judge disagrees with the pinned judge beyond the stated tolerance; a differing
    sha256 alone is expected on another CPU and is not a failure.
    """
    _train_network("judge", task, out, data_root)


def _train_network(kind_name: str, task: str, out: Path | None, data_root: Path | None) -> None:
    """`fairbench judge train` and `fairbench features train`: train the task's network of this kind into
    `--out` (default: `$FAIRBENCH_HOME/<kind dir>`), then measure it against the pinned one (exit 1 outside
    the tolerance); a network trained on first use has no pin and is only reported."""
    from fairbench.networks.kinds import KINDS
    from fairbench.networks.store import home_dir
    from fairbench.task_registry import get_task

    kind = KINDS.get(kind_name)
    folder = out or home_dir(kind.home)
    writable_folder(folder, "--out")
    data_root_given(data_root)
    target = kind.target(get_task(task))
    card = _train_with_bar(
        f"{kind.name} {target.id}", lambda progress: kind.train(target, folder, data_root, progress)
    )
    typer.echo(kind.summary(card, target))
    if target.first_use:  # nothing pinned to compare with: this file is the network, recorded by sha256 in results
        if kind.machine_lines_on_first_use:
            _echo_lines(card.machine_lines())
        typer.echo(f"trained on first use: {folder / card.id}.safetensors, sha256 {card.sha256}")
        return
    _echo_lines(card.machine_lines())
    _finish(kind.reproduce(target, folder / f"{card.id}.safetensors", data_root))


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def _train_with_bar(label: str, train: Callable[[Callable[[int, int | None], None]], T]) -> T:
    """Run `train(progress)` under one progress bar (total unknown until the trainer reports it)."""
    with progress_bar() as bar:
        handle = bar.add_task(label, total=None, info="")
        return train(lambda done, total: bar.update(handle, completed=done, total=total))


def _finish(report: ReproductionReport) -> None:
    """Print a reproduction report; exit 1 when the retrained network is outside the stated tolerance."""
    _echo_lines(report.lines())
    if not report.passed:
        raise typer.Exit(1)


@judge_app.command("eval")
@user_errors
def judge_eval_cmd(
    task: str = typer.Option(..., "--task", "-t"),
    data_root: Path | None = typer.Option(None, "--data-root"),
) -> None:
    """Accuracy and confusion matrix of the pinned judge on the task's held-out test split."""
    from fairbench.judges import evaluate_judge, load_judge
    from fairbench.task_registry import get_task

    data_root_given(data_root)
    spec = get_task(task)
    accuracy, confusion, n = evaluate_judge(spec, data_root)  # refuses a user-supplied judge first
    card = load_judge(spec, data_root).card
    console = Console()
    console.print(f"judge {card.id} ({card.sha256[:12]}…) on {spec.id} test split, {n} images: accuracy {accuracy:.4f}")
    console.print(f"shipped card says: accuracy {card.accuracy:.4f}")
    table = Table(title="P(judged | true)")
    table.add_column("true \\ judged")
    for g in spec.groups.names:
        table.add_column(g)
    for g, row in zip(spec.groups.names, confusion):
        table.add_row(g, *(f"{v:.4f}" for v in row))
    console.print(table)


@features_app.command("train")
@user_errors
def features_train_cmd(
    task: str = typer.Option(..., "--task", "-t", help="A task whose quality section names a domain network."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the weights (default: $FAIRBENCH_HOME/features)."),
    data_root: Path | None = typer.Option(None, "--data-root"),
) -> None:
    """Reproduce a task's domain feature network and measure it against the pinned one.

    Exits 1 when the retrained network disagrees with the pinned one beyond the stated tolerance; a differing
    sha256 alone is expected on another CPU and is not a failure.
    """
    _train_network("feature network", task, out, data_root)
