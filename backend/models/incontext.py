"""The in-context encoder network (BraInCoRL-style): reads one voxel's (image embedding, response) pairs and writes
its linear encoder ``(w, b)`` in embedding space. How it is trained and used on a workspace:
:mod:`backend.encoders.incontext`.

* each context pair ``(x_i, y_i)`` becomes a token ``t_i = P x~_i + y~_i (p + Q x~_i)``, with ``x~`` the image
  embeddings centred on the context mean and ``y~`` the voxel's responses standardised over the context. Because a
  token is affine in the response, every attention key and value is ``A_i + y~_i B_i`` with ``A, B`` shared by all
  voxels that saw the same images, so a layer costs O(latents x images) per voxel, never O(images^2);
* learned latent tokens (plus the log context size) cross-attend to the context tokens, then attend to each other
  (Perceiver-style), ``layers`` times;
* the output: ``w~ = sum_k s_k A_k m + head(z)``, where ``m = mean_i y~_i x~_i`` is the context's cross-covariance
  (what least squares starts from), ``A_k`` learned matrices, ``s_k`` and ``head`` read from the pooled latents
  ``z``: a family of shrinkage estimators the context chooses between, plus a learned correction.
  ``w = sd(y) w~`` and ``b = mean(y) + sd(y) (b~ - x_mean . w~)`` undo the standardisation.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["InContextEncoder", "MODEL_TYPE", "arch_config"]

MODEL_TYPE = "voxelscope-incontext-encoder"


def _build(dim: int, width: int = 128, heads: int = 4, layers: int = 3, latents: int = 8, estimators: int = 3):
    """The network (built lazily so that importing this module does not import torch)."""
    import torch

    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = heads
            self.ln_q = nn.LayerNorm(width)
            self.q = nn.Linear(width, width)
            self.k = nn.Linear(width, width)  # applied to the affine parts of the tokens
            self.v = nn.Linear(width, width)
            self.o = nn.Linear(width, width)
            self.ln_s = nn.LayerNorm(width)
            self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.ln_m = nn.LayerNorm(width)
            self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

        def forward(self, lat, A, B, y):
            # lat (b, L, h); tokens t_vi = A_i + y_vi B_i with A, B (n, h); y (b, n)
            b, L, h = lat.shape
            n = A.shape[0]
            H, dh = self.heads, h // self.heads
            q = self.q(self.ln_q(lat)).view(b, L, H, dh)
            ka, kb = self.k(A).view(n, H, dh), (B @ self.k.weight.T).view(n, H, dh)  # bias once, in the A part
            va, vb = self.v(A).view(n, H, dh), (B @ self.v.weight.T).view(n, H, dh)
            yy = y[:, None, None, :]
            logits = (torch.einsum("blhd,nhd->bhln", q, ka) + yy * torch.einsum("blhd,nhd->bhln", q, kb)) / math.sqrt(dh)
            att = logits.softmax(-1)
            out = torch.einsum("bhln,nhd->blhd", att, va) + torch.einsum("bhln,nhd->blhd", att * yy, vb)
            lat = lat + self.o(out.reshape(b, L, h))
            s = self.ln_s(lat)
            lat = lat + self.self_attn(s, s, s, need_weights=False)[0]
            return lat + self.mlp(self.ln_m(lat))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.P = nn.Linear(dim, width)
            self.Q = nn.Linear(dim, width, bias=False)
            self.p = nn.Parameter(torch.zeros(width))
            self.latents = nn.Parameter(torch.randn(latents, width) * 0.02)
            self.size = nn.Linear(1, width)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln = nn.LayerNorm(width)
            self.mix = nn.Linear(width, estimators)
            self.A = nn.Parameter(torch.zeros(estimators, dim, dim))
            self.head = nn.Linear(width, dim + 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def forward(self, X, Y):
            """X (n, dim) context embeddings shared by the voxels; Y (b, n) their responses.
            Returns w (b, dim), b (b,) in the units of X and Y."""
            n = X.shape[0]
            x_mean = X.mean(0)
            Xc = X - x_mean
            mu = Y.mean(1, keepdim=True)
            sd = Y.std(1, keepdim=True).clamp_min(1e-6) if n > 1 else torch.ones_like(mu)
            yt = (Y - mu) / sd
            A_tok = self.P(Xc)  # (n, h)
            B_tok = self.Q(Xc) + self.p
            lat = self.latents[None].expand(len(Y), -1, -1) + self.size(
                torch.full((1, 1), math.log(n), device=X.device, dtype=X.dtype))
            for blk in self.blocks:
                lat = blk(lat, A_tok, B_tok, yt)
            z = self.ln(lat.mean(1))  # (b, h)
            m = yt @ Xc / n  # (b, dim): cross-covariance of response and embedding
            s = torch.nn.functional.softplus(self.mix(z))  # (b, K)
            est = torch.einsum("kde,be->bkd", self.A, m)
            out = self.head(z)
            wt = (s[..., None] * est).sum(1) + out[:, :-1]
            bt = out[:, -1]
            w = sd * wt
            b = mu[:, 0] + sd[:, 0] * (bt - wt @ x_mean)
            return w, b

    return Net()


class InContextEncoder:
    """A trained in-context encoder network and its configuration (embedding size, width, ...; the embedder whose
    space it was trained in, the training subjects, steps)."""

    def __init__(self, net, config: dict, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.config = config
        self.device = device

    @property
    def model_id(self) -> str:
        return self.config.get("model_id", "voxelscope/incontext-encoder")

    @classmethod
    def new(cls, dim: int, **arch) -> "InContextEncoder":
        cfg = {"model_type": MODEL_TYPE, "dim": int(dim), **arch_config(arch)}
        return cls(_build(dim, **arch_config(arch)), cfg)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> "InContextEncoder":
        from ._files import load_weights, read_config

        folder = Path(folder)
        cfg = read_config(folder, MODEL_TYPE)
        net = _build(int(cfg["dim"]), **arch_config(cfg))
        load_weights(net, folder)
        return cls(net, cfg, device)

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in self.net.state_dict().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(self.config, indent=1))


def arch_config(cfg: dict) -> dict:
    keys = {"width": 128, "heads": 4, "layers": 3, "latents": 8, "estimators": 3}
    return {k: int(cfg.get(k, v)) for k, v in keys.items()}


