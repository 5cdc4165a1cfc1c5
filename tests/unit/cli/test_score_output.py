"""`fairbench score --out`: a name the board would read as a report sidecar is refused before any work."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fairbench.board import read_results
from fairbench.cli import app


def test_a_report_sidecar_name_is_refused_in_one_line_before_scoring(digits_checkpoint: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "seed0.report.json"
    result = CliRunner().invoke(app, ["score", str(digits_checkpoint), "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and ".report.json" in lines[-1], result.output
    assert "judging" not in result.output and not out.exists()


def test_the_board_would_not_have_read_such_a_file_as_a_result(digits_checkpoint: Path, tmp_path: Path) -> None:
    """Why the name is refused: a result written under it is invisible to the board (and the plain name works)."""
    result = CliRunner().invoke(app, ["score", str(digits_checkpoint), "--device", "cpu",
                                      "--out", str(tmp_path / "seed0.json")])
    assert result.exit_code == 0, result.output
    (tmp_path / "seed0.json").rename(tmp_path / "seed0.report.json")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "seed1.json").write_bytes((tmp_path / "seed0.report.json").read_bytes())
    assert [r.path.name for r in read_results(tmp_path)] == ["seed1.json"]
