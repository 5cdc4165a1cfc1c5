"""The leaderboard: a pure function of result files (`fairbench.results`).

Data flow, one module each:

- `records`: `read_results` loads every `fairbench-result/1` JSON under a folder into checked `ResultRecord`s;
- `board`: `build_leaderboard` groups them by task, refuses what cannot be compared, and aggregates each entry
  (a method, or an image-set submission's name) over its runs; entries with a run whose samples are mostly
  unrecognisable fall below the quality gate (`board.GATE_BOUND`): listed last, with the reason, ranked by nothing;
- `ranking`: ranks entries and gives each its rank interval, ranking one above another only when a pairwise
  test (seed spread with each run's within-run interval as a floor; squared distances on the square-root scale)
  rejects equal means after Holm's correction over all pairs (family-wise error 0.05); entries not shown to
  differ share a rank, and an entry with one run is compared with none (the module docstring says why);
- `markdown`, `csv`, `html`: the renderers (`leaderboard.md`, `leaderboard.csv`, `leaderboard_runs.csv` with
  every run's values on demand, and `leaderboard.html`, a static page drawn from the same boards).

`write_leaderboard` runs the whole flow and writes the files atomically. Output is byte-identical for the same
inputs: everything is sorted and nothing time- or path-dependent is written.
"""

from __future__ import annotations

from pathlib import Path

from fairbench.atomic import write_text
from fairbench.board.board import (
    DEFAULT_PRIMARY_METRIC,
    FEATURE_METRICS,
    LeaderboardRow,
    MetricSummary,
    TaskBoard,
    build_leaderboard,
)
from fairbench.board.html import HTML_NAME, render_html
from fairbench.board.csv import leaderboard_frame, render_csv, render_runs_csv, runs_frame
from fairbench.board.markdown import HEADLINE_METRICS, MISSING_MD, render_markdown
from fairbench.board.ranking import ALPHA, MIN_SEEDS, significance_ranks, significantly_better, welch_p_value
from fairbench.board.records import RESULT_SCHEMA, RecordMetric, ResultRecord, read_result, read_results

RUNS_CSV = "leaderboard_runs.csv"

__all__ = [
    "ALPHA",
    "DEFAULT_PRIMARY_METRIC",
    "FEATURE_METRICS",
    "HTML_NAME",
    "HEADLINE_METRICS",
    "MIN_SEEDS",
    "MISSING_MD",
    "RESULT_SCHEMA",
    "RUNS_CSV",
    "LeaderboardRow",
    "MetricSummary",
    "RecordMetric",
    "ResultRecord",
    "TaskBoard",
    "build_leaderboard",
    "leaderboard_frame",
    "read_result",
    "read_results",
    "render_csv",
    "render_html",
    "render_markdown",
    "render_runs_csv",
    "runs_frame",
    "significance_ranks",
    "significantly_better",
    "welch_p_value",
    "write_leaderboard",
]


def write_leaderboard(
    results_dir: Path, out_dir: Path, primary_metric: str | None = None, per_seed: bool = False, html: bool = False
) -> tuple[Path, Path]:
    """Read results, build the boards, write `leaderboard.csv` and `leaderboard.md` atomically into `out_dir`.

    With `per_seed`, the Markdown also lists every run's values after each board, and `leaderboard_runs.csv`
    (one row per result file, every metric) is written next to the others (`out_dir / RUNS_CSV`); with `html`,
    the page `out_dir / HTML_NAME`.
    Returns the paths of leaderboard.csv and leaderboard.md.
    """
    results = Path(results_dir)
    boards = build_leaderboard(read_results(results), primary_metric)
    out = Path(out_dir)
    csv_path, md_path = out / "leaderboard.csv", out / "leaderboard.md"
    # render everything before writing anything
    texts = {csv_path: render_csv(boards), md_path: render_markdown(boards, per_seed=per_seed)}
    if per_seed:
        texts[out / RUNS_CSV] = render_runs_csv(boards, results)
    if html:
        texts[out / HTML_NAME] = render_html(boards, out)
    for path, text in texts.items():
        write_text(path, text)
    return csv_path, md_path
