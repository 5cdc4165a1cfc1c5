"""Shared fixtures: an isolated fairbench home per test, one trained checkpoint per session, real MNIST."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from tests.helpers import REPO_ROOT

# The networks here are tiny: one intra-op thread is as fast on an idle machine and avoids a tenfold slowdown
# from OpenMP spin-waiting when other processes share the cores. Results do not depend on it.
torch.set_num_threads(1)

# Property tests draw the same examples on every run, so `make test` on a clean clone cannot turn red by chance;
# HYPOTHESIS_PROFILE=explore draws fresh ones (how the ln k case in test_statistics.py was found).
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(autouse=True)
def _close_figures():  # type: ignore[no-untyped-def]
    """Tests that inspect a figure keep it open; pyplot would hold every one until the session ends."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing a test does may write to ~/.cache or reach the network."""
    home = tmp_path_factory.mktemp("fairbench-home")
    monkeypatch.setenv("FAIRBENCH_HOME", str(home))
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "1")
    monkeypatch.delenv("FAIRBENCH_DEBUG", raising=False)  # CLI error tests expect the one-line form
    return home


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vanilla` trained for 60 steps on digits-bicolor (CPU, seed 0): a real checkpoint, made once."""
    from fairbench.task_registry import get_task
    from fairbench.training import RunOptions, train

    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRBENCH_HOME", str(tmp_path_factory.mktemp("session-home")))
        mp.setenv("FAIRBENCH_OFFLINE", "1")
        path = train(
            RunOptions(
                method="vanilla",
                task=get_task("digits-bicolor"),
                seed=0,
                steps=60,
                out=out,
                device="cpu",
                checkpoint_every=30,
            )
        )
    assert path.is_file()
    return path


def _shared_data_root() -> Path:
    root = Path(os.environ.get("FAIRBENCH_DATA", "../shared/data")).expanduser()
    return root if root.is_absolute() else (REPO_ROOT / root).resolve()


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The data root holding real MNIST (torchvision layout); tests that need it skip without it."""
    root = _shared_data_root()
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST not found under {root}/MNIST/raw (set FAIRBENCH_DATA)")
    return root


@pytest.fixture(scope="session")
def utkface_crops() -> Path:
    """UTKFace's aligned 200x200 face crops (`crop_part1`); tests that need them skip without them."""
    folder = _shared_data_root() / "UTKFace" / "crop_part1"
    if not folder.is_dir():
        pytest.skip(f"UTKFace crops not found under {folder} (set FAIRBENCH_DATA)")
    return folder
