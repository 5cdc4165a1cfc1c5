"""`rebalance` end to end on a hand-built base with a known latent split: isolation from the judge and the
held-out splits, base provenance, resume after interruption, and `--base` refused by other methods."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fairbench import atomic, data, judges
from fairbench.networks import judge as judge_kind
from fairbench.submission.checkpoint import GeneratorCheckpoint, load_checkpoint, save_checkpoint
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.task_registry import get_task
from fairbench.training import RunOptions, TrainingInterrupted, train

TASK = get_task("digits-bicolor")
SMALL = {"aux_steps": 60, "aux_width": 8, "per_group": 4, "threshold": 0.7, "pool": 64, "max_calls": 4000,
         "width": 8, "latent_dim": 8}


def split_base(path: Path, threshold: float = 1.0) -> Path:
    """A cDCGAN whose image is all white when z0 > threshold (about 16%) and all black otherwise."""
    from baselines.cdcgan import CDCGANGenerator

    kwargs = {"latent_dim": 8, "num_classes": 10, "image_shape": [1, 16, 16], "width": 8}
    gen = CDCGANGenerator(**kwargs).eval()
    with torch.no_grad():
        lin = gen.project[0]
        lin.weight.zero_()
        lin.weight[:, 0] = 1.0
        lin.bias.fill_(-threshold)
        up1, up2 = gen.upsample[0], gen.upsample[3]
        up1.weight.fill_(1.0 / (8 * 8)); up1.bias.zero_()
        up2.weight.fill_(40.0 / 32); up2.bias.fill_(-3.0)
    save_checkpoint(path, GeneratorCheckpoint(
        "cdcgan", kwargs, {k: v.clone() for k, v in gen.state_dict().items()}, TASK.id, TASK.task_hash,
        "handmade", {}, 0, data_hash=TASK.data_hash,
    ))
    return path


def _run(out: Path, base: Path, steps: int = 6, **extra) -> Path:
    return train(RunOptions(method="rebalance", task=TASK, seed=0, steps=steps, out=out, device="cpu",
                            batch_size=16, checkpoint_every=3, overrides={**SMALL, **extra}, base=base))


def test_method_never_reaches_the_judge_or_held_out_splits(tmp_path, monkeypatch):
    seen = []
    real_build = data._build_split

    def only_train(task, split, root):
        seen.append(split)
        if split != "train":
            raise AssertionError(f"rebalance read the {split} split")
        return real_build(task, split, root)

    def no_judge(*a, **k):
        raise AssertionError("rebalance loaded the judge")

    monkeypatch.setattr(data, "_SPLIT_CACHE", {})
    monkeypatch.setattr(data, "_build_split", only_train)
    monkeypatch.setattr(judges, "load_judge", no_judge)
    monkeypatch.setattr(judge_kind, "PACKAGE_DIR", tmp_path / "no-judges")
    base = split_base(tmp_path / "base.pt")
    path = _run(tmp_path / "runs", base)
    ckpt = load_checkpoint(path)
    assert set(seen) == {"train"}
    prepared = ckpt.train["prepared"]
    assert prepared["base"]["sha256"] == atomic.sha256_file(base)
    assert ckpt.method == "rebalance" and ckpt.arch == "cdcgan"
    share = prepared["explore"]["base_share"]
    assert share[1] < 0.4 < share[0]  # the hand-built base under-produces white
    assert prepared["loss_weights"][1] > prepared["loss_weights"][0] == 1.0
    assert (path.parent / "phases" / "explore.json").is_file()


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    base = split_base(tmp_path / "base.pt")
    whole = load_checkpoint(_run(tmp_path / "a", base))
    from baselines import rebalance as rb

    calls = {"n": 0}
    real_step = rb.Rebalance.step

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(rb.Rebalance, "step", flaky)
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path / "b", base)
    monkeypatch.setattr(rb.Rebalance, "step", real_step)
    resumed = load_checkpoint(_run(tmp_path / "b", base))
    assert resumed.train["steps"] == whole.train["steps"] == 6
    for k, v in whole.state_dict.items():
        assert torch.allclose(v, resumed.state_dict[k], atol=1e-6), k


def test_another_base_in_the_same_run_folder_is_refused(tmp_path):
    base = split_base(tmp_path / "base.pt")
    _run(tmp_path / "runs", base, steps=1)
    other = split_base(tmp_path / "other.pt", threshold=0.5)
    with pytest.raises(FairbenchError, match="another base"):
        _run(tmp_path / "runs", other, steps=2)


def test_a_collapsed_base_is_one_clear_error(tmp_path):
    base = split_base(tmp_path / "base.pt", threshold=50.0)  # never white
    with pytest.raises(FairbenchError, match="essentially absent"):
        _run(tmp_path / "runs", base, max_calls=300)


def test_base_is_refused_by_methods_that_do_not_take_one(tmp_path):
    base = split_base(tmp_path / "base.pt")
    result = CliRunner().invoke(app, ["run", "-m", "vanilla", "-t", "digits", "--steps", "1", "--out",
                                      str(tmp_path / "r"), "--base", str(base)])
    assert result.exit_code == 2
    assert "does not take --base" in result.output
    assert not (tmp_path / "r").exists()


def test_a_short_run_improves_the_fairness_of_a_biased_base(tmp_path):
    """Judged by the project's judge (scoring only, after training): the hand-built base is ~10% white."""
    from fairbench.scoring import ScoreOptions, score_checkpoint

    base = split_base(tmp_path / "base.pt")
    options = ScoreOptions(n_samples=600, device="cpu")
    kl_base = score_checkpoint(base, options).metrics["kl_uniform"]["value"]
    ckpt = train(RunOptions(method="rebalance", task=TASK, seed=0, steps=80, out=tmp_path / "runs", device="cpu",
                            batch_size=32, overrides={**SMALL, "per_group": 10, "threshold": 0.9, "aux_steps": 200},
                            base=base))
    kl_new = score_checkpoint(ckpt, options).metrics["kl_uniform"]["value"]
    assert kl_base > 0.25  # the base is clearly unfair
    assert kl_new < kl_base / 2.5, (kl_base, kl_new)
