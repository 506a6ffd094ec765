"""The training loop's parts shared by every demo model (and the in-context encoder): seeding, the warm-up + cosine
learning rate, one optimiser step, progress, and :class:`Checkpoint` (resumable after kill -9)."""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...store.progress import ProgressFn, report

__all__ = ["Checkpoint", "seed_everything", "lr_at", "optimise", "tick", "conditioned_inputs", "latent_inputs",
           "draw_conditions", "ema_update", "object_weights", "min_snr_weights", "weighted_mse"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def optimise(opt, loss: torch.Tensor, step: int, steps: int, peak: float, clip_params=None, warmup: int = 100):
    """One optimiser step at the warm-up + cosine learning rate, with optional gradient-norm clipping to 1."""
    for g in opt.param_groups:
        g["lr"] = lr_at(step, steps, peak, warmup)
    opt.zero_grad()
    loss.backward()
    if clip_params is not None:
        torch.nn.utils.clip_grad_norm_(clip_params, 1.0)
    opt.step()


def tick(progress: ProgressFn, log, label: str, step: int, steps: int, loss: torch.Tensor, t0: float,
          every: int = 100) -> None:
    """Report progress (a bar with counts) and log the loss every ``every`` steps."""
    report(progress, f"Training {label}", step + 1, steps)
    if step % every == 0 or step == steps - 1:
        log(f"{label} step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")


class Checkpoint:
    """A training run's resumable state in ``folder/train_state.pt``: model, optimiser, random streams, step.

    Written to a temporary file and renamed, so a run killed at any moment resumes from the last complete
    checkpoint and ends with the same weights as an uninterrupted run; removed when training finishes."""

    def __init__(self, folder: Path, config: dict, name: str = "train_state.pt"):
        self.path = Path(folder) / name
        self.config = config

    def load(self, model, opt, rng: np.random.Generator, log=print) -> int:
        """Restore the state if a checkpoint exists; returns the step to continue from (0 = fresh)."""
        if not self.path.exists():
            return 0
        st = torch.load(self.path, weights_only=False)
        if st["config"] != self.config:
            raise ValueError(f"{self.path} was written by a run with {st['config']}, not {self.config}; "
                             "remove it to start afresh")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        log(f"resuming at step {st['step']} from {self.path}")
        return int(st["step"])

    def save(self, model, opt, rng: np.random.Generator, step: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({"config": self.config, "model": model.state_dict(), "opt": opt.state_dict(),
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step}, tmp)
        tmp.replace(self.path)

    def done(self) -> None:
        self.path.unlink(missing_ok=True)


def conditioned_inputs(folder: Path, key: dict, data: dict, embedder, extra) -> dict:
    """A diffusion recipe's per-image inputs, computed once per run and cached in ``folder/train_inputs.pt`` (keyed
    by ``key``): what ``extra()`` returns (latents or pixels) plus every image's embedding (``img_emb``), every
    caption's text embedding (``text``), and where each image's captions start (``first``) and how many it has
    (``n_captions``)."""
    cache = Path(folder) / "train_inputs.pt"
    if cache.exists():
        stored = torch.load(cache, weights_only=False)
        if stored["key"] == key:
            return stored
    captions = data["captions"]
    stored = {"key": key, **extra(), "img_emb": torch.from_numpy(embedder.image_features(data["images"])),
              "text": torch.from_numpy(embedder.text_features([c for cs in captions for c in cs])),
              "first": np.concatenate([[0], np.cumsum([len(cs) for cs in captions])[:-1]]),
              "n_captions": np.array([len(cs) for cs in captions])}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stored, cache.with_suffix(".tmp"))
    cache.with_suffix(".tmp").replace(cache)
    return stored


def latent_inputs(folder: Path, data: dict, vae, embedder) -> dict:
    """:func:`conditioned_inputs` with every training image's VAE latents (``lat``: posterior mean, scaled)."""
    sf = vae.config.scaling_factor
    key = {"n": len(data["images"]), "captions": sum(map(len, data["captions"])), "vae_scaling": sf,
           "embedder": embedder.model_id}

    def latents():
        images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2)
        with torch.no_grad():
            return {"lat": torch.cat([vae.encode(images[a:a + 250].float() / 127.5 - 1).latent_dist.mode() * sf
                                      for a in range(0, len(images), 250)])}
    return conditioned_inputs(folder, key, data, embedder, latents)


def draw_conditions(rng: np.random.Generator, idx: np.ndarray, inputs: dict, p_text: float,
                    p_uncond: float) -> torch.Tensor:
    """The training condition of each image ``idx``: at random the text embedding of one of its captions
    (``p_text``), else its own image embedding (unCLIP-style), with zeros (unconditional) for the last
    ``p_uncond``."""
    u = rng.random(len(idx))
    cap = inputs["first"][idx] + (rng.random(len(idx)) * inputs["n_captions"][idx]).astype(int)
    cond = torch.where(torch.from_numpy(u < p_text)[:, None], inputs["text"][cap], inputs["img_emb"][idx])
    cond[torch.from_numpy(u >= 1 - p_uncond)] = 0
    return cond


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """EMA of ``model``'s weights into ``ema``, with the usual warm-up of the decay."""
    with torch.no_grad():
        d = min(decay, (1 + step) / (10 + step))
        for pe, pu in zip(ema.parameters(), model.parameters()):
            pe.mul_(d).add_(pu.detach(), alpha=1 - d)


def object_weights(labels: np.ndarray, size: int, object_weight: float) -> torch.Tensor:
    """(n, 1, size, size) loss weights from per-pixel labels (n, H, W; 0 = background): 1 + ``object_weight`` where
    any pixel of the (H / size)-square block is an object (max-pooled, so thin structures keep their weight)."""
    obj = torch.from_numpy(labels > 0).float()[:, None]
    k = labels.shape[-1] // size
    if k > 1:
        obj = F.max_pool2d(obj, k)
    return 1 + object_weight * obj


def min_snr_weights(sched, gamma: float) -> torch.Tensor:
    """Per-timestep loss weights of min-SNR-gamma (Hang et al. 2023) for v-prediction: min(SNR, gamma) / (SNR + 1)."""
    abar = sched.alphas_cumprod
    snr = abar / (1 - abar)
    return (snr.clamp(max=gamma) / (snr + 1)).float()


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None = None,
                 t_weight: torch.Tensor | None = None) -> torch.Tensor:
    """MSE with per-position weights ``w`` (b, 1, H, W; each image's mean weighted by its own weight sum) and
    per-image timestep weights ``t_weight`` (b,)."""
    err = (pred - target) ** 2
    if w is None:
        w = torch.ones_like(err[:, :1])
    per_image = (err * w).sum((1, 2, 3)) / (w.sum((1, 2, 3)) * err.shape[1])
    return (per_image * t_weight).mean() if t_weight is not None else per_image.mean()
