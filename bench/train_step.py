"""Training-step cost: the harness's step against a bare PyTorch loop, RepFair's and the mode-dropping recipe's
(whole-batch minibatch std: `minibatch_std=true mbstd_group=64`) against vanilla's, channels-last memory format
and one thread against the default threads.

Same networks, same initial weights, same batch, measured in one run with interleaved repeats; prints ratios
(targets: harness/bare within 3%, repfair/vanilla at most 1.3x, recipe/vanilla at most 2x). Not a test:
timings are machine-dependent.

`--throughput` answers how to use a small machine for long campaigns instead: one training process with all
threads against as many one-thread processes running at once (total steps/s, ratio to the first), and the
step time and images/s at several batch sizes, all on the harness's vanilla step.

    python bench/train_step.py [--task mnist-bicolor] [--steps 60] [--repeats 5] [--device cpu]
    python bench/train_step.py --throughput [--task mnist-bicolor] [--steps 200] [--processes 2]
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import statistics
import time

import torch
import torch.nn.functional as F

from fairbench import data
from fairbench.devices import resolve_device
from fairbench.methods import METHODS
from fairbench.plugins import load_plugins
from fairbench.task_registry import get_task
from fairbench.training import TensorBatches, parse_config


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


RECIPE = {"minibatch_std": True, "mbstd_group": 64}


def harness_loop(method_name, task, split, device, steps, batch_size, init, overrides=None, threads=None):
    method = METHODS.get(method_name)
    config = parse_config(method_name, overrides or {})
    trainable = method.create(task, config, device)
    trainable.modules["generator"].load_state_dict(init["generator"])
    # the recipe's D has one more input channel in its last conv: it starts from its own seeded weights
    if not overrides:
        trainable.modules["discriminator"].load_state_dict(init["discriminator"])
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _time_steps(method, trainable, config, split, task, device, steps, batch_size)
    finally:
        torch.set_num_threads(previous)


def _time_steps(method, trainable, config, split, task, device, steps, batch_size):
    batches = TensorBatches(split, task.n_groups, 0, device)
    sync(device)
    start = time.perf_counter()
    for step in range(steps):
        method.step(trainable, config, batches, batch_size, step)
    sync(device)
    return (time.perf_counter() - start) / steps


def bare_loop(task, split, device, steps, batch_size, init, channels_last=False):
    """The same vanilla update written directly against torch, with no harness objects in the way; optionally
    with the networks and the real batch in channels-last memory format."""
    load_plugins()
    config = parse_config("vanilla", {})
    trainable = METHODS.get("vanilla").create(task, config, device)
    gen, disc = trainable.modules["generator"], trainable.modules["discriminator"]
    gen.load_state_dict(init["generator"])
    disc.load_state_dict(init["discriminator"])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    gen.to(memory_format=layout)
    disc.to(memory_format=layout)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    images, labels = split.images.to(device), split.labels.to(device)
    rng = torch.Generator().manual_seed(1)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=rng).to(device)
        real, y = (images[idx].float() / 127.5 - 1).contiguous(memory_format=layout), labels[idx]
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


def _steps_per_second(task_id: str, steps: int, batch_size: int, threads: int, barrier=None) -> float:
    """One harness vanilla run of `steps` on `threads` threads (in its own process), after a 5-step warm-up."""
    torch.set_num_threads(threads)
    load_plugins()
    task = get_task(task_id)
    split = data.load_split(task, "train")
    torch.manual_seed(0)
    trainable = METHODS.get("vanilla").create(task, parse_config("vanilla", {}), torch.device("cpu"))
    init = {k: copy.deepcopy(m.state_dict()) for k, m in trainable.modules.items()}
    harness_loop("vanilla", task, split, torch.device("cpu"), 5, batch_size, init)
    if barrier is not None:
        barrier.wait()  # every process starts timing together
    return 1.0 / harness_loop("vanilla", task, split, torch.device("cpu"), steps, batch_size, init)


def _worker(args) -> float:
    return _steps_per_second(*args)


def throughput(task_id: str, steps: int, processes: int) -> None:
    cores = torch.get_num_threads()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        alone = pool.map(_worker, [(task_id, steps, 64, cores)])[0]
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            each = pool.map(_worker, [(task_id, steps, 64, 1, barrier)] * processes)
    print(f"task {task_id}, batch 64, {steps} steps per process")
    print(f"  1 process x {cores} threads:   {alone:7.1f} steps/s")
    print(f"  {processes} processes x 1 thread: {sum(each):7.1f} steps/s in all ({', '.join(f'{v:.1f}' for v in each)})")
    print(f"several runs / one run   ratio {sum(each) / alone:.3f}  (> 1: run campaign jobs side by side)")
    for batch in (32, 64, 128):
        with ctx.Pool(1) as pool:
            rate = pool.map(_worker, [(task_id, steps, batch, cores)])[0]
        print(f"  batch {batch:4d}: {1000 / rate:7.2f} ms/step, {rate * batch:8.0f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-bicolor")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--throughput", action="store_true", help="Processes x threads and batch sizes (CPU).")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if args.throughput:
        throughput(args.task, args.steps, args.processes)
        return
    load_plugins()
    device = resolve_device(args.device)
    task = get_task(args.task)
    split = data.load_split(task, "train")
    torch.manual_seed(0)
    reference = METHODS.get("vanilla").create(task, parse_config("vanilla", {}), device)
    init = {k: copy.deepcopy(m.state_dict()) for k, m in reference.modules.items()}

    times: dict[str, list[float]] = {k: [] for k in ("bare", "bare-cl", "vanilla", "vanilla-1t", "repfair", "recipe")}
    run = (task, split, device, args.steps, args.batch_size, init)
    harness_loop("vanilla", *run)  # warm-up
    for _ in range(args.repeats):  # interleaved, so drift hits every variant alike
        times["bare"].append(bare_loop(*run))
        times["bare-cl"].append(bare_loop(*run, channels_last=True))
        times["vanilla"].append(harness_loop("vanilla", *run))
        times["vanilla-1t"].append(harness_loop("vanilla", *run, threads=1))
        times["repfair"].append(harness_loop("repfair", *run))
        times["recipe"].append(harness_loop("vanilla", *run, overrides=RECIPE))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"task {task.id}, device {device}, batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats, "
          f"{torch.get_num_threads()} threads")
    for k, v in med.items():
        print(f"  {k:10s} {v * 1000:8.2f} ms/step (median)")
    print(f"harness/bare         ratio {med['vanilla'] / med['bare']:.3f}  (target <= 1.03)")
    print(f"repfair/vanilla      ratio {med['repfair'] / med['vanilla']:.3f}  (target <= 1.30)")
    print(f"recipe/vanilla       ratio {med['recipe'] / med['vanilla']:.3f}  (target <= 2.00)")
    print(f"channels-last/bare   ratio {med['bare-cl'] / med['bare']:.3f}  (< 1: channels-last would help)")
    print(f"1 thread/default     ratio {med['vanilla-1t'] / med['vanilla']:.3f}  (near 1: extra threads buy little)")


if __name__ == "__main__":
    main()
