"""The result contract (`fairbench.results`): committed result files of every age load through the strict
reader, the writer and reader are inverses, metric names keep their spelling, and a report's sidecar is never
read as a result.

The fixtures under tests/fixtures/results/ are copies of committed results: the oldest shape (no
`iqa_weights`, `group_shares` or entry config), current ones with and without a changed config, and two still
carrying the `report` key reports wrote into results before the sidecar.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fairbench.board import RESULT_SCHEMA, read_results
from fairbench.results import (
    SCHEMA,
    JudgeInfo,
    ScoreResult,
    Submission,
    dumps,
    read_result,
    result_from_json,
    result_paths,
    write_result,
)
from fairbench.results import names
from fairbench.results.check import check, main
from fairbench.results.sidecar import (
    LEGACY_REPORT_KEY,
    is_report_path,
    read_report_index,
    report_path,
    write_report_index,
)
from tests.helpers import FIXTURE_DIR

FIXTURES = FIXTURE_DIR / "results"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
LEGACY = [p for p in FIXTURE_FILES if p.name.endswith("-with-report-key.json")]


def _result(**changes: object) -> ScoreResult:
    """A result using every optional field: an image set (no method, no seeds) with a recognisability check."""
    base = ScoreResult(
        task="digits-bicolor", task_version=1, task_hash="a" * 64, method=None,
        submission=Submission("npz", "images.npz", "images.npz", "b" * 64), seed=None, train=None, n_samples=100,
        sampling_seed=None, groups=["black", "white"],
        group_proportions={"observed": [0.4, 0.6], "corrected": [0.41, 0.59]}, group_counts=[40, 60],
        metrics={
            names.KL_UNIFORM_CORRECTED: {"value": 0.02, "ci95": [0.0, 0.05], "higher_is_better": False},
            names.FID: {"value": 12.5, "ci95": [11.0, 14.0], "higher_is_better": False},
            names.VENDI_INTRA_WORST: {"value": 3.0, "ci95": None, "higher_is_better": True},
        },
        per_condition=None,
        judge=JudgeInfo("digits-judge", "c" * 64, 0.99, [[0.99, 0.01], [0.02, 0.98]], [[99, 1], [2, 98]]),
        bootstrap={"n_resamples": 100, "seed": 0}, versions={"fairbench": "0.1.0"}, device="cpu", git_revision=None,
        created="2026-12-07T00:00:00+00:00", elapsed_s=1.5,
        per_group={names.VENDI_INTRA: {"black": {"value": 3.0}, "white": {"value": 4.0}}},
        fid_floor={"value": 2.0, "n_halves": [50, 50], "reference_counts": [100, 100]},
        skipped={names.KID: "too few samples"}, recognisable={"unrecognisable_share": 0.01, "key": "k"},
        name="images",
    )
    return replace(base, **changes)


def test_the_schema_is_spelled_once() -> None:
    assert SCHEMA == RESULT_SCHEMA == "fairbench-result/1"


def test_metric_names_keep_the_spelling_of_committed_results() -> None:
    """Result files are read by these names long after they were written: the values never change."""
    assert (names.KL_UNIFORM, names.KL_UNIFORM_CORRECTED, names.KL_UNIFORM_CORRECTED_DEBIASED) == (
        "kl_uniform", "kl_uniform_corrected", "kl_uniform_corrected_debiased")
    assert (names.FD_L1_CORRECTED, names.KL_UNIFORM_CORRECTED_COND_WORST) == (
        "fd_l1_corrected", "kl_uniform_corrected_cond_worst")
    assert (names.FID, names.FID_BALANCED, names.FID_INTRA_MEAN, names.FID_INTRA_WORST, names.KID) == (
        "fid", "fid_balanced", "fid_intra_mean", "fid_intra_worst", "kid")
    assert names.FID_FLOOR == "fid_floor" and names.VENDI_INTRA_WORST == "vendi_intra_worst"
    assert [n + names.INTRA_WORST for n in names.PRDC_NAMES] == [
        "precision_intra_worst", "recall_intra_worst", "density_intra_worst", "coverage_intra_worst"]
    assert (names.NIQE, names.BRISQUE, names.CLIPIQA, names.EQFACE) == ("niqe", "brisque", "clipiqa", "eqface")
    fixture_metrics = {m for p in FIXTURE_FILES for m in json.loads(p.read_text())["metrics"]}
    assert {names.KL_UNIFORM_CORRECTED, names.FID, names.KID, names.FID_INTRA_WORST} <= fixture_metrics


def test_the_writer_and_reader_are_inverses(tmp_path: Path) -> None:
    result = _result()
    path = write_result(tmp_path / "r.json", result)
    assert read_result(path) == result
    assert path.read_text() == dumps(result) and json.loads(path.read_text())["schema"] == SCHEMA
    assert next(iter(json.loads(path.read_text()))) == "schema"  # first, so a reader sees the version at once
    assert read_result(write_result(tmp_path / "m.json", _result(method="vanilla", seed=3))).seed == 3


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_every_committed_shape_loads_and_reads_back_as_written(path: Path, tmp_path: Path) -> None:
    data = json.loads(path.read_text())
    result = read_result(path)
    written = result.to_json()
    # every field the file has comes back as it was; fields it predates (judge.confusion_counts, ...) read as
    # their defaults
    assert _has_all_of({k: v for k, v in data.items() if k != LEGACY_REPORT_KEY}, written)
    assert LEGACY_REPORT_KEY not in written  # the old figure listing is read past, not kept
    (record,) = read_results(_copy_of(path, tmp_path / "board").parent)  # the board's tolerant reader agrees
    assert record.task == result.task and set(record.metrics) == set(result.metrics)


def _has_all_of(old: object, new: object) -> bool:
    """`new` holds everything `old` does, equal; objects in `new` may have more keys."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _has_all_of(v, new[k]) for k, v in old.items())
    return old == new


