"""The per-group quality metrics on the boards (results scored before them board with "—"), and the
fairness-quality picture's points, on fixture results written here."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fairbench.board import build_leaderboard, read_results, render_csv, render_html, render_markdown
from fairbench.report.tradeoff import draw_tradeoff, kl_to_uniform, main, tradeoff_data

HASH = "c" * 64
NETWORK = {"id": "domain-mnist", "sha256": "a" * 64, "dim": 128, "resize_rule": "none"}
NEW = ("precision_intra_worst", "recall_intra_worst", "density_intra_worst", "coverage_intra_worst", "vendi",
       "vendi_intra_worst")
FLOOR = {"value": 1.25, "n_halves": [4986, 5014], "reference_counts": {"black": 4972, "white": 5028},
         "at_fid_sizes": {"value": 0.75, "n": [1000, 10000]}}


def result(method: str, seed: int, kl: float, fid: float, new: bool = True, **extra: Any) -> dict[str, Any]:
    """A result as scoring writes it; `new`: with the per-group PRDC and Vendi (else as older files are)."""
    metrics = {
        "kl_uniform_corrected": {"value": kl, "ci95": [kl / 2, kl * 2], "higher_is_better": False},
        "kl_uniform": {"value": kl, "ci95": [kl / 2, kl * 2], "higher_is_better": False},
        "fid": {"value": fid, "ci95": [fid - 1.0, fid + 1.5], "higher_is_better": False},
    }
    if new:
        metrics.update({name: {"value": 0.5 + 0.1 * seed, "ci95": None, "higher_is_better": True} for name in NEW})
    return {
        "schema": "fairbench-result/1", "task": "mnist-bicolor", "task_version": 1, "task_hash": HASH,
        "method": method, "submission": {"kind": "checkpoint", "name": method, "path": "x", "sha256": "0" * 64},
        "seed": seed, "train": {"steps": 100}, "n_samples": 1000, "groups": ["black", "white"],
        "group_proportions": {"observed": [0.5, 0.5], "corrected": [0.5, 0.5]}, "metrics": metrics,
        "per_condition": None, "judge": {"id": "j", "sha256": "1" * 64, "accuracy": 0.99, "confusion": None},
        "feature_network": NETWORK, "versions": {}, "created": "2026-11-23T05:00:00+00:00", "elapsed_s": 1.0,
        **extra,
    }


def write(root: Path, data: dict[str, Any]) -> Path:
    path = root / data["method"] / f"seed{data['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """vanilla scored before the new metrics (3 runs), repfair and groupcond after them, with the floor."""
    root = tmp_path / "mnist-bicolor"
    for seed, (kl, fid) in enumerate([(0.6, 40.0), (0.7, 44.0), (0.65, 42.0)]):
        write(root, result("vanilla", seed, kl, fid, new=False))
    for seed, (kl, fid) in enumerate([(0.2, 15.0), (0.25, 16.0)]):
        write(root, result("repfair", seed, kl, fid, fid_floor=FLOOR))
    for seed, (kl, fid) in enumerate([(1e-5, 5.0), (2e-5, 6.0), (3e-5, 5.5)]):
        write(root, result("groupcond", seed, kl, fid, fid_floor=FLOOR))
    return root


def test_old_results_board_beside_new_ones_with_a_dash(results: Path) -> None:
    (board,) = build_leaderboard(read_results(results))
    md = render_markdown([board])
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| rank |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    coverage = cells.index("coverage per group, worst (domain-mnist) ↑")
    assert "Vendi score (domain-mnist) ↑" in cells and "Vendi score per group, worst (domain-mnist) ↑" in cells
    rows = {c[1].strip(" †"): c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines
                                          if line.startswith("| ") and not line.startswith("| rank"))}
    assert rows["vanilla"][coverage] == "—"
    assert rows["groupcond"][coverage] == "0.600 ± 0.100"  # seeds 0, 1, 2: 0.5, 0.6, 0.7
    assert "= `coverage_intra_worst@domain-mnist`" in md  # the key names the column as the CSV has it
    frame = pd.read_csv(io.StringIO(render_csv([board])))
    by_entry = frame.set_index("entry")
    assert math.isnan(by_entry.loc["vanilla", "coverage_intra_worst@domain-mnist_mean"])
    assert by_entry.loc["repfair", "vendi_intra_worst@domain-mnist_mean"] == pytest.approx(0.55)
    page = render_html([board], results.parent)
    assert 'data-key="coverage_intra_worst"' in page and "Vendi score per group, worst" in page


def test_the_picture_plots_every_run_its_mean_and_the_real_data(results: Path) -> None:
    (board,) = build_leaderboard(read_results(results))
    data = tradeoff_data(board)
    assert (data.x_metric, data.y_metric) == ("kl_uniform_corrected", "fid")
    entries = {e.entry: e for e in data.entries}
    assert set(entries) == {"vanilla", "repfair", "groupcond"}
    assert [e.fair_by_construction for e in data.entries] == [e.entry == "groupcond" for e in data.entries]
    vanilla = entries["vanilla"]
    assert [(r.seed, r.x, r.y) for r in vanilla.runs] == [(0, 0.6, 40.0), (1, 0.7, 44.0), (2, 0.65, 42.0)]
    assert vanilla.runs[0].x_ci == (0.3, 1.2) and vanilla.runs[0].y_ci == (39.0, 41.5)
    assert vanilla.mean == pytest.approx((0.65, 42.0))
    assert entries["groupcond"].mean == pytest.approx((2e-5, 5.5))
    # the real data: its own KL to uniform from the reference's true counts, at the network's floor
    p = np.array([4972, 5028]) / 10000
    assert data.real is not None and data.real.y == 1.25 and data.real.n_halves == (4986, 5014)
    assert data.real.x == pytest.approx(float((p * np.log(2 * p)).sum()), rel=1e-12)
    assert not data.notes

    fig = draw_tradeoff(data)  # what is drawn is exactly these points
    (ax,) = fig.axes
    drawn = {c.get_gid(): np.asarray(c.get_offsets()) for c in ax.collections if c.get_gid()}
    for i, entry in enumerate(data.entries):
        np.testing.assert_allclose(drawn[f"runs-{i}"], [(r.x, r.y) for r in entry.runs])
        np.testing.assert_allclose(drawn[f"mean-{i}"], [entry.mean])
    np.testing.assert_allclose(drawn["real"], [(data.real.x, data.real.y)])
    assert data.real.y_at_fid_sizes == 0.75  # and where a generator of the real images would be, at n = 1000
    np.testing.assert_allclose(drawn["real-at-fid-sizes"], [(data.real.x, 0.75)])
    assert ax.get_xscale() == "symlog" and ax.get_yscale() == "log"  # 1.25 to 44: more than 20x
    colours = [e.colour for e in data.entries]
    assert len(set(colours)) == 3
    from fairbench.board.columns import ENTRY_COLOURS

    assert colours == list(ENTRY_COLOURS[:3])  # the board's palette, in board order


def test_without_a_recorded_floor_the_real_data_is_left_out_and_said_so(results: Path, tmp_path: Path) -> None:
    for path in results.rglob("*.json"):
        data = json.loads(path.read_text())
        data.pop("fid_floor", None)
        path.write_text(json.dumps(data))
    (board,) = build_leaderboard(read_results(results))
    data = tradeoff_data(board)
    assert data.real is None and "predate the network's floor" in data.notes[0]
    given = tradeoff_data(board, floor={**FLOOR, "value": 2.0})  # a floor from the task's data, when it is here
    assert given.real is not None and given.real.y == 2.0
    fig = draw_tradeoff(data)
    assert "real" not in {c.get_gid() for c in fig.axes[0].collections}


def test_an_entry_without_the_metrics_is_named_not_drawn(results: Path) -> None:
    write(results, {**result("mbstd", 0, 0.1, 9.0), "metrics": {
        "kl_uniform_corrected": {"value": 0.1, "ci95": [0.05, 0.2], "higher_is_better": False},
        "fid": {"value": None, "ci95": None, "higher_is_better": False}}})
    (board,) = build_leaderboard(read_results(results))
    data = tradeoff_data(board)
    assert "mbstd" not in {e.entry for e in data.entries}
    assert "mbstd: no run has both metrics" in data.notes


def test_the_command_writes_the_png(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures" / "mnist-bicolor.fairness-quality.png"
    out.parent.mkdir()
    assert main([str(results), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_kl_to_uniform_known_values() -> None:
    assert kl_to_uniform([5, 5]) == 0.0
    assert kl_to_uniform([10, 0]) == pytest.approx(math.log(2))
    assert kl_to_uniform([1, 1, 2]) == pytest.approx(2 * 0.25 * math.log(0.75) + 0.5 * math.log(1.5))


def test_the_board_page_folds_the_picture_when_regenerate_drew_it(results: Path, tmp_path: Path) -> None:
    from fairbench.board import write_leaderboard

    out = tmp_path / "board"
    write_leaderboard(results, out, html=True)
    rel = "figures/mnist-bicolor.fairness-quality.png"
    assert rel not in (out / "leaderboard.html").read_text()  # none drawn: none shown
    (out / "figures").mkdir()
    assert main([str(results), "--out", str(out / rel)]) == 0  # as leaderboard/regenerate.sh draws it
    write_leaderboard(results, out, html=True)
    page = (out / "leaderboard.html").read_text()
    fold = page[page.index('<details class="tradeoff">'):]
    fold = fold[: fold.index("</details>")]
    assert fold.count(f'"{rel}"') == 2  # the image and its link, relative, one click away
