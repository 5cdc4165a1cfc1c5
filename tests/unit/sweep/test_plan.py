"""`fairbench sweep --plan`: each job's state read from its run folder, and the run lock's holder, running nothing.

The jobs are built by hand into every state (scored, trained but not scored, partly trained, untouched, held by
another process) with the same training code a sweep uses, on a width-8 generator of the digits task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.locks import lock_holder, run_lock
from fairbench.sweep import SerialBackend, SweepSettings, expand_grid, run_sweep
from fairbench.sweep.plan import DONE, NEW, RESUME, SCORE, plan_job, render_plan
from fairbench.task_registry import get_task
from fairbench.training import RunOptions, saved_step, train
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT
linux_locks = pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="reads Linux's /proc/locks")


def _task_file(folder: Path) -> Path:
    text = (REPO / "tasks" / "digits-bicolor.yaml").read_text()
    text = text.replace("\nid: digits-bicolor", "\nid: plan-digits").replace("aliases: [digits]", "aliases: []")
    path = folder / "plan-digits.yaml"
    path.write_text(text[: text.index("# Quality:")])  # no quality section: scoring in a second
    return path


def _args(out: Path, task: Path) -> list[str]:
    return ["sweep", "-m", "vanilla", "-t", str(task), "--seeds", "0,1,2,3", "--set", "width=8", "--steps", "4",
            "-n", "100", "--batch-size", "16", "--checkpoint-every", "2", "--device", "cpu", "--out", str(out)]


def _train_only(task: Path, out: Path, seed: int, steps: int) -> None:
    options = RunOptions(method="vanilla", task=get_task(str(task)), seed=seed, steps=steps, out=out, device="cpu",
                         batch_size=16, checkpoint_every=2, overrides={"width": 8})
    train(options)


def _files(out: Path) -> list[Path]:
    """Every file of the runs, but the lock files: the test's own `run_lock` writes its pid into one."""
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".lock")


@linux_locks
def test_plan_tells_every_state_and_the_steps_left_without_running_anything(tmp_path: Path) -> None:
    task, out = _task_file(tmp_path), tmp_path / "runs"
    settings = SweepSettings(out=out, steps=4, samples=100, device="cpu", batch_size=16, checkpoint_every=2)
    jobs = expand_grid(["vanilla"], [str(task)], [0, 1, 2, 3], {"width": [8]}, settings)
    run_sweep(jobs[:1], SerialBackend(threads=1))  # seed 0: trained and scored
    _train_only(task, out, seed=1, steps=4)  # seed 1: trained to the end, never scored
    _train_only(task, out, seed=2, steps=2)  # seed 2: stopped at step 2 of 4
    assert [saved_step(job.run_dir) for job in jobs] == [4, 4, 2, None]
    files_before = _files(out)
    stamps = [p.stat().st_mtime_ns for p in files_before]

    with run_lock(jobs[2].run_dir):  # seed 2 is being trained by "someone": this process
        plans = [plan_job(job) for job in jobs]
        cli = CliRunner().invoke(app, [*_args(out, task), "--plan"])
    assert [(p.state, p.step, p.holder) for p in plans] == [
        (DONE, 4, None), (SCORE, 4, None), (RESUME, 2, os.getpid()), (NEW, 0, None)
    ]
    assert [p.steps_left for p in plans] == [0, 0, 2, 4]
    assert cli.exit_code == 0, cli.output
    lines = cli.output.splitlines()
    assert len(lines) == 5 and all(line.startswith(job.key) for line, job in zip(lines, jobs))
    assert lines[0].endswith("done") and "not scored yet" in lines[1] and lines[3].endswith("not started")
    assert "saved at step 2 of 4; in use now by pid" in lines[2]
    assert lines[4] == (
        "4 jobs: 1 done, 1 to score, 1 partly trained, 1 not started (1 in use now); 6 of 16 training steps left"
    )
    # it ran nothing: the same files, untouched, and no result for the jobs that had none
    after = _files(out)
    assert after == files_before and [p.stat().st_mtime_ns for p in after] == stamps
    assert not any(job.result_path.exists() for job in jobs[1:])
    assert render_plan(plans).splitlines()[-1] == lines[4]


@linux_locks
def test_lock_holder_names_another_process_only_while_it_holds_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    assert lock_holder(folder) is None  # no folder, no lock file
    holder = textwrap.dedent(f"""
        from fairbench.locks import run_lock
        import sys
        with run_lock({str(folder)!r}):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert lock_holder(folder) == proc.pid
        with pytest.raises(FairbenchError, match=f"pid {proc.pid}"):  # the lock it reports is the one runs take
            with run_lock(folder):
                pass
    finally:
        proc.communicate("\n", timeout=30)
    assert (folder / ".lock").exists() and lock_holder(folder) is None  # the file stays, the lock is gone


def test_saved_step_refuses_a_file_that_is_not_a_training_state(tmp_path: Path) -> None:
    import torch

    torch.save({"step": 3}, tmp_path / "trainstate.pt")
    with pytest.raises(FairbenchError, match="not a fairbench training state"):
        saved_step(tmp_path)
    (tmp_path / "trainstate.pt").write_bytes(b"garbage")
    with pytest.raises(FairbenchError, match="not a readable training state"):
        saved_step(tmp_path)
    assert saved_step(tmp_path / "elsewhere") is None
