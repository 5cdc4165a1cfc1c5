"""`judge.kind: pinned`: the judges fairbench trains itself (`fairbench.networks.judge`), read from their files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fairbench.judges.base import JUDGE_KINDS, Judge
from fairbench.networks.judge import find_judge_file, judge_net_from

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec


def load_pinned_judge(task: TaskSpec, data_root: Path | None = None) -> Judge:
    """Refused unless the file's hash matches the sha256 pinned in the task spec; for a judge trained on first
    use, the cached one trained on this data (`fairbench.networks.prepare` trains it)."""
    return Judge(*judge_net_from(*find_judge_file(task, data_root)))


JUDGE_KINDS.register("pinned", load_pinned_judge)
