"""Latent exploration and the bias-mitigation loss of `rebalance` on a toy with a known latent split."""

import pytest
import torch

from baselines.rebalance_explore import ExploreConfig, explore
from baselines.rebalance_loss import bias_mitigation_loss, deficit_weights
from fairbench.errors import FairbenchError


def _toy():
    # "image" = z[:, 0]; group 1 is z0 > 1.8 (about 3.6% of N(0, 1)): a rare group with a known region.
    def generate(z, y):
        return z[:, :1]

    def classify(x):
        p1 = torch.sigmoid((x[:, 0] - 1.8) * 20)
        return torch.stack([1 - p1, p1], 1)

    return generate, classify


def _run(mode):
    gen, cls = _toy()
    cfg = ExploreConfig(mode=mode, per_group=40, threshold=0.9, sigma=0.2, branching=4, pool=64)
    return explore(gen, cls, 4, 2, 0, cfg, torch.Generator().manual_seed(0))


def test_exploration_is_exactly_balanced_and_confident():
    for mode in ("bfs", "rejection"):
        out = _run(mode)
        assert torch.bincount(out.groups).tolist() == [40, 40]
        rare = out.latents[out.groups == 1][:, 0]
        assert (rare > 1.8 - 0.2).all()  # threshold 0.9 at slope 20 means z0 > 1.91 (loose bound)
        assert (out.latents[out.groups == 0][:, 0] < 1.8).all()


def test_bfs_needs_fewer_generator_calls_than_rejection_for_the_rare_group():
    bfs, rej = _run("bfs").logs[1], _run("rejection").logs[1]
    assert bfs.generator_calls < rej.generator_calls


def test_loss_zero_at_uniform_grows_with_deviation_and_weights_follow_deficit():
    w = torch.ones(2, dtype=torch.float64)
    assert bias_mitigation_loss(torch.full((8, 2), 0.5, dtype=torch.float64), w) == 0
    losses = [float(bias_mitigation_loss(torch.tensor([[0.5 + d, 0.5 - d]], dtype=torch.float64), w))
              for d in (0.0, 0.1, 0.2, 0.4)]
    assert losses == sorted(losses) and losses[1] > 0
    assert abs(losses[2] - 2 * 0.2**2) < 1e-12  # independent: (0.7-0.5)^2 + (0.3-0.5)^2
    assert deficit_weights(torch.tensor([0.5, 0.5])).tolist() == [1.0, 1.0]
    wd = deficit_weights(torch.tensor([0.9, 0.1]))
    assert wd[0] == 1.0 and abs(float(wd[1]) - 1.8) < 1e-6


def test_a_present_group_the_classifier_is_never_sure_of_is_not_called_collapsed():
    # Group 1 is half of the latents (z0 > 0), but the classifier's confidence never exceeds 0.75: the fix is the
    # threshold or the classifier, not the base, and the error must say which.
    def classify(x):
        p1 = 0.75 * torch.sigmoid(x[:, 0] * 20)  # group 0 is sure where z0 < 0, group 1 never
        return torch.stack([1 - p1, p1], 1)

    for mode in ("bfs", "rejection"):
        cfg = ExploreConfig(mode=mode, per_group=5, threshold=0.9, pool=64, max_calls=512)
        with pytest.raises(FairbenchError, match="never confident about group '1'.*best confidence was 0.75"):
            explore(lambda z, y: z[:, :1], classify, 4, 2, 0, cfg, torch.Generator().manual_seed(0))


def test_an_absent_group_is_reported_as_a_collapsed_base():
    gen, cls = _toy()
    cfg = ExploreConfig(mode="bfs", per_group=5, threshold=0.9, pool=64, max_calls=512)
    with pytest.raises(FairbenchError, match="group '1' is essentially absent.*0.0% of the base"):
        explore(lambda z, y: torch.zeros(len(z), 1), cls, 4, 2, 0, cfg, torch.Generator().manual_seed(0))
