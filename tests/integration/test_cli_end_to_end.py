"""The `fairbench` command end to end through typer's CliRunner: list, train, resume, score, judge, leaderboard."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fairbench import data
from fairbench.cli import app
from fairbench.networks.judge import PACKAGE_DIR
from fairbench.task_registry import get_task
from tests.helpers import REPO_ROOT

DIGITS = "digits-bicolor"
CHECKPOINT_KEYS = {
    "format", "arch", "arch_kwargs", "state_dict", "task", "task_hash", "method", "config", "seed", "versions",
}


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def ok(*args: str) -> Any:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def score_json(*args: str) -> dict[str, Any]:
    return json.loads(ok("score", *args, "--json", "--device", "cpu").stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def digits_test_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real held-out digits test split as an image-set submission (NHWC uint8 + labels)."""
    split = data.load_split(get_task(DIGITS), "test")
    path = tmp_path_factory.mktemp("npz") / "digits_test.npz"
    np.savez(path, images=split.images.numpy().transpose(0, 2, 3, 1), labels=split.labels.numpy())
    return path


# ------------------------------------------------------------------------------------------------ listing


def test_tasks_table_lists_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # keep rich from wrapping ids inside cells
    out = ok("tasks").stdout
    for task_id in ("digits-bicolor", "mnist-bicolor", "mnist-bicolor-imbalanced", "cifar10-lt", "cifar10-lt-10",
                    "svhn-shaded", "svhn-shaded-imbalanced"):
        assert task_id in out
    assert get_task(DIGITS).task_hash[:12] in out
    assert "class: 10: airplane … truck" in out and "shading: normal / shaded" in out


def test_tasks_json_parses_with_promised_fields() -> None:
    rows = json.loads(ok("tasks", "--json").stdout)
    assert isinstance(rows, list) and rows
    for row in rows:
        assert {"id", "version", "task_hash", "groups", "conditional", "image_shape"} <= set(row)
        assert isinstance(row["version"], int)
        assert len(row["task_hash"]) == 64
        assert isinstance(row["conditional"], bool)
        assert len(row["image_shape"]) == 3
    digits = next(r for r in rows if r["id"] == DIGITS)
    assert digits["groups"] == ["black", "white"]
    assert digits["conditional"] is True
    assert digits["image_shape"] == [1, 16, 16]


def test_methods_describes_each_method_and_every_option_with_its_default() -> None:
    import dataclasses

    from fairbench.methods import METHODS

    described = {m["name"]: m for m in json.loads(ok("methods", "--json").stdout)}
    assert {"vanilla", "repfair", "groupcond", "mbstd", "rebalance"} <= set(described)
    for name, method in described.items():
        assert len(method["description"]) > 40, name
        config = METHODS.get(name).config_cls()
        assert [o["name"] for o in method["options"]] == [f.name for f in dataclasses.fields(config)]
        for option in method["options"]:
            assert option["default"] == getattr(config, option["name"])
            assert option["meaning"], f"{name}: option {option['name']} has no description"
    clip = next(o for o in described["repfair"]["options"] if o["name"] == "clip_norm")
    assert clip["default"] is None and "published C" in clip["meaning"]
    table = ok("methods", "repfair").stdout
    assert "RepFair-GAN" in table and "clip_norm" in table and "none" in table  # None as a user types it
    assert "vanilla" not in table.split("\n", 1)[0]


def test_methods_names_an_unknown_method() -> None:
    result = invoke("methods", "nope")
    assert result.exit_code == 2
    assert "unknown method 'nope'; registered:" in result.output


# ------------------------------------------------------------------------------------------------ training


def test_run_prints_checkpoint_path_last_and_resumes(tmp_path: Path) -> None:
    args = ["run", "--method", "vanilla", "--task", DIGITS, "--steps", "40", "--out", str(tmp_path), "--device", "cpu"]
    first = ok(*args)
    expected = tmp_path / DIGITS / "vanilla" / "seed0" / "checkpoint.pt"
    assert first.stdout.strip().splitlines()[-1] == str(expected)
    assert expected.is_file()

    raw = torch.load(expected, map_location="cpu", weights_only=True)
    assert CHECKPOINT_KEYS <= set(raw)
    assert raw["format"] == "fairbench-generator/1"
    assert raw["task"] == DIGITS
    assert raw["task_hash"] == get_task(DIGITS).task_hash
    assert raw["method"] == "vanilla" and raw["seed"] == 0
    assert raw["arch"] == "cdcgan"
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())
    assert raw["train"]["steps"] == 40

    before = sha256(expected)
    second = ok(*args)
    assert second.stdout.strip().splitlines()[-1] == str(expected)
    assert sha256(expected) == before, "a finished run must not train again"


