"""What the sweep tests share: a sweep's settings for tiny jobs, a console that prints nowhere, and a backend
that records the events the driver saw."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from fairbench.sweep import SweepSettings
from fairbench.sweep.job import JobEvent

SMALL = {"width": [8]}


def settings(out: Path, **kw) -> SweepSettings:
    base = dict(out=out, steps=4, samples=100, device="cpu", batch_size=16, checkpoint_every=2)
    base.update(kw)
    return SweepSettings(**base)


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115


class Recorder:
    """A backend wrapper that keeps every event the driver saw."""

    def __init__(self, backend) -> None:
        self.backend, self.events, self.jobs = backend, [], []
        self.name = backend.name

    def run(self, jobs, on_event) -> None:
        self.jobs.append([j.key for j in jobs])

        def record(event: JobEvent) -> None:
            self.events.append(event)
            on_event(event)

        self.backend.run(jobs, record)