def _copy_of(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, folder / path.name))


def test_the_fixtures_cover_old_and_new_shapes() -> None:
    shapes = [json.loads(p.read_text()) for p in FIXTURE_FILES]
    assert any("iqa_weights" not in d and "config" not in d for d in shapes)  # the oldest shape
    assert any(d.get("config_changed") for d in shapes) and any(d.get("config_changed") == {} for d in shapes)
    assert len(LEGACY) >= 2 and all(LEGACY_REPORT_KEY in json.loads(p.read_text()) for p in LEGACY)


def test_the_strict_reader_refuses_other_schemas_and_unknown_keys() -> None:
    data = _result().to_json()
    with pytest.raises(ValueError, match="not a fairbench-result/1 result"):
        result_from_json({**data, "schema": "fairbench-result/2"})
    with pytest.raises(ValueError, match="unknown result keys: surprise"):
        result_from_json({**data, "surprise": 1})
    assert result_from_json({**data, LEGACY_REPORT_KEY: {"shares": "x.png"}}) == _result()


def test_check_command_passes_the_fixtures_and_names_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert check([FIXTURES]) == (len(FIXTURE_FILES), [])
    assert main(["check", str(FIXTURES)]) == 0
    assert capsys.readouterr().out == f"{len(FIXTURE_FILES)} result files checked, 0 problems\n"
    folder = tmp_path / "board"
    for path in FIXTURE_FILES:
        _copy_of(path, folder / "task")
    write_report_index(folder / "task" / FIXTURE_FILES[0].name, json.loads(FIXTURE_FILES[0].read_text()), {})
    broken = folder / "task" / "broken.json"
    broken.write_text(json.dumps({**json.loads(FIXTURE_FILES[0].read_text()), "schema": None}))
    assert main(["check", str(folder)]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{len(FIXTURE_FILES) + 1} result files checked, 1 problem\n"  # the sidecar is no result
    assert captured.err == f"{broken}: not a fairbench-result/1 result: schema None\n"
    assert main([]) == 2 and "usage: python -m fairbench.results check" in capsys.readouterr().err


def test_check_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "fairbench.results", "check", str(FIXTURES)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{len(FIXTURE_FILES)} result files checked, 0 problems"


def test_sidecars_are_not_results(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "task" / "entry"
    paths = [_copy_of(p, folder) for p in FIXTURE_FILES]
    for path in paths:
        sidecar = write_report_index(path, json.loads(path.read_text()), {"shares": f"{path.stem}.shares.png"})
        assert sidecar == report_path(path) == path.with_name(f"{path.stem}.report.json") and is_report_path(sidecar)
    assert result_paths(tmp_path / "results") == sorted(paths)
    assert sorted(r.path for r in read_results(tmp_path / "results")) == sorted(paths)


def test_the_figure_index_comes_from_the_sidecar_of_this_run_else_the_legacy_key(tmp_path: Path) -> None:
    legacy = _copy_of(LEGACY[0], tmp_path)
    data = json.loads(legacy.read_text())
    assert read_report_index(legacy) == data[LEGACY_REPORT_KEY]  # an older file, no sidecar: its own listing
    write_report_index(legacy, data, {"shares": "new.png"})
    assert read_report_index(legacy) == read_report_index(legacy, data) == {"shares": "new.png"}

    current = _copy_of(next(p for p in FIXTURE_FILES if p not in LEGACY), tmp_path)
    assert read_report_index(current) == {}
    write_report_index(current, json.loads(current.read_text()), {"shares": "a.png"})
    assert read_report_index(current) == {"shares": "a.png"}
    # another run collected under the same name does not inherit the old run's figures
    rescored = {**json.loads(current.read_text()), "created": "2027-01-01T00:00:00+00:00"}
    current.write_text(json.dumps(rescored))
    assert read_report_index(current) == {}
    report_path(current).write_text("not json")
    assert read_report_index(current) == {}
