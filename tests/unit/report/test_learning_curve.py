"""Learning curves: snapshots scored once and cached, the best step found, the numbers and the figure written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.report.learning_curve import (
    CurvePoint,
    curves_csv,
    draw_learning_curves,
    save_learning_curves,
    score_run,
    step_label,
    summarise,
)
from fairbench.task_registry import get_task
from fairbench.training import RunOptions, train


def _fake_run(tmp_path: Path, steps=(10, 20, 30)) -> Path:
    run = tmp_path / "digits-bicolor" / "vanilla" / "seed0"
    (run / "snapshots").mkdir(parents=True)
    for s in steps:
        (run / "snapshots" / f"step{s:07d}.pt").write_bytes(b"")
    (run / "snapshots" / "notes.txt").write_text("not a snapshot")
    return run


def _result(fid: float, white: float) -> dict:
    return {"groups": ["black", "white"], "group_proportions": {"observed": [1 - white, white]},
            "metrics": {"fid": {"value": fid, "ci95": [fid, fid]}, "kl_uniform": None}}


def test_snapshots_are_scored_once_and_cached_by_sample_count(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    calls: list[str] = []
    fids = {"step0000010.pt": 50.0, "step0000020.pt": 20.0, "step0000030.pt": 25.0}

    def score(path: Path) -> dict:
        calls.append(path.name)
        return _result(fids[path.name], 0.1)

    points = score_run(run, score)
    assert [p.step for p in points] == [10, 20, 30] and calls == sorted(fids)
    assert points[1].metrics == {"fid": 20.0} and points[1].shares == {"black": 0.9, "white": 0.1}
    assert points[0].run == "vanilla seed0"
    score_run(run, score)
    assert len(calls) == 3, "a rerun reads the cached results"
    score_run(run, score, n_samples=100)
    assert len(calls) == 6, "another sample count is scored again, under its own name"
    assert (run / "snapshots" / "step0000010.n100.json").exists()
    assert json.loads((run / "snapshots" / "step0000010.json").read_text())["metrics"]["fid"]["value"] == 50.0


def test_summary_finds_the_best_step_and_whether_it_is_the_last() -> None:
    points = [CurvePoint("a", s, {"fid": v}, {}) for s, v in ((10, 50.0), (20, 20.0), (30, 25.0))]
    points += [CurvePoint("b", s, {"fid": v}, {}) for s, v in ((10, 9.0), (20, 8.0))]
    a, b = summarise(points, "fid")
    assert (a.run, a.best_step, a.best_value, a.last_step, a.still_improving) == ("a", 20, 20.0, 30, False)
    assert (b.best_step, b.still_improving) == (20, True)
    assert summarise(points, "kid") == []


def test_csv_and_figure(tmp_path: Path) -> None:
    points = [CurvePoint("a", 10, {"fid": 12.5}, {"black": 0.75, "white": 0.25}), CurvePoint("a", 20, {}, {"black": 1.0})]
    rows = list(csv.reader(io.StringIO(curves_csv(points, "fid"))))
    assert rows == [["run", "step", "fid", "share_black", "share_white"], ["a", "10", "12.5", "0.750000", "0.250000"],
                    ["a", "20", "", "1.000000", ""]]
    png, table = save_learning_curves(points, "fid", tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and table == tmp_path / "c.csv" and table.exists()
    with pytest.raises(FairbenchError, match="no snapshots"):
        save_learning_curves([], "fid", tmp_path / "d.png")


def test_step_labels_are_short() -> None:
    assert [step_label(s) for s in (0, 500, 2000, 12500, 20000, 1_250_000)] == ["0", "500", "2k", "12.5k", "20k", "1.25M"]


def test_step_tick_labels_do_not_overlap() -> None:
    """The campaign's axis (2,000 to 20,000 steps) once printed 15000 and 17500 into one another."""
    points = [CurvePoint(f"run{r}", s, {"fid": 60.0 / (1 + s / 4000)}, {"black": 1.0, "white": 0.0})
              for r in range(2) for s in range(2000, 20001, 2000)]
    fig = draw_learning_curves(points, "fid")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        boxes = [t.get_window_extent(renderer) for t, v in zip(ax.get_xticklabels(), ax.get_xticks())
                 if low <= v <= high and t.get_text()]
        assert len(boxes) >= 3
        boxes.sort(key=lambda b: b.x0)
        assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:]))


def test_a_run_without_snapshots_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FairbenchError, match="--snapshot-every"):
        score_run(tmp_path, lambda p: {})
    result = CliRunner().invoke(app, ["curve", str(tmp_path), "--out", str(tmp_path / "c.png")])
    assert result.exit_code != 0 and "--snapshot-every" in result.output


def test_curve_command_scores_real_snapshots(tmp_path: Path) -> None:
    options = RunOptions(method="vanilla", task=get_task("digits-bicolor"), seed=0, steps=6, out=tmp_path / "runs",
                         device="cpu", batch_size=16, snapshot_every=3, overrides={"width": 8})
    run = train(options).parent
    out = tmp_path / "curve.png"
    result = CliRunner().invoke(app, ["curve", str(run), "--out", str(out), "-n", "200", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "best fid" in result.output and out.exists()
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [int(r["step"]) for r in rows] == [3, 6]
    assert all(float(r["fid"]) > 0 and abs(float(r["share_black"]) + float(r["share_white"]) - 1) < 1e-9 for r in rows)
