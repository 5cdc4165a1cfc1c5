"""Train a registered method on a task: seeded, checkpointed atomically, resumable, safe on Ctrl-C.

A run directory `OUT/<task>/<method>/seed<S>/` (`<method>@k=v,...` when `--set` changes a hyper-parameter
from its default: `config_label`) holds `checkpoint.pt` (the generator, `fairbench.submission.checkpoint`)
and `trainstate.pt` (networks, optimisers and RNG states). Running the same command again continues from
`trainstate.pt`, and because every random draw comes from generators saved there, a resumed run reproduces
an uninterrupted one exactly. A run holds `<run dir>/.lock` (fairbench.locks) while it trains, so a second
process on the same directory is refused instead of interleaving its checkpoints with the first's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fairbench import data, entry_identity
from fairbench.submission.checkpoint import GeneratorCheckpoint, safe_torch_load, save_checkpoint, save_torch
from fairbench.devices import resolve_device
from fairbench.errors import FairbenchError
from fairbench.locks import run_lock
from fairbench.methods import METHODS, PhaseContext, Trainable
from fairbench.plugins import load_plugins
from fairbench.provenance import versions
from fairbench.checked_dataclasses import from_dict
from fairbench.task_registry import TaskSpec

TRAINSTATE_FORMAT = "fairbench-trainstate/1"


@dataclass
class RunOptions:
    method: str
    task: TaskSpec
    seed: int = 0
    steps: int | None = None  # default: the task's training.steps
    out: Path = Path("runs")
    data_root: Path | None = None
    device: str = "auto"
    batch_size: int | None = None  # default: the task's training.batch_size
    checkpoint_every: int | None = None
    snapshot_every: int | None = None  # also keep the generator every N steps (snapshots/stepNNNNNNN.pt)
    overrides: dict[str, Any] = field(default_factory=dict)  # method hyper-parameters
    name: str | None = None  # the leaderboard entry's name (fairbench.entry_identity); recorded, never trained on
    base: Path | None = None  # a base generator checkpoint, for methods that start from one (rebalance)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C / SIGTERM once a usable checkpoint is on disk."""

    def __init__(self, checkpoint: Path, step: int) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved")
        self.checkpoint, self.step = checkpoint, step


