"""Fairness of recognisable samples only: the unrecognisable share every result reports
(`fairbench.scoring.recognisable`) and the quality gate the board ranks behind (`fairbench.board.board`).

Seeded simulations for the statistics (the conformal threshold's rate on real images, the bound that motivates
the gate), real data for the criterion (real held-out digits and MNIST flagged at most 2%, a 20-step generator
and noise flagged, a trained generator passed), and fixture boards for the gate (a noise entry with the best KL
is never ranked first; results without the field are ranked as before and marked).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from fairbench import data
from fairbench.errors import FairbenchError
from fairbench.judges import load_judge
from fairbench.board import build_leaderboard, read_results, render_csv, render_html, render_markdown
from fairbench.board.board import GATE_BELOW, GATE_BOUND, GATE_PASS, GATE_UNCHECKED, entry_gate
from fairbench.scoring.recognisable import (
    REAL_FLAG_RATE,
    calibrate,
    conformal_threshold,
    kth_neighbour_distance,
    recognisable_report,
    task_spaces,
)
from fairbench.submission import checkpoint as ckpt_io
from fairbench.submission import sampling
from fairbench.task_registry import get_task
from tests.helpers import REPO_ROOT

EXAMPLES = REPO_ROOT / "fairbench" / "examples"


# ------------------------------------------------------------------------------------------- the statistics


@pytest.mark.parametrize("m", [174, 999])
def test_conformal_threshold_flags_real_scores_at_the_stated_rate(m: int) -> None:
    """Seeded simulation: fit the threshold on m scores, count how many fresh scores of the same law exceed
    it. The rate is (m + 1 - r)/(m + 1) for r = ceil((m + 1)(1 - a)): 0.5% at m = 999; with m = 174 (the
    digits test split's fit half) too few for a = 0.5%, the largest score, 1/175 = 0.57%."""
    alpha = REAL_FLAG_RATE / 2
    rng = np.random.default_rng(0)
    reps, fresh = 4000, 2000
    rates = np.empty(reps)
    for i in range(reps):
        scores = rng.lognormal(size=m + fresh)  # skewed, like distances
        rates[i] = np.mean(scores[m:] > conformal_threshold(scores[:m], alpha))
    rank = min(int(np.ceil((m + 1) * (1 - alpha))), m)
    expected = (m + 1 - rank) / (m + 1)
    assert expected <= max(alpha, 1 / (m + 1)) + 1e-12
    assert rates.mean() == pytest.approx(expected, abs=2.5e-4)


def test_unrecognisable_share_bounds_how_far_judged_shares_can_move() -> None:
    """The gate's reason: judged shares mix the recognisable samples' shares q with whatever the judge makes
    of the rest, r: p = (1 - u) q + u r, so no group moves by more than u (and one can move by u)."""
    rng = np.random.default_rng(1)
    for _ in range(2000):
        k = int(rng.integers(2, 6))
        q, r, u = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k) * 0.2), float(rng.uniform())
        assert np.abs((1 - u) * q + u * r - q).max() <= u + 1e-12
    q, r = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    assert np.abs(0.6 * q + 0.4 * r - q).max() == pytest.approx(0.4 * 0.5)  # |r - q| <= 1: u * 1 when q = 0
    assert np.abs(0.6 * np.array([0.0, 1.0]) + 0.4 * r - np.array([0.0, 1.0])).max() == pytest.approx(0.4)


def test_kth_neighbour_distance_is_the_brute_force_one_across_blocks() -> None:
    rng = np.random.default_rng(2)
    queries, reference = rng.normal(size=(2100, 7)), rng.normal(size=(300, 7))
    full = np.sqrt(((queries[:, None, :] - reference[None, :, :]) ** 2).sum(-1))
    for k in (1, 5):
        assert np.allclose(kth_neighbour_distance(queries, reference, k), np.sort(full, axis=1)[:, k - 1])
    with pytest.raises(FairbenchError, match="at least 5"):
        kth_neighbour_distance(queries, reference[:4], 5)


