"""EQ-Face throughput: fairbench's scoring path against a bare forward pass of the same network.

The harness adds preprocessing (bilinear resize to 112 on the 8-bit grid, normalisation) and fixed padded
batches of EQFACE_BATCH, which keep scores independent of how many images are scored together. This prints
images/s for both and their ratio (harness / bare; the padding costs at most one partial batch), and the peak
resident memory. Weights are random in the authors' IR-100 layout: cost does not depend on their values.

    python bench/eqface.py [--images 64] [--size 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main() -> None:
    from fairbench.metrics import eqface

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=128, help="side of the square RGB images scored")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        state = eqface.EQFaceNet(eqface.IR100).state_dict()
        backbone, quality = Path(tmp) / "backbone.pth", Path(tmp) / "quality.pth"
        torch.save({f"module.{k}": v for k, v in state.items() if not k.startswith("qualtiy.")}, backbone)
        torch.save({f"module.{k}": v for k, v in state.items() if k.startswith("qualtiy.")}, quality)
        del state
        start = time.perf_counter()
        net = eqface.load_eqface(backbone, quality, args.device)
        load_s = time.perf_counter() - start

    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (args.images, 3, args.size, args.size),
                                                                dtype=np.uint8))
    eqface.score_faces(net, images[: eqface.EQFACE_BATCH], args.device)  # warm-up
    start = time.perf_counter()
    eqface.score_faces(net, images, args.device)
    harness_s = time.perf_counter() - start

    x = eqface.preprocess(images)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(x), eqface.EQFACE_BATCH):
            net(x[i : i + eqface.EQFACE_BATCH].to(args.device)).cpu()
    bare_s = time.perf_counter() - start

    print(json.dumps({
        "images": args.images, "size": args.size, "device": args.device, "threads": torch.get_num_threads(),
        "load_s": round(load_s, 2), "harness_images_per_s": round(args.images / harness_s, 2),
        "bare_images_per_s": round(args.images / bare_s, 2), "harness_over_bare": round(harness_s / bare_s, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }))


if __name__ == "__main__":
    main()
