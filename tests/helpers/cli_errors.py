"""The one form every user error takes on the command line, checked the same way by every test that needs it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fairbench.cli import app


def assert_cli_error(args: list[str], named: Path) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith("error:"), line
    assert str(named) in line, line
    assert result.stdout.strip() == "", "errors go to stderr; stdout stays clean for pipes"
    return line
