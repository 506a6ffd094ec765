"""Training of the 32 px pixel-space demo generator (the default ``generator``), one resumable stage.

Recipe (what the earlier runs lacked is marked *):
* a small UNet (:func:`backend.models.generator.new_demo_unet`) on 32 px world images, v-prediction with a cosine
  noise schedule;
* the condition of each image is, at random, the text embedding of one of its captions (``p_text``), its own image
  embedding (unCLIP-style, so that Brain-IT can condition on a predicted embedding), or zeros (``p_uncond``: the
  unconditional model BrainDiVE steers, and classifier-free guidance);
* * an **object-weighted loss**: pixels the world's masks mark as an object count ``object_weight`` + 1 times a
  background pixel. The world's images are mostly textured background, so a plain MSE spends the model's few CPU
  hours on stripes and checks, while what the judge (and the simulated subject) respond to is the objects: thin
  bodies and letters cover a few percent of the image;
* * **min-SNR-gamma** loss weighting (Hang et al. 2023: faster convergence by not letting the low-noise steps
  dominate), for v-prediction ``min(SNR, gamma) / (SNR + 1)``;
* EMA weights (what is saved), AdamW with warm-up and cosine decay; checkpointed (an interrupted run resumes to
  the same weights) with a usable snapshot saved at every checkpoint.

``python -m backend models train generator [--out DIR]`` trains it into ``out/generator``.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...store.progress import ProgressFn
from .loop import (Checkpoint, conditioned_inputs, draw_conditions, ema_update, min_snr_weights, object_weights,
                   optimise, seed_everything, tick, weighted_mse)


def _pixels(data: dict, size: int) -> dict:
    x = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return {"x": (x / 127.5 - 1).contiguous()}


def train_pixel_generator(out: Path, data: dict, labels: np.ndarray, embedder, seed: int = 0, steps: int = 5000,
                          batch: int = 64, size: int = 32, base: int = 32, p_text: float = 0.45,
                          p_uncond: float = 0.15, object_weight: float = 4.0, snr_gamma: float = 5.0,
                          lr: float = 4e-4, ema_decay: float = 0.999, progress: ProgressFn = None, log=print,
                          checkpoint_every: int = 200) -> dict:
    """Train the pixel generator into ``out`` (see the module's recipe). ``data``: images (n, H, W, 3) uint8 and
    captions; ``labels``: (n, H, W) per-pixel object labels of the same images (0 = background). Returns the
    training report."""
    from diffusers import DDPMScheduler

    from ..generator import new_demo_unet

    out = Path(out)
    if labels.shape[0] != len(data["images"]) or labels.shape[1:] != data["images"].shape[1:3]:
        raise ValueError(f"labels {labels.shape} do not match images {data['images'].shape}")
    key = {"n": len(data["images"]), "captions": sum(map(len, data["captions"])), "embedder": embedder.model_id,
           "size": size}
    inputs = conditioned_inputs(out, key, data, embedder, lambda: _pixels(data, size))
    x_all = inputs["x"]
    weights = object_weights(labels, size, object_weight)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    t_weight = min_snr_weights(sched, snr_gamma)
    seed_everything(seed)
    unet = new_demo_unet(embedder.dim, size, base)
    ema = copy.deepcopy(unet).requires_grad_(False)
    both = torch.nn.ModuleDict({"unet": unet, "ema": ema})
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    config = {"seed": seed, "steps": steps, "batch": batch, "size": size, "base": base, "p_text": p_text,
              "p_uncond": p_uncond, "object_weight": object_weight, "snr_gamma": snr_gamma, "lr": lr,
              "ema_decay": ema_decay}
    ckpt = Checkpoint(out, config)
    start = ckpt.load(both, opt, rng, log)
    t0 = time.time()
    unet.train()
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        idx = rng.choice(len(x_all), batch, replace=False)
        x0, w = x_all[idx], weights[idx]
        cond = draw_conditions(rng, idx, inputs, p_text, p_uncond)
        noise = torch.randn_like(x0)
        t = torch.from_numpy(rng.integers(0, 1000, batch))
        loss = weighted_mse(unet(sched.add_noise(x0, noise, t), t, class_labels=cond).sample,
                            sched.get_velocity(x0, noise, t), w, t_weight[t])
        optimise(opt, loss, step, steps, lr, unet.parameters(), warmup=200)
        ema_update(ema, unet, step, ema_decay)
        tick(progress, log, "the pixel generator", step, steps, loss, t0, every=100)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(both, opt, rng, step + 1)
            _save(out, ema, sched, seed, embedder, step + 1, config)  # a usable snapshot
    _save(out, ema, sched, seed, embedder, steps, config)
    ckpt.done()
    (out / "train_inputs.pt").unlink(missing_ok=True)
    return {**{k: v for k, v in config.items() if k != "seed"}, "seconds_this_run": round(time.time() - t0),
            "final_loss": float(loss), "recipe": "pixel v-prediction, object-weighted, min-SNR, EMA"}


def _save(out: Path, unet, sched, seed: int, embedder, done: int, config: dict) -> None:
    from diffusers import DDIMScheduler

    from ..generator import EmbeddingConditionedPipeline

    # the generator hands out eps (DemoGenerator turns v into eps); pixels are clipped to [-1, 1] by DDIM
    sampler = DDIMScheduler.from_config(sched.config, prediction_type="epsilon", clip_sample=True)
    EmbeddingConditionedPipeline(unet, sampler).save_pretrained(str(out))
    (Path(out) / "voxelscope.json").write_text(json.dumps({
        "model_id": f"voxelscope/demo-pixel-diffusion-v2-seed{seed}", "condition": embedder.model_id,
        "prediction": "v_prediction", "steps_done": done, "training": config}))
