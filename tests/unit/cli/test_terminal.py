"""Terminal output at 80 columns and through pipes: whole task ids, readable progress, plain lines when not a
terminal, unwrapped Markdown, and every user error as exactly one `error:` line."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fairbench.cli import app, tasks_table
from fairbench.cli.common import PlainProgress, progress_bar
from fairbench.task_registry import list_tasks

DIGITS = "digits-bicolor"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def fairbench(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The real entry point through pipes (not a terminal), as under make or in a log."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "fairbench", *args], capture_output=True, text=True, env=env,
                          timeout=300)


# ----------------------------------------------------------------------------------------------- tables


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_tasks_table_never_cuts_ids_and_fits(width: int) -> None:
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    console.print(tasks_table(list_tasks(), console))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = text.splitlines()
    longest_id = max(len(s.id) for s in list_tasks())
    if width >= longest_id + 4:  # room for the id column itself
        assert max(map(len, lines)) <= width, text
    for spec in list_tasks():
        assert re.search(rf"│ {re.escape(spec.id)} +│", text), f"{spec.id} cut or missing:\n{text}"
    if width >= 200:
        assert "not shown" not in text and "hash" in text
    else:
        shown = lines[1]
        dropped = re.search(r"not shown at this width: (.*) \(see --json\)", " ".join(text.split()))
        if dropped:  # what is dropped is said, and really is not there
            for col in dropped.group(1).split(", "):
                assert f" {col} " not in shown


def test_tasks_through_a_pipe_at_80_columns() -> None:
    out = fairbench("tasks", columns=80)
    assert out.returncode == 0, out.stderr
    assert max(map(len, out.stdout.splitlines())) <= 80
    for spec in list_tasks():
        assert f" {spec.id} " in out.stdout


# --------------------------------------------------------------------------------------------- progress


@pytest.mark.parametrize("width", [60, 80, 120])
def test_progress_bar_fits_the_terminal_and_keeps_the_counts(width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width)
    with progress_bar(console) as bar:
        handle = bar.add_task("repfair seed 0 on mnist-bicolor-imbalanced", total=4000, info="")
        bar.update(handle, completed=3320, info="loss_d=1.234 loss_g=0.567 grad_norm=12.3")
    frames = [f for f in re.split(r"[\r\n]", ANSI.sub("", buf.getvalue())) if f.strip()]
    assert frames
    for frame in frames:
        assert len(frame) <= width, frame
    assert "3320/4000" in frames[-1] and "repfair seed 0 on mn" in frames[-1]
    if width >= 120:
        assert "loss_d=1.234" in frames[-1]


def test_plain_progress_prints_start_periodic_and_end_lines() -> None:
    now = [0.0]
    buf = io.StringIO()
    progress = PlainProgress(Console(file=buf, width=80), interval_s=10.0, clock=lambda: now[0])
    with progress:
        handle = progress.add_task("vanilla seed 0 on digits-bicolor", total=100, info="")
        for step in range(1, 101):
            now[0] = step * 0.5  # 50 s in all: lines at the start, every 10 s, and at the end
            progress.update(handle, completed=step, info=f"loss={step / 100:.2f}")
        progress.update(handle, completed=100)  # after the end: nothing more
    lines = buf.getvalue().splitlines()
    assert lines[0] == "vanilla seed 0 on digits-bicolor: 1/100 (1%) 0:00:00 loss=0.01"
    assert lines[-1] == "vanilla seed 0 on digits-bicolor: 100/100 (100%) 0:00:50 loss=1.00"
    assert len(lines) == 6  # 0.5 s, 10.5, 20.5, 30.5, 40.5 and the end at 50 s
    assert "21/100 (21%) 0:00:10" in lines[1]


def test_repfair_progress_shows_through_a_pipe(tmp_path: Path) -> None:
    out = fairbench("run", "-m", "repfair", "-t", DIGITS, "--steps", "4", "--device", "cpu", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert any(line.startswith("repfair seed 0 on digits-bicolor: 4/4 (100%)") for line in lines), out.stderr
    assert not ANSI.search(out.stderr) and "\r" not in out.stderr  # plain text, no bar drawing


# --------------------------------------------------------------------------------------- leaderboard


def test_leaderboard_prints_the_markdown_unwrapped(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for seed in range(2):
        kl = 0.1 + seed / 10
        (results / f"r{seed}.json").write_text(json.dumps({
            "schema": "fairbench-result/1", "task": DIGITS, "task_version": 1, "task_hash": "a" * 64,
            "method": "a-method-with-a-rather-long-name", "seed": seed, "n_samples": 1000,
            "submission": {"kind": "checkpoint", "name": "x", "path": "x", "sha256": "0" * 64},
            "train": {"steps": 10}, "groups": ["black", "white"],
            "group_proportions": {"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
            "metrics": {"kl_uniform_corrected": {"value": kl, "ci95": [kl, kl], "higher_is_better": False}},
        }))
    out = fairbench("leaderboard", "--results", str(results), "--out", str(tmp_path), columns=40)
    assert out.returncode == 0, out.stderr
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert out.stdout.startswith(markdown)  # every table row whole, whatever the width
    assert any(len(line) > 80 and line.startswith("| 1 |") for line in out.stdout.splitlines())


# ------------------------------------------------------------------------------------------------ errors


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "-m", "vanilla", "-t", DIGITS, "--seed", "abc"], "--seed"),
        (["grid"], "Missing argument"),
        (["tasks", "--bogus"], "--bogus"),
        (["no-such-command"], "no-such-command"),
        (["score", "--samples", "many", "x.pt"], "--samples"),
    ],
)
def test_usage_errors_are_one_error_line(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    line = one_error_line(result.stderr)
    assert needle in line and "╭" not in line and "--help" in line


def test_usage_error_through_a_pipe_at_80_columns() -> None:
    out = fairbench("run", "-m", "vanilla", "-t", DIGITS, "--seed", "abc")
    assert out.returncode == 2 and out.stdout == ""
    assert "--seed" in one_error_line(out.stderr)


def test_corrupt_checkpoint_names_no_internal_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)  # looks like a zip, is not one
    result = CliRunner().invoke(app, ["score", str(bad), "--device", "cpu"])
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line == f"error: {bad}: not a readable checkpoint (corrupt or truncated)"


def test_errors_after_a_progress_bar_are_still_one_line(tmp_path: Path) -> None:
    """A user error raised while the progress display is up (an image set of the wrong kind) ends as one line."""
    wrong = tmp_path / "images.txt"
    wrong.write_text("not images")
    result = CliRunner().invoke(app, ["score", "--task", DIGITS, "--images", str(wrong), "--device", "cpu"])
    assert result.exit_code == 2
    one_error_line(result.stderr)


def test_help_and_bare_groups_still_show_help() -> None:
    assert CliRunner().invoke(app, ["--help"]).exit_code == 0
    for args in ([], ["judge"]):
        result = CliRunner().invoke(app, args)
        assert "Usage:" in result.output and "error:" not in result.output and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_output_cut_short_by_the_reader_is_no_traceback() -> None:
    """`fairbench run --help | head -2`: the reader closes the pipe; the command stops without a traceback."""
    proc = subprocess.run(f"'{sys.executable}' -m fairbench run --help | head -2", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
