"""The HTML board: one static page (inline CSS and JS, no server, no network) drawn from the same boards as
the Markdown and CSV, which stay the source of truth for diffs.

Per task a table that reads like a leaderboard: rank, entry, the primary metric, the main quality metric and
the judged group shares lead (`fairbench.board.columns`; at 1,280 px they are on screen without
scrolling), under human headers whose raw metric name is the hover title, one number format per column.
Then runs, seeds, the other metrics, and one click away each entry's figures (`fairbench report` charts and
sample grids, linked relatively, so the page opens from disk beside its results) and each run's provenance
(task hash, judge sha256, config, versions). Any column sorts on a click; `#sort=KEY` or `#sort=KEY:desc` in
the URL sorts on load, which is also how the headless-browser test checks sorting. What a result file does
not record is shown as not recorded, never guessed.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairbench.board.board import GATE_BOUND, GATE_UNCHECKED, LeaderboardRow, TaskBoard, _column, _feature_network_label
from fairbench.board.columns import ENTRY_COLOURS, METRIC_UNITS, metric_label, ordered_metrics
from fairbench.board.markdown import (
    DISAGREE_MARK,
    FEW_SEEDS_MARK,
    MISSING_MD,
    _arrow,
    _fmt_seeds,
    _fmt_steps,
    _markdown_metrics,
    gate_info,
    metric_formats,
    metric_header,
    rank_text,
    run_shares,
    unrecognisable_text,
)
from fairbench.board.ranking import ALPHA, MIN_SEEDS
from fairbench.results.sidecar import read_report_index

HTML_NAME = "leaderboard.html"
HEADER_COLOUR = "#1f3a5f"  # the page's header band; the screenshot test looks for it
# One per group in the share bars: the boards' colour-blind-safe palette without black (the per-run ticks are
# black) and pale grey (the bar's track is grey).
BAR_COLOURS = tuple(c for c in ENTRY_COLOURS if c not in ("#000000", "#DDDDDD"))

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:HEADER;color:#fff;padding:14px 24px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;font-size:13px;opacity:.9}main{padding:8px 24px 40px}
h2{font-size:18px;margin:28px 0 4px}.info{font-size:13px;color:#444;margin:0 0 8px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;vertical-align:top}
th{background:#eef2f7;cursor:pointer;user-select:none;max-width:9em;text-align:left}td{white-space:nowrap}
td.entry{white-space:normal;min-width:6em;max-width:15em}td.primary{font-weight:600}
th:hover{background:#dde5f0}th.nosort{cursor:default}.wrap{overflow-x:auto}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}td.num{text-align:right;white-space:nowrap}
.shares{min-width:150px}.share{display:flex;align-items:center;gap:4px;font-size:11px}
.share .lbl{width:64px;overflow:hidden;text-overflow:ellipsis}.share .track{width:70px;height:9px;background:#eee;position:relative}
.share .tick{position:absolute;top:-2px;width:2px;height:13px;background:#000;margin-left:-1px}.share .runs{color:#555}
.disagree{font-size:11px;color:#b00}
.share .fill{display:block;height:9px}figure.task img{max-width:100%}.figs img{height:64px;margin:2px;border:1px solid #ccc;background:#fff}
.figs ul{margin:4px 0;padding-left:16px}
details{font-size:12px}details pre{max-width:520px;overflow:auto;background:#f4f4f4;padding:6px;margin:4px 0}
.note{font-size:12px;color:#555;max-width:900px}
.gate-line{font-size:13px;font-weight:600;color:#b00;border-top:2px solid #b00;padding-top:6px;margin:14px 0 6px}
""".replace("HEADER", HEADER_COLOUR)

