"""`fairbench sweep --board DIR`: jobs whose result a committed results folder holds already are not run again.

A fresh checkout has the board but none of the run folders behind it. The tests sweep a width-8 generator of
the digits task for a few steps, copy the results into a board laid out like leaderboard/results (as
leaderboard/collect.sh does), then sweep again into an empty runs folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.board import build_leaderboard, read_result
from fairbench.sweep import SerialBackend, SweepSettings, expand_grid, run_sweep
from fairbench.sweep.job_grid import board_result, existing_result
from fairbench.sweep.plan import BOARD, DONE, NEW, plan_job
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT


class Recorder:
    """A serial backend that remembers which jobs it was asked to run."""

    name = "recorder"

    def __init__(self) -> None:
        self.inner, self.ran = SerialBackend(threads=1), []

    def run(self, jobs, on_event) -> None:
        self.ran += [job.key for job in jobs]
        self.inner.run(jobs, on_event)


@pytest.fixture(scope="module")
def task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = (REPO / "tasks" / "digits-bicolor.yaml").read_text()
    text = text.replace("\nid: digits-bicolor", "\nid: board-digits").replace("aliases: [digits]", "aliases: []")
    path = tmp_path_factory.mktemp("task") / "board-digits.yaml"
    path.write_text(text[: text.index("# Quality:")])  # no quality section: scoring in a second
    return path


def _settings(out: Path, **changes) -> SweepSettings:
    values = dict(out=out, steps=4, samples=100, device="cpu", batch_size=16, checkpoint_every=2) | changes
    return SweepSettings(**values)


def _jobs(task: Path, out: Path, seeds: list[int], **changes):
    return expand_grid(["vanilla"], [str(task)], seeds, {"width": [8]}, _settings(out, **changes))


@pytest.fixture(scope="module")
def board(task_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeds 0 and 1 trained and scored elsewhere, their results committed as `<task>/<run folder>/seedS.json`."""
    out, folder = tmp_path_factory.mktemp("elsewhere"), tmp_path_factory.mktemp("board")
    jobs = _jobs(task_file, out, [0, 1])
    assert run_sweep(jobs, SerialBackend(threads=1)).ok
    for job in jobs:
        target = folder / f"{job.key}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(job.result_path, target)
    return folder


def test_a_fresh_checkout_trains_only_what_the_board_lacks(task_file: Path, board: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    jobs = _jobs(task_file, out, [0, 1, 2])
    assert [plan_job(job, board).state for job in jobs] == [BOARD, BOARD, NEW]
    assert [plan_job(job).state for job in jobs] == [NEW, NEW, NEW]  # without --board: everything to train

    backend = Recorder()
    outcome = run_sweep(jobs, backend, board=board)
    assert backend.ran == [jobs[2].key]  # seeds 0 and 1 neither trained nor scored again
    assert not jobs[0].run_dir.exists() and not jobs[1].run_dir.exists()
    assert [s.status for s in outcome.states.values()] == ["skipped", "skipped", "done"]
    # the sweep's leaderboard reads the board's results for the skipped jobs: one entry of three runs
    assert outcome.results == [board / f"{jobs[0].key}.json", board / f"{jobs[1].key}.json", jobs[2].result_path]
    boards = build_leaderboard([read_result(path) for path in outcome.results])
    assert [len(row.runs) for b in boards for row in b.rows] == [3]
    # the job run here is the sweep's own result from now on
    assert [plan_job(job, board).state for job in jobs] == [BOARD, BOARD, DONE]


def test_only_a_result_of_the_very_same_job_counts(task_file: Path, board: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    job = _jobs(task_file, out, [0])[0]
    path = board / f"{job.key}.json"
    assert board_result(job, board) == path and existing_result(job, board) == path
    # another budget, batch size or sample count is another entry: train it
    for changes in ({"steps": 6}, {"batch_size": 8}, {"samples": 200}):
        assert board_result(_jobs(task_file, out, [0], **changes)[0], board) is None, changes
    # another config: a different run folder, and no file there
    other = expand_grid(["vanilla"], [str(task_file)], [0], {"width": [16]}, _settings(out))[0]
    assert board_result(other, board) is None
    # a committed file whose contents say otherwise (edited task, config or seed, unreadable) is not this job
    original = json.loads(path.read_text())
    edits = [
        {"task_hash": "0" * 64},
        {"config_hash": "0" * 64},
        {"seed": 1},
        {"method": "groupcond"},
        {"n_samples": 99},
        {"train": {**original["train"], "steps": 3}},
    ]
    copy = tmp_path / "board"
    target = copy / f"{job.key}.json"
    target.parent.mkdir(parents=True)
    for edit in edits:
        target.write_text(json.dumps(original | edit))
        assert board_result(job, copy) is None, edit
    target.write_text(json.dumps(original))
    assert board_result(job, copy) == target  # the unedited copy does count: the edits alone made the difference
    target.write_text("{not json")
    assert board_result(job, copy) is None


def test_cli_plan_and_sweep_with_a_board(task_file: Path, board: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["sweep", "-m", "vanilla", "-t", str(task_file), "--seeds", "0,1,2", "--set", "width=8", "--steps", "4",
            "-n", "100", "--batch-size", "16", "--checkpoint-every", "2", "--device", "cpu", "--out", str(out),
            "--backend", "serial"]
    plan = CliRunner().invoke(app, [*args, "--plan", "--board", str(board)])
    assert plan.exit_code == 0, plan.output
    lines = plan.output.splitlines()
    assert lines[0].endswith("on the board") and lines[2].endswith("not started")
    assert lines[-1] == "3 jobs: 0 done, 2 on the board, 1 not started; 4 of 12 training steps left"
    assert not out.exists()

    missing = CliRunner().invoke(app, [*args, "--board", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "--board: no folder" in missing.output and not out.exists()

    swept = CliRunner().invoke(app, [*args, "--board", str(board)])
    assert swept.exit_code == 0, swept.output
    assert sorted(p.parent.name for p in out.rglob("result.json")) == ["seed2"]
    assert "| vanilla" in swept.output
