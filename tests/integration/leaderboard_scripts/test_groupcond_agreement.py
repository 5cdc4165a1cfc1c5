"""`leaderboard/groupcond_agreement.py`: the recognisability check behind docs/findings.md, run as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys

from fairbench.task_registry import get_task
from fairbench.training import RunOptions, train
from tests.helpers import REPO_ROOT

SCRIPT = REPO_ROOT / "leaderboard" / "groupcond_agreement.py"


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_reports_each_groups_agreement_for_a_groupcond_checkpoint(tmp_path):
    checkpoint = train(
        RunOptions(method="groupcond", task=get_task("digits-bicolor"), steps=10, out=tmp_path, device="cpu",
                   overrides={"width": 8})
    )
    done = _run(checkpoint, "-n", 200)
    assert done.returncode == 0, done.stderr
    shares = re.findall(r"(black|white) (\d+\.\d)%", done.stdout)
    assert [name for name, _ in shares] == ["black", "white"]
    values = [float(value) for _, value in shares]
    assert all(0 <= value <= 100 for value in values)
    mean = float(re.search(r"agrees on (\d+\.\d)% on average over groups", done.stdout).group(1))
    assert abs(mean - sum(values) / 2) <= 0.1  # rounding of each figure to one decimal
    assert "(200 samples)" in done.stdout


def test_refuses_a_checkpoint_that_does_not_say_which_group_it_drew(digits_checkpoint):
    done = _run(digits_checkpoint)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "a 'vanilla' checkpoint; only groupcond says which group it drew" in done.stderr
