"""recompute_fairness and leaderboard/recompute_statistics.py: a result's fairness figures redone from its
recorded counts equal what scoring computed, an outdated result is brought up to date without touching
anything else, and a result that lacks what is needed is named, not silently kept."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fairbench.errors import FairbenchError
from fairbench.results import dumps
from fairbench.scoring import ScoreOptions, recompute_fairness, score_checkpoint
from fairbench.task_registry import get_task
from tests.helpers import REPO_ROOT

SCRIPT = REPO_ROOT / "leaderboard" / "recompute_statistics.py"


@pytest.fixture(scope="module")
def scored(digits_checkpoint: Path, tmp_path_factory) -> dict:
    result = score_checkpoint(digits_checkpoint, ScoreOptions(n_samples=600, device="cpu"))
    return json.loads(dumps(result))


def test_recomputing_a_fresh_result_changes_nothing(scored: dict) -> None:
    assert recompute_fairness(scored, get_task("digits-bicolor")) == scored


def test_an_outdated_result_gets_todays_intervals_and_keeps_everything_else(scored: dict, tmp_path: Path) -> None:
    old = copy.deepcopy(scored)
    old["metrics"]["kl_uniform"]["ci95"] = [0.0, 0.5]  # as an older method would have written
    old["fairness_tests"]["uniform"] = {"p_value": 0.5, "statistic": 1.0, "df": 1, "method": "pearson-chi2"}
    old["metrics"]["fid"] = {"value": 12.5, "ci95": [11.0, 14.0], "higher_is_better": False}
    path = tmp_path / "digits-bicolor" / "vanilla" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old, indent=2) + "\n")
    (tmp_path / "index.json").write_text("{}")  # not a result: skipped
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True)
    assert "digits-bicolor: 1 results recomputed" in out.stdout
    new = json.loads(path.read_text())
    assert new["metrics"]["kl_uniform"] == scored["metrics"]["kl_uniform"]
    assert new["fairness_tests"]["uniform"] == scored["fairness_tests"]["uniform"]
    assert new["metrics"]["fid"] == old["metrics"]["fid"]  # quality figures are not the statistics' business
    assert {k: v for k, v in new.items() if k not in ("metrics", "fairness_tests")} == {
        k: v for k, v in old.items() if k not in ("metrics", "fairness_tests")}


def test_a_result_without_calibration_counts_is_named(scored: dict, tmp_path: Path) -> None:
    broken = copy.deepcopy(scored)
    broken["judge"]["confusion_counts"] = None
    with pytest.raises(FairbenchError, match="calibration counts"):
        recompute_fairness(broken, get_task("digits-bicolor"))
    path = tmp_path / "digits-bicolor" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(broken))
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True)
    assert f"not recomputed: {path}" in out.stdout
    assert json.loads(path.read_text()) == broken
