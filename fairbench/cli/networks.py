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
from fairbench.errors import FairbenchError

if TYPE_CHECKING:  # the module imports torch; the CLI imports it only when a command runs
    from fairbench.reproduction import ReproductionReport

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
    from fairbench import paths
    from fairbench.judges import train_judge
    from fairbench.reproduction import judge_reproduction, machine_lines
    from fairbench.tasks import get_task

    folder = out or paths.fairbench_home() / "judges"
    writable_folder(folder, "--out")
    data_root_given(data_root)
    spec = get_task(task)
    first_use = spec.judge.trained_on_first_use
    # First use: one thread, as every first-use file is made; otherwise the pins' thread count (same summation
    # order, hence the same bytes on this kind of machine).
    threads = 1 if first_use else _pinned_judge_threads(spec)
    card = _train_with_bar(
        f"judge {spec.judge.id}",
        lambda progress: train_judge(spec, folder, data_root, progress=progress, threads=threads),
    )
    typer.echo(f"judge {card.id}: accuracy {card.accuracy:.4f} on {card.n_test} test images")
    for line in machine_lines(card):
        typer.echo(line)
    if first_use:  # nothing pinned to compare with: this file is the judge, recorded by sha256 in results
        typer.echo(f"trained on first use: {folder / card.id}.safetensors, sha256 {card.sha256}")
        return
    _finish(judge_reproduction(spec, folder / f"{card.id}.safetensors", data_root))


def _train_with_bar(label: str, train: Callable[[Callable[[int, int | None], None]], T]) -> T:
    """Run `train(progress)` under one progress bar (total unknown until the trainer reports it)."""
    with progress_bar() as bar:
        handle = bar.add_task(label, total=None, info="")
        return train(lambda done, total: bar.update(handle, completed=done, total=total))


def _finish(report: ReproductionReport) -> None:
    """Print a reproduction report; exit 1 when the retrained network is outside the stated tolerance."""
    for line in report.lines():
        typer.echo(line)
    if not report.passed:
        raise typer.Exit(1)


def _pinned_judge_threads(spec) -> int | None:
    """The thread count the pinned judge's card records (None for cards that predate the field)."""
    from fairbench.judges import load_judge

    try:
        return load_judge(spec).card.threads
    except FairbenchError:
        return None


@judge_app.command("eval")
@user_errors
def judge_eval_cmd(
    task: str = typer.Option(..., "--task", "-t"),
    data_root: Path | None = typer.Option(None, "--data-root"),
) -> None:
    """Accuracy and confusion matrix of the pinned judge on the task's held-out test split."""
    from fairbench.judges import evaluate_judge, load_judge
    from fairbench.tasks import get_task

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
    from fairbench import paths
    from fairbench.features import DOMAIN_RECIPES, train_domain_network
    from fairbench.reproduction import feature_reproduction, machine_lines
    from fairbench.tasks import get_task

    folder = out or paths.fairbench_home() / "features"
    writable_folder(folder, "--out")
    data_root_given(data_root)
    spec = get_task(task)
    if spec.quality is None or spec.quality.feature_network.id not in DOMAIN_RECIPES:
        raise FairbenchError(f"task {spec.id} names no shipped domain feature network")
    pinned = spec.quality.feature_network
    # First use: trained on this task's own data and cached where scoring looks for it; otherwise on the
    # recipe's task (e.g. domain-mnist is trained on mnist-bicolor) and checked against the pin.
    first_use = pinned.trained_on_first_use
    source = spec if first_use else get_task(DOMAIN_RECIPES[pinned.id].task)
    card = _train_with_bar(
        f"feature network {pinned.id}",
        lambda progress: train_domain_network(source, folder, data_root, network_id=pinned.id, progress=progress),
    )
    typer.echo(f"{card.id}: class accuracy {card.accuracy:.4f} on {card.n_test} {source.id} test images")
    if first_use:
        typer.echo(f"trained on first use: {folder / card.id}.safetensors, sha256 {card.sha256}")
        return
    for line in machine_lines(card):
        typer.echo(line)
    _finish(feature_reproduction(source, pinned.id, pinned.sha256, folder / f"{card.id}.safetensors", data_root))
