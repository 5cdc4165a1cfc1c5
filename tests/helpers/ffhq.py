"""Tiny stand-ins for the ffhq-race task: the shipped spec at a few pixels, a random StyleGAN2, a random judge."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from fairbench.task_registry import builtin_task_dir, parse_task


def tiny_ffhq_data(size: int = 8, n_samples: int = 12, iqa: list[str] | None = None) -> dict:
    """The shipped ffhq-race YAML with a tiny image size, few samples and few bootstrap resamples."""
    data = yaml.safe_load((builtin_task_dir() / "ffhq-race.yaml").read_text())
    data["dataset"]["image_shape"] = [3, size, size]
    data["sampling"] = {"n_samples": n_samples, "seed": 0}
    data["bootstrap"] = {"n_resamples": 50, "seed": 0}
    data["quality"]["reference"] = {"part": "all", "start": 0, "stop": n_samples}
    data["quality"]["n_resamples"] = 5
    data["quality"]["kid_subsets"] = 5
    if iqa is not None:
        data["quality"]["iqa"] = iqa
    return data


def tiny_ffhq_task(size: int = 8, **kw):
    return parse_task(tiny_ffhq_data(size, **kw), "tiny ffhq-race")


def write_tiny_ffhq_yaml(path: Path, size: int = 8, **kw) -> Path:
    path.write_text(yaml.safe_dump(tiny_ffhq_data(size, **kw), sort_keys=False))
    return path


def write_random_fairface(home: Path, variant: str = "fairface-race7", seed: int = 0) -> Path:
    """A randomly initialised FairFace-layout ResNet-34 saved as a plain state dict where the asset lives."""
    from fairbench.judges.fairface import fairface_resnet34

    torch.manual_seed(seed)
    net = fairface_resnet34()
    name = {"fairface-race7": "res34_fair_align_multi_7_20190809.pt", "fairface-race4": "res34_fair_align_multi_4_20190809.pt"}
    path = home / "assets" / "fairface" / name[variant]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