# Sorting: numbers by value (missing last either way), text by locale. `#sort=KEY[:desc]` sorts on load.
_JS = """
(function(){
function val(td){var v=td.getAttribute('data-v');if(v===null||v==='')return null;
  var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
function sortTable(table,key,desc){
  var ths=table.tHead.rows[0].cells,col=-1;
  for(var i=0;i<ths.length;i++){ths[i].classList.remove('asc','desc');if(ths[i].getAttribute('data-key')===key)col=i;}
  if(col<0)return false;
  var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=val(a.cells[col]),y=val(b.cells[col]);
    if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
    var c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
    return desc?-c:c;});
  rows.forEach(function(r){body.appendChild(r);});
  ths[col].classList.add(desc?'desc':'asc');table.setAttribute('data-sorted',key+(desc?':desc':''));return true;}
function fromHash(){var m=/sort=([^&:]+)(:desc)?/.exec(decodeURIComponent(location.hash));if(!m)return;
  document.querySelectorAll('table.board').forEach(function(t){sortTable(t,m[1],!!m[2]);});}
document.querySelectorAll('table.board').forEach(function(table){
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){
    if(!th.hasAttribute('data-key'))return;th.addEventListener('click',function(){sortTable(table,th.getAttribute('data-key'),th.classList.contains('asc'));});});});
window.addEventListener('hashchange',fromHash);fromHash();
})();
"""


