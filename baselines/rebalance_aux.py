"""The auxiliary attribute classifier of `rebalance`: the method's own, trained on the task's training split.

It is never the evaluation judge and never sees the judge's or the test split: a method optimising against
the judge would game the benchmark. It reads generator outputs on the [-1, 1] scale and is differentiable,
because the bias-mitigation loss back-propagates through it. A seeded tenth of the training split (the
hold-out) is kept out of its training so its accuracy, and hence a weak classifier, can be reported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from fairbench import atomic
from fairbench.data import RealSplit
from fairbench.errors import FairbenchError


class AuxClassifier(nn.Module):
    """Two conv blocks pooled to 4x4 and a linear head: logits over the groups of images in [-1, 1]."""

    def __init__(self, in_channels: int, n_groups: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, n_groups),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


@dataclass(frozen=True)
class AuxCard:
    """What `aux.json` records beside `aux.safetensors`: the key it was trained for and its hold-out scores."""

    key: dict
    sha256: str
    balanced_accuracy: float  # mean per-group recall on the hold-out
    confusion: list[list[float]]  # row i: P(aux = j | true group i), hold-out
    n_holdout: int


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


def train_aux(
    split: RealSplit, n_groups: int, width: int, steps: int, batch_size: int, lr: float, seed: int,
    device: torch.device,
) -> tuple[AuxClassifier, float, list[list[float]], int]:
    """(net, balanced accuracy, confusion, hold-out size). Batches draw every group equally, so a 10% minority
    is learnt as well as the majority (the base generator's rare group is exactly what it must find)."""
    rng = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split), generator=rng)
    n_hold = max(n_groups, len(split) // 10)
    hold, fit = order[:n_hold], order[n_hold:]
    pools = [fit[split.groups[fit] == g] for g in range(n_groups)]
    if any(len(p) == 0 for p in pools):
        missing = [g for g, p in enumerate(pools) if len(p) == 0]
        raise FairbenchError(f"rebalance: the training split has no images of group(s) {missing}; "
                             "the auxiliary classifier cannot learn them")
    torch.manual_seed(seed)
    net = AuxClassifier(split.images.shape[1], n_groups, width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    per = max(1, batch_size // n_groups)
    net.train()
    for _ in range(steps):
        idx = torch.cat([p[torch.randint(len(p), (per,), generator=rng)] for p in pools])
        x, g = _to_float(split.images[idx]).to(device), split.groups[idx].to(device)
        loss = F.cross_entropy(net(x), g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(_to_float(split.images[hold[i : i + 512]]).to(device)).argmax(1).cpu()
                          for i in range(0, len(hold), 512)])
    truth = split.groups[hold]
    counts = np.zeros((n_groups, n_groups))
    np.add.at(counts, (truth.numpy(), pred.numpy()), 1)
    totals = counts.sum(1, keepdims=True)
    confusion = np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
    recalls = [confusion[g, g] for g in range(n_groups) if totals[g, 0] > 0]
    return net, float(np.mean(recalls)), np.nan_to_num(confusion, nan=0.0).tolist(), int(n_hold)


def save_aux(folder: Path, net: AuxClassifier, key: dict, balanced_accuracy: float, confusion, n_holdout: int) -> AuxCard:
    """Weights first, then the card naming their sha256: a card on disk always describes finished weights."""
    weights = folder / "aux.safetensors"
    with atomic.atomic_path(weights) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    card = AuxCard(key, atomic.sha256_file(weights), round(balanced_accuracy, 6), confusion, n_holdout)
    atomic.write_text(folder / "aux.json", json.dumps(asdict(card), indent=2) + "\n")
    return card


def load_aux(folder: Path, key: dict, in_channels: int, n_groups: int, width: int) -> tuple[AuxClassifier, AuxCard] | None:
    """The saved classifier if it was trained for `key`; None when there is none yet; an error for another key."""
    card_path, weights = folder / "aux.json", folder / "aux.safetensors"
    if not card_path.is_file() or not weights.is_file():
        return None
    card = AuxCard(**json.loads(card_path.read_text()))
    if card.key != key:
        raise FairbenchError(
            f"{card_path}: this run folder's auxiliary classifier was trained with other settings "
            f"({card.key} vs {key}); choose another --out or remove {folder}"
        )
    if atomic.sha256_file(weights) != card.sha256:
        return None  # weights replaced after the card (an interrupted rerun): train again
    net = AuxClassifier(in_channels, n_groups, width)
    net.load_state_dict(load_file(str(weights)))
    return net.eval(), card
