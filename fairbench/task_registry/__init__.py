"""Task specs: typed, versioned, hashed, loaded from `tasks/*.yaml` (shipped inside the wheel).

`spec` holds the dataclasses and the hashes, `loading` turns YAML into a checked spec, `builtin` finds the
installed tasks by id or alias. Callers import from here.
"""

from fairbench.task_registry.builtin import builtin_task_dir, builtin_tasks, get_task, list_tasks, resolve_task_id
from fairbench.task_registry.loading import load_task_file, parse_task
from fairbench.task_registry.spec import (
    BootstrapSpec, DatasetSpec, FeatureRef, GroupSpec, JudgeRef, QualitySpec, SamplingSpec, SplitSpec, TaskSpec,
    TrainingDefaults, TransformSpec, task_hash,
)

__all__ = [
    "BootstrapSpec", "DatasetSpec", "FeatureRef", "GroupSpec", "JudgeRef",
    "QualitySpec", "SamplingSpec", "SplitSpec", "TaskSpec", "TrainingDefaults", "TransformSpec", "builtin_task_dir",
    "builtin_tasks", "get_task", "list_tasks", "load_task_file", "parse_task", "resolve_task_id", "task_hash",
]
