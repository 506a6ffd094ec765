"""Training of the compact-code demo generator (:mod:`backend.models.code_diffusion`), in three resumable stages:

1. the VAE (64 px images <-> (4, 16, 16) latents): :func:`backend.models.demo.train.train_vae` (``models train``
   runs it when no trained VAE is given with ``--vae``);
2. the code autoencoder (latents <-> 256-number codes), plain regression with noise on the code so that the decoder
   tolerates the sampler's imprecision: :func:`train_code_autoencoder`;
3. the denoiser over codes (v-prediction, cosine schedule, EMA), conditioned like the latent generator: at random
   a caption's text embedding, the image's own embedding (unCLIP-style) or zeros: :func:`train_code_denoiser`.

``python -m backend models train code_generator [--vae FOLDER]`` runs them into ``out/generator_code``.
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...store.progress import ProgressFn
from .loop import Checkpoint, draw_conditions, ema_update, latent_inputs, optimise, seed_everything, tick


def train_code_autoencoder(out: Path, latents: torch.Tensor, seed: int = 0, steps: int = 2500, batch: int = 256,
                           code_dim: int = 256, width: int = 1024, blocks: int = 2, code_noise: float = 0.1,
                           progress: ProgressFn = None, log=print, checkpoint_every: int = 250) -> dict:
    """Latents -> code -> latents, MSE; Gaussian noise of ``code_noise`` x the batch's per-dimension spread is added
    to the code during training. The last 2,000 latents (a fifth of fewer) are held out for the reported error.
    Saves to ``out``."""
    from ..code_diffusion import CodeAutoencoder

    seed_everything(seed)
    out = Path(out)
    n_held = min(2000, len(latents) // 5)
    train, held = latents[:len(latents) - n_held], latents[len(latents) - n_held:]
    ae = CodeAutoencoder(tuple(latents.shape[1:]), code_dim, width, blocks)
    opt = torch.optim.AdamW(ae.parameters(), lr=1e-3, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    ckpt = Checkpoint(out, {"seed": seed, "steps": steps, "batch": batch, "code_dim": code_dim, "width": width,
                            "blocks": blocks, "code_noise": code_noise})
    start = ckpt.load(ae, opt, rng, log)
    t0 = time.time()
    ae.train()
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        x = train[torch.from_numpy(rng.choice(len(train), batch, replace=False))]
        z = ae.raw_code(x)
        z = z + code_noise * torch.randn_like(z) * z.std(0, keepdim=True).detach()
        loss = F.mse_loss(ae.raw_decode(z), x)
        optimise(opt, loss, step, steps, 1e-3, ae.parameters())
        tick(progress, log, "the generator's code autoencoder", step, steps, loss, t0, every=250)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(ae, opt, rng, step + 1)
    ae.eval()
    ae.set_statistics(train)
    with torch.no_grad():
        held_mse = float(F.mse_loss(ae.decode(ae.encode(held)), held))
    ae.save_pretrained(out)
    ckpt.done()
    return {"steps": steps, "batch": batch, "code_dim": code_dim, "width": width, "blocks": blocks,
            "code_noise": code_noise, "seconds_this_run": round(time.time() - t0),
            "held_out_mse_over_latent_variance": held_mse / float(held.var())}


def train_code_denoiser(out: Path, inputs: dict, codec, seed: int = 0, steps: int = 8000, batch: int = 256,
                        width: int = 512, blocks: int = 6, p_text: float = 0.45, p_uncond: float = 0.15,
                        ema_decay: float = 0.999, progress: ProgressFn = None, log=print,
                        checkpoint_every: int = 250) -> tuple:
    """The denoiser over the codes of ``inputs['lat']`` (through ``codec``); returns (EMA denoiser, report)."""
    from diffusers import DDPMScheduler

    from ..code_diffusion import CodeDenoiser

    with torch.no_grad():
        codes = torch.cat([codec.encode(inputs["lat"][a:a + 2000]) for a in range(0, len(inputs["lat"]), 2000)])
    img_emb = inputs["img_emb"]
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    seed_everything(seed)
    net = CodeDenoiser(codes.shape[1], img_emb.shape[1], width, blocks)
    ema = copy.deepcopy(net).requires_grad_(False)
    both = torch.nn.ModuleDict({"net": net, "ema": ema})
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    ckpt = Checkpoint(out, {"seed": seed, "steps": steps, "batch": batch, "width": width, "blocks": blocks,
                            "p_text": p_text, "p_uncond": p_uncond, "ema_decay": ema_decay})
    start = ckpt.load(both, opt, rng, log)
    t0 = time.time()
    net.train()
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        idx = rng.choice(len(codes), batch, replace=False)
        x0 = codes[idx]
        cond = draw_conditions(rng, idx, inputs, p_text, p_uncond)
        noise = torch.randn_like(x0)
        t = torch.from_numpy(rng.integers(0, 1000, batch))
        loss = F.mse_loss(net(sched.add_noise(x0, noise, t), t, cond), sched.get_velocity(x0, noise, t))
        optimise(opt, loss, step, steps, 3e-4, net.parameters(), warmup=200)
        ema_update(ema, net, step, ema_decay)
        tick(progress, log, "the generator's code denoiser", step, steps, loss, t0, every=250)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(both, opt, rng, step + 1)
    ckpt.done()
    return ema.eval(), sched, {"steps": steps, "batch": batch, "width": width, "blocks": blocks, "p_text": p_text,
                               "p_uncond": p_uncond, "ema_decay": ema_decay,
                               "seconds_this_run": round(time.time() - t0), "final_loss": float(loss)}


def train_code_generator(out: Path, data: dict, embedder, seed: int = 0, vae: Path | None = None,
                         progress: ProgressFn = None, log=print, codec_kw: dict | None = None,
                         **denoiser_kw) -> dict:
    """Stages 2 and 3 into ``out`` (each skipped when its result is there, resumed when its checkpoint is), on the
    VAE in ``out/vae`` (copied from ``vae`` when given); saves the pipeline
    (:class:`~backend.models.generator.CodeDiffusionPipeline`) to ``out``. ``codec_kw`` and ``denoiser_kw``:
    arguments of :func:`train_code_autoencoder` and :func:`train_code_denoiser` (sizes, steps)."""
    from diffusers import AutoencoderKL, DDIMScheduler

    from ..code_diffusion import CodeAutoencoder
    from ..generator import CodeDiffusionPipeline

    out = Path(out)
    report_: dict = {}
    if vae is not None and not (out / "vae" / "config.json").exists():
        shutil.copytree(vae, out / "vae", dirs_exist_ok=True)
        report_["vae"] = {"copied_from": str(vae)}
    if not (out / "vae" / "config.json").exists() or (out / "vae" / "train_state.pt").exists():
        raise FileNotFoundError(f"{out / 'vae'} holds no trained VAE: train one (train_vae) or pass vae=FOLDER")
    vae_model = AutoencoderKL.from_pretrained(str(out / "vae"), local_files_only=True).eval()
    inputs = latent_inputs(out, data, vae_model, embedder)
    if not (out / "codec" / "model.safetensors").exists() or (out / "codec" / "train_state.pt").exists():
        report_["codec"] = train_code_autoencoder(out / "codec", inputs["lat"], seed=seed, progress=progress, log=log,
                                                  **(codec_kw or {}))
    codec = CodeAutoencoder.from_pretrained(out / "codec")
    ema, sched, report_["denoiser"] = train_code_denoiser(out / "denoiser", inputs, codec, seed=seed,
                                                          progress=progress, log=log, **denoiser_kw)
    # the generator hands out eps; codes are not clipped as pixels would be
    sampler = DDIMScheduler.from_config(sched.config, prediction_type="epsilon", clip_sample=False)
    CodeDiffusionPipeline(ema, codec, vae_model, sampler).save_pretrained(out)
    (out / "voxelscope.json").write_text(json.dumps({
        "model_id": f"voxelscope/demo-code-diffusion-seed{seed}", "condition": embedder.model_id,
        "prediction": "v_prediction", "steps": report_["denoiser"]["steps"]}))
    (out / "train_inputs.pt").unlink(missing_ok=True)
    return report_
