"""The HTML leaderboard: content drawn from the boards, offline, escaped; then rendered in headless Chromium
(sorting, no console errors, a screenshot with the header band and a drawn table)."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fairbench.board import HTML_NAME, build_leaderboard, read_results, write_leaderboard
from fairbench.board.html import BAR_COLOURS, HEADER_COLOUR
from fairbench.board.screenshot import find_chromium, probe_layout, run_chromium, screenshot
from fairbench.results.sidecar import write_report_index

TASK_HASH = "c" * 64
JUDGE_SHA = "d" * 64
# (entry, seed, kl, observed share of "black"); gamma has one run, so it is flagged with a dagger
RUNS = [("alpha", s, 0.10 + s / 100, 0.55) for s in range(3)]
RUNS += [("beta", s, 0.40 + s / 100, 0.80) for s in range(3)]
RUNS += [("gamma", 0, 0.25, 0.30)]


def result(entry: str, seed: int, kl: float, black: float) -> dict[str, Any]:
    config = {"lr": 0.0002, "entry": entry}
    from fairbench.entry_identity import config_hash

    return {
        "schema": "fairbench-result/1", "task": "digits-bicolor", "task_version": 1, "task_hash": TASK_HASH,
        "method": entry, "seed": seed, "n_samples": 1000,
        "submission": {"kind": "checkpoint", "name": entry, "path": "x.pt", "sha256": "0" * 64},
        "train": {"steps": 100, "wall_time_s": 1.5, "batch_size": 64},
        "config": config, "config_hash": config_hash(config), "config_changed": {},
        "groups": ["black", "white"], "group_proportions": {"observed": [black, 1 - black], "corrected": [black, 1 - black]},
        "metrics": {
            "kl_uniform_corrected": {"value": kl, "ci95": [kl - 0.01, kl + 0.01], "higher_is_better": False},
            "fid": {"value": 100 - 100 * kl, "ci95": None, "higher_is_better": False},
        },
        "judge": {"id": "digits-judge", "sha256": JUDGE_SHA, "accuracy": 0.99, "confusion": [[1, 0], [0, 1]]},
        "versions": {"fairbench": "0.1.0", "torch": "2.x"},
    }


@pytest.fixture()
def page(tmp_path: Path) -> Path:
    """Results for three entries, alpha seed 0 with `fairbench report`-style figures beside it; the page."""
    return _page(tmp_path)


def _page(tmp_path: Path, legacy: bool = False) -> Path:
    """The page, alpha seed 0's figures listed in its sidecar, or (`legacy`) inside the result as reports did
    before the sidecar."""
    results = tmp_path / "board" / "results"
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")  # exists, but not beside any result
    for entry, seed, kl, black in RUNS:
        folder = results / entry
        folder.mkdir(parents=True, exist_ok=True)
        data = result(entry, seed, kl, black)
        if (entry, seed) == ("alpha", 0):
            for name, colour in (("seed0.shares.png", (200, 30, 30)), ("seed0.samples-black.png", (30, 200, 30))):
                Image.new("RGB", (40, 30), colour).save(folder / name)
            listing = {"shares": "seed0.shares.png", "conditions": None,
                       "samples": {"black": "seed0.samples-black.png", "white": "../../../outside.png"}}
            if legacy:
                data["report"] = listing
        (folder / f"seed{seed}.json").write_text(json.dumps(data))
        if (entry, seed) == ("alpha", 0) and not legacy:
            write_report_index(folder / "seed0.json", data, listing)
    write_leaderboard(results, tmp_path / "board", html=True)
    return tmp_path / "board" / HTML_NAME


class _Rows(HTMLParser):
    """Entry order per table, the headers (key, title, text) of the first, every src/href, the text of <pre>
    blocks and the body's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[str] = []
        self.links: list[str] = []
        self.pre: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.body: dict[str, str | None] = {}
        self._in_pre = False
        self._th: dict[str, str] | None = None
        self._tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "table":
            self._tables += 1
        if tag == "th" and self._tables == 1:
            self._th = {"key": a.get("data-key") or "", "title": a.get("title") or "", "text": ""}
            self.headers.append(self._th)
        if tag == "tr" and "data-entry" in a:
            self.entries.append(a["data-entry"] or "")
        for key in ("src", "href"):
            if a.get(key):
                self.links.append(a[key] or "")
        self._in_pre = tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_pre = False
        if tag == "th":
            self._th = None

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre.append(data)
        if self._th is not None:
            self._th["text"] += data


def parse(text: str) -> _Rows:
    parser = _Rows()
    parser.feed(text)
    return parser