def test_run_with_bad_override_is_exit_2(tmp_path: Path) -> None:
    result = invoke(
        "run", "--method", "repfair", "--task", DIGITS, "--steps", "2", "--out", str(tmp_path),
        "--set", "clip_norm=abc",
    )
    assert result.exit_code == 2
    assert "clip_norm" in result.output
    assert not any(tmp_path.iterdir()), "nothing is written for a rejected config"


def test_checkpoint_of_a_custom_yaml_task_scores_with_task_option(tmp_path: Path) -> None:
    custom = tmp_path / "my-digits.yaml"
    text = (REPO_ROOT / "tasks" / f"{DIGITS}.yaml").read_text()
    custom.write_text(text.replace("\nid: digits-bicolor", "\nid: my-digits").replace("aliases: [digits]", "aliases: []"))
    ckpt = ok("run", "--method", "vanilla", "--task", str(custom), "--steps", "3", "--out", str(tmp_path)).stdout
    ckpt_path = ckpt.strip().splitlines()[-1]
    assert invoke("score", ckpt_path).exit_code == 2  # its task is not installed: the YAML must be given
    result = score_json(ckpt_path, "--task", str(custom))
    assert result["task"] == "my-digits" and result["n_samples"] == 2000


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1e-4", 1e-4), ("2E-3", 2e-3), ("-1.5e2", -150.0), ("3", 3), ("0.5", 0.5), ("abc", "abc"), ("true", True)],
)
def test_set_values_parse_as_a_user_would_mean_them(value: str, expected: Any) -> None:
    from fairbench.cli.common import parse_overrides

    parsed = parse_overrides([f"key={value}"])["key"]
    assert parsed == expected and type(parsed) is type(expected)


def test_run_records_a_scientific_notation_learning_rate(tmp_path: Path) -> None:
    ckpt = ok("run", "--method", "vanilla", "--task", DIGITS, "--steps", "2", "--out", str(tmp_path),
              "--set", "lr_g=1e-4", "--set", "lr_d=3e-4").stdout.strip().splitlines()[-1]
    config = torch.load(ckpt, weights_only=True)["config"]
    assert config["lr_g"] == 1e-4 and config["lr_d"] == 3e-4


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "vanilla", "--steps", "0"], "positive"),
        (["--method", "vanila"], "Did you mean 'vanilla'"),
        (["--method", "vanilla", "--set", "no_such=1"], "no_such"),
        (["--method", "vanilla", "--set", "missing-equals"], "KEY=VALUE"),
        (["--method", "repfair", "--set", "clip_norm=-1"], "clip_norm"),
        (["--method", "vanilla", "--set", "width=0"], "width must be a positive integer"),
        (["--method", "repfair", "--set", "mapping_layers=-1"], "mapping_layers must be >= 0"),
        (["--method", "vanilla", "--set", "beta1=1.5"], "beta1 must be in [0, 1)"),
        (["--method", "vanilla", "--set", "lr_d=0"], "lr_d must be positive"),
    ],
)
def test_run_rejects_bad_options(tmp_path: Path, args: list[str], needle: str) -> None:
    result = invoke("run", "--task", DIGITS, "--steps", "2", "--out", str(tmp_path), *args)
    assert result.exit_code == 2
    assert needle in result.output


# ------------------------------------------------------------------------------------------------ scoring


