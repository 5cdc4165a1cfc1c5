"""Task specs: builtins, aliases, strict YAML parsing, task_hash stability, pinned judge weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.networks.judge import PACKAGE_DIR
from fairbench.task_registry import builtin_task_dir, get_task, list_tasks, resolve_task_id

BUILTIN_IDS = ["digits-bicolor", "mnist-bicolor", "mnist-bicolor-imbalanced"]


def digits_yaml() -> dict[str, Any]:
    return yaml.safe_load((builtin_task_dir() / "digits-bicolor.yaml").read_text(encoding="utf-8"))


def write_task(tmp_path: Path, data: Any, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def mutated(tmp_path: Path, mutate) -> Path:
    data = digits_yaml()
    mutate(data)
    return write_task(tmp_path, data)


# ---------------------------------------------------------------------------------------------- builtins


def test_builtin_tasks_load_with_their_ids() -> None:
    ids = [t.id for t in list_tasks()]
    for task_id in BUILTIN_IDS:
        assert task_id in ids
    for task in list_tasks():
        assert get_task(task.id) is task
        assert task.version >= 1
        assert task.n_groups == len(task.groups.names) >= 2
        assert len(task.task_hash) == 64


def test_digits_bicolor_spec_values() -> None:
    task = get_task("digits-bicolor")
    assert task.image_shape == (1, 16, 16)
    assert task.groups.names == ["black", "white"]
    assert task.conditional is True
    assert task.num_classes == 10
    assert task.class_names == [str(i) for i in range(10)]


def test_tasks_json_fields() -> None:
    result = CliRunner().invoke(app, ["tasks", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_id = {row["id"]: row for row in rows}
    assert set(BUILTIN_IDS) <= set(by_id)
    for row in rows:
        for key in ("id", "version", "task_hash", "groups", "conditional", "image_shape"):
            assert key in row, (row["id"], key)
        spec = get_task(row["id"])
        assert row["task_hash"] == spec.task_hash
        assert row["version"] == spec.version
        assert row["groups"] == spec.groups.names
        assert row["conditional"] is spec.conditional
        assert row["image_shape"] == list(spec.image_shape)
    assert by_id["mnist-bicolor"]["image_shape"] == [1, 28, 28]
    assert by_id["digits-bicolor"]["image_shape"] == [1, 16, 16]


@pytest.mark.parametrize(("alias", "target"), [("mnist", "mnist-bicolor"), ("digits", "digits-bicolor")])
def test_aliases_resolve(alias: str, target: str) -> None:
    assert resolve_task_id(alias) == target
    assert get_task(alias) is get_task(target)


def test_unknown_task_suggests_close_name() -> None:
    with pytest.raises(FairbenchError, match=r"Did you mean 'digits-bicolor'\?") as info:
        get_task("digits-bicolr")
    assert "unknown task 'digits-bicolr'" in str(info.value)


def test_unknown_task_through_cli_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["run", "--method", "vanilla", "--task", "mnist-bicolr", "--steps", "1"])
    assert result.exit_code == 2
    assert "Did you mean 'mnist-bicolor'?" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------------- strict YAML


def test_yaml_copy_of_builtin_loads_with_same_hash(tmp_path: Path) -> None:
    spec = get_task(write_task(tmp_path, digits_yaml()))
    assert spec.id == "digits-bicolor"
    assert spec.task_hash == get_task("digits-bicolor").task_hash


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["dataset"].update(channels=1), "channels"),
        (lambda d: d["sampling"].update(n_sample=10), "n_sample"),
    ],
    ids=["top-level", "nested", "typo"],
)
def test_unknown_key_is_an_error(tmp_path: Path, mutate, named: str) -> None:
    path = mutated(tmp_path, mutate)
    with pytest.raises(FairbenchError, match="unknown key") as info:
        get_task(path)
    assert named in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d.update(version="one"), "version"),
        (lambda d: d["sampling"].update(n_samples=2000.5), "n_samples"),
        (lambda d: d.update(conditional="yes"), "conditional"),
        (lambda d: d["dataset"].update(image_shape=[1, "16", 16]), "image_shape"),
        (lambda d: d["groups"].update(names="black"), "names"),
        (lambda d: d["sampling"].update(seed=True), "seed"),
    ],
    ids=["str-for-int", "float-for-int", "str-for-bool", "str-in-list", "str-for-list", "bool-for-int"],
)
def test_wrong_type_is_an_error(tmp_path: Path, mutate, named: str) -> None:
    with pytest.raises(FairbenchError) as info:
        get_task(mutated(tmp_path, mutate))
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d["transform"]["params"].update(white_probabilty=0.3), "white_probabilty"),
        (lambda d: d["transform"]["params"].update(white_probability=1.5), "white_probability"),
        (lambda d: d["transform"]["params"].update(white_probability="half"), "white_probability"),
        (lambda d: d["transform"]["params"].pop("seed"), "seed"),
        (lambda d: d["transform"].update(kind="bicolour"), "bicolour"),
    ],
    ids=["unknown-param", "out-of-range", "wrong-type", "missing-param", "unknown-kind"],
)
def test_bad_transform_params_are_errors(tmp_path: Path, mutate, named: str) -> None:
    path = mutated(tmp_path, mutate)
    with pytest.raises(FairbenchError) as info:
        get_task(path)
    assert named in str(info.value)
    assert str(path) in str(info.value)  # the user is told which file to fix


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d.pop("groups"), "groups"),
        (lambda d: d["dataset"].pop("num_classes"), "num_classes"),
    ],
)
def test_missing_key_is_an_error(tmp_path: Path, mutate, named: str) -> None:
    with pytest.raises(FairbenchError, match=f"missing required key '{named}'"):
        get_task(mutated(tmp_path, mutate))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["judge"].pop("sha256"), "judge: needs a sha256"),
        (lambda d: d["judge"].update(trained_on_first_use=True), "judge: give sha256 or trained_on_first_use, not both"),
        (lambda d: d["quality"]["feature_network"].pop("sha256"), r"quality.feature_network \(domain-digits\): needs a sha256"),
        (lambda d: d["judge"].update(arch="judge-cnn9"), "unknown judge architecture 'judge-cnn9'"),
    ],
    ids=["judge-unpinned", "judge-both", "features-unpinned", "unknown-arch"],
)
def test_weights_are_pinned_or_trained_on_first_use(tmp_path: Path, mutate, message: str) -> None:
    with pytest.raises(FairbenchError, match=message):
        get_task(mutated(tmp_path, mutate))


def test_new_optional_fields_at_their_defaults_keep_the_hash(tmp_path: Path) -> None:
    base = get_task("digits-bicolor")
    same = get_task(mutated(tmp_path, lambda d: (d["judge"].update(trained_on_first_use=False, arch=None),
                                                 d["dataset"].update(judge_overlaps_train=False))))
    assert same.task_hash == base.task_hash
    other = tmp_path / "other"
    other.mkdir()
    changed = get_task(mutated(other, lambda d: d["judge"].update(arch="judge-cnn3/1")))
    assert changed.task_hash != base.task_hash


def test_unknown_data_source_names_the_file(tmp_path: Path) -> None:
    path = mutated(tmp_path, lambda d: d["dataset"].update(source="sklearn-digitz"))
    with pytest.raises(FairbenchError, match="Did you mean 'sklearn-digits'") as info:
        get_task(path)
    assert str(path) in str(info.value)


def test_overlapping_judge_and_train_splits_are_refused(tmp_path: Path) -> None:
    path = mutated(tmp_path, lambda d: d["dataset"]["judge"].update(start=1000))
    with pytest.raises(FairbenchError, match="overlap"):
        get_task(path)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(FairbenchError, match="not valid YAML"):
        get_task(bad)
    with pytest.raises(FairbenchError, match="cannot read task file"):
        get_task(tmp_path / "absent.yaml")
    empty = write_task(tmp_path, None, "empty.yaml")
    with pytest.raises(FairbenchError, match="expected a mapping"):
        get_task(empty)


# -------------------------------------------------------------------------------------------- task_hash


# Pinned: results record this hash, so a change to hashing (not to the task) would orphan every result.
DIGITS_BICOLOR_V2_HASH = "4aef552646be33adc704e189f7c030f79ed4047f6f61c8cc526d3074ee0512d3"


def test_task_hash_is_stable() -> None:
    task = get_task("digits-bicolor")
    assert task.version == 2, "digits-bicolor changed version: update the pinned hash on purpose"
    assert task.task_hash == DIGITS_BICOLOR_V2_HASH
    assert len({t.task_hash for t in list_tasks()}) == len(list_tasks())


def test_task_hash_ignores_description_aliases_and_training(tmp_path: Path) -> None:
    base = get_task("digits-bicolor").task_hash

    def prose(d: dict) -> None:
        d["description"] = "something else entirely"
        d["aliases"] = ["dg"]
        d["training"]["steps"] = 7

    assert get_task(mutated(tmp_path, prose)).task_hash == base


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["transform"]["params"].update(white_probability=0.3),
        lambda d: d["transform"]["params"].update(seed=1),
        lambda d: d["sampling"].update(n_samples=1000),
        lambda d: d["sampling"].update(seed=1),
        lambda d: d["dataset"]["test"].update(stop=1700),
        lambda d: d["judge"].update(sha256="0" * 64),
        lambda d: d.update(version=d["version"] + 1),
    ],
    ids=["white_probability", "transform-seed", "n_samples", "sampling-seed", "split", "judge", "version"],
)
def test_task_hash_changes_with_hashed_fields(tmp_path: Path, mutate) -> None:
    assert get_task(mutated(tmp_path, mutate)).task_hash != get_task("digits-bicolor").task_hash


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["transform"]["params"].pop("eval_white_probability"),  # the default is 0.5
        lambda d: d["transform"].update(params={"seed": 20261123, "white_probability": 0.5}),  # key order
    ],
    ids=["default-omitted", "reordered"],
)
def test_task_hash_is_of_the_resolved_spec(tmp_path: Path, mutate) -> None:
    assert get_task(mutated(tmp_path, mutate)).task_hash == get_task("digits-bicolor").task_hash


def test_task_hash_int_and_float_probability_agree(tmp_path: Path) -> None:
    one = get_task(mutated(tmp_path, lambda d: d["transform"]["params"].update(white_probability=1)))
    other = tmp_path / "other"
    other.mkdir()
    one_f = get_task(mutated(other, lambda d: d["transform"]["params"].update(white_probability=1.0)))
    assert one.task_hash == one_f.task_hash


# ------------------------------------------------------------------------------------------------ judges


@pytest.mark.parametrize("task", [t for t in list_tasks() if t.judge.kind == "pinned"], ids=lambda t: t.id)
def test_builtin_judge_sha256_matches_shipped_file(task) -> None:
    """Shipped judges only; a user-supplied one (ffhq-race's FairFace) is hashed into each result instead."""
    weights = PACKAGE_DIR / f"{task.judge.id}.safetensors"
    if task.judge.trained_on_first_use:  # nothing ships: the user's data trains it (fairbench.networks.store)
        assert task.judge.sha256 is None and not weights.exists()
        return
    assert weights.is_file(), f"{weights} is not shipped"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == task.judge.sha256
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["sha256"] == task.judge.sha256
    assert card["groups"] == task.groups.names
    assert card["in_channels"] == task.image_shape[0]



@pytest.mark.parametrize(
    ("mutate", "data_changes"),
    [
        (lambda d: d["transform"]["params"].update(white_probability=0.3), True),
        (lambda d: d["dataset"]["train"].update(stop=1000), True),
        (lambda d: d["judge"].update(sha256="0" * 64), False),
        (lambda d: d["sampling"].update(n_samples=1000), False),
        (lambda d: d["bootstrap"].update(n_resamples=10), False),
        (lambda d: d.update(version=d["version"] + 1), False),
    ],
    ids=["white_probability", "train-split", "judge", "n_samples", "bootstrap", "version"],
)
def test_data_hash_follows_only_what_methods_train_on(tmp_path: Path, mutate, data_changes: bool) -> None:
    """A checkpoint stays scorable when only its task's scoring protocol changes."""
    changed = get_task(mutated(tmp_path, mutate))
    base = get_task("digits-bicolor")
    assert changed.task_hash != base.task_hash
    assert (changed.data_hash != base.data_hash) is data_changes