# ------------------------------------------------------------------------------------------ without a browser


def test_page_is_drawn_from_the_boards(page: Path) -> None:
    text = page.read_text()
    (board,) = build_leaderboard(read_results(page.parent / "results"))
    assert parse(text).entries == [row.entry for row in board.rows]  # the board's order
    # alpha's KL is 0.11 ± 0.01: the column's one format shows the smallest std to two significant digits
    assert '<td class="num primary" data-v="0.11">0.110 ± 0.010</td>' in text
    assert '<td class="num primary" data-v="0.25">0.250</td>' in text  # gamma, one run: no std, the same decimals
    assert "gamma †" in text  # one run: flagged as on the Markdown board
    # share bars: width is the mean judged share, as a percentage
    assert 'title="black 55.0% (runs: 55.0 / 55.0 / 55.0)"' in text and "width:55.0%" in text and "width:45.0%" in text
    assert 'title="black 30.0%"' in text and "width:70.0%" in text  # gamma: one run, no per-run figures
    # each run's share is a tick on the bar, in seed order (beta: 80% black in all three seeds)
    assert text.count('<span class="tick" style="left:80.0%"></span>') == 3


def test_columns_lead_with_rank_entry_primary_quality_and_shares(page: Path) -> None:
    """The numbers a reader came for come first, under human headers with the raw name as the hover title;
    the figures are a closed fold after them, not a wide column before them."""
    text = page.read_text()
    headers = parse(text).headers
    assert [h["key"] for h in headers[:7]] == ["rank", "entry", "kl_uniform_corrected", "fid", "shares", "runs", "seeds"]
    primary, quality = headers[2], headers[3]
    assert (primary["text"], primary["title"]) == ("KL to uniform (corrected) ↓", "kl_uniform_corrected")
    assert (quality["text"], quality["title"]) == ("FID ↓", "fid")
    assert [h["text"] for h in headers[-2:]] == ["figures", "provenance"]
    row = text.split('<tr data-entry="alpha">')[1].split("</tr>")[0]
    figures = row.split('<td class="figs" data-v="">')[1].split("</td>")[0]
    assert figures.startswith("<details><summary>2 figures</summary>") and "<details open" not in text
    assert row.index("figs") > row.index("0.110 ± 0.010")


def test_provenance_is_one_click_away(page: Path) -> None:
    pre = json.loads(parse(page.read_text()).pre[0])
    assert pre["task_hash"] == TASK_HASH
    assert JUDGE_SHA in pre["judge"]
    assert pre["config"]["lr"] == 0.0002 and re.fullmatch(r"[0-9a-f]{64}", pre["config_hash"])
    assert pre["versions"] == {"fairbench": "0.1.0", "torch": "2.x"}


def test_offline_links_relative_and_only_to_figures_beside_the_result(page: Path) -> None:
    links = parse(page.read_text()).links
    assert links, "the report figures should be linked"
    assert not [x for x in links if re.match(r"[a-z]+:", x) or x.startswith("/")]  # no URL, no absolute path
    assert "results/alpha/seed0.shares.png" in links and "results/alpha/seed0.samples-black.png" in links
    assert not [x for x in links if "outside" in x]  # a listing that points outside the result's folder is ignored
    assert "<link" not in page.read_text() and "http" not in page.read_text()


def test_figures_listed_inside_an_older_result_are_linked_alike(page: Path, tmp_path: Path) -> None:
    (tmp_path / "legacy").mkdir()
    legacy = _page(tmp_path / "legacy", legacy=True)
    links = parse(legacy.read_text()).links
    assert "results/alpha/seed0.shares.png" in links and links == parse(page.read_text()).links


def test_the_task_figure_is_shown_when_regenerate_drew_it(page: Path) -> None:
    assert "figures/digits-bicolor.per-condition.png" not in parse(page.read_text()).links  # none drawn: none shown
    figure = page.parent / "figures" / "digits-bicolor.per-condition.png"
    figure.parent.mkdir()
    Image.new("RGB", (8, 4)).save(figure)
    write_leaderboard(page.parent / "results", page.parent, html=True)
    links = parse(page.read_text()).links
    assert links.count("figures/digits-bicolor.per-condition.png") == 2  # the image and its link, relative