class TensorBatches:
    """Real batches and noise from the run's own seeded generators (saved and restored on resume)."""

    def __init__(self, split: data.RealSplit, n_groups: int, seed: int, device: torch.device) -> None:
        self.device, self.n_groups = device, n_groups
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.group_index = [torch.nonzero(split.groups == g).squeeze(1) for g in range(n_groups)]
        self.data_rng = torch.Generator().manual_seed(seed * 2 + 1)
        self.noise_rng = torch.Generator().manual_seed(seed * 2 + 2)

    def real(self, batch_size: int, group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if group is None:
            idx = torch.randint(len(self.images), (batch_size,), generator=self.data_rng)
        else:
            pool = self.group_index[group]
            if len(pool) == 0:
                raise FairbenchError(f"the training split has no images of group {group}")
            idx = pool[torch.randint(len(pool), (batch_size,), generator=self.data_rng)]
        idx = idx.to(self.device)
        images = self.images[idx].float().div_(127.5).sub_(1.0)
        return images, self.labels[idx]

    def noise(self, batch_size: int, dim: int) -> torch.Tensor:
        return torch.randn(batch_size, dim, generator=self.noise_rng).to(self.device)

    def rng_state(self) -> dict[str, torch.Tensor]:
        return {"data": self.data_rng.get_state(), "noise": self.noise_rng.get_state()}

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        self.data_rng.set_state(state["data"])
        self.noise_rng.set_state(state["noise"])


def run_dir(out: Path, task_id: str, method: str, seed: int, config_label: str = "") -> Path:
    """`OUT/<task>/<method><config_label>/seed<S>`; `config_label` is '' for the method's default config."""
    return Path(out) / task_id / f"{method}{config_label}" / f"seed{seed}"


def config_label(method_name: str, config: Any) -> str:
    """'' for the method's defaults, else '@k=v,k2=v2' naming the hyper-parameters that differ (sorted).

    Runs with different `--set` values must not share a folder (the second would be refused by the training
    state's identity check), while a default run keeps its historical path. Naming the differences, not the
    raw overrides, sends `--set k=<default>` to the default folder: it is the same training. A name that had
    to be shortened or cleaned of path-hostile characters gets a hash of the whole difference, so two
    configs never share a folder.
    """
    load_plugins()
    default = dataclasses.asdict(METHODS.get(method_name).config_cls())
    differing = {k: v for k, v in sorted(dataclasses.asdict(config).items()) if default.get(k) != v}
    if not differing:
        return ""
    raw = ",".join(f"{k}={_label_value(v)}" for k, v in differing.items())
    clean = re.sub(r"[^A-Za-z0-9._+=,-]", "_", raw)
    if clean == raw and len(raw) <= 80:
        return "@" + raw
    digest = hashlib.sha256(json.dumps(differing, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"@{clean[:60]}~{digest}"


def _label_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "+".join(_label_value(v) for v in value)
    return str(value)


def resolve_run_dir(options: RunOptions) -> Path:
    """The folder `train(options)` writes into (its config checked and resolved first)."""
    config = parse_config(options.method, options.overrides)
    return run_dir(options.out, options.task.id, options.method, options.seed, config_label(options.method, config))


def parse_config(method_name: str, overrides: dict[str, Any]) -> Any:
    load_plugins()
    method = METHODS.get(method_name)
    return from_dict(method.config_cls, overrides, f"{method_name} config")


ProgressFn = Callable[[int, int, dict[str, float]], None]


def train(
    options: RunOptions, progress: ProgressFn | None = None, phase_log: Callable[[str], None] | None = None
) -> Path:
    """Train (or resume) and return the path of the final generator checkpoint."""
    load_plugins()
    task = options.task
    method = METHODS.get(options.method)
    config = parse_config(options.method, options.overrides)
    if options.name is not None:
        entry_identity.check_name(options.name)
    if task.training is None or not task.has_training_data:
        raise FairbenchError(
            f"task {task.id} has no training data: it scores user-supplied pretrained generators "
            f"(see `fairbench import-stylegan2`)"
        )
    steps = task.training.steps if options.steps is None else options.steps
    batch_size = task.training.batch_size if options.batch_size is None else options.batch_size
    every = task.training.checkpoint_every if options.checkpoint_every is None else options.checkpoint_every
    if steps < 1 or batch_size < 1 or every < 1 or (options.snapshot_every is not None and options.snapshot_every < 1):
        raise FairbenchError("steps, batch size, checkpoint and snapshot intervals must be positive")
    device = resolve_device(options.device)
    directory = run_dir(options.out, task.id, options.method, options.seed, config_label(options.method, config))
    ckpt_path, state_path = directory / "checkpoint.pt", directory / "trainstate.pt"

    # Checked before the lock: a run whose data or base is missing must fail without creating its run folder.
    if options.base is not None:
        if not getattr(method, "accepts_base", False):
            raise FairbenchError(f"method {options.method} does not take --base (it trains from the task's data)")
        method.check_base(task, Path(options.base))
    split = data.load_split(task, "train", options.data_root)
    identity = {
        "data_hash": task.data_hash,
        "method": options.method,
        "seed": options.seed,
        "config": dataclasses.asdict(config),
        "batch_size": batch_size,
    }
    # One process per run directory: a second `fairbench run` on it would interleave checkpoints.
    with run_lock(directory):
        prepared = None
        if hasattr(method, "prepare"):  # a phased method (methods.PhaseContext): phases resume from their files
            context = PhaseContext(
                directory / "phases", options.seed, device, options.data_root, phase_log,
                Path(options.base) if options.base is not None else None,
            )
            prepared = method.prepare(task, config, context)
            identity["prepared"] = dict(prepared.provenance)
        torch.manual_seed(options.seed)  # network initialisation
        if prepared is not None:
            trainable = method.create(task, config, device, prepared)
        else:
            trainable = method.create(task, config, device)
        trainable.prepared = prepared
        batches = TensorBatches(split, task.n_groups, options.seed, device)
        step, wall = 0, 0.0
        if state_path.exists():
            step, wall = _restore(state_path, identity, trainable, batches)
        if step >= steps and ckpt_path.exists():
            if progress is not None:
                progress(step, step, {})  # already trained: show it as done
            return ckpt_path

        def save(at_step: int, elapsed: float) -> None:
            # Checkpoint first: the training state is then never ahead of it, so a kill between the two writes
            # at most repeats a few (deterministic) steps on resume and never leaves a stale final checkpoint.
            save_checkpoint(ckpt_path, _generator_checkpoint(task, options, config, trainable, at_step, elapsed))
            _save_state(state_path, identity, trainable, batches, at_step, elapsed)

        for module in trainable.modules.values():
            module.train()
        started = time.perf_counter() - wall
        try:
            with _sigterm_as_interrupt():
                while step < steps:
                    logs = method.step(trainable, config, batches, batch_size, step)
                    step += 1
                    if progress is not None:
                        progress(step, steps, logs)
                    if options.snapshot_every is not None and step % options.snapshot_every == 0:
                        # Kept for learning curves (score each one); never read back by training.
                        save_checkpoint(
                            snapshot_path(directory, step),
                            _generator_checkpoint(task, options, config, trainable, step, time.perf_counter() - started),
                        )
                    if step % every == 0 and step < steps:
                        save(step, time.perf_counter() - started)
        except KeyboardInterrupt:
            save(step, time.perf_counter() - started)
            raise TrainingInterrupted(ckpt_path, step) from None
        save(step, time.perf_counter() - started)
        return ckpt_path


def snapshot_path(directory: Path, step: int) -> Path:
    return directory / "snapshots" / f"step{step:07d}.pt"


def _generator_checkpoint(task, options, config, trainable: Trainable, step: int, wall: float):
    gen = trainable.modules[trainable.generator]
    return GeneratorCheckpoint(
        arch=trainable.arch,
        arch_kwargs=dict(trainable.arch_kwargs),
        state_dict={k: v.detach().cpu().clone() for k, v in gen.state_dict().items()},
        task=task.id,
        task_hash=task.task_hash,
        data_hash=task.data_hash,
        method=options.method,
        config=dataclasses.asdict(config),
        seed=options.seed,
        versions=versions(),
        train={
            "steps": step,
            "wall_time_s": round(wall, 3),
            "device": str(resolve_device(options.device)),
            "batch_size": options.batch_size if options.batch_size is not None else task.training.batch_size,
            **({"name": options.name} if options.name is not None else {}),
            **({"prepared": dict(trainable.prepared.provenance)} if trainable.prepared is not None else {}),
        },
    )


def _save_state(path: Path, identity: dict, trainable: Trainable, batches: TensorBatches, step: int, wall: float):
    save_torch(
        path,
        {
            "format": TRAINSTATE_FORMAT,
            "identity": identity,
            "step": step,
            "wall_time_s": wall,
            "trainable": _to_cpu(trainable.state_dict()),
            "rng": batches.rng_state(),
        },
    )


def saved_step(directory: Path) -> int | None:
    """The step a run in `directory` resumes from (its training state's), or None when it has none.

    Memory-mapped, so asking about a long list of runs reads a few bytes of each, not its optimiser state.
    """
    path = Path(directory) / "trainstate.pt"
    return int(_read_state(path, mmap=True)["step"]) if path.is_file() else None


def _read_state(path: Path, mmap: bool = False) -> dict:
    state = safe_torch_load(path, "training state", mmap=mmap)
    if not isinstance(state, dict) or state.get("format") != TRAINSTATE_FORMAT:
        raise FairbenchError(f"{path}: not a fairbench training state; remove it or choose another --out")
    return state


def _restore(path: Path, identity: dict, trainable: Trainable, batches: TensorBatches) -> tuple[int, float]:
    state = _read_state(path)
    if state.get("identity") != identity:
        raise FairbenchError(
            f"{path}: belongs to a different run (task, method, seed, config or batch size differ); "
            "choose another --out or remove that folder"
        )
    try:
        trainable.load_state_dict(state["trainable"])
        batches.set_rng_state(state["rng"])
    except KeyError as exc:  # str(KeyError) is a bare quoted key: say what it is
        raise FairbenchError(f"{path}: training state does not fit this run (it has no entry {exc.args[0]!r})") from None
    except (RuntimeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise FairbenchError(f"{path}: training state does not fit this run ({detail})") from None
    return int(state["step"]), float(state["wall_time_s"])


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so a killed-by-scheduler run still leaves its checkpoint."""

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
