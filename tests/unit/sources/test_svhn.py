"""SVHN: the .mat loader on files written here in SVHN's format, the shade transform, the svhn tasks, and the
trained-on-first-use judge and feature network end to end (tiny data, tiny epochs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from fairbench import atomic, data, transforms
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.sources import SOURCES, cache
from fairbench.sources.svhn import read_mat
from fairbench.task_registry import get_task, load_task_file

TINY_TASK = """
id: svhn-tiny
version: 1
dataset:
  source: svhn
  image_shape: [3, 32, 32]
  num_classes: 10
  train: {part: train, start: 0, stop: 120}
  judge: {part: train, start: 120, stop: 200}
  test: {part: test, start: 0, stop: 60}
groups: {attribute: shading, names: [normal, shaded]}
transform:
  kind: shade
  params: {shaded_probability: 0.5, factor: 0.5, seed: 3}
conditional: false
judge: {id: svhn-tiny, trained_on_first_use: true, epochs: 40}
sampling: {n_samples: 30, seed: 0}
training: {steps: 2, batch_size: 8, checkpoint_every: 1}
bootstrap: {n_resamples: 20, seed: 0}
quality:
  feature_network: {id: domain-svhn, trained_on_first_use: true}
  reference: {part: test, start: 0, stop: 60}
  metrics: [fid, kid]
  n_resamples: 5
  kid_subsets: 5