def render_html(boards: Sequence[TaskBoard], out_dir: Path) -> str:
    """The page; figure links are relative to `out_dir`, where the page is written."""
    n_files = sum(board.n_results for board in boards)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>fairbench leaderboard</title>',
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head><body>',
        "<header><h1>fairbench leaderboard</h1>",
        f"<p>Generated by <code>fairbench leaderboard --html</code> from {n_files} result "
        f"file{'' if n_files == 1 else 's'}; leaderboard.md and leaderboard.csv are the source of truth.</p></header><main>",
        '<p class="note">Each cell is the mean ± sample standard deviation over an entry\'s runs (one per training '
        f"seed). ↓ lower is better, ↑ higher is better; {MISSING_MD} marks a metric some run lacks. An entry's rank "
        "is 1 + the number of entries shown better by the primary metric, with its rank interval (best to worst rank "
        "consistent with the decisions) beside it: pairwise tests that use both the seed-to-seed spread and each run's "
        f"own 95% interval, Holm-corrected over all pairs so that a board makes any false claim with probability near "
        f"{ALPHA:g} (leaderboard.md says how); {FEW_SEEDS_MARK} marks fewer than {MIN_SEEDS} runs. Group shares: the bar is the mean "
        "judged (observed) share over runs, each tick and the figures in brackets one run's, in seed order; "
        f"{DISAGREE_MARK} marks runs whose share intervals do not overlap. Quality gate: fairness is ranked only among "
        f"entries whose every run has at most {100 * GATE_BOUND:g}% of its samples unrecognisable (a judge splits noise "
        "evenly); the others follow their board, below the line, with the reason, and are ranked by no metric; runs "
        f"scored before the check are \"{GATE_UNCHECKED}\", ranked as before. Numbers in a column share one format. "
        "Hover a header for its metric's raw name (as in leaderboard.csv); click it to sort.</p>",
    ]
    for board in boards:
        parts += _board_section(board, Path(out_dir))
    parts += ["</main>", f"<script>{_JS}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _board_section(board: TaskBoard, out_dir: Path) -> list[str]:
    e = html.escape
    primary = board.primary_metric
    info = [f"primary metric {e(metric_label(board, primary))} (<code>{e(primary)}</code>) "
            f"{_arrow(board.higher_is_better[primary])}", f"samples per run: {board.n_samples}"]
    fn = _feature_network_label(board.feature_network)
    if fn:
        info.append(f"feature network: {e(fn)}")
    lines = [
        f'<section id="task-{e(board.task)}"><h2>{e(board.task)} (v{board.task_version}, hash '
        f"<code>{board.task_hash[:12]}</code>)</h2>",
        f'<p class="info">{"; ".join(info)}.</p>',
        f'<p class="info">{e(gate_info(board))}.</p>',
        *_board_table(board, out_dir, board.ranked_rows),
    ]
    if board.below_gate_rows:
        lines.append(f'<p class="gate-line">Below the quality gate: not ranked (a run with more than '
                     f"{100 * GATE_BOUND:g}% of its samples unrecognisable).</p>")
        lines += _board_table(board, out_dir, board.below_gate_rows, why=True)
    lines += [*_task_figure(board, out_dir), *_tradeoff_figure(board, out_dir), "</section>"]
    return lines


def _board_table(board: TaskBoard, out_dir: Path, rows: Sequence[LeaderboardRow], why: bool = False) -> list[str]:
    """One sortable table of `rows` in the board's columns; `why`: the quality gate's reason as a column
    (the table below the line)."""
    e = html.escape
    primary = board.primary_metric
    shown = _markdown_metrics(board)
    lead, rest = ordered_metrics(board, shown)
    formats = metric_formats(board, shown)
    show_steps = any(row.train_steps is not None for row in board.rows)
    header = [_th("rank", "rank"), _th("entry", "entry")]
    header += [_metric_th(board, m) for m in lead]
    header += [_th("judged shares (%)", "shares", _SHARES_TITLE)]
    header += [_th("unrecognisable (%)", "unrecognisable", _GATE_TITLE)] if board.gate_checked else []
    header += [_th("runs", "runs"), _th("seeds", "seeds")]
    header += [_metric_th(board, m) for m in rest]
    header += [_th("train steps", "steps")] if show_steps else []
    header += [_th("why below the gate", "why")] if why else []
    header += [_th("figures", ""), _th("provenance", "")]  # not sortable: nothing to order by
    klass = "board below-gate" if why else "board"
    lines = [f'<div class="wrap"><table class="{klass}" data-task="{e(board.task)}"><thead><tr>' + "".join(header)
             + "</tr></thead><tbody>"]
    for row in rows:
        raws = [_raw(run.path) for run in row.runs]
        rank = row.rank[primary]
        cells = [
            _td(rank_text(row, primary), rank, "num"),
            _td(row.entry + (f" {FEW_SEEDS_MARK}" if row.few_seeds else ""), row.entry, "entry", breaks="[,"),
        ]
        cells += [_metric_td(row, m, formats[m], "num primary" if m == primary else "num") for m in lead]
        cells.append(_shares_cell(row.shares, row.seed_shares, row.seeds_disagree))
        if board.gate_checked:
            checked = [share for share in row.gate.shares if share is not None]
            cells.append(_td(unrecognisable_text(row), max(checked) if checked else None, "num"))
        cells += [_td(str(row.n_runs), row.n_runs, "num"), _td(_fmt_seeds(row.seeds), _fmt_seeds(row.seeds))]
        cells += [_metric_td(row, m, formats[m], "num") for m in rest]
        if show_steps:
            steps = row.train_steps
            cells.append(_td(MISSING_MD if steps is None else _fmt_steps(steps), steps, "num"))
        if why:
            cells.append(_td(row.gate.reason, row.gate.reason, "entry"))
        cells.append(f'<td class="figs" data-v="">{_figures(board, row, raws, out_dir)}</td>')
        cells.append(f'<td data-v="">{_provenance(row, raws)}</td>')
        lines.append(f'<tr data-entry="{e(row.entry)}">' + "".join(cells) + "</tr>")
    return lines + ["</tbody></table></div>"]


_GATE_TITLE = ("each run's share of samples the judge's feature maps or the task's domain network cannot place "
               "among real images; more than half in a run puts the entry below the gate")


def _metric_th(board: TaskBoard, name: str) -> str:
    """A human header ("KL to uniform (corrected) ↓"), the raw column name (and KID's unit) as its title."""
    title = _column(board, name) + (f": {METRIC_UNITS[name]}" if name in METRIC_UNITS else "")
    return _th(metric_header(board, name), name, title)


def _metric_td(row: LeaderboardRow, name: str, fmt: Any, cls: str) -> str:
    summary = row.metrics[name]
    return _td(fmt.cell(summary.mean, summary.std, MISSING_MD), summary.mean, cls)


TASK_FIGURE = "figures/{task}.per-condition.png"  # `fairbench conditions`, drawn by leaderboard/regenerate.sh


def _task_figure(board: TaskBoard, out_dir: Path) -> list[str]:
    """The task's per-condition comparison across entries, when one was drawn beside the page."""
    rel = TASK_FIGURE.format(task=board.task)
    if not (out_dir / rel).is_file():
        return []
    href = html.escape(rel)
    return [f'<figure class="task"><a href="{href}"><img src="{href}" alt="share per condition, every entry"></a>'
            "<figcaption>Share of the last group per condition: bars the mean over an entry's seeds, dots the "
            "seeds (<code>fairbench conditions</code>).</figcaption></figure>"]


TRADEOFF_FIGURE = "figures/{task}.fairness-quality.png"  # `python -m fairbench.report.tradeoff`, by regenerate.sh


def _tradeoff_figure(board: TaskBoard, out_dir: Path) -> list[str]:
    """The task's fairness-quality picture, folded (one click away), when one was drawn beside the page."""
    rel = TRADEOFF_FIGURE.format(task=board.task)
    if not (out_dir / rel).is_file():
        return []
    href = html.escape(rel)
    return ['<details class="tradeoff"><summary>fairness against quality: every entry, the fair-by-construction '
            f'reference and the real data</summary><figure class="task"><a href="{href}"><img src="{href}" '
            'alt="fairness against quality, every entry" loading="lazy"></a><figcaption>KL to uniform against FID on '
            "the task's feature network: small marks each run with its 95% intervals, large the mean over runs, stars "
            "the entries fair by construction (groupcond), white crosses the real data at its own KL: the FD between "
            "two halves of the reference (the network's floor) and, grey on the dotted line, the same at the entries' "
            "sample size (FD falls as 1/n).</figcaption></figure></details>"]


_SHARES_TITLE = "mean judged share per group, each run's in brackets; sorts by the largest gap from an equal share"


def _th(label: str, key: str, title: str | None = None) -> str:
    hover = f' title="{html.escape(title)}"' if title else ""
    if not key:
        return f'<th class="nosort"{hover}>{html.escape(label)}</th>'
    return f'<th data-key="{html.escape(key)}"{hover}>{html.escape(label)}</th>'


def _td(text: str, sort_value: Any, cls: str = "", breaks: str = "") -> str:
    """A cell that sorts by `sort_value`; its text may wrap after each character in `breaks` (an entry's
    `repfair[clip_norm=1,` ... at its settings, never mid-word)."""
    v = "" if sort_value is None else (repr(float(sort_value)) if isinstance(sort_value, (int, float)) else str(sort_value))
    klass = f' class="{cls}"' if cls else ""
    shown = html.escape(text)
    for char in breaks:
        shown = shown.replace(char, f"{char}<wbr>")
    return f'<td{klass} data-v="{html.escape(v)}">{shown}</td>'


def _raw(path: Path) -> dict[str, Any]:
    """The run's whole result JSON (records keep only what ranking needs; the page shows provenance too)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _shares_cell(shares: dict[str, float] | None, per_seed: list[dict[str, float]] | None = None,
                 disagree: bool = False) -> str:
    """One small bar per group (mean judged share, in percent) with a tick at each run's share, the runs'
    shares in seed order beside it; sorts by the largest gap from uniform. A mean alone hides a collapse."""
    if shares is None:
        return f'<td data-v="">{MISSING_MD}</td>'
    runs = per_seed if per_seed and len(per_seed) > 1 else []
    bars = []
    for i, (group, share) in enumerate(shares.items()):
        colour = BAR_COLOURS[i % len(BAR_COLOURS)]
        pct = f"{100 * share:.1f}%"
        seeds = run_shares(runs, group)
        ticks = "".join(f'<span class="tick" style="left:{100 * run[group]:.1f}%"></span>' for run in runs)
        title = f"{group} {pct}" + (f" (runs: {seeds})" if runs else "")
        bars.append(
            f'<div class="share" title="{html.escape(title)}"><span class="lbl">{html.escape(group)}</span>'
            f'<span class="track"><span class="fill" style="width:{pct};background:{colour}"></span>{ticks}</span>'
            f"<span>{pct}" + (f' <span class="runs">({seeds})</span>' if runs else "") + "</span></div>"
        )
    if disagree:
        bars.append(f'<div class="disagree" title="two runs\' share intervals do not overlap">{DISAGREE_MARK} seeds disagree</div>')
    gap = max(abs(share - 1 / len(shares)) for share in shares.values())
    return f'<td class="shares" data-v="{gap!r}">' + "".join(bars) + "</td>"


def _run_figures(board: TaskBoard, row: LeaderboardRow, run: Any, raw: dict[str, Any], out_dir: Path) -> list[tuple[str, Path]]:
    """(what, path) of the run's existing figures: its `fairbench report` files (the sidecar's index), then the
    committed grid."""
    found: list[tuple[str, Path]] = []
    listing = read_report_index(run.path, raw)
    base = run.path.parent.resolve()
    named = [("group shares", listing.get("shares")), ("per-condition shares", listing.get("conditions")),
             ("quality per group", listing.get("quality"))]
    samples = listing.get("samples") if isinstance(listing.get("samples"), dict) else {}
    named += [(f"samples judged {group}", rel) for group, rel in sorted(samples.items())]
    for what, rel in named:
        if isinstance(rel, str) and rel.endswith(".png"):
            path = (base / rel).resolve()
            if path.is_relative_to(base) and path.is_file():  # a result file names figures beside itself only
                found.append((what, path))
    legacy = out_dir / "samples" / f"{board.task}-{row.entry}-seed{run.seed}.png"
    if run.seed is not None and legacy.is_file():
        found.append(("sample grid, one row per condition", legacy))
    return found


def _figures(board: TaskBoard, row: LeaderboardRow, raws: Sequence[dict[str, Any]], out_dir: Path) -> str:
    """One click away, not a wide column before the numbers: the first run's thumbnails and every run's
    figures in a fold."""
    per_run = [(run, _run_figures(board, row, run, raw, out_dir)) for run, raw in zip(row.runs, raws)]
    per_run = [(run, figs) for run, figs in per_run if figs]
    if not per_run:
        return MISSING_MD

    def link(run: Any, what: str, path: Path, thumb: bool) -> str:
        href = html.escape(Path(os.path.relpath(path, out_dir)).as_posix())
        seed = "" if run.seed is None else f" seed {run.seed}"
        title = html.escape(f"{row.entry}{seed}: {what}")
        if thumb:
            return f'<a href="{href}" title="{title}"><img src="{href}" alt="{title}" loading="lazy"></a>'
        return f'<li><a href="{href}">{html.escape(f"{what}{seed}")}</a></li>'

    first_run, first_figs = per_run[0]
    thumbs = "".join(link(first_run, what, path, True) for what, path in first_figs[:3])
    listing = "".join(link(run, what, path, False) for run, figs in per_run for what, path in figs)
    n = sum(len(figs) for _, figs in per_run)
    return f"<details><summary>{n} figure{'' if n == 1 else 's'}</summary>{thumbs}<ul>{listing}</ul></details>"


def provenance(raw: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to trust a run: the task and judge it was scored with, its config and versions."""
    judge = raw.get("judge") or {}
    sub = raw.get("submission") or {}
    config = raw.get("config", (raw.get("train") or {}).get("config"))
    return {
        "task": f"{raw.get('task')} v{raw.get('task_version')}",
        "task_hash": raw.get("task_hash"),
        "judge": f"{judge.get('id')} sha256 {judge.get('sha256')}",
        "submission": f"{sub.get('kind')} sha256 {sub.get('sha256')}",
        "seed": raw.get("seed"),
        "name": raw.get("name") or "not given (derived from the method and its config)",
        "config": config if config is not None else "not recorded",
        "config_hash": raw.get("config_hash") or "not recorded",
        "train": raw.get("train"),
        "feature_network": raw.get("feature_network"),
        "versions": raw.get("versions"),
        "git_revision": raw.get("git_revision"),
        "device": raw.get("device"),
    }


def _provenance(row: LeaderboardRow, raws: Sequence[dict[str, Any]]) -> str:
    """Every run's provenance in one fold (one line per entry, however many seeds it has)."""
    out = []
    for run, raw in zip(row.runs, raws):
        label = f"seed {run.seed}" if run.seed is not None else run.path.name
        text = json.dumps(provenance(raw), indent=1, sort_keys=False, default=str)
        out.append(f"<div>{html.escape(label)}</div><pre>{html.escape(text)}</pre>")
    n = len(out)
    return f"<details><summary>{n} run{'' if n == 1 else 's'}</summary>{''.join(out)}</details>"
