"""Leaderboard entries that mean one thing: (name, method, config hash, steps, batch size), named readably."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fairbench import entry_identity
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.board import build_leaderboard, read_results, render_csv, render_markdown
from tests.helpers import FIXTURE_DIR

DIGITS = "digits-bicolor"


# ------------------------------------------------------------------------------------------ naming, hashing


def test_config_hash_is_sha256_of_canonical_json_and_ignores_int_float_spelling() -> None:
    config = {"b": 2.0, "a": "x", "c": None}
    expected = hashlib.sha256(b'{"a":"x","b":2,"c":null}').hexdigest()
    assert entry_identity.config_hash(config) == expected
    assert entry_identity.config_hash({"c": None, "a": "x", "b": 2}) == expected  # key order and 2 vs 2.0
    assert entry_identity.config_hash({"a": "x", "b": 2.5, "c": None}) != expected


def test_config_changes_lists_non_default_settings_and_batch_size() -> None:
    defaults = {"lr": 0.0002, "clip_norm": None, "width": 64}
    assert entry_identity.config_changes(dict(defaults), defaults) == {}
    assert entry_identity.config_changes({**defaults, "clip_norm": 10, "width": 64.0}, defaults) == {"clip_norm": 10}
    changed = entry_identity.config_changes(dict(defaults), defaults, batch_size=32, default_batch_size=64)
    assert changed == {"batch_size": 32}
    assert entry_identity.config_changes(dict(defaults), defaults, batch_size=64, default_batch_size=64) == {}
    assert entry_identity.config_changes(dict(defaults), None) is None


@pytest.mark.parametrize(
    "changed, digest, expected",
    [
        ({}, "f" * 64, "repfair"),
        ({"clip_norm": 10.0}, "f" * 64, "repfair[clip_norm=10]"),
        ({"clip_norm": 0.5, "variant": "authors"}, "f" * 64, "repfair[clip_norm=0.5,variant=authors]"),
        ({"lr_g": 1e-4, "minibatch_std": True}, "f" * 64, "repfair[lr_g=0.0001,minibatch_std=true]"),
        (None, "0123456789" + "a" * 54, "repfair[config=01234567]"),  # defaults unknown: the hash says which
        (None, None, "repfair"),  # a file older than configs
    ],
)
def test_derived_names(changed: dict | None, digest: str | None, expected: str) -> None:
    assert entry_identity.derived_name("repfair", changed, digest) == expected
    if expected != "repfair":
        entry_identity.check_name(expected)  # a derived name is always a valid name


def test_qualified_appends_inside_existing_brackets() -> None:
    assert entry_identity.qualified("repfair[clip_norm=10]", {"steps": 200}) == "repfair[clip_norm=10,steps=200]"
    assert entry_identity.qualified("repfair", {}) == "repfair"


@pytest.mark.parametrize("bad", ["", "two words", "a|b", "-lead", "x" * 81, "tab\there"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(FairbenchError, match="--name"):
        entry_identity.check_name(bad)


# ------------------------------------------------------------------------------------------------- boards


def result(
    method: str | None = "repfair",
    seed: int | None = 0,
    steps: int = 4000,
    config: dict[str, Any] | None = None,
    changed: dict[str, Any] | None = None,
    name: str | None = None,
    kl: float = 0.1,
    submission: str | None = None,
    sha: str = "0" * 64,
    batch_size: int | None = 64,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": "fairbench-result/1", "task": DIGITS, "task_version": 1, "task_hash": "a" * 64,
        "method": method, "seed": seed, "n_samples": 1000,
        "submission": {"kind": "checkpoint" if method else "npz", "name": submission or method, "path": "x", "sha256": sha},
        "train": ({"steps": steps, "wall_time_s": 1.0, **({"batch_size": batch_size} if batch_size else {})}
                  if method else None),
        "metrics": {"kl_uniform_corrected": {"value": kl, "ci95": [kl - 0.01, kl + 0.01], "higher_is_better": False}},
        "groups": ["black", "white"], "group_proportions": {"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
    }
    if config is not None:
        data.update(config=config, config_hash=entry_identity.config_hash(config), config_changed=changed)
    if name is not None:
        data["name"] = name
    return data


def put(root: Path, data: dict[str, Any]) -> None:
    n = len(list(root.glob("*.json")))
    (root / f"r{n:03d}.json").write_text(json.dumps(data))


def rows(root: Path) -> dict[str, Any]:
    (board,) = build_leaderboard(read_results(root))
    return {row.entry: row for row in board.rows}


DEFAULT = {"clip_norm": None, "lr_g": 0.0002}
CLIP10 = {"clip_norm": 10.0, "lr_g": 0.0002}


def test_different_configs_never_merge_and_are_named_by_what_changed(tmp_path: Path) -> None:
    for seed in range(3):
        put(tmp_path, result(seed=seed, config=DEFAULT, changed={}, kl=0.1 + seed / 100))
        put(tmp_path, result(seed=seed, config=CLIP10, changed={"clip_norm": 10.0}, kl=0.3 + seed / 100))
    got = rows(tmp_path)
    assert set(got) == {"repfair", "repfair[clip_norm=10]"}
    assert got["repfair"].n_runs == 3 and got["repfair"].metrics["kl_uniform_corrected"].mean == pytest.approx(0.11)
    assert got["repfair[clip_norm=10]"].metrics["kl_uniform_corrected"].mean == pytest.approx(0.31)


def test_different_step_counts_never_merge_and_say_so(tmp_path: Path) -> None:
    """The issue's case: a 200-step run given seed 5 was averaged into the 4000-step entry."""
    for seed in range(3):
        put(tmp_path, result(seed=seed, steps=4000, config=DEFAULT, changed={}))
    put(tmp_path, result(seed=5, steps=200, config=DEFAULT, changed={}, kl=0.9))
    got = rows(tmp_path)
    assert set(got) == {"repfair[steps=4000]", "repfair[steps=200]"}
    assert got["repfair[steps=4000]"].n_runs == 3 and got["repfair[steps=4000]"].train_steps == 4000
    assert got["repfair[steps=200]"].seeds == (5,)
    md = render_markdown(build_leaderboard(read_results(tmp_path)))
    assert "repfair[steps=200]" in md


