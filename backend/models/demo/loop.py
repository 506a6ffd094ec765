"""The training loop's parts shared by every demo model (and the in-context encoder): seeding, the warm-up + cosine
learning rate, one optimiser step, progress, and :class:`Checkpoint` (resumable after kill -9)."""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from ...store.progress import ProgressFn, report

__all__ = ["Checkpoint", "seed_everything", "lr_at", "optimise", "tick"]


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

    def __init__(self, folder: Path, config: dict):
        self.path = Path(folder) / "train_state.pt"
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
