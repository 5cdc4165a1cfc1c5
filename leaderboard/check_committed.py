"""Check the committed board against its result files, as `make test` does after the test suite:

    python leaderboard/check_committed.py     (exit 1, naming what differs; 0 when all holds)

- every committed result (leaderboard/results and archive/) loads through the result contract's strict reader
  (`python -m fairbench.results check`), every task folder makes a board and every file is on it;
- leaderboard.md, leaderboard.csv and leaderboard.html are what the results give today, byte for byte (else run
  `make leaderboard` and commit them);
- with Chromium on PATH, each board's first row shows its primary metric, the judged shares and FID within a
  1,280 px window (cifar10-lt's once fell off-screen behind a column of thumbnails); without it, said and skipped.

These read the real, changing results by design, so they live here and not in the tests, which read fixtures only.
The freshness of docs/findings.md is checked the same way by `python leaderboard/findings.py --check`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fairbench.board import TaskBoard, build_leaderboard, read_results, render_html, write_leaderboard
from fairbench.board.screenshot import find_chromium, probe_layout
from fairbench.results.check import check
from fairbench.results.io import result_paths

BOARD = Path(__file__).resolve().parent
RESULTS = BOARD / "results"
ARCHIVE = BOARD / "archive"

def results_load(boards: list[TaskBoard]) -> list[str]:
    """Every committed result loads strictly, every task folder makes a board, and every result file is on it."""
    problems = check([RESULTS] + ([ARCHIVE] if ARCHIVE.is_dir() else []))[1]
    by_task = {b.task: b for b in boards}
    folders = {p.name for p in RESULTS.iterdir() if p.is_dir()}
    if set(by_task) != folders:
        problems.append(f"task folders {sorted(folders)} but boards {sorted(by_task)}")
    for board in by_task.values():
        files = len(result_paths(RESULTS / board.task))
        runs = sum(row.n_runs for row in board.rows)
        if runs != files:
            problems.append(f"{board.task}: {files} result files but {runs} runs on the board")
    return problems


def board_rebuilds(boards: list[TaskBoard], scratch: Path) -> list[str]:
    """leaderboard.{csv,md,html} as written from today's results; the page's figure links as seen from here."""
    csv_path, md_path = write_leaderboard(RESULTS, scratch)
    problems = [f"leaderboard/{path.name} differs from a rebuild; run `make leaderboard` and commit it"
                for path in (csv_path, md_path) if path.read_bytes() != (BOARD / path.name).read_bytes()]
    page = render_html(boards, BOARD)
    if page != (BOARD / "leaderboard.html").read_text(encoding="utf-8"):
        problems.append("leaderboard/leaderboard.html differs from a rebuild; run `make leaderboard` and commit it")
    return problems


def board_leads_on_screen(boards: list[TaskBoard], scratch: Path, width: int = 1280, height: int = 800) -> list[str]:
    """The primary metric, the shares and FID of each board's first row lie within a `width` px window."""
    probe, console = probe_layout(render_html(boards, BOARD), BOARD, scratch, width, height)
    problems = [f"the page logged to the console: {line}" for line in console]
    if probe is None:
        return [*problems, "Chromium's DOM has no probe: the page's script did not run"]
    if [t["task"] for t in probe["tables"]] != [b.task for b in boards]:
        problems.append(f"tables {[t['task'] for t in probe['tables']]} are not the boards {[b.task for b in boards]}")
    for table, board in zip(probe["tables"], boards):
        for key in [board.primary_metric, "shares"] + [m for m in ("fid",) if m in board.metric_names]:
            left, right, _ = table["cells"][key]
            if not 0 <= left < right <= probe["width"]:
                problems.append(f"{board.task}: column {key} at {left:.0f}-{right:.0f} px, off a {width} px screen")
    top = probe["tables"][0]["cells"][boards[0].primary_metric][2] if probe["tables"] else -1
    if not 0 <= top < probe["height"]:
        problems.append(f"the first board's first row starts at {top} px, below a {height} px screen")
    return problems


def main() -> int:
    if not RESULTS.is_dir():
        print("no committed results in leaderboard/results: nothing to check")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        boards = build_leaderboard(read_results(RESULTS))
        problems = results_load(boards) + board_rebuilds(boards, scratch)
        if find_chromium() is None:
            print("no Chromium on PATH: the on-screen check of the board is skipped (Debian: apt-get install chromium)")
        else:
            problems += board_leads_on_screen(boards, scratch)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
