"""`fairbench vary`: one hyper-parameter against a group's share, kl_uniform and a metric (the RepFair paper's
Figure 6), checked on copies of a committed result (kept in tests/fixtures/board) whose clip norm, shares and FID
are set by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.entry_identity import config_hash
from fairbench.errors import FairbenchError
from fairbench.report.hyperparameter import collect_parameter_sweep, draw_parameter_sweep
from tests.helpers import FIXTURE_DIR

BOARD = FIXTURE_DIR / "board" / "results"


def _run(clip_norm: float | None, seed: int, white: float, kl: float, fid: float, **config) -> dict:
    result = json.loads((BOARD / "mnist-bicolor" / "repfair" / "seed0.json").read_text())
    result["seed"] = seed
    result["config"].update(clip_norm=clip_norm, **config)
    result["config_hash"] = config_hash(result["config"])
    result["group_shares"]["white"]["observed"]["value"] = white
    result["metrics"]["kl_uniform"]["value"] = kl
    result["metrics"]["fid"]["value"] = fid
    return result


# (clip_norm, seed, white share, kl_uniform, fid); None is the method's default C = 5
RUNS = [(20.0, 0, 0.3, 0.08, 50.0), (None, 0, 1.0, 0.69, 34.0), (1.0, 1, 0.6, 0.02, 31.0), (None, 1, 0.0, 0.69, 40.0),
        (1.0, 0, 0.4, 0.02, 29.0), (20.0, 1, 0.7, 0.08, 54.0)]


def _pairs() -> list[tuple[str, dict]]:
    return [(f"run{i}", _run(*spec)) for i, spec in enumerate(RUNS)]


def test_points_are_the_runs_by_value_and_seed() -> None:
    sweep = collect_parameter_sweep(_pairs(), "clip_norm", None, "fid", default=5.0)
    assert (sweep.task, sweep.method, sweep.group, sweep.uniform) == ("mnist-bicolor", "repfair", "white", 0.5)
    assert [p.value for p in sweep.points] == [1.0, 5.0, 20.0]
    assert [p.label for p in sweep.points] == ["1", "5 (default)", "20"]
    assert [p.seeds for p in sweep.points] == [(0, 1), (0, 1), (0, 1)]
    assert [p.shares for p in sweep.points] == [(0.4, 0.6), (1.0, 0.0), (0.3, 0.7)]
    assert [p.kl for p in sweep.points] == [(0.02, 0.02), (0.69, 0.69), (0.08, 0.08)]
    assert [p.metric for p in sweep.points] == [(29.0, 31.0), (34.0, 40.0), (50.0, 54.0)]


def test_figure_draws_every_seed_and_no_mean_share() -> None:
    fig = draw_parameter_sweep(collect_parameter_sweep(_pairs(), "clip_norm", "white", "fid", default=5.0))
    share_ax, kl_ax, fid_ax = fig.axes
    # a mean share would put the two collapsed default seeds (100% and 0%) at a "fair" 50%: never drawn
    assert not [line for line in share_ax.lines if line.get_gid() == "share-mean"]
    dots = np.concatenate([c.get_offsets() for c in share_ax.collections])
    assert sorted(map(tuple, dots)) == sorted((5.0 if c is None else c, w) for c, _, w, _, _ in RUNS)
    (mean,) = [line for line in fid_ax.lines if line.get_gid() == "metric-mean"]
    np.testing.assert_allclose(mean.get_xdata(), [1, 5, 20])
    np.testing.assert_allclose(mean.get_ydata(), [np.mean([29, 31]), np.mean([34, 40]), np.mean([50, 54])])
    assert share_ax.get_xscale() == "log" and kl_ax.get_ylim()[0] == 0  # 1..20 spans a decade; KL from 0


@pytest.mark.parametrize(
    "pairs, default, needle",
    [
        ([("a", _run(None, 0, 0.5, 0.0, 1.0))], None, "leaves clip_norm unset"),
        ([("a", _run(1.0, 0, 0.5, 0.0, 1.0)), ("b", _run(2.0, 0, 0.5, 0.0, 1.0, variant="authors"))], None,
         "b: differs from a in variant as well as clip_norm"),
        ([("a", _run(1.0, 0, 0.5, 0.0, 1.0)), ("b", {**_run(2.0, 0, 0.5, 0.0, 1.0), "method": "vanilla"})], None,
         "b: vanilla on mnist-bicolor, but a is repfair"),
        ([("a", _run(float("nan"), 0, 0.5, 0.0, 1.0))], None, "not a finite number"),
    ],
)
def test_results_that_cannot_be_compared_are_refused(pairs, default, needle) -> None:
    with pytest.raises(FairbenchError, match=needle):
        collect_parameter_sweep(pairs, "clip_norm", None, "fid", default)


def test_unknown_group_metric_or_parameter() -> None:
    pairs = [("a", _run(1.0, 0, 0.5, 0.0, 1.0))]
    with pytest.raises(FairbenchError, match="unknown group 'green'"):
        collect_parameter_sweep(pairs, "clip_norm", "green", "fid")
    with pytest.raises(FairbenchError, match="no metric 'fud'"):
        collect_parameter_sweep(pairs, "clip_norm", None, "fud")
    with pytest.raises(FairbenchError, match="has no 'clip'"):
        collect_parameter_sweep(pairs, "clip", None, "fid")


def test_cli_prints_a_line_per_value_and_writes_the_figure(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    for name, result in _pairs():
        (folder / f"{name}.json").write_text(json.dumps(result))
    out = tmp_path / "c.png"
    res = CliRunner().invoke(app, ["vary", str(folder), "--param", "clip_norm", "--default", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == "clip_norm=1 (seeds 0, 1): white 40.0%, 60.0%; kl_uniform 0.0200, 0.0200; fid 29, 31"
    assert lines[1].startswith("clip_norm=5 (default) (seeds 0, 1): white 100.0%, 0.0%")
    assert lines[-1] == str(out) and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(app, ["vary", str(folder), "--param", "clip_norm", "--out", str(tmp_path / "c.jpg")])
    assert bad.exit_code == 2 and "--out must name a .png file" in bad.output
