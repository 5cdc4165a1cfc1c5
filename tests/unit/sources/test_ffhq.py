"""ffhq-race: the task spec without training data, the FairFace judge, the FFHQ reference folder, and a score
end to end on a random tiny StyleGAN2 and a random FairFace-layout ResNet-34."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from fairbench import data
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.judges import load_judge
from fairbench.task_registry import SplitSpec, get_task, list_tasks, load_task_file, parse_task
from tests.helpers.ffhq import tiny_ffhq_data, tiny_ffhq_task, write_random_fairface, write_tiny_ffhq_yaml

# (task_hash, data_hash) of every task published before the optional sections existed, measured on the
# commit before them: making dataset splits, transform, training and judge.kind optional changed none.
PUBLISHED_HASHES = {
    "digits-bicolor": (
        "4aef552646be33adc704e189f7c030f79ed4047f6f61c8cc526d3074ee0512d3",
        "4fe3718657ae7f35b603aa3b75900316b04ea558928162fb718f576e013205bd",
    ),
    "mnist-bicolor": (
        "38948f51b2f17bdd8c62cd8549b3e936d8fc0da4004a3deef2965057a33c4864",
        "d9528fbd7d3a0007f556180f32bd8f70a1589606aca2cd28fc8d23c7bb71be42",
    ),
    "mnist-bicolor-imbalanced": (
        "9b1d4635bc69080edd6c5cd0167b29c12b0698994874e4610833536e9ad435cd",
        "2fc1fab10c3e2c297ecb4ed4544c1990288c1b2cf723b9a8eff42ec4862322bd",
    ),
}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- the spec
def test_existing_task_hashes_did_not_change():
    for task_id, (task_hash, data_hash) in PUBLISHED_HASHES.items():
        spec = get_task(task_id)
        assert (spec.task_hash, spec.data_hash) == (task_hash, data_hash), task_id


def test_ffhq_race_spec():
    spec = get_task("ffhq")
    assert spec.id == "ffhq-race" and not spec.has_training_data and not spec.conditional
    assert spec.judge.kind == "fairface" and spec.judge.id == "fairface-race7" and spec.judge.sha256 is None
    assert spec.groups.names[:2] == ["White", "Black"] and spec.n_groups == 7
    assert spec.image_shape == (3, 256, 256) and spec.transform is None and spec.training is None
    with pytest.raises(FairbenchError, match="no train split: it has no training data"):
        spec.split_spec("train")
    assert spec.task_hash not in {h for h, _ in PUBLISHED_HASHES.values()}
    assert len({t.task_hash for t in list_tasks()}) == len(list_tasks())


def test_spec_validation_of_the_optional_sections():
    base = tiny_ffhq_data()
    bad = json.loads(json.dumps(base))
    bad["dataset"]["train"] = {"part": "all", "start": 0, "stop": 10}
    with pytest.raises(FairbenchError, match="all of train, judge and test"):
        parse_task(bad, "t")
    bad = json.loads(json.dumps(base))
    bad["judge"] = {"id": "x", "sha256": None}
    with pytest.raises(FairbenchError, match="judge: needs a sha256"):
        parse_task(bad, "t")
    bad = json.loads(json.dumps(base))
    bad["judge"]["kind"] = "fairfaec"
    with pytest.raises(FairbenchError, match="judge kind 'fairfaec'.*fairface"):
        parse_task(bad, "t")
    bad = json.loads(json.dumps(base))
    bad["quality"]["metrics"] = ["fid", "fid_intra"]
    with pytest.raises(FairbenchError, match="known groups"):
        parse_task(bad, "t")
    bad = json.loads(json.dumps(base))
    bad["training"] = {"steps": 10}
    with pytest.raises(FairbenchError, match="no transform and no training section"):
        parse_task(bad, "t")


# ---------------------------------------------------------------------------------------------- the judge
def test_fairface_judge_matches_an_independent_resnet34(_isolated_home):
    path = write_random_fairface(_isolated_home)
    judge = load_judge(tiny_ffhq_task(16))
    assert judge.card.sha256 == sha256(path) and judge.confusion is None and judge.card.accuracy is None
    assert judge.card.calibration_counts() is None and "confusion matrix" in judge.no_confusion_reason
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    from torchvision.models import resnet34

    ref = resnet34(num_classes=18)
    ref.load_state_dict(torch.load(path, weights_only=True))
    ref.eval()
    x = F.interpolate(images.float() / 255, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = ref(x)[:, :7].argmax(1).numpy()
    predicted = judge.predict(images)
    np.testing.assert_array_equal(predicted, expected)
    np.testing.assert_array_equal(np.concatenate([judge.predict(images[i : i + 2]) for i in range(0, 5, 2)]), predicted)


def test_fairface_race4_uses_the_first_four_outputs(_isolated_home):
    write_random_fairface(_isolated_home, "fairface-race4")
    spec_data = tiny_ffhq_data(16)
    spec_data["judge"]["id"] = "fairface-race4"
    spec_data["groups"]["names"] = ["White", "Black", "Asian", "Indian"]
    judge = load_judge(parse_task(spec_data, "race4"))
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        logits = judge.net.backbone(judge.net.prepare(images))
        torch.testing.assert_close(judge.net(images), logits[:, :4])
    spec_data["groups"]["names"] = ["White", "Black", "Indian", "Asian"]
    with pytest.raises(FairbenchError, match="differ from fairface-race4's outputs"):
        load_judge(parse_task(spec_data, "race4"))


def test_fairface_judge_refusals(_isolated_home):
    task = tiny_ffhq_task(16)
    with pytest.raises(FairbenchError, match="res34_fair_align_multi_7_20190809.pt"):
        load_judge(task)  # absent: the message names the file and where to put it
    path = write_random_fairface(_isolated_home)
    from torchvision.models import resnet18

    torch.save(resnet18(num_classes=18).state_dict(), path)
    with pytest.raises(FairbenchError, match=r"not a FairFace ResNet-34.*missing keys layer1\.2"):
        load_judge(task)
    torch.save({"net": torch.nn.Linear(2, 2)}, path)  # a pickled module: refused by weights_only
    with pytest.raises(FairbenchError, match="refused"):
        load_judge(task)
    write_random_fairface(_isolated_home)
    pinned = dataclasses.replace(task, judge=dataclasses.replace(task.judge, sha256="0" * 64))
    with pytest.raises(FairbenchError, match="is not the 000000000000"):
        load_judge(pinned)


# ---------------------------------------------------------------------------------------------- FFHQ folder
def write_ffhq_folder(root, n: int, size: int = 12, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = root / "ffhq" / "images" / f"{(i // 3) * 1000:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(sub / f"{i:05d}.png")
        paths.append((sub / f"{i:05d}.png", arr))
    return paths


def test_ffhq_folder_reads_slices_in_name_order_resized(tmp_path):
    files = write_ffhq_folder(tmp_path, 7)
    source = data.SOURCES.get("ffhq-folder")
    images, labels = source.load_slice(SplitSpec("all", 2, 5), tmp_path, (3, 6, 6), "t")
    assert images.shape == (3, 3, 6, 6) and (labels == 0).all()
    for k, (_, arr) in enumerate(files[2:5]):
        np.testing.assert_array_equal(images[k], data.resize_uint8(arr.transpose(2, 0, 1)[None].copy(), 6, 6)[0])
    first = source.fingerprint(SplitSpec("all", 0, 4), tmp_path)
    assert first == source.fingerprint(SplitSpec("all", 0, 4), tmp_path)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(files[1][0])
    assert source.fingerprint(SplitSpec("all", 0, 4), tmp_path) != first
    assert source.fingerprint(SplitSpec("all", 4, 7), tmp_path) != first
    with pytest.raises(FairbenchError, match="wants FFHQ images up to 9"):
        source.load_slice(SplitSpec("all", 0, 9), tmp_path, (3, 6, 6), "t")
    with pytest.raises(FairbenchError, match="no FFHQ reference images: place"):
        source.load_slice(SplitSpec("all", 0, 2), tmp_path / "elsewhere", (3, 6, 6), "t")
    split = data.load_split(tiny_ffhq_task(6, n_samples=4), "reference", tmp_path)
    assert split.images.shape == (4, 3, 6, 6) and (split.groups == -1).all()


# ---------------------------------------------------------------------------------------------- end to end
def save_random_stylegan2(path, size: int = 32) -> None:
    from baselines.stylegan2 import StyleGAN2Generator

    torch.manual_seed(1)
    g = StyleGAN2Generator(size, style_dim=16, n_mlp=2, channel_multiplier=1, channel_max=32)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith(("activate.bias", "to_rgb1.bias")) or name.startswith("to_rgbs"):
                p.add_(0.3 * torch.randn_like(p))
    torch.save({"g_ema": {k: v for k, v in g.state_dict().items() if k != "latent_avg"}, "latent_avg": torch.randn(16)}, path)


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_import_and_score_end_to_end(tmp_path, _isolated_home):
    judge_file = write_random_fairface(_isolated_home)
    task_yaml = write_tiny_ffhq_yaml(tmp_path / "tiny.yaml", size=8, n_samples=12)
    weights = tmp_path / "stylegan2-tiny.pt"
    save_random_stylegan2(weights)
    ckpt = tmp_path / "ckpt.pt"
    done = cli("import-stylegan2", str(weights), "--out", str(ckpt), "--task", str(task_yaml),
               "--channel-multiplier", "1", "--truncation-psi", "0.8")
    assert done.exit_code == 0, done.output
    assert "scored at 8 px" in done.stdout

    def score(batch: int) -> dict:
        out = tmp_path / f"result-{batch}.json"
        res = cli("score", str(ckpt), "--task", str(task_yaml), "--device", "cpu", "--batch-size", str(batch),
                  "--out", str(out), "--data-root", str(tmp_path / "no-data"))
        assert res.exit_code == 0, res.output
        return json.loads(out.read_text())

    result = score(12)
    assert result["judge"]["id"] == "fairface-race7" and result["judge"]["sha256"] == sha256(judge_file)
    assert result["judge"]["confusion"] is None and result["method"] == "stylegan2-32px-psi0.8"
    counts = np.array(result["group_counts"])
    assert counts.sum() == 12 and len(counts) == 7
    p = counts / 12
    kl = float(sum(q * math.log(q * 7) for q in p if q > 0))
    assert result["metrics"]["kl_uniform"]["value"] == pytest.approx(kl, abs=1e-12)
    # No confusion matrix: no corrected figure anywhere, each one listed as skipped with the reason.
    assert not [name for name in result["metrics"] if "corrected" in name]
    assert "corrected" not in result["group_proportions"]
    assert all("corrected" not in entry for entry in result["group_shares"].values())
    assert "confusion matrix" in result["skipped"]["kl_uniform_corrected"]
    # FID/KID need the user's FFHQ folder; IQA needs pyiqa / EQ-Face weights: skipped with reasons, never faked.
    assert "no FFHQ reference images" in result["skipped"]["fid"] and "kid" in result["skipped"]
    assert {"eqface", "niqe", "brisque", "clipiqa"} <= set(result["skipped"])
    # Batch size never changes a score.
    other = score(5)
    assert other["group_counts"] == result["group_counts"]
    assert {k: v["value"] for k, v in other["metrics"].items()} == {k: v["value"] for k, v in result["metrics"].items()}


def test_training_on_a_task_without_data_is_one_clear_error(tmp_path):
    res = cli("run", "--method", "vanilla", "--task", "ffhq", "--out", str(tmp_path / "runs"), "--steps", "2")
    assert res.exit_code == 2 and "has no training data" in res.output
    assert not (tmp_path / "runs").exists()


def test_share_chart_of_a_result_without_corrected_shares():
    from fairbench.report.share_bars import draw_share_bars, share_bars

    groups = ["White", "Black", "Asian", "Indian"]
    result = {
        "task": "ffhq-race", "method": "stylegan2-256px", "seed": 0, "groups": groups,
        "group_proportions": {"observed": [0.7, 0.1, 0.1, 0.1]},
        "group_shares": {g: {"count": 1, "observed": {"value": v, "ci95": [v - 0.05, v + 0.05]}}
                         for g, v in zip(groups, [0.7, 0.1, 0.1, 0.1])},
    }
    bars = share_bars(result)
    assert [b.kind for b in bars] == ["observed"] * 4 and bars[0].value == 0.7
    fig = draw_share_bars(result)
    from matplotlib.container import BarContainer

    assert [c.get_label() for c in fig.axes[0].containers if isinstance(c, BarContainer)] == ["observed"]


class PooledRGB:
    """A stand-in feature network for the FID wiring: each channel average-pooled to 2x2 (12 dims, float64)."""

    id, sha256, dim, resize_rule = "test-pooled-rgb", "e" * 64, 12, "adaptive-avg-2x2"

    def extract(self, images, batch_size, device):
        return F.adaptive_avg_pool2d(images.double(), 2).flatten(1).numpy()


def _pooled_rgb(sha256, device):
    if sha256 != PooledRGB.sha256:
        raise FairbenchError("test-pooled-rgb: wrong sha256")
    return PooledRGB()


def test_fid_against_a_user_ffhq_folder_is_recorded_with_the_folder_hash(tmp_path, _isolated_home):
    from scipy import linalg

    from fairbench.features import FEATURE_NETWORKS
    from fairbench.scoring import ScoreOptions, score_checkpoint

    if "test-pooled-rgb" not in FEATURE_NETWORKS:
        FEATURE_NETWORKS.register("test-pooled-rgb", _pooled_rgb)
    write_random_fairface(_isolated_home)
    spec = tiny_ffhq_data(8, n_samples=30, iqa=[])
    spec["quality"]["feature_network"] = {"id": "test-pooled-rgb", "sha256": PooledRGB.sha256}
    task_yaml = tmp_path / "tiny.yaml"
    task_yaml.write_text(json.dumps(spec))  # JSON is YAML
    task = load_task_file(task_yaml)
    weights, ckpt = tmp_path / "sg2.pt", tmp_path / "ckpt.pt"
    save_random_stylegan2(weights)
    from baselines.stylegan2_import import ImportOptions, import_stylegan2

    import_stylegan2(weights, ckpt, task, ImportOptions(channel_multiplier=1))
    write_ffhq_folder(tmp_path / "data", 30, size=16)
    result = score_checkpoint(ckpt, ScoreOptions(device="cpu", data_root=tmp_path / "data"), task=task)
    fingerprint = data.SOURCES.get("ffhq-folder").fingerprint(task.quality.reference, tmp_path / "data")
    assert result.feature_network["reference_sha256"] == fingerprint
    # independent FID: the same features, numpy moments, scipy's matrix square root
    from fairbench.submission import checkpoint as ckpt_io
    from fairbench.submission import sampling

    model = ckpt_io.build_generator(ckpt_io.load_checkpoint(ckpt), ckpt)
    generated, _ = sampling.generate(model, 30, task.sampling.seed, task.image_shape, 0)
    reference = data.load_split(task, "reference", tmp_path / "data").images
    a, b = PooledRGB().extract(generated, 0, "cpu"), PooledRGB().extract(reference, 0, "cpu")
    ma, mb, ca, cb = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real))
    assert result.metrics["fid"]["value"] == pytest.approx(expected, rel=1e-6)
    assert "kid" in result.metrics and "fid" not in result.skipped


@pytest.mark.parametrize("command", [["judge", "train"], ["judge", "eval"]])
def test_a_user_supplied_judge_cannot_be_trained_or_evaluated(command):
    res = cli(*command, "--task", "ffhq")
    assert res.exit_code == 2 and "is user-supplied (fairface)" in res.output
