"""UTKFace source: file-name labels, malformed names, pixel duplicates, stratified order, cache, real counts."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from fairbench import data
from fairbench.errors import FairbenchError
from fairbench.sources import utkface
from fairbench.transforms import TRANSFORMS, NaturalLabelParams


PALETTE = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [220, 220, 220], [20, 20, 20]])


def _jpeg(seed: int, size: int = 40, race: int | None = None) -> bytes:
    """A distinct smooth image (its own colour ramp), so no two seeds decode to the same pixels; with `race`,
    its base colour says the race, so a judge can learn it."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, size=3) if race is None else PALETTE[race] - 15 + rng.integers(0, 10, size=3)
    ramp = np.linspace(0, 50, size)[:, None, None] * rng.random(3)
    pixels = np.clip(base + ramp + np.zeros((size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _name(age: int, gender: int, race: int, stamp: int) -> str:
    return f"{age}_{gender}_{race}_{20170101000000000 + stamp}.jpg.chip.jpg"


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A data root whose UTKFace/crop_part1 has every flaw, and the race each *kept* file must carry."""
    folder = tmp_path / "UTKFace" / "crop_part1"
    folder.mkdir(parents=True)
    kept: dict[str, int] = {}
    for i in range(20):  # 20 distinct faces, races 0..4 four times each
        name = _name(20 + i, i % 2, i % 5, i)
        (folder / name).write_bytes(_jpeg(i))
        kept[name] = i % 5
    (folder / "61_1_20170109142408075.jpg.chip.jpg").write_bytes(_jpeg(100))  # race missing: malformed
    (folder / "holiday.jpg").write_bytes(_jpeg(101))  # malformed
    (folder / "30_0_7_20170101999999999.jpg.chip.jpg").write_bytes(_jpeg(102))  # race 7 does not exist
    (folder / _name(40, 0, 1, 200)).write_bytes(b"not a jpeg")  # unreadable
    agreeing = _jpeg(300)
    for k, (age, gender) in enumerate([(33, 0), (33, 0), (34, 1)]):  # one race, other labels differ once
        (folder / _name(age, gender, 1, 300 + k)).write_bytes(agreeing)
    kept[_name(33, 0, 1, 300)] = 1  # the first by file name is the copy kept
    conflicting = _jpeg(400)
    (folder / _name(50, 1, 0, 400)).write_bytes(conflicting)
    (folder / _name(50, 1, 2, 401)).write_bytes(conflicting)
    return tmp_path, kept


def test_parse_name() -> None:
    assert utkface.parse_name("100_1_2_20170105174847679.jpg.chip.jpg") == utkface.FaceRecord(
        "100_1_2_20170105174847679.jpg.chip.jpg", 100, 1, 2
    )
    for bad in ["61_1_20170109142408075.jpg.chip.jpg", "1_2_0_2017.jpg.chip.jpg", "1_0_5_2017.jpg.chip.jpg",
                "1_0_0_2017.jpg", "a_0_0_2017.jpg.chip.jpg", ""]:
        assert utkface.parse_name(bad) is None, bad


def test_synthetic_folder_counts_and_labels(synthetic) -> None:
    root, kept = synthetic
    decoded = utkface.load_faces(root, 32)
    info = decoded.info
    assert info["files"] == 29
    assert info["malformed_names"] == 3 and "holiday.jpg" in info["malformed_examples"]
    assert info["unreadable"] == 1
    assert (info["duplicate_groups_agreeing"], info["duplicate_copies_dropped"]) == (1, 2)
    assert info["duplicate_groups_agreeing_race_other_labels_differ"] == 1
    assert (info["duplicate_groups_conflicting"], info["conflicting_images_dropped"]) == (1, 2)
    assert info["kept"] == len(kept) == 21
    assert info["race_counts_before_dedup"] == [4 + 1, 4 + 3, 4 + 1, 4, 4]
    assert info["race_counts"] == [4, 5, 4, 4, 4]
    assert dict(zip(decoded.names.tolist(), decoded.races.tolist())) == kept  # never a mislabel
    assert decoded.images.shape == (21, 3, 32, 32) and decoded.images.dtype == np.uint8
    # each kept image is its own file, decoded and resized bilinearly with antialiasing
    folder = root / "UTKFace" / "crop_part1"
    for name, image in zip(decoded.names.tolist(), decoded.images):
        rgb = np.array(Image.open(folder / name).convert("RGB"))
        expected = F.interpolate(
            torch.from_numpy(rgb).permute(2, 0, 1)[None].float(), size=(32, 32), mode="bilinear",
            align_corners=False, antialias=True,
        ).round().clamp(0, 255).to(torch.uint8)[0].numpy()
        np.testing.assert_array_equal(image, expected)


def test_load_reports_counts_on_screen_and_in_the_part(synthetic, capsys, monkeypatch) -> None:
    root, _ = synthetic
    monkeypatch.setattr(utkface, "_ANNOUNCED", set())
    raw = data.SOURCES.get("utkface-32").load("all", root)
    err = capsys.readouterr().err
    assert "21 of 29 images kept" in err and "3 malformed names" in err and "1 unreadable" in err
    assert "2 images in 1 duplicate groups with conflicting race" in err
    assert raw.info["kept"] == 21 and raw.info["order_seed"] == utkface.ORDER_SEED
    assert raw.info["content_sha256"] == utkface.content_key(root / "UTKFace" / "crop_part1", 32)
    data.SOURCES.get("utkface-32").load("all", root)
    assert capsys.readouterr().err == "", "the note is printed once per process"
    with pytest.raises(FairbenchError, match="one part, 'all'"):
        data.SOURCES.get("utkface-32").load("train", root)


def test_cache_is_used_keyed_by_content_and_rebuilt_when_damaged(synthetic, monkeypatch) -> None:
    root, _ = synthetic
    first = utkface.load_faces(root, 32)
    cached = list((utkface.paths.fairbench_home() / "cache" / "utkface").glob("*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as z:  # plain arrays: no pickle needed
        assert z["images"].dtype == np.uint8
    real_decode = utkface.decode_folder

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again although the files did not change")

    monkeypatch.setattr(utkface, "decode_folder", refuse)
    second = utkface.load_faces(root, 32)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.races, second.races)
    assert first.info == second.info
    # changed bytes (or a damaged cache file) mean a new decode, never a stale answer
    calls = []
    monkeypatch.setattr(utkface, "decode_folder", lambda *a: calls.append(a) or real_decode(*a))
    folder = root / "UTKFace" / "crop_part1"
    (folder / _name(20, 0, 0, 0)).write_bytes(_jpeg(999))
    changed = utkface.load_faces(root, 32)
    assert len(calls) == 1 and not np.array_equal(changed.images, first.images)
    for path in (utkface.paths.fairbench_home() / "cache" / "utkface").glob("*.npz"):
        path.write_bytes(b"damaged")
    again = utkface.load_faces(root, 32)
    assert len(calls) == 2
    np.testing.assert_array_equal(again.images, changed.images)


def test_full_folder_layout_is_found(synthetic, tmp_path: Path) -> None:
    root, kept = synthetic
    full = tmp_path / "full"
    shutil.copytree(root / "UTKFace" / "crop_part1", full / "UTKFace")
    assert utkface.find_folder(full) == full / "UTKFace"
    assert utkface.load_faces(full, 32).info["kept"] == len(kept)


def test_missing_folder_is_one_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(FairbenchError) as info:
        utkface.load_faces(tmp_path, 32)
    message = str(info.value)
    assert str(tmp_path / "UTKFace" / "crop_part1") in message and "FAIRBENCH_DATA" in message
    assert "\n" not in message


def test_missing_data_through_the_cli_is_one_error_line(tmp_path: Path) -> None:
    from fairbench.cli import app

    result = CliRunner().invoke(app, ["judge", "eval", "--task", "utkface", "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: UTKFace not found under"), result.output


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_stratified_order_puts_every_race_in_every_slice(seed: int) -> None:
    rng = np.random.default_rng(seed)
    races = rng.choice(5, size=997, p=[0.54, 0.04, 0.16, 0.15, 0.11])
    order = utkface.stratified_order(races, seed)
    assert sorted(order.tolist()) == list(range(len(races)))
    ordered = races[order]
    shares = np.bincount(races, minlength=5) / len(races)
    for start, stop in [(0, 498), (498, 797), (797, 997), (10, 60), (123, 900)]:
        counts = np.bincount(ordered[start:stop], minlength=5)
        assert np.all(np.abs(counts - shares * (stop - start)) <= 2), (start, stop, counts)
    np.testing.assert_array_equal(order, utkface.stratified_order(races, seed))
    assert not np.array_equal(order, utkface.stratified_order(races, seed + 100))


def test_dedup_rule_on_digests() -> None:
    keep, counts = utkface.dedup_by_pixels(["a", "b", "a", "c", "c", "a", "d"], [1, 2, 1, 3, 4, 1, 0])
    assert keep == [0, 1, 6]
    assert counts["duplicate_copies_dropped"] == 2 and counts["conflicting_images_dropped"] == 2


def test_natural_label_transform_groups_are_the_labels() -> None:
    images = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    labels = np.array([4, 1])
    out, groups = TRANSFORMS.get("natural-label").apply(images, labels, "train", NaturalLabelParams())
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(groups, [4, 1])
    assert groups.dtype == np.int64


# ------------------------------------------------------------------------------------ the real crop_part1


@pytest.fixture(scope="module")
def real_faces(utkface_crops: Path, tmp_path_factory: pytest.TempPathFactory) -> utkface.Decoded:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRBENCH_HOME", str(tmp_path_factory.mktemp("utk-home")))
        return utkface.load_faces(utkface_crops.parent.parent, 32)


def test_real_crop_part1_counts(real_faces: utkface.Decoded) -> None:
    info = real_faces.info
    assert info["files"] == 9780
    assert info["malformed_names"] == 2 and info["unreadable"] == 0
    assert info["race_counts_before_dedup"] == [5265, 405, 1553, 1452, 1103]
    assert (info["duplicate_groups_agreeing"], info["duplicate_copies_dropped"]) == (93, 99)
    assert (info["duplicate_groups_conflicting"], info["conflicting_images_dropped"]) == (7, 14)
    assert info["race_counts"] == [5188, 400, 1548, 1445, 1084]
    assert info["kept"] == len(real_faces.images) == 9665
    # independent check of the dedup: no two kept images share pixels at full size
    assert len(set(real_faces.names.tolist())) == 9665


# ------------------------------------------------------- the harness on an unconditional 32x32 RGB face task


def _synthetic_task(root: Path, judge_sha256: str) -> dict:
    import yaml

    from fairbench.task_registry import builtin_task_dir

    spec = yaml.safe_load((builtin_task_dir() / "utkface-race.yaml").read_text(encoding="utf-8"))
    spec["id"] = "utkface-synthetic"
    spec["aliases"] = []
    spec["dataset"].update(train={"part": "all", "start": 0, "stop": 25},
                           judge={"part": "all", "start": 25, "stop": 40},
                           test={"part": "all", "start": 40, "stop": 50})
    spec["judge"] = {"id": "utkface-synthetic", "sha256": judge_sha256, "epochs": 60}
    spec["sampling"] = {"n_samples": 40, "seed": 0}
    spec.pop("quality")  # the real task's quality section is exercised by the oracle test on real faces
    return spec


@pytest.mark.parametrize("method", ["vanilla", "repfair", "groupcond"])
def test_methods_train_sample_and_score_on_an_unconditional_rgb_face_task(tmp_path: Path, method: str) -> None:
    """Judge training, every reference method, sampling and scoring, on 50 synthetic 'faces' (10 per race)."""
    from fairbench.networks.judge import train_judge
    from fairbench.scoring import ScoreOptions, score_checkpoint
    from fairbench.task_registry import parse_task
    from fairbench.training import RunOptions, train

    folder = tmp_path / "data" / "UTKFace" / "crop_part1"
    folder.mkdir(parents=True)
    for i in range(50):
        (folder / _name(20 + i, i % 2, i % 5, i)).write_bytes(_jpeg(i, race=i % 5))
    root = tmp_path / "data"
    provisional = parse_task(_synthetic_task(root, "0" * 64), "synthetic")  # pinned after training, below
    for split in ("train", "judge", "test"):
        assert set(data.load_split(provisional, split, root).groups.tolist()) == set(range(5)), split
    card = train_judge(provisional, utkface.paths.fairbench_home() / "judges", root)
    task = parse_task(_synthetic_task(root, card.sha256), "synthetic")
    assert card.confusion_counts is not None and sum(map(sum, card.confusion_counts)) == 10
    assert card.accuracy == 1.0, card.confusion_counts  # the races differ by colour here

    path = train(RunOptions(method=method, task=task, steps=2, batch_size=10, out=tmp_path / "runs",
                            data_root=root, device="cpu", checkpoint_every=1, overrides={"width": 8}))
    result = score_checkpoint(path, ScoreOptions(device="cpu", data_root=root), task=task)
    assert result.n_samples == 40 and sum(result.group_counts) == 40
    assert result.groups == ["White", "Black", "Asian", "Indian", "Others"]
    assert result.per_condition is None  # unconditional: no per-class breakdown


def test_balanced_judge_weights_and_default_judge_options_keep_task_hashes() -> None:
    import dataclasses

    from fairbench.networks.judge import class_weights as _class_weights
    from fairbench.task_registry import JudgeRef, get_task

    task = get_task("utkface-race")
    assert task.judge.class_weights == "balanced"
    groups = torch.tensor([0] * 6 + [1] * 2 + [2] + [3] + [4] * 10)
    weights = _class_weights(task, groups)
    np.testing.assert_allclose(weights.numpy(), [20 / 30, 20 / 10, 20 / 5, 20 / 5, 20 / 50], rtol=1e-6)
    with pytest.raises(FairbenchError, match="no images of Black"):
        _class_weights(task, torch.tensor([0, 2, 3, 4]))
    plain = dataclasses.replace(task, judge=dataclasses.replace(task.judge, class_weights="none"))
    assert _class_weights(plain, groups) is None
    digits = get_task("digits-bicolor")
    explicit = dataclasses.replace(digits, judge=JudgeRef(**{**dataclasses.asdict(digits.judge), "width": 16}))
    assert explicit.task_hash == digits.task_hash  # options at their defaults leave old hashes alone
    wider = dataclasses.replace(digits, judge=dataclasses.replace(digits.judge, width=32))
    assert wider.task_hash != digits.task_hash


def test_real_task_splits_are_stratified_and_hold_every_race(real_faces: utkface.Decoded) -> None:
    from fairbench.task_registry import get_task

    task = get_task("utkface")
    races = real_faces.races[utkface.stratified_order(real_faces.races)]
    shares = np.bincount(real_faces.races, minlength=5) / len(races)
    sizes = {}
    for name in ("train", "judge", "test"):
        spec = task.split_spec(name)
        counts = np.bincount(races[spec.start : spec.stop], minlength=5)
        sizes[name] = counts.sum()
        assert counts.min() > 0, (name, counts)
        assert np.all(np.abs(counts - shares * counts.sum()) <= 2), (name, counts)
    assert sizes == {"train": 4833, "judge": 2899, "test": 1933}
    assert task.split_spec("test").stop == len(races)  # the test split ends where crop_part1 does
    reference = task.split_spec("reference")
    assert (reference.start, reference.stop) == (task.split_spec("test").start, task.split_spec("test").stop)
