"""`fairbench conditions`: per-condition shares of one group across entries and seeds (the RepFair paper's
Figure 2), checked against committed results (copies in tests/fixtures/board) and a second seed made from one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.report.condition_compare import collect_condition_shares, draw_condition_comparison
from tests.helpers import FIXTURE_DIR

BOARD = FIXTURE_DIR / "board" / "results"


def _result(task: str, method: str, seed: int = 0) -> dict:
    return json.loads((BOARD / task / method / f"seed{seed}.json").read_text())


def _two_seeds(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """mbstd seed 0 as committed, plus a 'seed 1' whose white shares are 1 - seed 0's."""
    folder = tmp_path / "mnist-bicolor" / "mbstd"
    folder.mkdir(parents=True)
    shutil.copy(BOARD / "mnist-bicolor" / "mbstd" / "seed0.json", folder / "seed0.json")
    other = _result("mnist-bicolor", "mbstd")
    other["seed"] = 1
    other["per_condition"]["observed"] = [[w, b] for b, w in other["per_condition"]["observed"]]
    (folder / "seed1.json").write_text(json.dumps(other))
    white = np.array([row[1] for row in _result("mnist-bicolor", "mbstd")["per_condition"]["observed"]])
    return tmp_path, white


def test_bars_are_seed_means_and_dots_are_seeds(tmp_path: Path) -> None:
    _, white = _two_seeds(tmp_path)
    flipped = _result("mnist-bicolor", "mbstd")
    flipped["seed"] = 1
    flipped["per_condition"]["observed"] = [[w, b] for b, w in flipped["per_condition"]["observed"]]
    pairs = [("mbstd", _result("mnist-bicolor", "mbstd")), ("mbstd", flipped), ("vanilla", _result("mnist-bicolor", "vanilla"))]
    task, group, conditions, entries = collect_condition_shares(pairs, None)
    assert (task, group, conditions) == ("mnist-bicolor", "white", [str(d) for d in range(10)])
    assert [e.entry for e in entries] == ["mbstd", "vanilla"] and entries[0].seeds == (0, 1)
    np.testing.assert_allclose(entries[0].mean, (white + (1 - white)) / 2)  # a seed and its mirror average 1/2
    np.testing.assert_allclose(entries[1].mean, 0.0)  # vanilla drew no white sample at all
    fig = draw_condition_comparison(task, group, conditions, entries, 0.5)
    bars = [p for p in fig.axes[0].patches if p.get_gid() == "bars-0"]
    np.testing.assert_allclose([b.get_height() for b in bars], entries[0].mean)
    dots = np.concatenate([c.get_offsets()[:, 1] for c in fig.axes[0].collections[:2]])
    np.testing.assert_allclose(sorted(dots), sorted(np.concatenate([white, 1 - white])))


def test_black_share_and_bad_inputs() -> None:
    pairs = [("groupcond", _result("mnist-bicolor", "groupcond"))]
    _, group, _, entries = collect_condition_shares(pairs, "black")
    black = np.array([row[0] for row in pairs[0][1]["per_condition"]["observed"]])
    assert group == "black"
    np.testing.assert_allclose(entries[0].mean, black)
    with pytest.raises(FairbenchError, match="unknown group 'grey'"):
        collect_condition_shares(pairs, "grey")
    with pytest.raises(FairbenchError, match="no per-condition shares"):
        collect_condition_shares([("vanilla", _result("utkface-race", "vanilla"))], None)
    other_task = {**_result("mnist-bicolor", "vanilla"), "task": "mnist-bicolor-imbalanced"}
    mixed = [("a", _result("mnist-bicolor", "vanilla")), ("b", other_task)]
    with pytest.raises(FairbenchError, match="task 'mnist-bicolor-imbalanced'"):
        collect_condition_shares(mixed, None)


def test_cli_reads_folders_and_writes_the_png(tmp_path: Path) -> None:
    root, white = _two_seeds(tmp_path)
    out = tmp_path / "fig.png"
    result = CliRunner().invoke(app, ["conditions", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mbstd (2 seeds): white 50.0% on average" in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(app, ["conditions", str(root), "--out", str(tmp_path / "fig.svg")])
    assert bad.exit_code == 2 and "must name a .png" in bad.output
    missing = CliRunner().invoke(app, ["conditions", str(tmp_path / "nothing"), "--out", str(out)])
    assert missing.exit_code == 2 and "no such result file or folder" in missing.output