# ------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def noise_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vanilla` trained on digits-bicolor for 20 steps, as tests/conftest.py's digits_checkpoint: checkerboard
    noise that the judge splits about evenly."""
    from fairbench.training import RunOptions, train

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRBENCH_HOME", str(tmp_path_factory.mktemp("noise-home")))
        mp.setenv("FAIRBENCH_OFFLINE", "1")
        return train(RunOptions(method="vanilla", task=get_task("digits-bicolor"), seed=0, steps=20,
                                out=tmp_path_factory.mktemp("noise-run"), device="cpu", checkpoint_every=20))


def _samples(path: Path, n: int) -> torch.Tensor:
    task = get_task("digits-bicolor")
    ckpt = ckpt_io.load_checkpoint(path)
    model = ckpt_io.build_generator(ckpt, path, torch.device("cpu"))
    images, _ = sampling.generate(model, n, task.sampling.seed, task.image_shape, task.num_classes)
    return images


def _check_rows(task_id: str, root: Path | None) -> torch.Tensor:
    """The test-split rows the threshold was not fitted on (odd rows; every split here is under the cap)."""
    test = data.load_split(get_task(task_id), "test", root)
    return test.images[1::2]


def test_twenty_step_generator_is_flagged_and_below_the_gate(noise_checkpoint: Path) -> None:
    task = get_task("digits-bicolor")
    report = recognisable_report(task, _samples(noise_checkpoint, task.sampling.n_samples), load_judge(task))
    assert report["unrecognisable_share"] >= 0.9  # measured: 100%
    assert report["unrecognisable_ci95"][0] > GATE_BOUND
    assert {n["role"] for n in report["networks"]} == {"judge", "domain"}
    for network in report["networks"]:
        assert len(network["sha256"]) == 64 and network["threshold"] > 0


def test_real_held_out_digits_are_flagged_at_most_two_percent() -> None:
    task = get_task("digits-bicolor")
    judge = load_judge(task)
    check = recognisable_report(task, _check_rows("digits-bicolor", None), judge)
    assert check["unrecognisable_share"] <= 0.02  # measured: 2 of 173
    assert check["calibration"]["real_flagged_share"] == check["unrecognisable_share"]  # the same rows
    train = recognisable_report(task, data.load_split(task, "train").images, judge)  # never calibrated on
    assert train["unrecognisable_share"] <= 0.02  # measured: 7 of 1,100


def test_a_trained_generator_passes() -> None:
    """The shipped digits example (vanilla, 1,500 steps): its digits are recognisable, its unfairness is not
    the gate's business."""
    task = get_task("digits-bicolor")
    report = recognisable_report(task, _samples(EXAMPLES / "digits-vanilla.pt", 2000), load_judge(task))
    assert report["unrecognisable_share"] <= 0.05  # measured: 0.1%


