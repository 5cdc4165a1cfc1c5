"""The remedies for mode dropping in baselines/gan.py, each against an independent computation: the
minibatch-std group over the whole batch, feature matching, mode seeking, the R1 penalty and the EMA
generator (what the checkpoint then holds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.cdcgan import CDCGANDiscriminator
from baselines.gan import EMA, GANConfig, check_config, generator_update, r1_penalty, recipe_terms
from fairbench import data
from fairbench.errors import FairbenchError
from fairbench.methods import METHODS
from fairbench.plugins import load_plugins
from fairbench.task_registry import get_task
from fairbench.training import RunOptions, TensorBatches, parse_config, train
from fairbench.submission.checkpoint import load_checkpoint

TASK = get_task("digits-bicolor")


@pytest.fixture(scope="module")
def batches():
    return TensorBatches(data.load_split(TASK, "train"), TASK.n_groups, 0, torch.device("cpu"))


def _make(overrides: dict):
    load_plugins()
    config = parse_config("vanilla", {"width": 8, "latent_dim": 16, **overrides})
    torch.manual_seed(0)
    return config, METHODS.get("vanilla").create(TASK, config, torch.device("cpu"))


def test_a_whole_batch_group_gives_every_image_the_batch_std():
    disc = CDCGANDiscriminator(0, [1, 8, 8], width=4, minibatch_std=True, group_size=64)
    feats = disc.features(torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    expected = (feats.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()  # one group: the batch of 12
    from baselines.cdcgan import minibatch_stddev

    channel = minibatch_stddev(feats, 64)[:, -1]
    assert torch.allclose(channel, expected.expand_as(channel))


def test_feature_matching_is_the_squared_distance_of_batch_mean_features():
    config = GANConfig(width=4, feature_matching=2.5)
    disc = CDCGANDiscriminator(3, [1, 8, 8], width=4)
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(6, 1, 8, 8, generator=gen), torch.randn(6, 1, 8, 8, generator=gen)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    _, fake_features = disc(fake, labels, with_features=True)
    extra, logs = recipe_terms(disc, config, torch.zeros(6, 4), fake, fake_features, real, labels)
    with torch.no_grad():  # by hand: D's conv features, flattened, batch means, mean squared difference
        f_real, f_fake = disc.features(real).flatten(1), disc.features(fake).flatten(1)
        expected = (f_fake.mean(0) - f_real.mean(0)).pow(2).mean()
    assert logs["fm"] == pytest.approx(float(expected), rel=1e-6)
    assert float(extra.detach()) == pytest.approx(2.5 * float(expected), rel=1e-6)


def test_mode_seeking_is_the_inverse_ratio_of_image_to_latent_distance():
    config = GANConfig(mode_seeking=0.5)
    gen = torch.Generator().manual_seed(3)
    noise, fake = torch.randn(8, 5, generator=gen), torch.rand(8, 1, 4, 4, generator=gen)
    extra, logs = recipe_terms(None, config, noise, fake, None, None, None)
    ratio = (fake[:4] - fake[4:]).abs().mean() / (noise[:4] - noise[4:]).abs().mean()
    assert logs["ms"] == pytest.approx(float(ratio), rel=1e-6)
    assert float(extra.detach()) == pytest.approx(0.5 / (float(ratio) + 1e-5), rel=1e-6)


def test_r1_is_the_squared_gradient_norm_of_d_at_real_images():
    """D(x) = w . x + b has gradient w at every image: R1 = ||w||^2 exactly."""
    w = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(4))

    def linear_d(x, labels=None):
        return (x * w).flatten(1).sum(1) + 0.3

    real = torch.randn(5, 2, 3, 3)
    scores, penalty = r1_penalty(linear_d, real, None)
    assert torch.allclose(scores, linear_d(real))
    assert float(penalty) == pytest.approx(float(w.pow(2).sum()), rel=1e-6)


def test_r1_changes_ds_update_and_logs_the_penalty(batches):
    config, trainable = _make({"r1_gamma": 10.0})
    method = METHODS.get("vanilla")
    logs = method.step(trainable, config, batches, 8, 0)
    assert logs["r1"] > 0 and np.isfinite(logs["loss_d"])


def test_ema_generator_is_the_moving_average_and_the_checkpoint_holds_it(batches, tmp_path):
    config, trainable = _make({"ema_decay": 0.9})
    assert trainable.generator == EMA
    gen, ema = trainable.modules["generator"], trainable.modules[EMA]
    before_ema = {k: v.clone() for k, v in ema.state_dict().items()}
    y = torch.zeros(8, dtype=torch.int64)
    generator_update(trainable, y, torch.randn(8, 16), config, None)
    after_g = gen.state_dict()
    for name, value in ema.named_parameters():
        assert torch.allclose(value, 0.9 * before_ema[name] + 0.1 * after_g[name], atol=1e-7), name
    for name, value in ema.named_buffers():  # BatchNorm statistics: copied from G
        assert torch.equal(value, after_g[name]), name
    # Through the harness: the saved generator is the average, and it scores like any checkpoint.
    options = RunOptions(method="vanilla", task=TASK, steps=3, out=tmp_path,
                         overrides={"width": 8, "latent_dim": 16, "ema_decay": 0.5})
    ckpt = load_checkpoint(train(options))
    state = torch.load(tmp_path / "digits-bicolor" / options_label(options) / "seed0" / "trainstate.pt",
                       weights_only=True)["trainable"]["modules"]
    for name, value in ckpt.state_dict.items():
        assert torch.equal(value, state[EMA][name]), name


def options_label(options: RunOptions) -> str:
    from fairbench.training import config_label

    return "vanilla" + config_label("vanilla", parse_config("vanilla", options.overrides))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mbstd_group": 1}, "mbstd_group"),
        ({"feature_matching": -1.0}, "feature_matching"),
        ({"r1_gamma": -0.1}, "r1_gamma"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"feature_matching": 1.0, "architecture": "dcgan-conditional"}, "feature_matching needs"),
    ],
)
def test_bad_recipe_settings_are_one_line_errors(overrides, message):
    with pytest.raises(FairbenchError, match=message):
        check_config(GANConfig(**overrides))


def test_feature_matching_trains_through_the_harness_step(batches):
    config, trainable = _make({"feature_matching": 1.0, "mode_seeking": 0.1})
    logs = METHODS.get("vanilla").step(trainable, config, batches, 8, 0)
    assert logs["fm"] >= 0 and logs["ms"] > 0 and np.isfinite(logs["loss_g"])


@pytest.mark.parametrize("method", ["repfair", "groupcond"])
def test_methods_with_their_own_updates_refuse_the_terms_they_would_ignore(method):
    load_plugins()
    config = parse_config(method, {"width": 8, "latent_dim": 16, "feature_matching": 1.0, "ema_decay": 0.9})
    with pytest.raises(FairbenchError, match=f"{method} does not apply feature_matching, ema_decay"):
        METHODS.get(method).create(TASK, config, torch.device("cpu"))
    # the minibatch-std group is D's architecture: every method takes it
    config = parse_config(method, {"width": 8, "latent_dim": 16, "minibatch_std": True, "mbstd_group": 64})
    trainable = METHODS.get(method).create(TASK, config, torch.device("cpu"))
    assert trainable.modules["discriminator"].group_size == 64
