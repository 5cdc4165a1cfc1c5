"""FAIRBENCH_OFFLINE=1 with the network cut off: every command works from local files, or fails in one line.

Sockets are replaced by a recorder that raises, and each test asserts the recorder was never called, so a
command that merely *tried* the network (and recovered) fails here too. The digits task needs nothing but
scikit-learn's bundled data; MNIST with an empty --data-root must name the missing files and the folder.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairbench import data
from fairbench.cli import app
from fairbench.data import MNIST_FILES, MNIST_SHA256
from fairbench.task_registry import get_task

DIGITS = "digits-bicolor"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    attempts: list[str] = []

    def refuse(name: str):
        def blocked(*args, **kwargs):
            attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise OSError(f"network access blocked by the test ({name})")

        return blocked

    monkeypatch.setenv("FAIRBENCH_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    yield attempts
    assert attempts == [], f"offline mode touched the network: {attempts}"


def ok(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    assert "Traceback" not in result.output
    return result.stdout


def test_the_blocker_really_blocks(no_network: list[str]) -> None:
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("example.org", 443), timeout=1)
    assert no_network == ["create_connection(('example.org', 443),)"]
    no_network.clear()


def test_listing_commands_work_offline(no_network: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # keep rich from wrapping task ids inside table cells
    assert DIGITS in ok("tasks")
    assert DIGITS in {row["id"] for row in json.loads(ok("tasks", "--json"))}
    assert "vanilla:" in ok("methods", "vanilla")


def test_train_score_grid_leaderboard_offline(no_network: list[str], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    ckpt = Path(ok("run", "--method", "vanilla", "--task", DIGITS, "--steps", "3", "--out", str(runs),
                   "--device", "cpu").strip().splitlines()[-1])
    assert ckpt.is_file()
    results = tmp_path / "results"
    result = json.loads(ok("score", str(ckpt), "--samples", "200", "--device", "cpu", "--json",
                           "--out", str(results / "vanilla.json")))
    assert result["n_samples"] == 200 and (results / "vanilla.json").is_file()

    split = data.load_split(get_task(DIGITS), "test")
    npz = tmp_path / "real.npz"
    np.savez(npz, images=split.images.numpy().transpose(0, 2, 3, 1)[:200], labels=split.labels.numpy()[:200])
    ok("score", "--task", DIGITS, "--images", str(npz), "--device", "cpu", "--out", str(results / "real.json"))

    grid = tmp_path / "grid.png"
    assert ok("grid", str(ckpt), "--out", str(grid)).strip() == str(grid)
    assert grid.stat().st_size > 0

    board = tmp_path / "board"
    ok("leaderboard", "--results", str(results), "--out", str(board))
    assert "vanilla" in (board / "leaderboard.md").read_text()


def test_judge_eval_and_train_offline(no_network: list[str], tmp_path: Path) -> None:
    assert "accuracy" in ok("judge", "eval", "--task", DIGITS)
    out = ok("judge", "train", "--task", DIGITS, "--out", str(tmp_path / "judges"))
    assert "accuracy" in out and "sha256" in out
    assert any((tmp_path / "judges").iterdir())


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (["run", "--method", "vanilla", "--task", "mnist-bicolor", "--steps", "2", "--device", "cpu"], "train"),
        (["judge", "eval", "--task", "mnist-bicolor"], "test"),
        (["judge", "train", "--task", "mnist-bicolor"], "train"),
    ],
    ids=["run", "judge-eval", "judge-train"],
)
def test_mnist_with_empty_data_root_names_the_files(
    args: list[str], part: str, no_network: list[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    extra = ["--data-root", str(empty)]
    if args[0] == "run":
        extra += ["--out", str(tmp_path / "runs")]
    elif args[1] == "train":
        extra += ["--out", str(tmp_path / "judges")]
    result = CliRunner().invoke(app, args + extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith("error:") and "Traceback" not in result.output
    assert str(empty / "MNIST" / "raw") in line
    for name in MNIST_FILES[part]:
        assert name in line and MNIST_SHA256[name] in line
    assert "FAIRBENCH_OFFLINE" in line
    assert not (tmp_path / "runs").exists(), "nothing is written for a run that cannot start"
