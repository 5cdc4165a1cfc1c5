"""The method plug-in contract: what a training method gives the harness, and what it gets from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from fairbench.registry import Registry


@dataclass
class Trainable:
    """Everything a method trains. The harness saves and restores it; `generator` is what gets scored."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    generator: str  # key into `modules`
    arch: str  # registered architecture name of the generator
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    # What a phased method's `prepare` produced (fixed data such as a synthetic training set). Not saved in
    # the training state: `prepare` rebuilds it from its own files in the run folder.
    prepared: Any = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])


class BatchSource(Protocol):
    """Real batches and noise, drawn from the harness's seeded generators (so a resumed run is exact)."""

    device: torch.device
    n_groups: int

    def real(self, batch_size: int, group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images in [-1, 1], N x C x H x W; class labels), optionally drawn only from one group."""
        ...

    def noise(self, batch_size: int, dim: int) -> torch.Tensor: ...


class Method(Protocol):
    config_cls: type  # a dataclass of hyper-parameters with defaults

    def create(self, task: Any, config: Any, device: torch.device) -> Trainable: ...

    def step(
        self, trainable: Trainable, config: Any, batches: BatchSource, batch_size: int, step: int
    ) -> dict[str, float]:
        """One training step; returns scalar logs (losses, gradient norms)."""
        ...


@dataclass(frozen=True)
class PhaseContext:
    """What a method's optional `prepare` hook gets: a folder of its own inside the run folder.

    A method with phases before its training loop (rebalance: base generator, auxiliary classifier, latent
    exploration) defines `prepare(task, config, context) -> Prepared`. The harness calls it once per process,
    before `create(task, config, device, prepared)`, under the run's lock. Each phase writes its result atomically into `context.directory`
    and reuses it when it is already there, so a killed run resumes at the phase it was in and a finished
    phase is never repeated. `prepared.provenance` (a plain dict) is recorded in the checkpoint's `train` and
    in the training state's identity, so a resumed run refuses a changed phase result (another base).
    """

    directory: Path
    seed: int
    device: torch.device
    data_root: Path | None
    progress: Callable[[str], None] | None = None  # one line per phase milestone
    # `fairbench run --base CKPT`: the generator a method starts from. Only methods with `accepts_base = True`
    # get one (the harness refuses it for the others, and first calls their `check_base(task, path)`).
    base: Path | None = None


METHODS: Registry[Method] = Registry("method")


@dataclass(frozen=True)
class CheckpointImporter:
    """A plugin's way to wrap a generator trained elsewhere as a fairbench checkpoint (`fairbench train
    import-stylegan2`): the CLI builds `options(**flags)` first (refusing bad values before any file is read),
    then calls `run(weights, out, task, options)`, which writes the checkpoint and returns it."""

    options: Callable[..., Any]
    run: Callable[[Path, Path, Any, Any], Any]


# Registered by plugins (the harness names no method itself), by the kind of file they import.
IMPORTERS: Registry[CheckpointImporter] = Registry("checkpoint importer")


def option_docs(config_cls: type) -> dict[str, str]:
    """{field: its trailing `# comment`} from the config dataclass's source and its bases': the comment beside
    a default is the one description of an option, read here for `fairbench methods`."""
    import inspect
    import io
    import tokenize

    docs: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):  # a subclass's comment wins over its base's
        if cls is object:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        field_on_line: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and token.start[1] == 4 and token.start[0] not in field_on_line:
                field_on_line[token.start[0]] = token.string
            elif token.type == tokenize.COMMENT and token.start[0] in field_on_line:
                docs[field_on_line[token.start[0]]] = token.string.lstrip("#").strip()
    return docs
