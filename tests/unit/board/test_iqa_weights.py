"""Leaderboard and IQA weights: the weight files each no-reference metric was computed with are read, compared
between runs of one entry, refused when they differ, and shown in the Markdown and CSV."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fairbench.errors import FairbenchError
from fairbench.board import read_result, read_results, render_csv, render_markdown
from tests.helpers.board_results import HASH_A, HASH_B, boards_for, make_result, put, row_of


# ------------------------------------------------------------------------------------------- IQA weights

W1 = {
    "eqface-backbone": hashlib.sha256(b"backbone 1").hexdigest(),
    "eqface-quality": hashlib.sha256(b"head 1").hexdigest(),
}
W2 = {**W1, "eqface-quality": hashlib.sha256(b"head 2").hexdigest()}  # another user's quality head
NIQE_W = {"niqe-modelparameters": hashlib.sha256(b"niqe").hexdigest()}


def eq_result(
    method: str, eqface: float | None, weights: dict[str, dict[str, str]] | None, niqe: float | None = None, **kw: Any
) -> dict[str, Any]:
    """A result with an eqface (and optionally niqe) value; `weights` None leaves iqa_weights out, as files
    written before the field did."""
    metrics = {"kl_uniform_corrected": 0.1, "eqface": eqface, **({"niqe": niqe} if niqe is not None else {})}
    data = make_result(method=method, metrics=metrics, **kw)
    data["metrics"]["eqface"]["higher_is_better"] = True
    if weights is not None:
        data["iqa_weights"] = weights
    return data


def test_result_json_round_trips_iqa_weights(tmp_path: Path) -> None:
    from fairbench.results import JudgeInfo, ScoreResult, Submission, write_result

    weights = {"eqface": W1, "niqe": NIQE_W}
    result = ScoreResult(
        task="digits-bicolor", task_version=1, task_hash=HASH_A, method="vanilla",
        submission=Submission("checkpoint", "vanilla", "x.pt", "0" * 64), seed=0, train=None, n_samples=100,
        sampling_seed=0, groups=["a", "b"], group_proportions={"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
        group_counts=[50, 50], metrics={"eqface": {"value": 0.7, "ci95": [0.6, 0.8], "higher_is_better": True}},
        per_condition=None, judge=JudgeInfo("j", "1" * 64, 0.9, [[1.0, 0.0], [0.0, 1.0]]),
        bootstrap={"n_resamples": 10, "seed": 0}, versions={}, device="cpu", git_revision=None, created="t",
        elapsed_s=0.0, iqa_weights=weights,
    )
    path = write_result(tmp_path / "r.json", result)
    assert json.loads(path.read_text())["iqa_weights"] == weights
    assert read_result(path).iqa_weights == weights
    # a result with no IQA metric writes an empty object
    empty = write_result(tmp_path / "e.json", ScoreResult(**{**result.__dict__, "iqa_weights": {}}))
    assert json.loads(empty.read_text())["iqa_weights"] == {} and read_result(empty).iqa_weights == {}


def test_old_result_without_iqa_weights_still_loads(tmp_path: Path) -> None:
    old = put(tmp_path, eq_result("old", 0.5, None))
    assert "iqa_weights" not in json.loads(old.read_text())
    put(tmp_path, eq_result("new", 0.6, {"eqface": W1}))
    (board,) = boards_for(tmp_path)  # an unknown provenance never conflicts
    assert read_result(old).iqa_weights == {}
    assert row_of(board, "old").iqa_weights == {} and row_of(board, "new").iqa_weights == {"eqface": W1}
    assert board.iqa_weights == {"eqface": W1}
    # one run each: no spread across seeds to test against, so neither is shown to be better
    assert row_of(board, "new").rank["eqface"] == 1 and row_of(board, "old").rank["eqface"] == 1


def test_refuses_eqface_values_from_different_weights(tmp_path: Path) -> None:
    fa = put(tmp_path, eq_result("x", 0.7, {"eqface": W1}))
    fb = put(tmp_path, eq_result("y", 0.8, {"eqface": W2}))
    with pytest.raises(FairbenchError) as info:
        boards_for(tmp_path)
    msg = str(info.value)
    assert "digits-bicolor" in msg and "'eqface'" in msg and "different weights" in msg
    assert W1["eqface-quality"][:12] in msg and W2["eqface-quality"][:12] in msg
    assert W1["eqface-quality"][:13] not in msg  # prefixes, not whole hashes
    assert str(fa) in msg and str(fb) in msg
    assert "\n" not in msg


def test_refuses_different_weights_between_seeds_of_one_entry(tmp_path: Path) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1}, seed=0))
    put(tmp_path, eq_result("x", 0.8, {"eqface": W2}, seed=1))
    with pytest.raises(FairbenchError, match="different weights for IQA metric 'eqface'"):
        boards_for(tmp_path)


def test_same_weights_are_compared(tmp_path: Path) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1}))
    put(tmp_path, eq_result("y", 0.8, {"eqface": dict(reversed(list(W1.items())))}))  # key order is no difference
    (board,) = boards_for(tmp_path)
    assert board.iqa_weights == {"eqface": W1}
    assert {r.entry: (r.metrics["eqface"].mean, r.rank["eqface"]) for r in board.rows} == {"x": (0.7, 1), "y": (0.8, 1)}


@pytest.mark.parametrize("missing", ["null value", "no metric"])
def test_a_run_without_an_eqface_value_does_not_conflict(tmp_path: Path, missing: str) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1, "niqe": NIQE_W}))
    other = eq_result("y", None, {"eqface": W2, "niqe": NIQE_W})  # computed once with W2, the value lost
    if missing == "no metric":
        del other["metrics"]["eqface"]
    put(tmp_path, other)
    (board,) = boards_for(tmp_path)
    assert board.iqa_weights == {"eqface": W1}  # niqe has no value on this board
    assert row_of(board, "y").iqa_weights == {} and row_of(board, "y").metrics["eqface"].mean is None


def test_weights_of_other_tasks_never_conflict(tmp_path: Path) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1}))
    put(tmp_path, eq_result("x", 0.7, {"eqface": W2}, task="faces", task_hash=HASH_B))
    assert [b.iqa_weights["eqface"] for b in boards_for(tmp_path)] == [W1, W2]


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ([], "field 'iqa_weights' must be an object"),
        ("eqface", "field 'iqa_weights' must be an object"),
        ({"eqface": "a" * 64}, "bad entry 'eqface'"),
        ({"eqface": ["a" * 64]}, "bad entry 'eqface'"),
        ({"eq face": {"eqface-backbone": "a" * 64}}, "bad entry 'eq face'"),
        ({"eqface": {"eqface-backbone": "abc"}}, "iqa_weights.eqface.eqface-backbone must be 64 lowercase hex"),
        ({"eqface": {"eqface-backbone": "A" * 64}}, "iqa_weights.eqface.eqface-backbone must be 64 lowercase hex"),
        ({"eqface": {"eqface-backbone": 7}}, "iqa_weights.eqface.eqface-backbone must be 64 lowercase hex"),
        ({"eqface": {"a:b": "a" * 64}}, "iqa_weights.eqface.a:b must be"),
    ],
)
def test_bad_iqa_weights_are_one_line_errors(tmp_path: Path, weights: Any, problem: str) -> None:
    put(tmp_path, make_result(method="good"))
    bad = put(tmp_path, json.dumps({**make_result(), "iqa_weights": weights}), name="bad/result.json")
    with pytest.raises(FairbenchError) as info:
        read_results(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: ") and problem in msg
    assert "\n" not in msg


def test_null_iqa_weights_reads_as_none_recorded(tmp_path: Path) -> None:
    put(tmp_path, {**eq_result("x", 0.7, None), "iqa_weights": None})
    put(tmp_path, eq_result("y", 0.8, {"eqface": W2}))
    (board,) = boards_for(tmp_path)
    assert board.iqa_weights == {"eqface": W2}


def test_markdown_and_csv_show_the_weights(tmp_path: Path) -> None:
    both = {"eqface": W1, "niqe": NIQE_W}
    put(tmp_path, eq_result("x", 0.7, both, niqe=5.0))
    put(tmp_path, eq_result("y", 0.8, {"eqface": W1}))
    put(tmp_path, make_result(method="plain", task="mnist-bicolor", task_hash=HASH_B))  # a board without IQA
    boards = boards_for(tmp_path)
    md = render_markdown(boards)
    info = next(line for line in md.splitlines() if line.startswith("Primary metric") and "eqface" in line)
    assert info.endswith(
        f"; eqface weights: eqface-backbone {W1['eqface-backbone'][:12]}, eqface-quality {W1['eqface-quality'][:12]}"
        f"; niqe weights: niqe-modelparameters {NIQE_W['niqe-modelparameters'][:12]}."
    )
    assert sum("weights:" in line for line in md.splitlines()) == 1  # not on the mnist-bicolor board

    frame = pd.read_csv(io.StringIO(render_csv(boards)))
    cols = list(frame.columns)
    assert cols.index("iqa_weights") == cols.index("feature_network") + 1
    by = frame.set_index(["task", "entry"])["iqa_weights"]
    eq = f"eqface=eqface-backbone:{W1['eqface-backbone'][:12]}+eqface-quality:{W1['eqface-quality'][:12]}"
    assert by[("digits-bicolor", "x")] == f"{eq};niqe=niqe-modelparameters:{NIQE_W['niqe-modelparameters'][:12]}"
    assert by[("digits-bicolor", "y")] == eq  # y has no niqe value
    assert pd.isna(by[("mnist-bicolor", "plain")])


def test_boards_without_iqa_weights_render_as_before(tmp_path: Path) -> None:
    """No `iqa_weights` column or info text unless some result recorded weights: old leaderboards rebuild
    byte for byte (the committed leaderboard/ is rebuilt from files without the field)."""
    put(tmp_path, eq_result("old", 0.5, None))
    put(tmp_path, eq_result("empty", 0.6, {}))
    boards = boards_for(tmp_path)
    assert "iqa_weights" not in render_csv(boards).splitlines()[0]
    assert "weights" not in render_markdown(boards)
