"""`fairbench sweep --plan`: where each job of a sweep stands, read from its run folder, without running any.

A campaign outlives the sessions and machines that run it; before starting (or handing part of it to another
machine) one wants to know which jobs are finished, which resume from a saved step, which some process is
training right now, and how many training steps are left. The answer comes from the same files the sweep
itself trusts: the result (`existing_result`: the run folder's or, given one, the board's), the training state
(`saved_step`) and the run lock (`lock_holder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fairbench.locks import lock_holder
from fairbench.sweep.job_grid import SweepJob, existing_result
from fairbench.training import saved_step

DONE, BOARD, SCORE, RESUME, NEW = "done", "on the board", "to score", "resumes", "not started"


@dataclass(frozen=True)
class JobPlan:
    key: str
    state: str  # DONE, BOARD (its result is in the board folder), SCORE (trained, no result), RESUME (at `step`), NEW
    step: int  # training steps saved so far (the job's steps when DONE)
    steps: int
    holder: int | None = None  # pid of the process training or scoring it now

    @property
    def steps_left(self) -> int:
        return 0 if self.state in (DONE, BOARD, SCORE) else self.steps - self.step

    def describe(self) -> str:
        text = {
            DONE: "done",
            BOARD: "on the board",
            SCORE: f"trained ({self.steps} steps), not scored yet",
            RESUME: f"saved at step {self.step} of {self.steps}",
            NEW: "not started",
        }[self.state]
        return text if self.holder is None else f"{text}; in use now by pid {self.holder}"


def plan_job(job: SweepJob, board: Path | None = None) -> JobPlan:
    holder = lock_holder(job.run_dir)
    found = existing_result(job, board)
    if found is not None:
        return JobPlan(job.key, DONE if found == job.result_path else BOARD, job.steps, job.steps, holder)
    step = saved_step(job.run_dir)
    if step is None:
        return JobPlan(job.key, NEW, 0, job.steps, holder)
    # A state saved beyond this sweep's --steps (an earlier, longer sweep) is trained enough: it is scored.
    state = SCORE if step >= job.steps and (job.run_dir / "checkpoint.pt").is_file() else RESUME
    return JobPlan(job.key, state, min(step, job.steps), job.steps, holder)


def render_plan(plans: list[JobPlan]) -> str:
    """One line per job, then a summary line: counts by state and the training steps left."""
    width = max(len(plan.key) for plan in plans)
    lines = [f"{plan.key:<{width}}  {plan.describe()}" for plan in plans]
    counts = {state: sum(plan.state == state for plan in plans) for state in (DONE, BOARD, SCORE, RESUME, NEW)}
    running = sum(plan.holder is not None for plan in plans)
    parts = [f"{counts[DONE]} done"]
    optional = ((BOARD, "on the board"), (SCORE, "to score"), (RESUME, "partly trained"))
    parts += [f"{counts[s]} {label}" for s, label in optional if counts[s]]
    parts.append(f"{counts[NEW]} not started")
    left = sum(plan.steps_left for plan in plans)
    total = sum(plan.steps for plan in plans)
    summary = f"{len(plans)} jobs: {', '.join(parts)}"
    summary += f" ({running} in use now)" if running else ""
    lines.append(f"{summary}; {left:,} of {total:,} training steps left")
    return "\n".join(lines) + "\n"
