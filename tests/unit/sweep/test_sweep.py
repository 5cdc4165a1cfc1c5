"""`fairbench sweep`: the grid, skip-existing, failure isolation, the leaderboard, the view (interruptions: in
test_interruptions.py).

Jobs train a width-8 generator for a few steps on a copy of digits-bicolor without its quality section
(the FID family costs most of a tiny job's time and is tested elsewhere; tests/unit/sweep/conftest.py), so each
job takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.board import write_leaderboard
from fairbench.scoring import ScoreOptions, score_checkpoint
from fairbench.sweep import (
    SerialBackend,
    SweepSettings,
    expand_grid,
    finished,
    run_sweep,
    split_values,
    threads_per_worker,
)
from fairbench.sweep.job import DONE, FAILED, PROGRESS, RETRY, STARTED, JobEvent
from fairbench.sweep.view import LiveView, PlainView, SweepStatus
from tests.helpers.sweep import SMALL, Recorder, quiet, settings


# ------------------------------------------------------------------------------------------------ the grid


def test_grid_is_the_cartesian_product_with_one_folder_per_point(tmp_path: Path, task_file: Path) -> None:
    grid = {"lr_g": [2e-4, 1e-3], "width": [8, 16]}
    jobs = expand_grid(["vanilla", "repfair"], [str(task_file), "digits"], [0, 1, 2], grid, settings(tmp_path))
    assert len(jobs) == 2 * 2 * 3 * 2 * 2
    assert len({job.run_dir for job in jobs}) == len(jobs)
    combos = {(j.task_id, j.method, j.seed, dict(j.overrides)["lr_g"], dict(j.overrides)["width"]) for j in jobs}
    assert len(combos) == len(jobs)
    keys = {job.key for job in jobs}
    # lr_g=2e-4 is the default: those runs sit where `fairbench run --set width=...` puts them
    assert "digits-bicolor/vanilla@width=16/seed2" in keys
    assert "sweep-digits/repfair@lr_g=0.001,width=8/seed0" in keys
    assert all(j.steps == 4 and j.result_path == j.run_dir / "result.json" for j in jobs)
    # without --steps, each task's own step count
    assert {j.steps for j in expand_grid(["vanilla"], ["digits"], [0], {}, SweepSettings(out=tmp_path))} == {1500}


@pytest.mark.parametrize(
    ("methods", "tasks", "grid", "needle"),
    [
        (["vanilla"], ["no-such-task"], {}, "no-such-task"),
        (["nope"], ["digits"], {}, "nope"),
        (["vanilla"], ["digits"], {"no_such": [1]}, "no_such"),
        (["vanilla"], ["digits"], {"width": [8, "wide"]}, "width"),
        (["vanilla"], ["digits"], {"lr_g": [2e-4, 0.0002]}, "same run"),
        (["vanilla"], ["digits", "digits-bicolor"], {}, "same run"),
    ],
)
def test_a_bad_grid_fails_before_any_job(tmp_path: Path, methods, tasks, grid, needle) -> None:
    with pytest.raises(FairbenchError, match=needle):
        expand_grid(methods, tasks, [0], grid, settings(tmp_path))
    assert not any(tmp_path.iterdir())


def test_set_values_split_on_top_level_commas_only() -> None:
    assert split_values("1e-4, 2e-4") == ["1e-4", "2e-4"]
    assert split_values("[0.5,0.9],[0,0.99]") == ["[0.5,0.9]", "[0,0.99]"]
    with pytest.raises(FairbenchError, match="empty value"):
        split_values("1,,2")


def test_threads_per_worker_divides_the_cores() -> None:
    assert [threads_per_worker(n, cores=16) for n in (1, 2, 3, 16, 40)] == [16, 8, 5, 1, 1]
    assert threads_per_worker(2, cores=2) == 1


def test_cli_user_errors_are_one_line(tmp_path: Path) -> None:
    for args, needle in [
        (["--seeds", "0,x"], "--seeds expects integers"),
        (["--set", "width"], "KEY=V1,V2"),
        (["--set", "width=8", "--set", "width=16"], "given twice"),
        (["--backend", "spark"], "unknown backend"),
        (["--address", "ray://x:1"], "--address"),
        (["--workers", "0"], "--workers must be positive"),
    ]:
        result = CliRunner().invoke(app, ["sweep", "-m", "vanilla", "-t", "digits", "--out", str(tmp_path), *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.output
    assert not any(tmp_path.iterdir())


def test_ray_backend_without_ray_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    args = ["sweep", "-m", "vanilla", "-t", "digits", "--out", str(tmp_path), "--backend", "ray"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip() == "error: --backend ray needs Ray: pip install 'fairbench[ray]'"
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------ running


def test_serial_sweep_scores_like_run_then_score_and_skips_finished_jobs(tmp_path: Path, task_file: Path) -> None:
    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path))
    backend = Recorder(SerialBackend(threads=1))
    outcome = run_sweep(jobs, backend, quiet())
    assert outcome.ok and [s.status for s in outcome.states.values()] == ["done", "done"]
    for job in jobs:
        saved = json.loads(job.result_path.read_text())
        identity = (saved["task"], saved["method"], saved["seed"], saved["train"]["steps"])
        assert identity == ("sweep-digits", "vanilla", job.seed, 4)
        # the same numbers as `fairbench score CHECKPOINT` on the job's checkpoint
        options = ScoreOptions(n_samples=100, device="cpu")
        direct = score_checkpoint(job.run_dir / "checkpoint.pt", options, str(task_file))
        assert saved["metrics"] == json.loads(json.dumps(direct.to_json()))["metrics"]
        assert saved["group_counts"] == direct.group_counts
    kinds = [e.kind for e in backend.events if e.key == jobs[0].key]
    assert kinds[0] == STARTED and kinds[-1] == DONE and PROGRESS in kinds

    # the leaderboard of the sweep: what `fairbench leaderboard` makes of the same result files
    csv_path, md_path = outcome.leaderboard_files
    assert md_path.read_text() == outcome.leaderboard_md and "| vanilla" in outcome.leaderboard_md
    independent = write_leaderboard(tmp_path, tmp_path / "independent")
    assert csv_path.read_text() == independent[0].read_text()

    # rerun: nothing runs, nothing is rewritten
    stamps = [job.result_path.stat().st_mtime_ns for job in jobs]
    again = Recorder(SerialBackend(threads=1))
    outcome = run_sweep(jobs, again, quiet())
    assert again.jobs == [[]] and [s.status for s in outcome.states.values()] == ["skipped", "skipped"]
    assert [job.result_path.stat().st_mtime_ns for job in jobs] == stamps and outcome.leaderboard_md

    # more steps: the old results are stale; training resumes from the saved state (steps 5-6 only)
    longer = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path, steps=6))
    assert not any(finished(job) for job in longer)
    resumed = Recorder(SerialBackend(threads=1))
    run_sweep(longer[:1], resumed, quiet())
    train_steps = [e.done for e in resumed.events if e.kind == PROGRESS and e.phase == "train"]
    assert train_steps and min(train_steps) >= 5 and max(train_steps) == 6
    assert json.loads(longer[0].result_path.read_text())["train"]["steps"] == 6


def test_a_failed_job_is_one_line_and_does_not_stop_the_others(tmp_path: Path, task_file: Path) -> None:
    out = tmp_path / "runs"
    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1, 2], SMALL, settings(out))
    broken = jobs[1]
    broken.run_dir.mkdir(parents=True)
    (broken.run_dir / "trainstate.pt").write_bytes(b"not a training state")
    args = ["sweep", "-m", "vanilla", "-t", str(task_file), "--seeds", "0,1,2", "--set", "width=8", "--steps", "4",
            "-n", "100", "--batch-size", "16", "--out", str(out), "--workers", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {broken.key}: ") and "trainstate.pt" in failed[0]
    assert "Traceback" not in result.output
    assert jobs[0].result_path.is_file() and jobs[2].result_path.is_file() and not broken.result_path.exists()
    # the leaderboard of what finished is printed (stdout), then the paths of its files
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == [str(out / "leaderboard.csv"), str(out / "leaderboard.md")]
    header = next(line for line in lines if line.startswith("| rank |"))
    row = next(line for line in lines if line.startswith("| ") and "vanilla" in line)
    cells = dict(zip(*([c.strip() for c in line.strip("|").split("|")] for line in (header, row))))
    assert (cells["runs"], cells["seeds"]) == ("2", "0, 2")  # the two jobs that finished


# ------------------------------------------------------------------------------------------------ the view


def _status_with_every_state(tmp_path: Path) -> SweepStatus:
    grid = {"lr_g": [1e-3], "lr_d": [1e-3], "beta1": [0.0]}
    jobs = expand_grid(["vanilla", "repfair"], ["mnist-bicolor-imbalanced"], [0, 1, 2], grid, settings(tmp_path))
    status = SweepStatus(jobs)
    keys = [j.key for j in jobs]
    status.skip(keys[0])
    for key in keys[1:4]:
        status.apply(JobEvent(key, STARTED, text="123"))
    status.apply(JobEvent(keys[1], PROGRESS, "train", 1234, 8000))
    status.apply(JobEvent(keys[2], DONE, text="{}"))
    status.apply(JobEvent(keys[3], FAILED, text="boom"))
    status.apply(JobEvent(keys[4], RETRY, text="worker died"))
    return status


def test_live_view_fits_80_columns_and_never_cuts_a_job(tmp_path: Path) -> None:
    status = _status_with_every_state(tmp_path)
    console = Console(width=80, height=40, record=True, force_terminal=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(LiveView(status, console).render())
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    column = _job_column(text)
    assert all(key in column for key in status.states)  # folded over lines, never cut
    assert re.search(r"train +1234/8000 ", text) and "2/6 done, 1 skipped, 2 running, 1 failed" in text


def _job_column(text: str) -> str:
    """The job column's cells read top to bottom: a folded key becomes whole again."""
    lines = text.splitlines()
    width = next(line for line in lines if line.startswith("job")).index("state")
    return "".join(line[:width].strip() for line in lines[1:])


