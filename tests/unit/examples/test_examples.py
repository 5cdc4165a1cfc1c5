"""The example checkpoints shipped for the quickstart: verified by sha256, and they show what they claim."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbench import examples as shipped
from fairbench.atomic import sha256_file
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.scoring import ScoreOptions, score_checkpoint
from tests.helpers import REPO_ROOT


def test_every_example_file_matches_its_recorded_hash() -> None:
    known = shipped.examples()
    assert set(known) == {"digits-vanilla", "digits-vanilla-mbstd64"}
    for example in known.values():
        assert sha256_file(shipped.PACKAGE_DIR / example.file) == example.sha256
        assert shipped.example_path(example.name) == shipped.PACKAGE_DIR / example.file
    listed = {p.name for p in shipped.PACKAGE_DIR.glob("*.pt")}
    assert listed == {e.file for e in known.values()}  # nothing shipped without a hash


def test_a_changed_or_missing_example_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "examples"
    shutil.copytree(shipped.PACKAGE_DIR, copy)
    monkeypatch.setattr(shipped, "PACKAGE_DIR", copy)
    (copy / "digits-vanilla.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FairbenchError, match="digits-vanilla.*expected 5dd8ea768083.*reinstall"):
        shipped.example_path("digits-vanilla")
    (copy / "digits-vanilla-mbstd64.pt").unlink()
    with pytest.raises(FairbenchError, match="missing from the installed package"):
        shipped.example_path("digits-vanilla-mbstd64")
    with pytest.raises(FairbenchError, match="unknown example 'nope'; shipped examples: digits-vanilla, "):
        shipped.example_path("nope")


def test_cli_prints_the_verified_path_for_scripts() -> None:
    run = CliRunner().invoke(app, ["examples", "digits-vanilla"])
    assert run.exit_code == 0, run.output
    assert run.stdout.strip() == str(shipped.PACKAGE_DIR / "digits-vanilla.pt")


SCORED: dict[str, object] = {}


def _scored(name: str):  # type: ignore[no-untyped-def]
    """Each example scored once for this module (about 6 s each)."""
    if name not in SCORED:
        SCORED[name] = score_checkpoint(shipped.example_path(name), ScoreOptions(device="cpu"))
    return SCORED[name]


@pytest.mark.parametrize(("name", "white_range"), [("digits-vanilla", (0.0, 0.01)), ("digits-vanilla-mbstd64", (0.3, 0.7))])
def test_examples_show_an_unfair_and_a_nearly_fair_generator(name: str, white_range: tuple[float, float]) -> None:
    """What the quickstart tells the reader, checked: the plain vanilla draws (almost) no white background;
    the whole-batch minibatch-std generator draws both. Wide bounds: float kernels differ between CPUs."""
    result = _scored(name)
    white = result.group_proportions["corrected"][result.groups.index("white")]
    assert white_range[0] <= white <= white_range[1]


def _readme_rows() -> dict[str, list[str]]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- quickstart-board")[1].split("<!-- /quickstart-board -->")[0]
    rows = [line.strip("|").split("|") for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


@pytest.mark.parametrize(("name", "entry"), [("digits-vanilla", "vanilla"),
                                             ("digits-vanilla-mbstd64", "vanilla[mbstd_group=64,minibatch_std=true]")])
def test_readme_quickstart_rows_are_what_scoring_the_examples_gives(name: str, entry: str) -> None:
    """The README shows the board the quickstart prints; its rows for the shipped examples must match a fresh
    score here (to rounding, with room for another CPU's float kernels). The rebalance row is trained by
    `make demo` itself and is not re-run here."""
    kl, fid, shares = _readme_rows()[entry]
    result = _scored(name)
    assert float(kl) == pytest.approx(result.metrics["kl_uniform_corrected"]["value"], rel=0.1, abs=2e-4)
    assert float(fid) == pytest.approx(result.metrics["fid"]["value"], rel=0.05)
    quoted = dict(part.split() for part in shares.split(", "))
    for g, group in enumerate(result.groups):
        assert float(quoted[group]) == pytest.approx(100 * result.group_proportions["observed"][g], abs=1.0)
