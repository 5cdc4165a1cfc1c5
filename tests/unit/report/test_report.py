"""`fairbench report`: the figures exist, are real PNGs, and plot the result's own numbers."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import BarContainer
from PIL import Image

from fairbench.errors import FairbenchError
from fairbench.board import read_result
from fairbench.report import make_report
from fairbench.report.condition_heatmap import draw_condition_heatmap
from fairbench.report.sample_grids import grid_rows
from fairbench.report.share_bars import draw_share_bars
from fairbench.report.source import judged_samples
from fairbench.results.sidecar import read_report_index, report_path
from tests.helpers import FIXTURE_DIR

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scored(digits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real result of the session checkpoint (200 samples) in a run folder of its own."""
    from fairbench.results import write_result
    from fairbench.scoring import ScoreOptions, score_checkpoint

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRBENCH_HOME", str(tmp_path_factory.mktemp("report-home")))
        mp.setenv("FAIRBENCH_OFFLINE", "1")
        result = score_checkpoint(digits_checkpoint, ScoreOptions(n_samples=200, device="cpu"))
    return write_result(tmp_path_factory.mktemp("report") / "result.json", result)


@pytest.fixture()
def result_copy(scored: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run" / "result.json"
    out.parent.mkdir()
    shutil.copy(scored, out)
    return out


def _is_png(path: Path, min_side: int = 100) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert min(im.size) >= min_side and max(im.size) < 5000
        assert np.asarray(im.convert("L")).std() > 5  # not a blank canvas
    assert path.stat().st_size > 5_000


def test_report_writes_pngs_and_lists_them(result_copy: Path) -> None:
    before = result_copy.read_bytes()
    files = make_report(result_copy.parent)  # a run folder: its result.json
    assert result_copy.read_bytes() == before  # a report never rewrites the result: it lists figures beside it
    data = json.loads(result_copy.read_text())
    assert set(files.samples) == set(data["groups"]) == {"black", "white"}
    for path in (files.shares, files.conditions, files.quality, *files.samples.values()):
        assert path is not None and path.parent == result_copy.parent
        _is_png(path)
    assert "report" not in data
    listing = json.loads(report_path(result_copy).read_text())["figures"]
    assert report_path(result_copy).name == "result.report.json"
    assert listing["shares"] == "result.shares.png" and listing["conditions"] == "result.conditions.png"
    assert listing["quality"] == "result.quality.png"
    assert listing["samples"] == {g: f"result.samples-{g}.png" for g in data["groups"]}
    assert not list(result_copy.parent.glob(".*.tmp"))  # atomic writes leave no temp files
    assert read_result(result_copy).n_samples == 200  # the leaderboard still reads the file


def test_share_bars_plot_the_results_shares(scored: Path) -> None:
    result = json.loads(scored.read_text())
    fig = draw_share_bars(result)
    ax = fig.axes[0]
    uniform = [line for line in ax.get_lines() if line.get_gid() == "uniform"]
    assert len(uniform) == 1 and np.allclose(uniform[0].get_ydata(), 0.5)
    for kind in ("observed", "corrected"):
        container = next(c for c in ax.containers if isinstance(c, BarContainer) and c.get_label() == kind)
        heights = [p.get_height() for p in container.patches]
        expected = [result["group_shares"][g][kind]["value"] for g in result["groups"]]
        assert np.allclose(heights, expected)
        assert np.allclose(heights, result["group_proportions"][kind])
        # the error bars span the recorded simultaneous intervals
        segments = container.errorbar.lines[2][0].get_segments()
        for seg, g in zip(segments, result["groups"]):
            lo, hi = sorted(seg[:, 1])
            ci = result["group_shares"][g][kind]["ci95"]
            assert lo == pytest.approx(min(ci[0], result["group_shares"][g][kind]["value"]))
            assert hi == pytest.approx(max(ci[1], result["group_shares"][g][kind]["value"]))


def test_heatmap_and_grids_agree_with_an_independent_count(scored: Path) -> None:
    result = json.loads(scored.read_text())
    samples = judged_samples(result, scored)
    # independent: per-condition judged shares counted from the reproduced images
    counts = np.zeros((10, 2))
    np.add.at(counts, (samples.labels, samples.judged), 1)
    shares = counts / counts.sum(1, keepdims=True)
    assert np.allclose(shares, result["per_condition"]["observed"])
    assert np.array_equal(np.bincount(samples.judged, minlength=2), result["group_counts"])
    fig = draw_condition_heatmap(result)
    for ax, kind in zip(fig.axes[:2], ("observed", "corrected")):
        (image,) = ax.get_images()
        assert image.get_gid() == f"heatmap-{kind}"
        assert np.allclose(image.get_array(), result["per_condition"][kind])
    for g in range(2):
        rows = grid_rows(result, samples, g, per_row=5)
        assert [r.condition for r in rows] == result["per_condition"]["conditions"]
        for c, row in enumerate(rows):
            assert row.share == pytest.approx(shares[c, g])
            assert len(row.indices) == min(5, int(counts[c, g]))
            assert all(samples.judged[i] == g and samples.labels[i] == c for i in row.indices)


def test_report_without_samples_keeps_earlier_grids_that_still_exist(result_copy: Path) -> None:
    """A committed result outlives its checkpoint: redrawing its charts must not drop its sample grids."""
    drawn = make_report(result_copy).samples
    assert set(drawn) == {"black", "white"}
    drawn["white"].unlink()
    files = make_report(result_copy, samples=False)
    assert files.samples == {"black": drawn["black"]}
    assert read_report_index(result_copy)["samples"] == {"black": "result.samples-black.png"}


def test_unconditional_and_old_results_still_chart(scored: Path, tmp_path: Path) -> None:
    """A result without `group_shares` (older files) charts its proportions without intervals."""
    result = json.loads(scored.read_text())
    del result["group_shares"]
    result["per_condition"] = None
    path = tmp_path / "old.json"
    path.write_text(json.dumps(result))
    files = make_report(path, samples=False)
    assert files.conditions is None and files.samples == {}
    _is_png(files.shares)
    assert read_report_index(path)["conditions"] is None


@pytest.fixture(scope="module")
def both_groups(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A result that draws both groups: the shipped example trained with minibatch std, 300 samples."""
    from fairbench.examples import example_path
    from fairbench.results import dumps
    from fairbench.scoring import ScoreOptions, score_checkpoint

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRBENCH_HOME", str(tmp_path_factory.mktemp("quality-home")))
        mp.setenv("FAIRBENCH_OFFLINE", "1")
        result = score_checkpoint(example_path("digits-vanilla-mbstd64"), ScoreOptions(n_samples=300, device="cpu"))
    return json.loads(dumps(result))


@pytest.mark.parametrize("which", ["both groups", "one group never drawn"])
def test_quality_per_group_plots_the_results_numbers(which: str, both_groups: dict, scored: Path) -> None:
    """FID bars and their floors, PRDC and Vendi bars: every height is the result's own per-group value, and
    a group without one (never drawn) has no bar."""
    from fairbench.report.group_quality import draw_group_quality, group_quality

    result = both_groups if which == "both groups" else json.loads(scored.read_text())
    per = result["per_group"]
    data = group_quality(result)
    assert data is not None and data.groups == ["black", "white"]
    assert (which == "both groups") == all(result["group_counts"])
    fig = draw_group_quality(result, data)
    drawn = {c.get_gid(): c for ax in fig.axes for c in ax.collections if c.get_gid()}

    def heights(gid: str) -> list[float]:  # each bar's rectangle carries its series' gid, in group order
        return [bar.get_height() for ax in fig.axes for bar in ax.patches if bar.get_gid() == gid]

    def values(key: str, at_sizes: bool = False) -> list[float]:  # a group without one: no bar (NaN)
        entries = [per[key][g] for g in data.groups]
        if at_sizes:
            entries = [None if e is None else e.get("at_fid_sizes") for e in entries]
        return [math.nan if e is None else e["value"] for e in entries]

    assert heights("fid") == pytest.approx(values("fid_intra"), nan_ok=True)
    assert list(np.asarray(drawn["floor-halves"].get_offsets())[:, 1]) == pytest.approx(values("fid_floor"))
    assert list(np.asarray(drawn["floor"].get_offsets())[:, 1]) == pytest.approx(values("fid_floor", True), nan_ok=True)
    for name in ("precision", "recall", "density", "coverage"):
        assert heights(f"prdc-{name}") == pytest.approx(values(f"{name}_intra"), nan_ok=True)
    assert heights("vendi") == pytest.approx(values("vendi_intra"), nan_ok=True)
    assert sum(math.isnan(h) for h in heights("vendi")) == (which != "both groups")
    # the floor at the FID's sizes is the halves' rescaled by 1/n: (1/n_gen + 1/n_ref) / (1/h1 + 1/h2)
    for g, group in enumerate(data.groups):
        floor = per["fid_floor"][group]
        if "at_fid_sizes" not in floor:
            assert result["group_counts"][g] < 2  # no FID to compare with
            continue
        n_gen, n_ref = floor["at_fid_sizes"]["n"]
        h1, h2 = floor["n_halves"]
        assert n_gen == result["group_counts"][g] and n_ref == result["fid_floor"]["reference_counts"][group]
        assert floor["at_fid_sizes"]["value"] == pytest.approx(floor["value"] * (1 / n_gen + 1 / n_ref) / (1 / h1 + 1 / h2))


def test_results_scored_before_per_group_quality_get_no_such_figure(scored: Path, tmp_path: Path) -> None:
    """Older results keep the figures and the listing they had: a board's report pass adds nothing to them."""
    result = json.loads(scored.read_text())
    result["per_group"] = {"fid_intra": result["per_group"]["fid_intra"]}
    del result["fid_floor"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(result))
    files = make_report(path, samples=False)
    assert files.quality is None and not list(tmp_path.glob("*.quality.png"))
    assert "quality" not in read_report_index(path)


def test_report_without_its_submission_draws_every_other_chart(result_copy: Path, tmp_path: Path) -> None:
    """A result outlives its checkpoint: gone or replaced, the report draws what it can and says why not the
    grids; earlier grids stay listed while their files are there."""
    data = json.loads(result_copy.read_text())
    data["submission"]["path"] = str(tmp_path / "gone" / "checkpoint.pt")
    result_copy.write_text(json.dumps(data))
    files = make_report(result_copy)
    assert files.samples == {} and files.conditions is not None
    _is_png(files.shares)
    _is_png(files.conditions)
    assert files.no_samples_because == (
        f"{result_copy}: sample grids need the scored checkpoint {tmp_path / 'gone' / 'checkpoint.pt'} "
        f"(sha256 {data['submission']['sha256'][:12]}…), which is not there (or run from the folder it was scored "
        "in); drew the other charts"
    )
    assert read_report_index(result_copy)["samples"] == {}
    other = tmp_path / "gone" / "checkpoint.pt"
    other.parent.mkdir()
    other.write_bytes(b"not the same file")
    files = make_report(result_copy)
    assert "sample grids need the scored checkpoint, and" in files.no_samples_because
    assert "is not it any more" in files.no_samples_because
    assert make_report(result_copy, samples=False).no_samples_because is None  # not asked for: nothing to say


def test_cli_report_without_the_checkpoint_exits_0_with_one_note(result_copy: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fairbench.cli import app

    drawn = make_report(result_copy).samples  # grids of an earlier report, while the checkpoint was there
    data = json.loads(result_copy.read_text())
    data["submission"]["path"] = str(tmp_path / "deleted.pt")
    result_copy.write_text(json.dumps(data))
    out = CliRunner().invoke(app, ["report", str(result_copy)])
    assert out.exit_code == 0, out.output
    kinds = ("shares", "conditions", "quality")
    assert out.stdout.split() == [str(result_copy.with_name(f"result.{k}.png")) for k in kinds] + [
        str(p) for p in drawn.values()
    ]
    (note,) = out.stderr.strip().splitlines()
    assert note.startswith(f"note: {result_copy}: sample grids need the scored checkpoint {tmp_path / 'deleted.pt'}")
    assert note.endswith("; drew the other charts, kept the earlier grids")


def test_run_folder_without_result_says_how_to_score(digits_checkpoint: Path, tmp_path: Path) -> None:
    shutil.copy(digits_checkpoint, tmp_path / "checkpoint.pt")
    with pytest.raises(FairbenchError, match="no result.json.*fairbench score"):
        make_report(tmp_path)


def test_cli_report_prints_the_files(result_copy: Path) -> None:
    from typer.testing import CliRunner

    from fairbench.atomic import sha256_file
    from fairbench.cli import app

    second = result_copy.with_name("second.json")
    shutil.copy(result_copy, second)
    before = [sha256_file(p) for p in (result_copy, second)]
    out = CliRunner().invoke(app, ["report", str(result_copy), str(second), "--no-samples"])
    assert out.exit_code == 0, out.output
    assert [sha256_file(p) for p in (result_copy, second)] == before  # results are never rewritten
    assert report_path(second).is_file() and read_report_index(second)["shares"] == "second.shares.png"
    assert out.output.split() == [
        str(p.with_name(f"{p.stem}.{kind}.png")) for p in (result_copy, second) for kind in ("shares", "conditions", "quality")
    ]


def test_samples_if_scored_redraws_only_from_the_scored_submission(result_copy: Path, tmp_path: Path) -> None:
    """Rebuilding a board: grids come from a checkpoint still there unchanged, else the earlier ones stay."""
    files = make_report(result_copy, samples_if_scored=True)
    assert set(files.samples) == {"black", "white"}
    first = {g: p.read_bytes() for g, p in files.samples.items()}
    data = json.loads(result_copy.read_text())
    changed = tmp_path / "retrained" / "checkpoint.pt"
    changed.parent.mkdir()
    changed.write_bytes(b"another run in the same folder")
    for path in (str(tmp_path / "gone.pt"), str(changed)):
        data["submission"]["path"] = path
        result_copy.write_text(json.dumps(data))
        silent = make_report(result_copy, samples_if_scored=True)
        assert {g: p.read_bytes() for g, p in silent.samples.items()} == first and silent.no_samples_because is None
        told = make_report(result_copy)  # without the option: the same, and the reason
        assert {g: p.read_bytes() for g, p in told.samples.items()} == first
        assert told.no_samples_because is not None and "kept the earlier grids" in told.no_samples_because


def _titled(result: dict) -> list[str]:
    from fairbench.report.condition_heatmap import draw_condition_heatmap as heatmap

    return [draw_share_bars(result).axes[0].get_title(), heatmap(result)._suptitle.get_text()]


def test_titles_name_the_config(scored: Path) -> None:
    """'vanilla seed 0' does not say which of a board's vanilla configs a figure shows; every title does."""
    result = json.loads(scored.read_text())
    assert result["config_changed"] == {} and result["seed"] == 0
    for title in _titled(result):
        assert "digits-bicolor · vanilla (default config) seed 0 · " in title
    changed = {**result, "config_changed": {"clip_norm": 10.0, "batch_size": 32}}
    for title in _titled(changed):
        assert " · vanilla[clip_norm=10,batch_size=32] seed 0 · " in title  # as the board names the entry
    named = {**changed, "name": "mine"}
    assert " · mine: vanilla[clip_norm=10,batch_size=32] seed 0 · " in _titled(named)[0]
    unknown = {**result, "config_changed": None}  # the method's defaults were unknown when it was scored
    assert f" · vanilla[config={result['config_hash'][:8]}] seed 0 · " in _titled(unknown)[0]
    image_set = {**result, "method": None, "seed": None, "submission": {**result["submission"], "name": "mixed"}}
    assert " · mixed (image set) · " in _titled(image_set)[0]


def test_share_legend_never_covers_a_bar_or_its_label(scored: Path) -> None:
    """Shares near 100% put bars and their labels in every corner: the legend sits outside the axes."""
    result = json.loads(scored.read_text())
    for g, share in zip(result["groups"], (0.97, 0.03)):  # one tall bar on the left, where a legend might go
        for kind in ("observed", "corrected"):
            result["group_shares"][g][kind] = {"value": share, "ci95": [share - 0.02, min(share + 0.02, 1.0)]}
    fig = draw_share_bars(result)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))
    covered = [p.get_window_extent(renderer) for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]
    covered += [t.get_window_extent(renderer) for t in ax.texts]  # the percentage labels
    assert len(covered) == 8 and not any(legend.overlaps(box) for box in covered)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"observed", "corrected", "uniform (50.0%)"}


def test_report_of_a_committed_result_leaves_it_as_it_was(tmp_path: Path) -> None:
    """A committed result written when reports still listed figures inside it: charted, its bytes unchanged,
    the listing in the sidecar, and the board still reads exactly one result from the folder."""
    from typer.testing import CliRunner

    from fairbench.atomic import sha256_file
    from fairbench.cli import app
    from fairbench.board import read_results

    fixture = FIXTURE_DIR / "results" / "cifar10-lt-vanilla-with-report-key.json"
    path = tmp_path / "seed0.json"
    shutil.copy(fixture, path)
    before = sha256_file(path)
    out = CliRunner().invoke(app, ["report", str(path), "--no-samples"])
    assert out.exit_code == 0, out.output
    assert sha256_file(path) == before
    listing = read_report_index(path)
    assert listing["shares"] == "seed0.shares.png" and listing["samples"] == {}  # the old grids are not here
    _is_png(path.with_name("seed0.shares.png"))
    assert [r.path for r in read_results(tmp_path)] == [path]