def test_live_view_collapses_rows_that_do_not_fit(tmp_path: Path) -> None:
    status = _status_with_every_state(tmp_path)
    console = Console(width=80, height=10, record=True, force_terminal=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(LiveView(status, console).render())
    text = console.export_text()
    assert "... and 2 more" in text
    column = _job_column(text.split("... and")[0])
    shown = [k for k in status.states if k in column]
    assert len(shown) == 4  # 10 lines of terminal: 4 rows, jobs that run, retry or failed first
    assert {k for k, s in status.states.items() if s.status in ("running", "retry", "failed")} < set(shown)


def test_plain_view_prints_endings_and_periodic_summaries(tmp_path: Path) -> None:
    jobs = expand_grid(["vanilla"], ["digits"], [0, 1], {}, settings(tmp_path))
    status = SweepStatus(jobs)
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    view = PlainView(status, console, interval=0.0)
    with view:
        for event in [JobEvent(jobs[0].key, STARTED), JobEvent(jobs[0].key, PROGRESS, "train", 3, 4),
                      JobEvent(jobs[0].key, DONE), JobEvent(jobs[1].key, FAILED, text="error [x]")]:
            view.update(event, status.apply(event))
    lines = console.export_text().splitlines()
    assert f"done    {jobs[0].key} (0:00)" in lines
    assert f"failed  {jobs[1].key}: error [x]" in lines
    assert f"  {jobs[0].key} train 3/4" in lines
    assert lines[-1].startswith("1/2 done, 0 running, 1 failed")
