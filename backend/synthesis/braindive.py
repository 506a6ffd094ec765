"""BrainDiVE (Luo et al. 2023): diffusion sampling steered by a brain encoder's gradient.

At every denoising step, as in the published code (aluo-x/BrainDiVE): recompute the noise estimate with gradients
on; x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar); blend s = x0 sqrt(1 - abar) + x_t (1 - sqrt(1 - abar)); decode
(through the VAE for latent models), clamp to [0, 1], resize and normalise for the embedder, embed (unit norm);
objective = the target's predicted response; loss = -objective x scale; g = -d loss / d x_t (the published code's
``grads``); eps <- eps - sqrt(1 - abar) g, which moves the x0 estimate up the objective;
then the scheduler's step with the corrected eps. Classifier-free guidance is off and the prompt empty by default.

Works on any :class:`backend.models.generator.Generator` (the demo latent diffusion on CPU, Stable Diffusion 2.1
base on a GPU) and any embedder with a differentiable ``image_features_torch``; the objective is any function of
unit embeddings (:class:`backend.synthesis.targets.Objective`).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np

from ..errors import InvalidInputError
from ..store import ProgressFn, report

__all__ = ["GuidanceConfig", "guided_batches", "PAPER_SCALE", "SAMPLERS", "recommended_scale", "configured_scale"]

SAMPLERS = ("ddim", "dpm")  # DDIM, DPM-Solver++ multistep (the paper's)
PAPER_SCALE = 130.0  # the published run script's scale (OpenCLIP ViT-B/16 on Stable Diffusion 2.1 base)


def recommended_scale(generator) -> float:
    """The guidance scale for ``generator``: its folder's ``voxelscope.json`` ``braindive_scale`` (measured for our
    demo generator: see the README) or the paper's 130."""
    return float(getattr(generator, "braindive_scale", None) or PAPER_SCALE)


def configured_scale() -> float:
    """:func:`recommended_scale` of the generator BrainDiVE is configured to steer, read from its folder without
    loading it."""
    import json
    from pathlib import Path

    from ..models import model_config

    cfg = model_config()["generator"]
    info = Path(cfg.get("braindive_path") or cfg["path"]) / "voxelscope.json"
    try:
        return float(json.loads(info.read_text()).get("braindive_scale") or PAPER_SCALE)
    except (OSError, ValueError):
        return PAPER_SCALE


@dataclass
class GuidanceConfig:
    """How BrainDiVE samples.

    steps : denoising steps (the paper: 50).
    scale : guidance scale, multiplying the objective (in the units of the encoder's betas) before its gradient.
        The paper uses 100-150 for CLIP ViT-B (130 in its run script). None: the generator's recommendation
        (:func:`recommended_scale`; 500 for our 32 px demo generator).
    sampler : 'ddim' or 'dpm' (DPM-Solver++ multistep, as the paper).
    batch : seeds per batch (each seed's starting noise is its own, so a seed gives the same image in any batch).
    prompt : the text condition ('' = unconditional, as the paper); text_guidance: classifier-free guidance scale
        against the empty prompt (1 = off, as the paper).
    gradient_checkpointing : recompute the UNet's activations in the backward pass (memory for time; GPU at 512 px).
    fp16 : autocast to float16 on CUDA (ignored on CPU).
    preview_every : call ``preview`` with the current decoded estimate every this many steps (0 = never).
    sag_scale : self-attention guidance (Hong et al. 2023) at this scale, as the published BrainDiVE code runs on
        Stable Diffusion's SAG pipeline (0 = off; only generators that offer it: Stable Diffusion folders).
    """
    steps: int = 50
    scale: float | None = None
    sampler: str = "ddim"
    batch: int = 16
    prompt: str = ""
    text_guidance: float = 1.0
    gradient_checkpointing: bool = False
    fp16: bool = True
    preview_every: int = 5
    sag_scale: float = 0.0

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise InvalidInputError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if not 1 <= int(self.steps) <= 1000:
            raise InvalidInputError(f"steps must be between 1 and 1000, got {self.steps}")
        if int(self.batch) < 1:
            raise InvalidInputError(f"batch must be at least 1, got {self.batch}")
        if self.scale is not None and (not np.isfinite(self.scale) or self.scale < 0):
            raise InvalidInputError(f"scale must be a finite number >= 0, got {self.scale}")
        if not np.isfinite(self.sag_scale) or self.sag_scale < 0:
            raise InvalidInputError(f"sag_scale must be a finite number >= 0, got {self.sag_scale}")
        if self.sag_scale > 0 and self.text_guidance != 1.0:
            raise InvalidInputError("self-attention guidance (sag_scale) runs with classifier-free guidance off "
                                    f"(text_guidance 1), got text_guidance {self.text_guidance}")

    def as_dict(self) -> dict:
        return asdict(self)

    def resolved(self, generator) -> "GuidanceConfig":
        """This config with ``scale`` filled in from the generator when it is None."""
        if self.scale is not None:
            return self
        return GuidanceConfig(**{**self.as_dict(), "scale": recommended_scale(generator)})


