"""The sweep tests' task: a copy of digits-bicolor without its quality section (the FID family costs most of a
tiny job's time and is tested elsewhere), so each job takes seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT


@pytest.fixture(scope="module")
def task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = (REPO_ROOT / "tasks" / "digits-bicolor.yaml").read_text()
    text = text.replace("\nid: digits-bicolor", "\nid: sweep-digits").replace("aliases: [digits]", "aliases: []")
    path = tmp_path_factory.mktemp("task") / "sweep-digits.yaml"
    path.write_text(text[: text.index("# Quality:")])  # no quality section: fairness only
    return path
