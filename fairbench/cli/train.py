"""`fairbench run` (train a method, resumable) and `fairbench import-stylegan2` (wrap a pretrained generator)."""

from __future__ import annotations

from pathlib import Path

import typer

from fairbench.cli.common import (
    EXIT_INTERRUPTED, on_interrupt, parse_overrides, print_interrupted, progress_bar, user_errors,
)
from fairbench.cli.guard import data_root_given, writable_file, writable_folder


@user_errors
def run_cmd(
    method: str = typer.Option(..., "--method", "-m", help="Registered method, e.g. vanilla or repfair."),
    task: str = typer.Option(..., "--task", "-t", help="Task id, alias or YAML path."),
    seed: int = typer.Option(0, "--seed", help="Training seed."),
    steps: int | None = typer.Option(None, "--steps", help="Total training steps (default: the task's)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Runs folder."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Dataset root (default: $FAIRBENCH_DATA)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Training batch size (default: the task's)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    snapshot_every: int | None = typer.Option(
        None, "--snapshot-every", help="Also keep the generator every N steps (RUN/snapshots/), for learning curves."
    ),
    overrides: list[str] = typer.Option([], "--set", help="Method hyper-parameter, e.g. --set clip_norm=10."),
    name: str | None = typer.Option(
        None, "--name", help="Leaderboard entry name (default: the method, plus any --set: repfair[clip_norm=10])."
    ),
    base: Path | None = typer.Option(
        None, "--base", help="Base generator checkpoint, for methods that start from one (rebalance)."
    ),
) -> None:
    """Train METHOD on TASK; rerun the same command to resume. Prints the checkpoint path last."""
    writable_folder(out, "--out")
    data_root_given(data_root)
    on_interrupt("nothing new was saved; rerun the same command (it resumes from any saved training state)")
    from fairbench.task_registry import get_task
    from fairbench.training import RunOptions, TrainingInterrupted, train

    spec = get_task(task)
    options = RunOptions(
        method=method, task=spec, seed=seed, steps=steps, out=out, data_root=data_root, device=device,
        batch_size=batch_size, checkpoint_every=checkpoint_every, snapshot_every=snapshot_every,
        overrides=parse_overrides(overrides), name=name, base=base,
    )
    on_interrupt(lambda: _kept(options))
    total = spec.training.steps if steps is None else steps
    with progress_bar() as bar:
        handle = bar.add_task(f"{method} seed {seed} on {spec.id}", total=total, info="")

        def progress(step: int, total_steps: int, logs: dict[str, float]) -> None:
            info = " ".join(f"{k}={v:.3f}" for k, v in logs.items())
            bar.update(handle, completed=step, total=total_steps, info=info)

        def phase_log(line: str) -> None:  # phased methods (rebalance): one line per milestone, above the bar
            bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

        try:
            path = train(options, progress, phase_log)
        except TrainingInterrupted as stop:
            print_interrupted(f"step {stop.step} is saved in {stop.checkpoint.parent} (checkpoint.pt and "
                              "trainstate.pt); rerun the same command to resume from it")
            typer.echo(str(stop.checkpoint))
            raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(str(path))


def _kept(options) -> str:
    """What a Ctrl-C before the training loop's own save leaves: the training state an earlier run saved."""
    from fairbench.training import resolve_run_dir, saved_step

    folder = resolve_run_dir(options)
    step = saved_step(folder)
    if step is None:
        return f"no training state was saved yet in {folder}; rerun the same command to start"
    return f"the training state of step {step} in {folder} is kept; rerun the same command to resume from it"


@user_errors
def import_stylegan2_cmd(
    weights: Path = typer.Argument(..., help="Converted StyleGAN2 weights: a .pt holding {'g_ema': ..., 'latent_avg': ...}."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the fairbench checkpoint."),
    task: str = typer.Option("ffhq-race", "--task", "-t", help="Task id/alias/YAML the generator is scored on."),
    truncation_psi: float = typer.Option(1.0, "--truncation-psi", help="Truncation psi in [0, 1] (1: none); recorded."),
    noise_mode: str = typer.Option("const", "--noise-mode", help="const (stored noise maps), none, or latent-seeded."),
    channel_multiplier: int = typer.Option(2, "--channel-multiplier", help="2 for config-f."),
    name: str | None = typer.Option(None, "--name", help="Leaderboard entry (default stylegan2-<size>px[-psi<psi>])."),
) -> None:
    """Wrap a converted StyleGAN2 generator as a fairbench checkpoint; NVIDIA .pkl files are refused (code)."""
    writable_file(out, "--out")
    from fairbench.methods import IMPORTERS
    from fairbench.plugins import load_plugins
    from fairbench.task_registry import get_task

    load_plugins()  # the StyleGAN2 importer comes with the reference methods' plugin
    importer = IMPORTERS.get("stylegan2")
    options = importer.options(
        truncation_psi=truncation_psi, noise_mode=noise_mode, channel_multiplier=channel_multiplier, name=name
    )
    ckpt = importer.run(weights, out, get_task(task), options)
    kw = ckpt.arch_kwargs
    typer.echo(
        f"{ckpt.method}: StyleGAN2 {kw['size']} px (style {kw['style_dim']}, {kw['n_mlp']} mapping layers, "
        f"channel multiplier {kw['channel_multiplier']}), psi {kw['truncation_psi']}, noise {kw['noise_mode']}, "
        f"scored at {kw['output_size']} px on task {ckpt.task}"
    )
    typer.echo(str(out))