def test_score_checkpoint_json_has_required_fields(digits_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    shutil.copy(digits_checkpoint, ckpt)
    result = score_json(str(ckpt))
    for key in (
        "schema", "task", "task_version", "task_hash", "method", "n_samples", "group_proportions", "metrics",
        "per_condition", "judge", "versions", "created",
    ):
        assert key in result, key
    task = get_task(DIGITS)
    assert result["schema"] == "fairbench-result/1"
    assert result["task"] == DIGITS and result["task_version"] == task.version
    assert result["task_hash"] == task.task_hash
    assert result["method"] == "vanilla"
    assert result["n_samples"] == task.sampling.n_samples
    for kind in ("observed", "corrected"):
        props = result["group_proportions"][kind]
        assert len(props) == 2 and abs(sum(props) - 1) < 1e-9
    assert sum(result["group_counts"]) == result["n_samples"]
    assert result["metrics"]
    for name, metric in result["metrics"].items():
        assert set(metric) == {"value", "ci95", "higher_is_better"}, name
        if metric["ci95"] is None:  # PRDC and the Vendi score carry no interval (scoring.quality says why)
            assert name in {"precision_intra_worst", "recall_intra_worst", "density_intra_worst",
                            "coverage_intra_worst", "vendi", "vendi_intra_worst"}, name
            continue
        low, high = metric["ci95"]
        assert math.isfinite(metric["value"]) and low <= high, name
        assert isinstance(metric["higher_is_better"], bool)
    assert {"kl_uniform", "kl_uniform_corrected", "fd_l2", "kl_uniform_cond_worst"} <= set(result["metrics"])
    assert result["per_condition"]["conditions"] == [str(i) for i in range(10)]
    assert result["judge"]["sha256"] == task.judge.sha256
    assert 0.5 < result["judge"]["accuracy"] <= 1.0
    assert len(result["judge"]["confusion"]) == 2
    assert "torch" in result["versions"] and "fairbench" in result["versions"]

    written = ckpt.parent / "result.json"
    assert written.is_file()
    assert json.loads(written.read_text())["metrics"] == result["metrics"]


def test_score_image_set_from_real_test_split(digits_test_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = score_json("--task", DIGITS, "--images", str(digits_test_npz), "--out", str(out))
    split = data.load_split(get_task(DIGITS), "test")
    assert result["method"] is None
    assert result["submission"]["kind"] == "npz"
    assert result["n_samples"] == len(split)
    # The shipped judge is perfect on this split, so the judged proportions are the true ones.
    white = split.groups.numpy().mean()
    judge_error = 1 - result["judge"]["accuracy"]
    assert result["group_proportions"]["observed"][1] == pytest.approx(white, abs=judge_error + 1e-9)
    assert out.is_file()


def test_score_old_batch_size_flag_runs_and_changes_nothing(digits_checkpoint: Path, tmp_path: Path) -> None:
    plain = score_json(str(digits_checkpoint), "--out", str(tmp_path / "a.json"))
    old = ok("score", str(digits_checkpoint), "--batch-size", "7", "--json", "--device", "cpu", "--out",
             str(tmp_path / "b.json"))
    assert "--batch-size is no longer used" in old.stderr
    given = json.loads(old.stdout)
    for key in ("metrics", "group_counts", "per_condition"):
        assert given[key] == plain[key]


def test_score_same_seed_twice_is_identical(digits_checkpoint: Path, tmp_path: Path) -> None:
    first = score_json(str(digits_checkpoint), "--samples", "600", "--out", str(tmp_path / "a.json"))
    second = score_json(str(digits_checkpoint), "--samples", "600", "--out", str(tmp_path / "b.json"))
    assert first["n_samples"] == 600
    assert first["metrics"] == second["metrics"]
    assert first["group_counts"] == second["group_counts"]


def test_score_image_set_batch_size_independent(digits_test_npz: Path, tmp_path: Path) -> None:
    common = ["--task", DIGITS, "--images", str(digits_test_npz)]
    a = score_json(*common, "--batch-size", "7", "--out", str(tmp_path / "a.json"))
    b = score_json(*common, "--batch-size", "500", "--out", str(tmp_path / "b.json"))
    assert a["metrics"] == b["metrics"]


def test_score_folder_twice_writes_result_beside_the_folder(tmp_path: Path) -> None:
    split = data.load_split(get_task(DIGITS), "test")
    root = tmp_path / "samples"
    for i in range(40):
        folder = root / str(int(split.labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(split.images[i, 0].numpy()).save(folder / f"{i}.png")
    first = ok("score", "--task", DIGITS, "--images", str(root), "--device", "cpu")
    assert first.stdout.strip().splitlines()[-1] == str(tmp_path / "samples.result.json")
    assert not (root / "result.json").exists(), "the result must not land inside the submission"
    saved = json.loads((tmp_path / "samples.result.json").read_text())
    assert saved["submission"]["kind"] == "folder" and saved["n_samples"] == 40
    second = score_json("--task", DIGITS, "--images", str(root))
    assert second["submission"]["sha256"] == saved["submission"]["sha256"]
    assert second["metrics"] == saved["metrics"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--task", DIGITS],
        ["CKPT", "--task", "mnist-bicolor"],
        ["--task", DIGITS, "--images", "NPZ", "--samples", "5"],
        ["--images", "x.npz"],
        ["CKPT", "--device", "tpu"],
        ["CKPT", "--samples", "0"],
    ],
    ids=[
        "nothing", "task-only", "ckpt-and-other-task", "samples-with-images", "images-without-task", "bad-device", "zero-samples",
    ],
)
def test_score_argument_errors(args: list[str], digits_checkpoint: Path, digits_test_npz: Path) -> None:
    args = [{"CKPT": str(digits_checkpoint), "NPZ": str(digits_test_npz)}.get(a, a) for a in args]
    result = invoke("score", *args)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.strip().startswith("error:")


# ----------------------------------------------------------------------------------- judge and leaderboard


def test_judge_eval_prints_accuracy() -> None:
    out = ok("judge", "eval", "--task", DIGITS).stdout
    assert "accuracy" in out
    card = json.loads((PACKAGE_DIR / "digits-bicolor.json").read_text())
    assert f"accuracy {card['accuracy']:.4f}" in out
    assert "black" in out and "white" in out


def test_leaderboard_builds_from_two_scored_results(
    digits_checkpoint: Path, digits_test_npz: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    n = str(len(data.load_split(get_task(DIGITS), "test")))  # the leaderboard refuses to mix sample counts
    ok("score", str(digits_checkpoint), "--samples", n, "--device", "cpu", "--out", str(results / "vanilla.json"))
    ok("score", "--task", DIGITS, "--images", str(digits_test_npz), "--device", "cpu",
       "--out", str(results / "real.json"))
    board = tmp_path / "board"
    out = ok("leaderboard", "--results", str(results), "--out", str(board)).stdout
    csv_path, md_path = board / "leaderboard.csv", board / "leaderboard.md"
    assert out.strip().splitlines()[-2:] == [str(csv_path), str(md_path)]
    markdown = md_path.read_text()
    assert "vanilla" in markdown and "digits_test" in markdown
    csv = csv_path.read_text()
    assert "vanilla" in csv and "digits_test" in csv


def test_features_train_reproduces_the_pinned_digits_network(tmp_path: Path) -> None:
    """Within the stated tolerance of the pinned network; the retrained hash is a bonus, never asserted
    (float kernels differ between CPUs, so the bytes do too)."""
    from fairbench.networks.reproduction import FEATURE_TOLERANCE

    result = ok("features", "train", "--task", DIGITS, "--out", str(tmp_path))
    lines = result.stdout.strip().splitlines()
    pinned = get_task(DIGITS).quality.feature_network.sha256
    assert lines[-1] == "reproduction PASSED: within tolerance of the pinned network"
    assert f"  pinned    {pinned}" in lines
    assert any(line.strip().startswith("bonus, bit-exact:") for line in lines)
    agreement = next(line for line in lines if line.strip().startswith("prediction agreement"))
    assert float(agreement.split()[2]) >= FEATURE_TOLERANCE.min_agreement and agreement.endswith(": ok")
    distance = next(line for line in lines if line.strip().startswith("feature distance"))
    assert float(distance.split()[3]) <= FEATURE_TOLERANCE.max_feature_distance and distance.endswith(": ok")
    assert all(len(line) <= 80 for line in lines)
    assert (tmp_path / "domain-digits.safetensors").is_file()
    assert invoke("features", "train", "--task", "tasks/nope.yaml").exit_code == 2


def test_ref_stats_from_another_feature_network_is_refused(digits_checkpoint: Path, tmp_path: Path) -> None:
    from fairbench.metrics.frechet import feature_stats, save_stats

    rng = np.random.default_rng(0)
    good, wrong_net, wrong_dim = tmp_path / "good.npz", tmp_path / "net.npz", tmp_path / "dim.npz"
    save_stats(good, feature_stats(rng.normal(size=(50, 128))), {})
    save_stats(wrong_net, feature_stats(rng.normal(size=(50, 128))), {"key": {"feature_network": ["inception", "0" * 64]}})
    save_stats(wrong_dim, feature_stats(rng.normal(size=(50, 8))), {})
    result = score_json(str(digits_checkpoint), "--ref-stats", str(good), "--out", str(tmp_path / "r.json"))
    assert "fid" in result["metrics"]
    for bad, needle in ((wrong_net, "inception"), (wrong_dim, "8 dims")):
        out = invoke("score", str(digits_checkpoint), "--ref-stats", str(bad), "--out", str(tmp_path / "x.json"))
        assert out.exit_code == 2 and needle in out.output