def test_uniform_noise_is_flagged_on_digits() -> None:
    task = get_task("digits-bicolor")
    noise = torch.randint(0, 256, (500, *task.image_shape), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    assert recognisable_report(task, noise, load_judge(task))["unrecognisable_share"] >= 0.9


def test_real_held_out_mnist_is_flagged_at_most_two_percent_and_noise_is_flagged(mnist_root: Path) -> None:
    task = get_task("mnist-bicolor")
    judge = load_judge(task, mnist_root)
    report = recognisable_report(task, _check_rows("mnist-bicolor", mnist_root), judge, mnist_root)
    assert report["unrecognisable_share"] <= 0.02  # measured: 0.9% of 5,000
    noise = torch.randint(0, 256, (1000, *task.image_shape), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    assert recognisable_report(task, noise, judge, mnist_root)["unrecognisable_share"] >= 0.9


def test_calibration_is_cached_and_keyed() -> None:
    from fairbench import paths

    task = get_task("digits-bicolor")
    spaces = task_spaces(task, load_judge(task), None)
    first = calibrate(task, spaces)
    (cached,) = (paths.fairbench_home() / "recognisable").glob("*.npz")
    assert cached.stem == first.key
    second = calibrate(task, spaces)  # read back
    assert (second.thresholds, second.real_flagged) == (first.thresholds, first.real_flagged)
    assert np.array_equal(first.reference["judge"], second.reference["judge"])
    cached.write_bytes(b"not an npz")  # unreadable: computed again, never trusted
    assert calibrate(task, spaces).thresholds == first.thresholds
    assert calibrate(task, spaces[:1]).key != first.key  # other networks, another calibration


def test_score_records_the_field_and_a_board_reads_it(noise_checkpoint: Path, tmp_path: Path) -> None:
    from fairbench.results import read_result, write_result
    from fairbench.scoring import ScoreOptions, score_checkpoint

    result = score_checkpoint(noise_checkpoint, ScoreOptions(n_samples=400, device="cpu"))
    assert result.recognisable is not None and result.recognisable["unrecognisable_share"] >= 0.9
    path = write_result(tmp_path / "results" / "noise" / "seed0.json", result)
    assert read_result(path).recognisable == result.recognisable
    (board,) = build_leaderboard(read_results(tmp_path / "results"))
    (row,) = board.rows
    assert row.below_gate and row.rank[board.primary_metric] is None


def test_a_task_without_judge_and_test_splits_is_not_checked() -> None:
    task = get_task("ffhq-race")
    with pytest.raises(FairbenchError, match="no judge and test splits"):
        task_spaces(task, None, None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- the board

KEY = "e" * 64


def _result(entry: str, seed: int, kl: float, unrecognisable: float | None, **extra: Any) -> dict[str, Any]:
    data_: dict[str, Any] = {
        "schema": "fairbench-result/1", "task": "digits-bicolor", "task_version": 2, "task_hash": "a" * 64,
        "method": entry, "seed": seed, "n_samples": 2000,
        "submission": {"kind": "checkpoint", "name": entry, "path": "x.pt", "sha256": "0" * 64},
        "train": {"steps": 20 if entry == "noise" else 1500, "batch_size": 64},
        "groups": ["black", "white"], "group_proportions": {"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
        "metrics": {
            "kl_uniform_corrected": {"value": kl, "ci95": [kl * 0.9, kl * 1.1], "higher_is_better": False},
            "fid": {"value": 1900.0 if entry == "noise" else 20.0, "ci95": None, "higher_is_better": False},
        },
        "judge": {"id": "digits-bicolor", "sha256": "1" * 64, "accuracy": 0.99, "confusion": [[1, 0], [0, 1]]},
        "skipped": {},
    }
    if unrecognisable is not None:
        data_["recognisable"] = {
            "criterion": "knn-judge+domain/1", "unrecognisable_share": unrecognisable,
            "calibration": {"key": KEY, "real_flagged_share": 0.0058},
        }
    data_.update(extra)
    return data_


def _board(tmp_path: Path, runs: list[dict[str, Any]]):
    for run in runs:
        folder = tmp_path / "results" / run["method"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"seed{run['seed']}.json").write_text(json.dumps(run))
    (board,) = build_leaderboard(read_results(tmp_path / "results"))
    return board


def _fixture_board(tmp_path: Path):
    """noise: the best KL by far, every sample unrecognisable; trained: fair enough and recognisable; old:
    scored before the check."""
    runs = [_result("noise", s, 0.0001 + s * 1e-5, 1.0) for s in range(3)]
    runs += [_result("trained", s, 0.05 + s * 0.002, 0.01 + s * 0.001) for s in range(3)]
    runs += [_result("old", s, 0.20 + s * 0.01, None) for s in range(3)]
    return _board(tmp_path, runs)


def test_a_noise_entry_with_the_best_kl_is_not_ranked_first(tmp_path: Path) -> None:
    board = _fixture_board(tmp_path)
    primary = board.primary_metric
    assert [row.entry for row in board.rows] == ["trained", "old", "noise"]
    assert board.rows[0].rank[primary] == 1 and board.rows[0].entry == "trained"
    noise = board.rows[-1]
    assert noise.below_gate and all(rank is None for rank in noise.rank.values())
    assert noise.metrics[primary].mean < board.rows[0].metrics[primary].mean  # it does have the best KL
    assert [row.entry for row in board.ranked_rows] == ["trained", "old"]
    assert {row.entry: row.gate.status for row in board.rows} == {
        "trained": GATE_PASS, "old": GATE_UNCHECKED, "noise": GATE_BELOW}
    assert board.rows[1].rank[primary] == 2  # the unchecked entry is ranked as before


def test_markdown_puts_it_below_the_line_with_the_reason(tmp_path: Path) -> None:
    md = render_markdown([_fixture_board(tmp_path)])
    lines = md.splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("Below the quality gate"))
    above, below = "\n".join(lines[:line]), "\n".join(lines[line:])
    assert "| 1 | trained |" in above and "| 2 | old |" in above and "| noise" not in above
    noise = next(text for text in below.splitlines() if "| noise" in text)
    assert noise.startswith("| — | noise |")
    assert "100.0 / 100.0 / 100.0" in noise
    assert noise.endswith("| seed 0 100.0%, seed 1 100.0%, seed 2 100.0% of samples unrecognisable (more than 50%) |")
    old = next(text for text in lines if text.startswith("| 2 | old |"))
    assert f"| {GATE_UNCHECKED} |" in old
    assert "flags 0.6% of the task's real held-out images" in md


def test_html_puts_it_below_the_line_with_the_reason(tmp_path: Path) -> None:
    page = render_html([_fixture_board(tmp_path)], tmp_path)
    first = page.index('<table class="board" ')
    line = page.index('<p class="gate-line">Below the quality gate')
    second = page.index('<table class="board below-gate"')
    assert first < line < second
    assert 'data-entry="noise"' not in page[first:line] and 'data-entry="noise"' in page[second:]
    assert "of samples unrecognisable (more than 50%)" in page[second:]
    assert 'data-entry="trained"' in page[first:line] and 'data-entry="old"' in page[first:line]


def test_csv_says_which_side_of_the_gate(tmp_path: Path) -> None:
    frame = pd.read_csv(io.StringIO(render_csv([_fixture_board(tmp_path)]))).set_index("entry")
    assert frame.loc["noise", "gate"] == GATE_BELOW and pd.isna(frame.loc["noise", "primary_rank"])
    assert frame.loc["trained", "gate"] == GATE_PASS and frame.loc["trained", "primary_rank"] == 1
    assert frame.loc["old", "gate"] == GATE_UNCHECKED and pd.isna(frame.loc["old", "unrecognisable_share_max"])
    assert frame.loc["noise", "unrecognisable_share_max"] == 1.0
    assert (frame["gate_bound"] == GATE_BOUND).all()


def test_one_noise_seed_is_enough_to_fall_below_and_a_lone_noise_entry_has_no_rank(tmp_path: Path) -> None:
    runs = [_result("mixed", 0, 0.001, 0.02), _result("mixed", 1, 0.001, 0.97), _result("mixed", 2, 0.001, None)]
    gate = entry_gate(_board(tmp_path / "a", runs).rows[0].runs)
    assert gate.status == GATE_BELOW and gate.reason.startswith("seed 1 97.0%")
    lone = _board(tmp_path / "b", [_result("noise", s, 0.0001, 1.0) for s in range(2)])
    assert lone.ranked_rows == () and lone.rows[0].rank[lone.primary_metric] is None


def test_the_bound_itself_passes(tmp_path: Path) -> None:
    board = _board(tmp_path, [_result("edge", s, 0.1, GATE_BOUND) for s in range(2)])
    assert board.rows[0].gate.status == GATE_PASS


def test_boards_without_checked_runs_have_no_column_and_say_so(tmp_path: Path) -> None:
    board = _board(tmp_path, [_result("old", s, 0.2 + s / 100, None) for s in range(3)])
    md = render_markdown([board])
    assert "unrecognisable (%)" not in md and "no run checked, so ranked as before" in md
    assert board.rows[0].rank[board.primary_metric] == 1
    skipped = _result("new", 0, 0.1, None, recognisable={"unrecognisable_share": None, "not_checked": "MNIST missing"})
    (row,) = _board(tmp_path / "skipped", [skipped]).rows
    assert row.gate.status == GATE_UNCHECKED and row.gate.reason == "seed 0: MNIST missing"


def test_different_calibrations_are_not_compared(tmp_path: Path) -> None:
    other = _result("trained", 1, 0.05, 0.01)
    other["recognisable"]["calibration"]["key"] = "f" * 64
    with pytest.raises(FairbenchError, match="quality-gate calibrations"):
        _board(tmp_path, [_result("trained", 0, 0.05, 0.01), other])


def test_a_malformed_field_is_refused(tmp_path: Path) -> None:
    bad = _result("trained", 0, 0.05, 0.01)
    bad["recognisable"]["unrecognisable_share"] = 1.5
    with pytest.raises(FairbenchError, match="recognisable"):
        _board(tmp_path, [bad])


def test_a_run_whose_data_is_missing_says_why_and_boards_as_not_checked(tmp_path: Path) -> None:
    from fairbench.scoring import _recognisable

    task = get_task("mnist-bicolor")
    images = torch.zeros((8, *task.image_shape), dtype=torch.uint8)
    field = _recognisable(task, images, load_judge(task), tmp_path)  # an empty data root
    assert field["unrecognisable_share"] is None and "MNIST" in field["not_checked"]
    (row,) = _board(tmp_path / "b", [_result("new", 0, 0.1, None, recognisable=field)]).rows
    assert row.gate.status == GATE_UNCHECKED and field["not_checked"] in row.gate.reason


def test_findings_recompute_the_ranks_of_a_board_with_an_entry_below_the_gate(tmp_path: Path) -> None:
    """leaderboard/findings.py checks every rank it states against the board's: it must see the same entries
    (those above the line), or a gated entry makes it refuse the board."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("findings_gate", EXAMPLES.parents[1] / "leaderboard" / "findings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        board = _fixture_board(tmp_path)
        pairs = module.Pairs.of(board, board.primary_metric)
    finally:
        sys.modules.pop(spec.name, None)
    assert all("noise" not in pair for pair in pairs.p)
