"""BrainSCUBA (Luo et al., ICLR 2024): a sentence for each voxel, decoded from its encoder weights.

The paper's steps:

1. the voxel's encoder weights (embedding space), unit-normalised;
2. projected onto a bank of natural-image embeddings: softmax over the cosine similarity at
   ``temperature`` 150, the softmax-weighted sum of the unit image directions, renormalised;
   averaged over ``n_subsets`` random subsets (``subset_fraction`` of the bank each);
3. the projected embedding decoded to a sentence by the caption decoder (beam search).
"""
from __future__ import annotations

import numpy as np

__all__ = ["BrainSCUBA", "brainscuba_project"]


def brainscuba_project(W: np.ndarray, bank: np.ndarray, temperature: float = 150.0, n_subsets: int = 5,
                       subset_fraction: float = 0.5, seed: int = 0, device: str = "cpu",
                       chunk: int = 256) -> np.ndarray:
    """(n_voxels, dim) unit embeddings: softmax(temperature * cos(w, bank)) @ bank, averaged over subsets.

    Written to stay close to the cost of its two matrix products: the temperature is folded into the
    weights, the softmax is done in place (subtract the row max, exp) and normalised after the second
    product (dividing n x dim numbers instead of n x bank), voxels go in chunks that keep the
    (chunk x bank) matrix small."""
    import torch

    Wt = torch.as_tensor(np.asarray(W, np.float32), device=device)
    Wt = Wt / Wt.norm(dim=1, keepdim=True).clamp_min(1e-8)
    B = torch.as_tensor(np.asarray(bank, np.float32), device=device)
    rng = np.random.default_rng(seed)
    m = B.shape[0]
    k = max(1, int(round(m * subset_fraction)))
    out = torch.zeros_like(Wt)
    for _ in range(n_subsets):
        idx = torch.as_tensor(np.sort(rng.choice(m, k, replace=False)) if k < m else np.arange(m), device=device)
        Bs = B[idx].contiguous()
        BsT = Bs.T.contiguous()
        for a in range(0, Wt.shape[0], chunk):
            S = torch.mm(Wt[a:a + chunk] * temperature, BsT)
            # clamp before exp: e^-80 is already negligible next to the row max's e^0, and smaller values
            # would underflow to denormal floats, which make exp and the next product several times slower
            S.sub_(S.amax(dim=1, keepdim=True)).clamp_(min=-80.0).exp_()
            out[a:a + chunk] += torch.mm(S, Bs) / S.sum(dim=1, keepdim=True)
    out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return out.cpu().numpy()


class BrainSCUBA:
    """The BrainSCUBA caption method (see the module docstring). Registered in ``CAPTION_METHODS``."""

    name = "brainscuba"
    label = "BrainSCUBA"
    how = "decoded from the encoder weights projected onto natural images"
    defaults = {"temperature": 150.0, "n_subsets": 5, "subset_fraction": 0.5, "beam_size": 5, "seed": 0}
    roles = ("captioner",)

    def __init__(self, params: dict, bank: np.ndarray, bank_captions, models: dict, device: str = "cpu"):
        self.p = {**self.defaults, **params}
        self.bank = bank
        self.captioner = models["captioner"]
        self.device = device
        self.model_ids = {"captioner": self.captioner.model_id}

    def caption(self, W: np.ndarray, intercept: np.ndarray) -> tuple[list[str], list[str | None]]:
        """Captions of the voxels whose weights are the rows of ``W`` (n, dim); no keywords."""
        p = self.p
        proj = brainscuba_project(W, self.bank, p["temperature"], p["n_subsets"], p["subset_fraction"], p["seed"],
                                  self.device)
        caps = self.captioner.generate(proj, beam_size=p["beam_size"], batch_size=128)
        return caps, [None] * len(caps)