def test_different_batch_sizes_never_merge(tmp_path: Path) -> None:
    put(tmp_path, result(seed=0, config=DEFAULT, changed={}, batch_size=64))
    put(tmp_path, result(seed=1, config=DEFAULT, changed={}, batch_size=32))
    assert set(rows(tmp_path)) == {"repfair[batch_size=64]", "repfair[batch_size=32]"}


def test_old_file_without_config_is_not_merged_with_a_recorded_config(tmp_path: Path) -> None:
    put(tmp_path, result(seed=0, batch_size=None))  # written before configs were recorded
    put(tmp_path, result(seed=1, config=DEFAULT, changed={}))
    # the first setting that tells them apart names them: old files never recorded the batch size
    assert set(rows(tmp_path)) == {"repfair[batch_size=unrecorded]", "repfair[batch_size=64]"}
    put(tmp_path, result(seed=2, config=CLIP10, changed={}, batch_size=64))  # defaults unknown: config tells
    digest = entry_identity.config_hash(CLIP10)[:8]
    assert f"repfair[batch_size=64,config={digest}]" in rows(tmp_path)


def test_given_name_names_the_entry_and_merges_only_equal_runs(tmp_path: Path) -> None:
    for seed in range(2):
        put(tmp_path, result(seed=seed, config=CLIP10, changed={"clip_norm": 10.0}, name="rf-c10"))
    put(tmp_path, result(seed=0, config=DEFAULT, changed={}))
    got = rows(tmp_path)
    assert set(got) == {"rf-c10", "repfair"} and got["rf-c10"].n_runs == 2