def _scheduler(generator, sampler: str):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    cfg = generator.pipe.scheduler.config
    if sampler == "dpm":
        return DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++", solver_order=2)
    return DDIMScheduler.from_config(cfg)


def guided_batches(generator, embedder, objective: Callable, seeds, config: GuidanceConfig,
                   progress: ProgressFn = None, preview: Callable | None = None,
                   stage: str = "Synthesizing") -> Iterator[tuple[list[int], np.ndarray]]:
    """Sample one image per seed with BrainDiVE guidance; yields (seeds, uint8 images (b, H, W, 3)) per batch.

    ``objective``: unit embeddings (b, dim), a torch tensor -> (b,) values to maximise (differentiable).
    ``config.scale`` = 0 gives plain (unguided) samples of the same seeds, with no backward pass.
    ``preview(images uint8, step, steps)`` is called every ``config.preview_every`` steps with the decoded blend
    that the objective sees."""
    import torch

    seeds = [int(s) for s in seeds]
    config = config.resolved(generator)
    if config.sag_scale > 0 and not hasattr(generator, "self_attention_guidance"):
        raise InvalidInputError(f"the generator {generator.model_id} does not offer self-attention guidance "
                                "(Stable Diffusion folders do); set sag_scale to 0")
    device = generator.device
    unet = generator.denoiser
    if config.gradient_checkpointing and hasattr(unet, "enable_gradient_checkpointing"):
        unet.enable_gradient_checkpointing()
    use_fp16 = config.fp16 and str(device).startswith("cuda")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if use_fp16 else contextlib.nullcontext
    original = generator.scheduler
    sched = _scheduler(generator, config.sampler)
    generator.scheduler = sched
    total = len(seeds) * config.steps
    done = 0
    stack = contextlib.ExitStack()
    store = stack.enter_context(generator.self_attention_store()) if config.sag_scale > 0 else None
    try:
        for a in range(0, len(seeds), config.batch):
            batch = seeds[a:a + config.batch]
            b = len(batch)
            x = torch.cat([generator.prepare_latents(1, s) for s in batch])
            cond = generator.unconditional(b) if not config.prompt else generator.condition([config.prompt] * b)
            uncond = generator.unconditional(b) if config.text_guidance != 1.0 else None
            timesteps = generator.timesteps(config.steps)
            abars = sched.alphas_cumprod.to(device)
            for k, t in enumerate(timesteps):
                abar = abars[int(t)]
                if config.scale > 0:
                    with torch.enable_grad():
                        xg = x.detach().requires_grad_(True)
                        with autocast():
                            eps = generator.predict_noise(xg, t, cond, config.text_guidance, uncond)
                        eps = eps.float()
                        eps_plain = eps.detach()
                        x0 = (xg - (1 - abar).sqrt() * eps) / abar.sqrt()
                        blend = x0 * (1 - abar).sqrt() + xg * (1 - (1 - abar).sqrt())
                        with autocast():
                            img = generator.decode(blend)
                            value = objective(embedder.image_features_torch(img.float()))
                        loss = -(value.float() * config.scale).sum()  # per-sample gradients: samples are independent
                        grad = -torch.autograd.grad(loss, xg)[0]  # the direction that lowers the loss
                    eps = eps.detach() - (1 - abar).sqrt() * grad
                else:
                    with torch.no_grad(), autocast():
                        eps = generator.predict_noise(x, t, cond, config.text_guidance, uncond).float()
                    eps_plain, img = eps, None
                if store is not None:  # on the step's own attention, before the brain's gradient moves eps
                    with autocast():
                        eps = eps + generator.self_attention_guidance(x.detach(), t, eps_plain, cond, store,
                                                                      config.sag_scale).float()
                if preview is not None and config.preview_every and (k % config.preview_every == 0
                                                                      or k == len(timesteps) - 1):
                    if img is None:
                        with torch.no_grad():
                            est = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
                            img = generator.decode(est * (1 - abar).sqrt() + x * (1 - (1 - abar).sqrt()))
                    preview(generator.to_uint8(img.detach().float()), k + 1, len(timesteps))
                with torch.no_grad():
                    x = generator.step(eps.to(x.dtype), t, x.detach())
                done += b
                report(progress, stage, done, total)
            with torch.no_grad(), autocast():
                images = generator.to_uint8(generator.decode(x).float())
            yield batch, images
    finally:
        stack.close()
        generator.scheduler = original
        if config.gradient_checkpointing and hasattr(unet, "disable_gradient_checkpointing"):
            unet.disable_gradient_checkpointing()
