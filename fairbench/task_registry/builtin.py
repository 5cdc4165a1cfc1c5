"""The installed tasks (`tasks/*.yaml`, shipped in the wheel as `fairbench._tasks`), by id or alias."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from fairbench.errors import FairbenchError
from fairbench.registry import unknown_name_message
from fairbench.task_registry.loading import load_task_file
from fairbench.task_registry.spec import TaskSpec


def builtin_task_dir() -> Path:
    try:
        root = resources.files("fairbench._tasks")
        path = Path(str(root))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, NotADirectoryError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "tasks"  # running from a source checkout


@cache
def builtin_tasks() -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for path in sorted(builtin_task_dir().glob("*.yaml")):
        spec = load_task_file(path)
        if spec.id in specs:
            raise FairbenchError(f"{path}: task id {spec.id!r} is defined twice")
        specs[spec.id] = spec
    return specs


def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in builtin_tasks().values():
        for alias in spec.aliases:
            table[alias] = spec.id
    return table


def resolve_task_id(name: str) -> str:
    specs = builtin_tasks()
    if name in specs:
        return name
    aliases = _aliases()
    if name in aliases:
        return aliases[name]
    raise FairbenchError(unknown_name_message("task", name, [*specs, *aliases]))


def get_task(name_or_path: str | Path) -> TaskSpec:
    """A task by id, alias, or path to a YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")):
        return load_task_file(text)
    return builtin_tasks()[resolve_task_id(text)]


def list_tasks() -> list[TaskSpec]:
    return [builtin_tasks()[k] for k in sorted(builtin_tasks())]