def test_given_name_on_runs_that_differ_is_refused(tmp_path: Path) -> None:
    put(tmp_path, result(seed=0, config=CLIP10, changed={"clip_norm": 10.0}, name="mine"))
    put(tmp_path, result(seed=1, config=DEFAULT, changed={}, name="mine"))
    with pytest.raises(FairbenchError, match="entry name 'mine' is given to runs that differ"):
        rows(tmp_path)


def test_image_set_is_its_own_entry_named_after_the_submission(tmp_path: Path) -> None:
    put(tmp_path, result(method=None, seed=None, submission="my-diffusion", sha="1" * 64))
    put(tmp_path, result(method=None, seed=None, submission="other", sha="2" * 64, name="renamed"))
    put(tmp_path, result(seed=0, config=DEFAULT, changed={}))
    got = rows(tmp_path)
    assert set(got) == {"my-diffusion", "renamed", "repfair"}
    assert got["my-diffusion"].n_runs == 1 and got["my-diffusion"].train_steps is None


def test_two_different_image_sets_with_one_name_are_refused(tmp_path: Path) -> None:
    put(tmp_path, result(method=None, seed=None, submission="samples", sha="1" * 64))
    put(tmp_path, result(method=None, seed=None, submission="samples", sha="2" * 64))
    with pytest.raises(FairbenchError, match="give each its own --name"):
        rows(tmp_path)


def test_config_hash_that_does_not_match_the_config_is_refused(tmp_path: Path) -> None:
    data = result(config=DEFAULT, changed={})
    data["config"]["clip_norm"] = 3.0
    put(tmp_path, data)
    with pytest.raises(FairbenchError, match="config_hash"):
        read_results(tmp_path)


def test_archived_results_without_config_hashes_still_load() -> None:
    # (That every committed result in leaderboard/results loads is checked by leaderboard/check_committed.py.)
    # The oldest files (written before entries had config hashes, now archived) still load as their two entry_identity.
    (old,) = build_leaderboard(read_results(FIXTURE_DIR / "board" / "archive" / "dcgan-conditional-4k"))
    assert old.task == "mnist-bicolor-imbalanced"
    assert sorted(row.entry for row in old.rows) == ["repfair", "vanilla"]
    assert all(row.n_runs == 3 for row in old.rows)
    assert "config_hash" not in render_csv([old]).splitlines()[0]  # old files: the CSV keeps its columns


# -------------------------------------------------------------------------------------------- end to end


def test_run_and_score_record_config_hash_and_names(tmp_path: Path) -> None:
    runner = CliRunner()

    def ok(*args: str) -> str:
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output
        return res.stdout

    common = ["--task", DIGITS, "--steps", "3", "--device", "cpu"]
    plain = ok("run", "-m", "vanilla", *common, "--out", str(tmp_path / "a")).strip().splitlines()[-1]
    changed = ok("run", "-m", "vanilla", *common, "--out", str(tmp_path / "b"), "--set", "lr_g=1e-4",
                 "--batch-size", "32", "--name", "slow-g").strip().splitlines()[-1]

    def score(ckpt: str, *extra: str) -> dict[str, Any]:
        return json.loads(ok("score", ckpt, "--samples", "200", "--device", "cpu", "--json",
                             "--out", str(tmp_path / f"{len(list(tmp_path.glob('*.json')))}.json"), *extra))

    first = score(plain)
    assert first["config"]["lr_g"] == pytest.approx(0.0002)
    assert first["config_hash"] == entry_identity.config_hash(first["config"])
    assert first["config_changed"] == {} and first["name"] is None

    second = score(changed)
    assert second["config_changed"] == {"lr_g": pytest.approx(1e-4), "batch_size": 32}
    assert second["name"] == "slow-g"  # given at training time
    assert second["config_hash"] != first["config_hash"]
    assert score(changed, "--name", "renamed")["name"] == "renamed"  # score time wins

    bad = runner.invoke(app, ["score", plain, "--name", "a b", "--device", "cpu"])
    assert bad.exit_code == 2 and "error: --name 'a b'" in bad.output
