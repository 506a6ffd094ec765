"""BrainDiVE on CPU: images per second of the configured generator + embedder at a batch size, guided vs unguided.

    python bench/braindive_speed.py [--batch 16] [--steps 10] [--generator PATH] [--threads N]

Guidance costs a backward pass through the UNet, the VAE decoder and the embedder at every step; the figure to
watch is the guided / unguided time per step (the issue's aim: at most 4x).
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
    from backend.models.generator import load_generator
    from backend.synthesis import GuidanceConfig, Objective, guided_batches

    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--generator", default=None, help="a generator folder (default: the configured one)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    emb = load_role("embedder", a.device)
    gen = load_generator(a.generator, a.device, embedder=emb) if a.generator else load_role("generator", a.device)
    d = np.random.default_rng(0).normal(size=emb.dim).astype(np.float32)
    objective = Objective(d / np.linalg.norm(d), 0.0, {})
    seeds = list(range(a.batch))
    print(f"generator {gen.model_id} ({gen.image_size} px), embedder {emb.model_id}, batch {a.batch}, "
          f"{a.steps} steps, {torch.get_num_threads()} threads, {a.device}")
    res = {}
    for name, scale in (("unguided", 0.0), ("guided", None)):
        cfg = GuidanceConfig(steps=a.steps, batch=a.batch, scale=scale)
        list(guided_batches(gen, emb, objective, seeds[:2], GuidanceConfig(steps=2, batch=2, scale=scale)))  # warm-up
        t = time.perf_counter()
        list(guided_batches(gen, emb, objective, seeds, cfg))
        dt = time.perf_counter() - t
        res[name] = dt / a.steps
        print(f"{name:9s}: {dt / a.steps * 1000:7.1f} ms per step for {a.batch} images; "
              f"{a.batch / dt * a.steps / 50:.3f} images/s at 50 steps")
    print(f"guided / unguided cost per step: {res['guided'] / res['unguided']:.2f}x")


if __name__ == "__main__":
    main()
