"""The networks of the compact-code demo generator (used by :class:`backend.models.generator.CodeDiffusionGenerator`).

Diffusion over a 256-number code per image instead of over a (4, 16, 16) latent map: an image is encoded by the VAE
to latents, and the latents by :class:`CodeAutoencoder` (a residual MLP) to a code, standardised per dimension; a
residual MLP (:class:`CodeDenoiser`, FiLM-conditioned on the timestep and on a unit embedding of the embedder's
joint space) learns the codes' distribution. It is the idea of a diffusion prior over a learned compact
representation (DALL-E 2's prior; latent diffusion with a stronger first stage): a denoiser over 256 numbers costs
a small fraction of a UNet over a latent map, so on 2 CPU cores it sees several times more examples in the same
time, and the autoencoder (trained by plain regression, which learns fast) carries the objects' shapes.

Each network saves to a folder as ``config.json`` + ``model.safetensors`` and loads back with ``from_pretrained``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._files import load_weights, read_json

__all__ = ["CodeAutoencoder", "CodeDenoiser"]


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(F.silu(self.fc1(self.norm(x))))


class _Saved(nn.Module):
    """config.json + model.safetensors (stored in float16, which halves the shipped size; loaded as float32)."""

    kind = ""

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().half().contiguous() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"model_type": self.kind, **self.config}, indent=1))

    @classmethod
    def from_pretrained(cls, folder: str | Path):
        cfg = read_json(Path(folder), "config.json", f"a {cls.kind} network")
        kind = cfg.pop("model_type", None)
        if kind != cls.kind:
            raise ValueError(f"{Path(folder) / 'config.json'}: model_type is {kind!r}, expected {cls.kind!r}")
        model = cls(**cfg)
        load_weights(model, Path(folder))
        return model.eval()


class CodeAutoencoder(_Saved):
    """VAE latents (B, C, H, W) <-> standardised codes (B, code_dim). The per-dimension mean and spread of the
    training codes are buffers (set by :meth:`set_statistics`), so codes are ~N(0, 1) as diffusion expects."""

    kind = "voxelscope-code-autoencoder"

    def __init__(self, latent_shape=(4, 16, 16), code_dim: int = 256, width: int = 1024, blocks: int = 2):
        super().__init__()
        self.config = {"latent_shape": list(latent_shape), "code_dim": code_dim, "width": width, "blocks": blocks}
        self.latent_shape = tuple(latent_shape)
        n = math.prod(latent_shape)
        self.enc = nn.Sequential(nn.Linear(n, width), *[_Residual(width) for _ in range(blocks)],
                                 nn.LayerNorm(width), nn.Linear(width, code_dim))
        self.dec = nn.Sequential(nn.Linear(code_dim, width), *[_Residual(width) for _ in range(blocks)],
                                 nn.LayerNorm(width), nn.Linear(width, n))
        self.register_buffer("mean", torch.zeros(code_dim))
        self.register_buffer("std", torch.ones(code_dim))

    def raw_code(self, latents: torch.Tensor) -> torch.Tensor:
        return self.enc(latents.flatten(1))

    def raw_decode(self, raw: torch.Tensor) -> torch.Tensor:
        return self.dec(raw).view(-1, *self.latent_shape)

    def encode(self, latents: torch.Tensor) -> torch.Tensor:
        return (self.raw_code(latents) - self.mean) / self.std

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.raw_decode(code * self.std + self.mean)

    @torch.no_grad()
    def set_statistics(self, latents: torch.Tensor, batch: int = 2000) -> None:
        raw = torch.cat([self.raw_code(latents[a:a + batch]) for a in range(0, len(latents), batch)])
        self.mean.copy_(raw.mean(0))
        self.std.copy_(raw.std(0).clamp_min(1e-6))


class _FiLMBlock(nn.Module):
    """h + gate * MLP(LayerNorm(h) * (1 + scale) + shift), with (scale, shift, gate) from the conditioning vector."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(width, 3 * width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        nn.init.constant_(self.film.bias[2 * width:], 1.0)  # gates open at the start

    def forward(self, h, c):
        scale, shift, gate = self.film(c).chunk(3, -1)
        return h + gate * self.fc2(F.silu(self.fc1(self.norm(h) * (1 + scale) + shift)))


class CodeDenoiser(_Saved):
    """Predicts the diffusion target (v or eps) of a noisy code ``x`` (B, code_dim) at timestep ``t`` under the
    condition ``cond`` (B, cond_dim): a unit embedding of the embedder's joint space, zeros = unconditional."""

    kind = "voxelscope-code-denoiser"

    def __init__(self, code_dim: int = 256, cond_dim: int = 256, width: int = 768, blocks: int = 6):
        super().__init__()
        self.config = {"code_dim": code_dim, "cond_dim": cond_dim, "width": width, "blocks": blocks}
        self.inp = nn.Linear(code_dim, width)
        self.time = nn.Sequential(nn.Linear(128, width), nn.SiLU(), nn.Linear(width, width))
        self.cond = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList([_FiLMBlock(width) for _ in range(blocks)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, code_dim))

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).float().reshape(-1).expand(len(x))
        freqs = torch.exp(-math.log(10000) * torch.arange(64, device=x.device) / 64)
        angles = t[:, None] * freqs[None]
        c = F.silu(self.time(torch.cat([angles.sin(), angles.cos()], -1)) + self.cond(cond.to(x.dtype)))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)
