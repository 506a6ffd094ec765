"""The demo generator's sampling speed: conditional (text, classifier-free guidance) and unconditional.

    .venv/bin/python bench/generator_speed.py [--n 16] [--steps 50] [--threads 2] [--device cpu] [--folder PATH]

Prints images per second for each mode (DDIM, ``--steps`` steps; guidance doubles the UNet batch) and img2img at
strength 0.6, and one training step of the recipe (batch 64) for the budget.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--folder", default=None, help="generator folder (default: models.toml)")
    args = ap.parse_args()

    import torch

    from backend.models import load_role, model_config
    from backend.models.generator import load_generator

    torch.set_num_threads(args.threads)
    cfg = model_config()
    emb = load_role("embedder", args.device, cfg)
    gen = load_generator(args.folder or cfg["generator"]["path"], args.device, embedder=emb)
    prompts = ["a face"] * args.n
    gen.sample(prompts[:2], steps=2)  # warm-up
    for label, guidance, cond in (("conditional (text, guidance 3)", 3.0, None),
                                  ("unconditional", 1.0, "uncond")):
        t0 = time.perf_counter()
        if cond == "uncond":
            x = gen.prepare_latents(args.n, 0)
            u = gen.unconditional(args.n)
            with torch.no_grad():
                for t in gen.timesteps(args.steps):
                    x = gen.step(gen.predict_noise(x, t, u), t, x)
                gen.decode(x)
        else:
            gen.sample(prompts, steps=args.steps, guidance=guidance)
        dt = time.perf_counter() - t0
        print(f"{label}: {args.n} images, {args.steps} steps in {dt:.1f} s = {args.n / dt:.2f} images/s "
              f"({gen.image_size} px, {args.threads} threads, {args.device})")
    imgs = np.full((args.n, gen.image_size, gen.image_size, 3), 128, np.uint8)
    t0 = time.perf_counter()
    gen.img2img(imgs, gen.condition(prompts), strength=0.6, steps=args.steps)
    dt = time.perf_counter() - t0
    print(f"img2img (strength 0.6): {args.n / dt:.2f} images/s")


if __name__ == "__main__":
    main()
