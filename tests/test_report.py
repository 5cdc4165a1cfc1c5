"""`fairbench report`: the figures exist, are real PNGs, and plot the result's own numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import BarContainer
from PIL import Image

from fairbench.errors import FairbenchError
from fairbench.leaderboard import read_result
from fairbench.report import make_report
from fairbench.report.condition_heatmap import draw_condition_heatmap
from fairbench.report.sample_grids import grid_rows
from fairbench.report.share_bars import draw_share_bars
from fairbench.report.source import judged_samples

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
    files = make_report(result_copy.parent)  # a run folder: its result.json
    data = json.loads(result_copy.read_text())
    assert set(files.samples) == set(data["groups"]) == {"black", "white"}
    for path in (files.shares, files.conditions, *files.samples.values()):
        assert path is not None and path.parent == result_copy.parent
        _is_png(path)
    listing = data["report"]
    assert listing["shares"] == "result.shares.png" and listing["conditions"] == "result.conditions.png"
    assert listing["samples"] == {g: f"result.samples-{g}.png" for g in data["groups"]}
    assert not list(result_copy.parent.glob(".*.tmp"))  # atomic writes leave no temp files
    assert read_result(result_copy).n_samples == 200  # the leaderboard still reads the rewritten file


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
    assert json.loads(result_copy.read_text())["report"]["samples"] == {"black": "result.samples-black.png"}


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
    assert json.loads(path.read_text())["report"]["conditions"] is None


def test_missing_or_changed_submission_is_one_clear_error(result_copy: Path, tmp_path: Path) -> None:
    data = json.loads(result_copy.read_text())
    data["submission"]["path"] = str(tmp_path / "gone" / "checkpoint.pt")
    result_copy.write_text(json.dumps(data))
    with pytest.raises(FairbenchError, match="cannot find the scored submission.*--no-samples"):
        make_report(result_copy)
    assert not list(result_copy.parent.glob("*.png"))  # nothing written before the error
    other = tmp_path / "gone" / "checkpoint.pt"
    other.parent.mkdir()
    other.write_bytes(b"not the same file")
    with pytest.raises(FairbenchError, match="is not the scored submission"):
        make_report(result_copy)


def test_run_folder_without_result_says_how_to_score(digits_checkpoint: Path, tmp_path: Path) -> None:
    shutil.copy(digits_checkpoint, tmp_path / "checkpoint.pt")
    with pytest.raises(FairbenchError, match="no result.json.*fairbench score"):
        make_report(tmp_path)


def test_cli_report_prints_the_files(result_copy: Path) -> None:
    from typer.testing import CliRunner

    from fairbench.cli import app

    second = result_copy.with_name("second.json")
    shutil.copy(result_copy, second)
    out = CliRunner().invoke(app, ["report", str(result_copy), str(second), "--no-samples"])
    assert out.exit_code == 0, out.output
    assert out.output.split() == [
        str(p.with_name(f"{p.stem}.{kind}.png")) for p in (result_copy, second) for kind in ("shares", "conditions")
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
        kept = make_report(result_copy, samples_if_scored=True).samples
        assert {g: p.read_bytes() for g, p in kept.items()} == first
        with pytest.raises(FairbenchError):  # the same result without the option is still one clear error
            make_report(result_copy)
