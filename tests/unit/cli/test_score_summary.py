"""`fairbench score`'s printed summary: fits 80 columns, says what the reader needs first, points to the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.cli.score import format_interval, summary_lines
from fairbench.results import read_result


@pytest.mark.parametrize(
    ("value", "ci", "expected"),
    [
        (0.0030, (0.0008, 0.0072), "0.0030 [0.0008, 0.0072]"),  # width 0.0064: two significant digits of it
        (223.894, (206.7082, 245.146), "224 [207, 245]"),  # width 38: no decimals
        (4.05e-05, (1.0e-05, 9.9e-05), "0.000041 [0.000010, 0.000099]"),
        (0.5, (0.5, 0.5), "0.50 [0.50, 0.50]"),  # no width: two significant digits of the value
        (0.0, (0.0, 0.0), "0.0000 [0.0000, 0.0000]"),
        (1883.2, (1848.6, 1912.2), "1883 [1849, 1912]"),
    ],
)
def test_format_interval_keeps_two_significant_digits_of_the_width(value: float, ci: tuple, expected: str) -> None:
    assert format_interval(value, ci) == expected


def test_summary_fits_80_columns_and_names_the_json(digits_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = CliRunner().invoke(app, ["score", str(digits_checkpoint), "--device", "cpu", "--out", str(out)],
                             terminal_width=80)
    assert run.exit_code == 0, run.output
    lines = run.stdout.rstrip("\n").split("\n")
    assert lines[-1] == str(out)  # the path last, for scripts
    assert all(len(line) <= 80 for line in lines[:-1]), [line for line in lines if len(line) > 80]
    result = read_result(out)
    first_skipped = next((i for i, line in enumerate(lines) if line.startswith("skipped")), len(lines) - 2)
    assert first_skipped < 15 < len(result.metrics), lines  # a summary, not the 37-row table (then the skips)
    text = run.stdout
    for group in result.groups:
        share = result.group_shares[group]["corrected"]
        assert f"{100 * share['value']:5.1f}%" in text
    kl = result.metrics["kl_uniform_corrected"]
    assert f"KL to uniform, corrected {format_interval(kl['value'], kl['ci95'])}" in text
    assert "test of equal shares: p" in text
    check = result.recognisable
    if check and check.get("unrecognisable_share") is not None:  # a 60-step generator: noise, over the gate
        assert f"unrecognisable: {100 * check['unrecognisable_share']:.1f}%" in text
        assert "fails the 50% gate" in text if check["unrecognisable_share"] > 0.5 else "passes the 50% gate" in text
    else:
        assert "recognisable samples: not checked" in text
    fid = result.metrics["fid"]
    assert f"FID {format_interval(fid['value'], fid['ci95'])}" in text
    shown = 1 + sum(k in result.metrics for k in ("fid", "fid_balanced", "kid"))
    assert f"{len(result.metrics) - shown} more metrics" in text


def test_summary_lines_of_a_judge_without_confusion(digits_checkpoint: Path, tmp_path: Path) -> None:
    """No confusion matrix (a user's FairFace): observed shares, the observed KL, said as such."""
    out = tmp_path / "result.json"
    run = CliRunner().invoke(app, ["score", str(digits_checkpoint), "--device", "cpu", "--out", str(out), "--json"])
    assert run.exit_code == 0, run.output
    raw = json.loads(out.read_text())
    raw["group_proportions"].pop("corrected")
    for entry in raw["group_shares"].values():
        entry.pop("corrected")
    raw["metrics"] = {k: v for k, v in raw["metrics"].items() if "corrected" not in k}
    raw["fairness_tests"] = {k: v for k, v in raw["fairness_tests"].items() if "corrected" not in k}
    raw["judge"]["confusion"] = raw["judge"]["confusion_counts"] = None
    out.write_text(json.dumps(raw))
    lines = summary_lines(read_result(out))
    assert "shares as judged (no error correction)" in lines[1]
    kl = raw["metrics"]["kl_uniform"]
    assert any(line.strip() == f"KL to uniform {format_interval(kl['value'], kl['ci95'])} (ranks the board)"
               for line in lines)


def test_summary_shows_each_headline_quality_metric_under_its_result_key(digits_checkpoint: Path,
                                                                          tmp_path: Path) -> None:
    """The summary looks metrics up by the result's own keys (CLIP-IQA is stored as `clipiqa`)."""
    out = tmp_path / "result.json"
    run = CliRunner().invoke(app, ["score", str(digits_checkpoint), "--device", "cpu", "--out", str(out), "--json"])
    assert run.exit_code == 0, run.output
    raw = json.loads(out.read_text())
    for key, value in (("niqe", 5.25), ("brisque", 31.5), ("clipiqa", 0.625), ("eqface", 0.75)):
        raw["metrics"][key] = {"value": value, "ci95": [value - 0.125, value + 0.125], "higher_is_better": False}
    out.write_text(json.dumps(raw))
    text = "\n".join(summary_lines(read_result(out)))
    for label, value in (("NIQE", 5.25), ("BRISQUE", 31.5), ("CLIP-IQA", 0.625), ("EQ-Face", 0.75)):
        assert f"{label} {format_interval(value, (value - 0.125, value + 0.125))}" in text
