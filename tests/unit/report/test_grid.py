"""`fairbench grid`: a PNG that says what it shows (task, entry with its config, seed, steps, a label per row)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fairbench import entry_identity
from fairbench.cli import app
from fairbench.report import sample_grids


def test_labelled_grid_has_title_and_one_label_per_row() -> None:
    images = torch.zeros(6, 1, 16, 16, dtype=torch.uint8)
    fig = sample_grids.draw_labelled_grid(images, 3, ["zero", "one"], "digits-bicolor · vanilla · seed 0", scale=2)
    ax = fig.axes[0]
    assert ax.get_title() == "digits-bicolor · vanilla · seed 0"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["zero", "one"]
    # each label sits at the centre of its row of tiles (2 px padding, 16 px tiles)
    assert list(ax.get_yticks()) == [2 + 8, 2 + 18 + 8]


def test_entry_name_of_a_checkpoint_names_its_config() -> None:
    defaults = entry_identity.default_config("vanilla")
    assert defaults is not None
    config = {**defaults, "lr": 1e-4}
    assert entry_identity.checkpoint_entry_name("vanilla", defaults, {}, 64) == "vanilla"
    assert entry_identity.checkpoint_entry_name("vanilla", config, {"batch_size": 32}, 64) == "vanilla[lr=0.0001,batch_size=32]"
    assert entry_identity.checkpoint_entry_name("vanilla", config, {"name": "mine"}, 64) == "mine"


def test_grid_command_writes_a_titled_png(digits_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: dict = {}
    original = sample_grids.draw_labelled_grid

    def spy(images, per_row, row_labels, title, scale=3):  # type: ignore[no-untyped-def]
        drawn.update(n=len(images), per_row=per_row, labels=row_labels, title=title)
        return original(images, per_row, row_labels, title, scale)

    monkeypatch.setattr(sample_grids, "draw_labelled_grid", spy)
    out = tmp_path / "grid.png"
    run = CliRunner().invoke(app, ["grid", str(digits_checkpoint), "--out", str(out), "--per-condition", "4"])
    assert run.exit_code == 0, run.output
    assert run.stdout.strip() == str(out)
    assert drawn == {"n": 40, "per_row": 4, "labels": [str(d) for d in range(10)],
                     "title": "digits-bicolor · vanilla · seed 0 · 60 steps"}
    with Image.open(out) as image:
        assert image.width > 4 * 18 * 3 and image.height > 10 * 18 * 3  # the tiles at scale 3, plus labels


def test_grid_refuses_a_scale_of_zero(digits_checkpoint: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["grid", str(digits_checkpoint), "--out", str(tmp_path / "g.png"), "--scale", "0"])
    assert run.exit_code == 2
    assert "--per-condition and --scale must be at least 1" in run.output