def test_names_are_escaped(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    data = result("x", 0, 0.1, 0.5)
    data.update(method=None, train=None, config=None, config_hash=None, config_changed=None, seed=None)
    data["submission"]["name"] = "<script>alert(1)</script>"
    (results / "r.json").write_text(json.dumps(data))
    write_leaderboard(results, tmp_path, html=True)
    text = (tmp_path / HTML_NAME).read_text()
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_same_inputs_same_bytes(page: Path, tmp_path: Path) -> None:
    write_leaderboard(page.parent / "results", tmp_path / "again", html=True)
    again = (tmp_path / "again" / HTML_NAME).read_text()
    # figure links are relative to where the page is written, so compare with them normalised
    norm = lambda t: re.sub(r'(src|href)="[^"]*"', "", t)  # noqa: E731
    assert norm(again) == norm(page.read_text())


# ------------------------------------------------------------------------------------------ headless Chromium


def _run_chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    if find_chromium() is None:
        pytest.skip("headless browser tests need Chromium (Debian: apt-get install chromium); none on PATH")
    return run_chromium(url, *args)


def _console_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def test_console_check_sees_script_errors(tmp_path: Path) -> None:
    """The no-console-errors check below can fail: a page with a script error shows up in it."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>notDefined();</script></body></html>")
    proc = _run_chromium(bad.as_uri(), "--dump-dom")
    assert any("notDefined" in line for line in _console_lines(proc))


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("", ["alpha", "gamma", "beta"]),  # as generated: the board's rank order
        ("#sort=kl_uniform_corrected:desc", ["beta", "gamma", "alpha"]),
        ("#sort=entry:desc", ["gamma", "beta", "alpha"]),
        ("#sort=fid", ["beta", "gamma", "alpha"]),  # fid = 100 - 100 kl: lower first
        ("#sort=shares:desc", ["beta", "gamma", "alpha"]),  # largest gap from 50%: 30, 20, 5 points
        ("#sort=runs", ["gamma", "alpha", "beta"]),  # 1 run first; equal counts keep their order
    ],
)
def test_page_renders_and_sorts_in_chromium(page: Path, tmp_path: Path, sort: str, expected: list[str]) -> None:
    proc = _run_chromium(page.as_uri() + sort, "--dump-dom")
    assert _console_lines(proc) == [], "the page logged to the console"
    dom = parse(proc.stdout)
    assert dom.entries == expected
    if sort:
        key = sort.removeprefix("#sort=")
        assert f'data-sorted="{key}"' in proc.stdout  # the script ran and sorted the table


def _first_rows_on_screen(text: str, base: Path, tmp_path: Path, width: int = 1280, height: int = 800) -> dict[str, Any]:
    """Where the first row's cells are in a `width` x `height` window, the page's links resolved in `base`."""
    if find_chromium() is None:
        pytest.skip("headless browser tests need Chromium (Debian: apt-get install chromium); none on PATH")
    probe, console = probe_layout(text, base, tmp_path, width, height)
    assert console == [], "the page logged to the console"
    return probe or {}


def test_primary_metric_is_on_screen_at_1280_px(page: Path, tmp_path: Path) -> None:
    probe = _first_rows_on_screen(page.read_text(), page.parent, tmp_path)
    assert probe["width"] == 1280
    (table,) = probe["tables"]
    left, right, top = table["cells"]["kl_uniform_corrected"]
    assert 0 <= left < right <= probe["width"] and 0 <= top < probe["height"]
    # the columns before it are rank and entry only
    assert sorted(table["cells"], key=lambda k: table["cells"][k][0])[:3] == ["rank", "entry", "kl_uniform_corrected"]


def test_screenshot_has_header_band_table_and_share_bars(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    _run_chromium(page.as_uri(), "--window-size=1200,700", f"--screenshot={shot}")
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (700, 1200)
    header = np.array([int(HEADER_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])
    band = np.abs(img[:40, :, :] - header).sum(axis=2) < 30  # the header band's colour, top of the page
    assert band.mean() > 0.5, "no header colour band at the top"
    below = img[120:, :, :]
    assert (np.abs(below - header).sum(axis=2) < 30).mean() < 0.1, "the band fills the page"
    # the table region is drawn: not blank background, many distinct shades (text, borders, bars)
    table = img[150:450, :900, :]
    assert table.std() > 20 and len(np.unique(table.reshape(-1, 3), axis=0)) > 50
    # the share bars: the second group's bar colour is present in the table region
    bar = np.array([int(BAR_COLOURS[1][i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(table - bar).sum(axis=2) < 20).sum() > 50, "no share bars drawn"


def test_readme_screenshot_is_small_and_scaled(page: Path, tmp_path: Path) -> None:
    if find_chromium() is None:
        pytest.skip("needs Chromium (Debian: apt-get install chromium); none on PATH")
    out = screenshot(page, tmp_path / "shot.png", scale_to=480)
    image = Image.open(out)
    assert image.width == 480 and image.mode == "P" and out.stat().st_size < 200_000