"""


@pytest.fixture(autouse=True)
def _fresh_memos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_MEMO", {})
    monkeypatch.setattr(data, "_SPLIT_CACHE", {})


def write_svhn_mat(path: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN-format file: X 32 x 32 x 3 x N uint8, y N x 1 with 10 for digit 0. Returns (X, y)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"X": x, "y": y})
    return x, y


def write_fake_svhn(root: Path, seed: int = 0) -> None:
    write_svhn_mat(root / "svhn" / "train_32x32.mat", 200, seed)
    write_svhn_mat(root / "svhn" / "test_32x32.mat", 60, seed + 100)


# ------------------------------------------------------------------------------------------------ loader


def test_mat_files_read_as_nchw_with_ten_meaning_zero(tmp_path: Path) -> None:
    x, y = write_svhn_mat(tmp_path / "svhn" / "test_32x32.mat", 25)
    raw = SOURCES.get("svhn").load("test", tmp_path)
    assert raw.images.shape == (25, 3, 32, 32) and raw.images.dtype == np.uint8
    for i in (0, 7, 24):
        for ch in range(3):
            assert np.array_equal(raw.images[i, ch], x[:, :, ch, i])
    expected = [0 if v == 10 else int(v) for v in y[:, 0]]
    assert raw.labels.tolist() == expected and 10 in y and 0 in raw.labels
    identity = SOURCES.get("svhn").identity("test", tmp_path)
    assert identity.format == "svhn-mat" and len(identity.sha256) == 64


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"X": np.zeros((32, 32, 3, 2), dtype=np.float32), "y": np.ones((2, 1))}, "uint8"),
        ({"X": np.zeros((28, 28, 3, 2), dtype=np.uint8), "y": np.ones((2, 1))}, "32 x 32 x 3"),
        ({"X": np.zeros((32, 32, 3, 2), dtype=np.uint8), "y": np.ones((3, 1))}, "3 labels for 2"),
        ({"X": np.zeros((32, 32, 3, 2), dtype=np.uint8), "y": np.zeros((2, 1))}, "1-10"),
        ({"y": np.ones((2, 1))}, "'X' and 'y'"),
    ],
)
def test_malformed_mat_files_are_one_line_errors(tmp_path: Path, arrays, match: str) -> None:
    path = tmp_path / "bad.mat"
    scipy.io.savemat(str(path), arrays)
    with pytest.raises(FairbenchError, match=match):
        read_mat(path)
    (tmp_path / "junk.mat").write_bytes(b"junk")
    with pytest.raises(FairbenchError, match="cannot read"):
        read_mat(tmp_path / "junk.mat")


def test_offline_missing_file_names_file_md5_and_place(tmp_path: Path) -> None:
    with pytest.raises(FairbenchError) as err:
        SOURCES.get("svhn").load("train", tmp_path)
    message = str(err.value)
    assert "train_32x32.mat" in message and "e26dedcc434d2e4c54c9b2d4a06d8373" in message
    assert str(tmp_path / "svhn") in message and "FAIRBENCH_OFFLINE" in message and "\n" not in message


# ------------------------------------------------------------------------------------------------ shade


def test_shaded_pixels_are_half_rounded_up_and_others_untouched() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(400, 3, 4, 4), dtype=np.uint8)
    images[0] = 255  # edge values: 255 -> 128, 1 -> 1, 0 -> 0
    images[1] = 1
    images[2] = 0
    before = images.copy()
    params = transforms.ShadeParams(shaded_probability=1.0, seed=0)
    out, groups = transforms.TRANSFORMS.get("shade").apply(images, np.zeros(400, dtype=np.int64), "train", params)
    assert np.array_equal(images, before), "apply must not modify its input"
    assert groups.tolist() == [1] * 400
    assert np.array_equal(out, ((before.astype(np.int64) + 1) // 2).astype(np.uint8))  # independent formula
    assert out[0].max() == 128 and out[1].max() == 1 and out[2].max() == 0
    none, g0 = transforms.TRANSFORMS.get("shade").apply(
        images, np.zeros(400, dtype=np.int64), "train", transforms.ShadeParams(0.0, seed=0)
    )
    assert g0.sum() == 0 and np.array_equal(none, before)


@pytest.mark.parametrize(("probability", "split", "expected"), [(0.1, "train", 0.1), (0.1, "reference", 0.1),
                                                                  (0.1, "judge", 0.5), (0.5, "test", 0.5)])
def test_shade_fractions_follow_the_spec(probability: float, split: str, expected: float) -> None:
    n = 20000
    params = transforms.ShadeParams(shaded_probability=probability, seed=11)
    _, groups = transforms.TRANSFORMS.get("shade").apply(
        np.zeros((n, 1, 1, 1), dtype=np.uint8), np.zeros(n, dtype=np.int64), split, params
    )
    assert abs(groups.mean() - expected) < 5 * math.sqrt(expected * (1 - expected) / n)
    _, again = transforms.TRANSFORMS.get("shade").apply(
        np.zeros((n, 1, 1, 1), dtype=np.uint8), np.zeros(n, dtype=np.int64), split, params
    )
    assert np.array_equal(groups, again)


def test_svhn_tasks() -> None:
    for task_id, alias, p in (("svhn-shaded", "svhn", 0.5), ("svhn-shaded-imbalanced", "svhn-imbalanced", 0.1)):
        task = get_task(alias)
        assert task.id == task_id and task.conditional is False and task.image_shape == (3, 32, 32)
        assert task.groups.names == ["normal", "shaded"] and task.transform.params["shaded_probability"] == p
        assert task.transform.params["factor"] == 0.5
        assert task.judge.trained_on_first_use and task.judge.sha256 is None
        assert task.quality.feature_network.trained_on_first_use
    with pytest.raises(FairbenchError, match="factor"):
        transforms.parse_params(
            type(get_task("svhn").transform)("shade", {"shaded_probability": 0.5, "seed": 0, "factor": 1.5}), "t"
        )


# ------------------------------------------------------------------------------------------- first use


def _score(task_file: Path, images: Path, root: Path, out: Path) -> tuple[dict, str]:
    result = CliRunner().invoke(
        app, ["score", "--task", str(task_file), "--images", str(images), "--data-root", str(root), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_first_use_judge_and_features_end_to_end(tmp_path: Path, _isolated_home: Path) -> None:
    root = tmp_path / "data"
    write_fake_svhn(root)
    task_file = tmp_path / "svhn-tiny.yaml"
    task_file.write_text(TINY_TASK)
    task = load_task_file(task_file)
    test = data.load_split(task, "test", root)
    images = tmp_path / "set.npz"
    np.savez(images, images=test.images[:30].numpy().transpose(0, 2, 3, 1))

    first, output = _score(task_file, images, root, tmp_path / "r1.json")
    assert "judge svhn-tiny is trained on first use" in output
    assert "feature network domain-svhn is trained on first use" in output
    judge_file = _isolated_home / "judges" / "svhn-tiny.safetensors"
    features_file = _isolated_home / "features" / "domain-svhn.safetensors"
    assert first["judge"]["sha256"] == atomic.sha256_file(judge_file)
    assert first["feature_network"]["sha256"] == atomic.sha256_file(features_file)
    assert first["data_source"]["format"] == "svhn-mat" and set(first["data_source"]["sha256"]) == {"train", "test"}
    assert "fid" in first["metrics"]

    # Second score: the cached files are used as they are, nothing retrained.
    mtimes = judge_file.stat().st_mtime_ns, features_file.stat().st_mtime_ns
    second, output = _score(task_file, images, root, tmp_path / "r2.json")
    assert "trained on first use" not in output
    assert (judge_file.stat().st_mtime_ns, features_file.stat().st_mtime_ns) == mtimes
    assert second["judge"]["sha256"] == first["judge"]["sha256"]

    from fairbench.judges import load_judge_of_result

    assert load_judge_of_result(task, first["judge"]["sha256"]).card.sha256 == first["judge"]["sha256"]

    # Other data: the cached files no longer match it and are retrained; a board refuses to mix the two.
    write_fake_svhn(root, seed=5)
    cache._MEMO.clear()
    data._SPLIT_CACHE.clear()
    third, output = _score(task_file, images, root, tmp_path / "r3.json")
    assert "judge svhn-tiny is trained on first use" in output
    assert third["judge"]["sha256"] != first["judge"]["sha256"]
    assert third["data_source"] != first["data_source"]
    with pytest.raises(FairbenchError, match="does not match"):  # the report cannot re-judge r1 with another judge
        load_judge_of_result(task, first["judge"]["sha256"])
    from fairbench.board.board import build_leaderboard
    from fairbench.board.records import read_result

    records = [read_result(tmp_path / "r1.json"), read_result(tmp_path / "r3.json")]
    with pytest.raises(FairbenchError, match="cannot be compared"):
        build_leaderboard(records)
    other = dict(second, submission={**second["submission"], "name": "another-set"})
    (tmp_path / "r2b.json").write_text(json.dumps(other))
    boards = build_leaderboard([read_result(tmp_path / "r1.json"), read_result(tmp_path / "r2b.json")])
    assert len(boards[0].rows) == 2  # identical judge, network and data: comparable
    from fairbench.board.markdown import render_markdown

    sha = first["data_source"]["sha256"]["test"][:12]
    assert f"data: svhn svhn-mat (test {sha}, train " in render_markdown(boards)


def test_judge_train_command_on_a_first_use_task(tmp_path: Path, _isolated_home: Path) -> None:
    root = tmp_path / "data"
    write_fake_svhn(root)
    task_file = tmp_path / "svhn-tiny.yaml"
    task_file.write_text(TINY_TASK)
    result = CliRunner().invoke(app, ["judge", "train", "--task", str(task_file), "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "trained on first use" in result.output
    weights = _isolated_home / "judges" / "svhn-tiny.safetensors"
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["sha256"] == atomic.sha256_file(weights) and card["first_use_key"]
    assert sum(map(sum, card["confusion_counts"])) == 60  # the whole test split
    result = CliRunner().invoke(app, ["features", "train", "--task", str(task_file), "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert (_isolated_home / "features" / "domain-svhn.safetensors").is_file()


def test_first_use_training_is_seeded(tmp_path: Path) -> None:
    from fairbench.networks.judge import train_judge

    root = tmp_path / "data"
    write_fake_svhn(root)
    task_file = tmp_path / "svhn-tiny.yaml"
    task_file.write_text(TINY_TASK)
    task = load_task_file(task_file)
    a = train_judge(task, tmp_path / "a", root, threads=1)
    b = train_judge(task, tmp_path / "b", root, threads=1)
    assert a.sha256 == b.sha256  # same machine, same seed: same bytes (never compared to a constant)
