"""Reference methods (issue 10): each RepFair variant's update does what its docstring says, `groupcond`
samples groups uniformly, `mbstd`'s channel is the within-group standard deviation, old nets still build."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.cdcgan import (
    CDCGANDiscriminator,
    CDCGANGenerator,
    GroupConditionalGenerator,
    group_of_latent,
    latent_for_group,
    minibatch_stddev,
)
from baselines.groupcond import asked_group_agreement, balanced_real
from fairbench import data
from fairbench.methods import METHODS
from fairbench.plugins import load_plugins
from fairbench.task_registry import get_task
from fairbench.training import TensorBatches, parse_config

TASK = get_task("digits-bicolor")


@pytest.fixture(scope="module")
def batches():
    return TensorBatches(data.load_split(TASK, "train"), TASK.n_groups, 0, torch.device("cpu"))


def _make(method: str, overrides: dict):
    load_plugins()
    config = parse_config(method, {"width": 8, "latent_dim": 16, **overrides})
    torch.manual_seed(0)
    return METHODS.get(method), config, METHODS.get(method).create(TASK, config, torch.device("cpu"))


def _record_d_steps(trainable) -> list[dict[str, torch.Tensor]]:
    """The change of every D parameter at each D optimiser step (SGD: exactly -lr * the applied gradient)."""
    disc, opt = trainable.modules["discriminator"], trainable.optimizers["discriminator"]
    steps: list[dict[str, torch.Tensor]] = []
    before: dict[str, torch.Tensor] = {}

    def pre(*_):
        before.clear()
        before.update({k: p.detach().clone() for k, p in disc.named_parameters()})

    def post(*_):
        steps.append({k: p.detach() - before[k] for k, p in disc.named_parameters()})

    opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(post)
    return steps


def _total(delta: dict[str, torch.Tensor]) -> float:
    return float(torch.cat([d.flatten() for d in delta.values()]).norm())


LR, C = 0.1, 0.05


def test_alg1_clips_only_the_real_batch_step_and_sgd_bounds_it(batches):
    method, config, trainable = _make("repfair", {"variant": "alg1", "clip_norm": C, "optimizer_d": "sgd", "lr_d": LR})
    assert isinstance(trainable.optimizers["discriminator"], torch.optim.SGD)
    steps = _record_d_steps(trainable)
    unclipped = []
    for step in range(4):
        logs = method.step(trainable, config, batches, 16, step)
        assert logs["grad_norm_d"] > C  # the clip was active on the real-batch gradient
        real_step, fake_step = steps[-2], steps[-1]
        assert _total(real_step) <= LR * C * (1 + 1e-4)
        assert _total(real_step) == pytest.approx(LR * C, rel=1e-3)  # clipped to exactly C
        unclipped.append(_total(fake_step))
    assert len(steps) == 8  # two D steps per training step: real (clipped), then generated (not clipped)
    assert max(unclipped) > LR * C * 2  # the generated-sample step is left alone


def test_authors_variant_clips_each_tensor_of_the_whole_loss_gradient(batches):
    method, config, trainable = _make("repfair", {"variant": "authors", "clip_norm": C, "optimizer_d": "sgd", "lr_d": LR})
    steps = _record_d_steps(trainable)
    for step in range(3):
        method.step(trainable, config, batches, 16, step)
    assert len(steps) == 3  # one D step on real + fake
    for delta in steps:
        norms = [float(d.norm()) for d in delta.values()]
        assert max(norms) <= LR * C * (1 + 1e-4)
        assert _total(delta) > LR * C * 1.5  # per tensor, not in total: the sum exceeds one tensor's bound


def test_total_norm_variant_clips_the_whole_gradient(batches):
    method, config, trainable = _make(
        "repfair", {"variant": "total-norm", "clip_norm": C, "optimizer_d": "sgd", "lr_d": LR}
    )
    steps = _record_d_steps(trainable)
    for step in range(3):
        method.step(trainable, config, batches, 16, step)
    assert [pytest.approx(LR * C, rel=1e-3)] * 3 == [_total(d) for d in steps]


def test_variants_default_to_their_published_clip():
    load_plugins()
    from baselines.repfair import clip_value

    assert clip_value(parse_config("repfair", {})) == 5.0  # alg1, the paper's MNIST C
    assert clip_value(parse_config("repfair", {"variant": "authors"})) == 2.0  # the authors' code
    assert clip_value(parse_config("repfair", {"variant": "authors", "clip_norm": 7})) == 7.0


def test_repfair_alternates_groups(batches):
    method, config, trainable = _make("repfair", {})
    asked = []
    original = batches.real

    def spy(n, group=None):
        asked.append(group)
        return original(n, group)

    batches.real = spy
    try:
        for step in range(4):
            method.step(trainable, config, batches, 8, step)
    finally:
        del batches.real
    assert asked == [0, 1, 0, 1]


def test_group_of_latent_is_uniform_and_latent_for_group_inverts_it():
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    for n in (2, 5):
        counts = np.bincount(group_of_latent(z, n).numpy(), minlength=n)
        expected = len(z) / n
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 20.5  # chi-square, n-1 <= 4 df: P(> 20.5) < 0.0005
        groups = torch.arange(n).repeat(1000)
        u = torch.rand(len(groups), generator=torch.Generator().manual_seed(1))
        z0 = latent_for_group(groups, n, u)
        assert torch.equal(group_of_latent(z0, n), groups)
        # restricted to its slice, z0 is still standard normal overall (u uniform, groups uniform)
        assert abs(float(z0.mean())) < 0.1 and abs(float(z0.std()) - 1) < 0.1


def test_groupcond_generator_draws_the_group_named_by_its_latent():
    torch.manual_seed(0)
    gen = GroupConditionalGenerator(latent_dim=8, num_classes=0, image_shape=[1, 8, 8], width=4, n_groups=3).eval()
    z = torch.randn(6, 8)
    groups = group_of_latent(z[:, 0], 3)
    with torch.no_grad():
        assert torch.equal(gen(z), gen(z, groups=groups))
        other = (groups + 1) % 3
        assert not torch.allclose(gen(z), gen(z, groups=other))


class _PaintsItsGroup(torch.nn.Module):
    """Draws each sample as a flat image whose grey level names the group its first latent asks for."""

    def __init__(self, task) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.task = 4, 0, task

    def forward(self, z, y=None):
        level = group_of_latent(z[:, 0], self.task.n_groups).float() / (self.task.n_groups - 1) * 2 - 1
        return level.view(-1, 1, 1, 1).expand(-1, *self.task.image_shape).contiguous()


class _ReadsTheGreyLevel:
    """A judge that reads the group back off the grey level, then renames it by `rename`."""

    def __init__(self, n_groups: int, rename) -> None:
        self.n_groups, self.rename = n_groups, rename
        self.net = torch.nn.Identity()  # no weights: judged wherever the samples are

    def predict(self, images):
        group = np.rint(images.float().mean((1, 2, 3)).numpy() / 255 * (self.n_groups - 1)).astype(np.int64)
        return self.rename(group)


def test_asked_group_agreement_pairs_each_sample_with_the_group_it_was_drawn_for():
    task = get_task("cifar10-lt")  # 10 groups, unconditional; only its spec is read
    model, n = _PaintsItsGroup(task), task.n_groups

    def agreement(rename):
        return asked_group_agreement(model, _ReadsTheGreyLevel(n, rename), task, 500, seed=3)

    assert agreement(lambda g: g).tolist() == [1.0] * n  # fails if the latents were not the sampler's own
    assert agreement(lambda g: (g + 1) % n).tolist() == [0.0] * n
    only_first = agreement(lambda g: np.where(g == 0, 0, (g + 1) % n))
    assert only_first.tolist() == [1.0] + [0.0] * (n - 1)


def test_groupcond_trains_on_group_balanced_real_batches(batches):
    real, y, groups = balanced_real(batches, 9)
    assert real.shape[0] == len(y) == len(groups) == 9
    assert np.bincount(groups.numpy()).tolist() == [5, 4]
    method, config, trainable = _make("groupcond", {})
    logs = method.step(trainable, config, batches, 8, 0)
    assert np.isfinite(logs["loss_d"]) and np.isfinite(logs["loss_g"])
    assert trainable.arch == "cdcgan-groupcond"


def test_minibatch_stddev_matches_an_independent_computation():
    x = torch.randn(8, 3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2)
    assert torch.equal(out[:, :3], x)
    arr = x.numpy()
    for i in range(8):
        members = [j for j in range(8) if j % 2 == i % 2]  # reshape(g, n // g): slot i % (n // g)
        expected = np.sqrt(arr[members].var(axis=0) + 1e-8).mean()
        assert np.allclose(out[i, 3].numpy(), expected)
    assert minibatch_stddev(torch.ones(6, 1, 2, 2), 4)[:, 1].max() < 1e-3  # g = 3 divides 6; no variance


def test_mbstd_discriminator_tells_a_one_colour_batch_by_its_channel():
    disc = CDCGANDiscriminator(0, [1, 8, 8], width=4, minibatch_std=True)
    assert disc.score.in_features == (2 * 4 + 1) * 2 * 2
    assert disc(torch.randn(8, 1, 8, 8)).shape == (8,)


def test_cdcgan_handles_rgb_32_and_rejects_odd_sizes():
    gen = CDCGANGenerator(16, 0, [3, 32, 32], width=4)
    assert gen(torch.randn(2, 16)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="divisible by 4"):
        CDCGANGenerator(16, 0, [3, 30, 30])


def test_old_architecture_still_builds_by_config(batches):
    method, config, trainable = _make("vanilla", {"architecture": "dcgan-conditional"})
    assert trainable.arch == "dcgan-conditional"
    logs = method.step(trainable, config, batches, 8, 0)
    assert np.isfinite(logs["loss_d"])
