"""Training harness: RepFair's clipping and group batches, exact resume, Ctrl-C safety, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fairbench import data
from fairbench.submission.checkpoint import load_checkpoint, safe_torch_load
from fairbench.errors import FairbenchError
from fairbench.methods import METHODS
from fairbench.plugins import load_plugins
from fairbench.task_registry import get_task
from fairbench.training import RunOptions, TensorBatches, TrainingInterrupted, parse_config, resolve_run_dir, train

TASK = get_task("digits-bicolor")


def _options(out: Path, **kw) -> RunOptions:
    base = dict(method="vanilla", task=TASK, seed=3, steps=30, out=out, device="cpu", checkpoint_every=10)
    base.update(kw)
    return RunOptions(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state_dict


def _grad_norm(module: torch.nn.Module) -> float:
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm())


class RecordingBatches(TensorBatches):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.groups_asked: list[int | None] = []

    def real(self, batch_size, group=None):
        self.groups_asked.append(group)
        return super().real(batch_size, group)


@pytest.fixture(scope="module")
def train_split():
    return data.load_split(TASK, "train")


def _repfair(clip_norm: float, train_split):
    load_plugins()
    method = METHODS.get("repfair")
    config = parse_config("repfair", {"clip_norm": clip_norm, "variant": "total-norm"})  # one whole-loss step
    torch.manual_seed(0)
    trainable = method.create(TASK, config, torch.device("cpu"))
    batches = RecordingBatches(train_split, TASK.n_groups, 0, torch.device("cpu"))
    return method, config, trainable, batches


def test_repfair_clipping_bounds_discriminator_gradient_norm(train_split):
    method, config, trainable, batches = _repfair(0.01, train_split)
    disc = trainable.modules["discriminator"]
    applied: list[float] = []  # D's gradient norm at the moment its optimiser steps
    trainable.optimizers["discriminator"].register_step_pre_hook(lambda opt, a, k: applied.append(_grad_norm(disc)))
    for step in range(4):
        before = {k: v.clone() for k, v in disc.state_dict().items()}
        logs = method.step(trainable, config, batches, 16, step)
        assert logs["grad_norm_d"] > 0.01  # clipping was active: the raw norm exceeded C
        assert applied[-1] <= 0.01 * (1 + 1e-5)
        assert any(not torch.equal(before[k], v) for k, v in disc.state_dict().items())
    assert len(applied) == 4
    assert batches.groups_asked == [0, 1, 0, 1]


def test_repfair_large_clip_leaves_gradient_untouched(train_split):
    method, config, trainable, batches = _repfair(1e9, train_split)
    disc = trainable.modules["discriminator"]
    applied: list[float] = []
    trainable.optimizers["discriminator"].register_step_pre_hook(lambda opt, a, k: applied.append(_grad_norm(disc)))
    logs = method.step(trainable, config, batches, 16, 0)
    assert applied[0] == pytest.approx(logs["grad_norm_d"], rel=1e-5)


def test_group_batches_come_from_one_group_only(train_split):
    batches = TensorBatches(train_split, 2, 0, torch.device("cpu"))
    white = train_split.images[train_split.groups == 1].float().div(127.5).sub(1)
    black = train_split.images[train_split.groups == 0].float().div(127.5).sub(1)
    for group, pool in ((0, black), (1, white)):
        images, _ = batches.real(32, group)
        # every drawn image is one of that group's images
        matches = (images[:, None] == pool[None]).flatten(2).all(2).any(1)
        assert bool(matches.all())


def test_vanilla_draws_both_groups(train_split):
    batches = TensorBatches(train_split, 2, 0, torch.device("cpu"))
    images, _ = batches.real(256)
    mean = images.flatten(1).mean(1)
    assert (mean > 0).any() and (mean < 0).any()  # white (bright) and black (dark) backgrounds both appear


def test_resume_reproduces_uninterrupted_run(tmp_path):
    full = train(_options(tmp_path / "full"))
    part = _options(tmp_path / "split", steps=12)
    train(part)
    assert load_checkpoint(tmp_path / "split/digits-bicolor/vanilla/seed3/checkpoint.pt").train["steps"] == 12
    resumed = train(_options(tmp_path / "split"))
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(resumed).train["steps"] == 30


def test_ctrl_c_leaves_usable_checkpoint_and_resumes_exactly(tmp_path):
    full = train(_options(tmp_path / "full"))

    def interrupt_at_17(step, total, logs):
        if step == 17:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as info:
        train(_options(tmp_path / "int"), progress=interrupt_at_17)
    assert info.value.step == 17
    assert load_checkpoint(info.value.checkpoint).train["steps"] == 17
    resumed = train(_options(tmp_path / "int"))
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_finished_run_is_not_retrained(tmp_path):
    path = train(_options(tmp_path, steps=5))
    stamp = path.stat().st_mtime_ns
    assert train(_options(tmp_path, steps=5)) == path
    assert path.stat().st_mtime_ns == stamp


def test_resume_refuses_a_different_run(tmp_path):
    train(_options(tmp_path, steps=5))
    with pytest.raises(FairbenchError, match="different run"):
        train(_options(tmp_path, steps=10, batch_size=16))


def test_run_folder_names_the_hyper_parameters_that_differ_from_the_defaults(tmp_path):
    default = train(_options(tmp_path, steps=2))
    assert default.parent == tmp_path / TASK.id / "vanilla" / "seed3"  # the historical path is kept
    # --set of a default value is the same training, so the same folder (resumed, not refused)
    assert train(_options(tmp_path, steps=2, overrides={"lr_g": 2e-4})) == default
    changed = train(_options(tmp_path, steps=2, overrides={"lr_g": 1e-3, "beta1": 0.0}))
    assert changed.parent == tmp_path / TASK.id / "vanilla@beta1=0.0,lr_g=0.001" / "seed3"
    assert resolve_run_dir(_options(tmp_path, overrides={"beta1": 0.0, "lr_g": 1e-3})) == changed.parent
    assert load_checkpoint(changed).config["lr_g"] == 1e-3 and load_checkpoint(default).config["lr_g"] == 2e-4


def test_config_label_is_readable_and_hashes_what_it_had_to_shorten():
    from fairbench.training import config_label, parse_config

    plain = config_label("vanilla", parse_config("vanilla", {"optimizer_d": "sgd"}))
    assert plain == "@optimizer_d=sgd"
    odd = config_label("vanilla", parse_config("vanilla", {"architecture": "dcgan-conditional", "width": 8}))
    assert odd == "@architecture=dcgan-conditional,width=8"
    assert config_label("vanilla", parse_config("vanilla", {})) == ""
    # too long to be a readable folder name: cut, and a hash of the whole difference keeps configs apart
    many = {"latent_dim": 64, "lr_g": 1e-3, "mapping_layers": 2, "minibatch_std": True, "lr_d": 1e-3, "beta2": 0.99}
    first = config_label("vanilla", parse_config("vanilla", {**many, "width": 32}))
    second = config_label("vanilla", parse_config("vanilla", {**many, "width": 48}))  # differs past the cut
    assert first.startswith("@beta2=0.99,latent_dim=64,lr_d=0.001,") and "~" in first and len(first) <= 72
    assert first[:61] == second[:61] and first != second


def test_checkpoint_has_design_contract_keys(tmp_path):
    path = train(_options(tmp_path, steps=5))
    raw = safe_torch_load(path)
    assert {"format", "arch", "arch_kwargs", "state_dict", "task", "task_hash", "method", "config", "seed",
            "versions"} <= set(raw)
    assert raw["format"] == "fairbench-generator/1" and raw["task_hash"] == TASK.task_hash and raw["seed"] == 3
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave no temp files behind


@pytest.mark.parametrize(
    "method, overrides, message",
    [
        ("repfair", {"clip_norm": "abc"}, "clip_norm"),
        ("repfair", {"clip_norm": -1.0}, "clip_norm must be positive"),
        ("vanilla", {"width": 0}, "width must be a positive integer"),
        ("repfair", {"mapping_layers": -2}, "mapping_layers must be >= 0"),
        ("vanilla", {"mapping_layers": 1}, "mapping_layers needs architecture=dcgan-conditional"),
        ("vanilla", {"architecture": "dcgan-conditional", "minibatch_std": True}, "minibatch_std needs"),
        ("repfair", {"variant": "nope"}, "variant"),
        ("vanilla", {"no_such_option": 1}, "unknown key"),
        ("nope", {}, "unknown method"),
    ],
)
def test_bad_method_config_is_a_user_error(tmp_path, method, overrides, message):
    with pytest.raises(FairbenchError, match=message):
        train(_options(tmp_path, method=method, overrides=overrides, steps=2))


def test_generator_mapping_layers_default_keeps_existing_checkpoints_loadable():
    """mapping_layers=0 (the default) builds exactly the earlier network: same keys, same seeded weights, so
    checkpoints written before the option load and the committed reference runs reproduce."""
    from baselines.nets import ConditionalGenerator

    torch.manual_seed(5)
    before = ConditionalGenerator(64, 10, [1, 16, 16], 32).state_dict()
    torch.manual_seed(5)
    default = ConditionalGenerator(64, 10, [1, 16, 16], 32, mapping_layers=0).state_dict()
    assert before.keys() == default.keys() and all(torch.equal(before[k], default[k]) for k in before)
    assert not any(k.startswith("mapping.") for k in before)

    deeper = ConditionalGenerator(64, 10, [1, 16, 16], 32, mapping_layers=2)
    linears = [m for m in deeper.mapping if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 and all(m.in_features == m.out_features == 74 for m in linears)
    z, y = torch.randn(3, 64), torch.tensor([0, 4, 9])
    assert deeper(z, y).shape == (3, 1, 16, 16)


def test_mapping_layers_reach_the_checkpoint_and_load_back(tmp_path):
    path = train(_options(tmp_path, steps=3, overrides={"mapping_layers": 2, "architecture": "dcgan-conditional"}))
    ckpt = load_checkpoint(path)
    assert ckpt.arch_kwargs["mapping_layers"] == 2
    assert any(k.startswith("mapping.") for k in ckpt.state_dict)


def test_snapshots_keep_the_generator_of_their_step_and_change_nothing(tmp_path: Path) -> None:
    """A snapshot at step 10 is exactly the final checkpoint of a 10-step run; snapshotting leaves training alone."""
    plain = train(_options(tmp_path / "plain", steps=20))
    snapped = train(_options(tmp_path / "snapped", steps=20, snapshot_every=10))
    final = _weights(snapped)
    assert all(torch.equal(final[k], v) for k, v in _weights(plain).items())
    snapshots = sorted(p.name for p in (snapped.parent / "snapshots").iterdir())
    assert snapshots == ["step0000010.pt", "step0000020.pt"]
    short = _weights(train(_options(tmp_path / "short", steps=10)))
    at_ten = load_checkpoint(snapped.parent / "snapshots" / "step0000010.pt")
    assert at_ten.train["steps"] == 10
    assert all(torch.equal(at_ten.state_dict[k], v) for k, v in short.items())
    assert not (plain.parent / "snapshots").exists()
    with pytest.raises(FairbenchError, match="snapshot"):
        train(_options(tmp_path / "bad", snapshot_every=0))
