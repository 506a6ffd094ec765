"""Brain-IT on CPU: BIT training step and inference, and reconstruction images per second.

    python bench/brainit_speed.py [--voxels 6400] [--batch 64] [--images 16] [--steps 30] [--strength 0.7]

BIT is built at the demo defaults with random weights for two subjects of ``--voxels`` voxels; the reconstruction
figure runs the configured reconstruction generator (img2img from a 32 px image under an image embedding,
classifier-free guidance 3) on random conditions. Prints ms per training step, decoded images per second, and
reconstructed images per second per sample.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import torch

    from backend.models import load_role
    from backend.reconstruction.brainit import BITConfig, _assign_matrix, _network

    p = argparse.ArgumentParser()
    p.add_argument("--voxels", type=int, default=6400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--strength", type=float, default=0.7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = BITConfig()
    rng = np.random.default_rng(0)
    net = _network(320, 256, 64, {"s": a.voxels}, cfg).to(a.device)
    V = torch.from_numpy(rng.normal(size=(a.voxels, 320)).astype(np.float32)).to(a.device)
    A = _assign_matrix(rng.integers(0, cfg.k, a.voxels), cfg.k).to(a.device)
    B = torch.from_numpy(rng.normal(size=(a.batch, a.voxels)).astype(np.float32)).to(a.device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    times = []
    for it in range(6):
        t = time.perf_counter()
        g, pt, low = net("s", B, V, A)
        loss = g.pow(2).mean() + pt.pow(2).mean() + low.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it >= 1:
            times.append(time.perf_counter() - t)
    step = float(np.median(times))
    net.eval()
    with torch.no_grad():
        t = time.perf_counter()
        for _ in range(3):
            net("s", B, V, A)
        infer = 3 * a.batch / (time.perf_counter() - t)
    print(f"BIT ({a.voxels} voxels, k={cfg.k}, dim={cfg.dim}, batch {a.batch}): {1000 * step:.0f} ms per training "
          f"step; {infer:.0f} images/s decoded")
    print(f"  an epoch of 3,400 images per subject, 2 subjects: {2 * 3400 / a.batch * step:.0f} s")
    gen = load_role("generator", a.device, purpose="reconstruction")
    low = rng.integers(0, 256, (a.images, 32, 32, 3), dtype=np.uint8)
    cond = gen.condition_images(rng.normal(size=(a.images, 256)).astype(np.float32))
    gen.img2img(list(low[:2]), cond[:2], strength=a.strength, steps=4)  # warm-up
    t = time.perf_counter()
    gen.img2img(list(low), cond, strength=a.strength, steps=a.steps)
    dt = time.perf_counter() - t
    print(f"reconstruction ({gen.model_id}, strength {a.strength}, {a.steps} steps, guidance 3, batch {a.images}): "
          f"{a.images / dt:.1f} images/s per sample")


if __name__ == "__main__":
    main()
