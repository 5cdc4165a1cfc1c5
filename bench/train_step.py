"""Training-step overhead: the harness's step against a bare PyTorch loop, and RepFair's step against vanilla's.

Same networks, same initial weights, same batch, measured in one run with interleaved repeats; prints ratios
(targets: harness/bare within 5%, repfair/vanilla at most 1.3x). Not a test: timings are machine-dependent.

    python bench/train_step.py [--task mnist-bicolor] [--steps 60] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from fairbench import data
from fairbench.devices import resolve_device
from fairbench.methods import METHODS
from fairbench.plugins import load_plugins
from fairbench.tasks import get_task
from fairbench.training import TensorBatches, parse_config


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def harness_loop(method_name, task, split, device, steps, batch_size, init):
    method = METHODS.get(method_name)
    config = parse_config(method_name, {})
    trainable = method.create(task, config, device)
    trainable.modules["generator"].load_state_dict(init["generator"])
    trainable.modules["discriminator"].load_state_dict(init["discriminator"])
    batches = TensorBatches(split, task.n_groups, 0, device)
    sync(device)
    start = time.perf_counter()
    for step in range(steps):
        method.step(trainable, config, batches, batch_size, step)
    sync(device)
    return (time.perf_counter() - start) / steps


def bare_loop(task, split, device, steps, batch_size, init):
    """The same vanilla update written directly against torch, with no harness objects in the way."""
    load_plugins()
    config = parse_config("vanilla", {})
    trainable = METHODS.get("vanilla").create(task, config, device)
    gen, disc = trainable.modules["generator"], trainable.modules["discriminator"]
    gen.load_state_dict(init["generator"])
    disc.load_state_dict(init["discriminator"])
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    images, labels = split.images.to(device), split.labels.to(device)
    rng = torch.Generator().manual_seed(1)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=rng).to(device)
        real, y = images[idx].float() / 127.5 - 1, labels[idx]
        with torch.no_grad():
            fake = gen(torch.randn(batch_size, config.latent_dim, generator=rng).to(device), y)
        loss_d = F.softplus(-disc(real, y)).mean() + F.softplus(disc(fake, y)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        fake = gen(torch.randn(batch_size, config.latent_dim, generator=rng).to(device), y)
        loss_g = F.softplus(-disc(fake, y)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        loss_d.item(), loss_g.item()  # the harness logs both losses each step; so does the reference
    sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-bicolor")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    load_plugins()
    device = resolve_device(args.device)
    task = get_task(args.task)
    split = data.load_split(task, "train")
    torch.manual_seed(0)
    reference = METHODS.get("vanilla").create(task, parse_config("vanilla", {}), device)
    init = {k: copy.deepcopy(m.state_dict()) for k, m in reference.modules.items()}

    times: dict[str, list[float]] = {"bare": [], "vanilla": [], "repfair": []}
    harness_loop("vanilla", task, split, device, 5, args.batch_size, init)  # warm-up
    for _ in range(args.repeats):  # interleaved, so drift hits every variant alike
        times["bare"].append(bare_loop(task, split, device, args.steps, args.batch_size, init))
        times["vanilla"].append(harness_loop("vanilla", task, split, device, args.steps, args.batch_size, init))
        times["repfair"].append(harness_loop("repfair", task, split, device, args.steps, args.batch_size, init))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"task {task.id}, device {device}, batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats")
    for k, v in med.items():
        print(f"  {k:8s} {v * 1000:8.2f} ms/step (median)")
    print(f"harness/bare     ratio {med['vanilla'] / med['bare']:.3f}  (target <= 1.05)")
    print(f"repfair/vanilla  ratio {med['repfair'] / med['vanilla']:.3f}  (target <= 1.30)")


if __name__ == "__main__":
    main()
