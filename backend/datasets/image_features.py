"""Low-level image features computed from pixels alone: local contrast energy.

Generic, for any image of any dataset: the simulated early visual cortex of the demo world responds
to it, and the explorer estimates receptive fields from it (:func:`backend.encoders.features.contrast_energy_matrix`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["FIELD_DEG", "CONTRAST_GRID", "contrast_energy"]

FIELD_DEG = 8.4  # visual angle spanned by a stimulus image (NSD's, and the demo world's), degrees
CONTRAST_GRID = 32  # contrast-energy maps are CONTRAST_GRID x CONTRAST_GRID over the image


def contrast_energy(image: np.ndarray, grid: int = CONTRAST_GRID) -> np.ndarray:
    """Local contrast energy of an (H, W, 3) uint8 image pooled to (grid, grid); row 0 = top."""
    g = image.astype(np.float32).mean(axis=2) / 255.0
    gy, gx = np.gradient(g)
    e = np.sqrt(gx * gx + gy * gy)
    h = e.shape[0] // grid
    return e[: h * grid, : h * grid].reshape(grid, h, grid, h).mean(axis=(1, 3))
