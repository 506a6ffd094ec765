"""The overlay type: values per vertex on both hemispheres, and how to draw them.

A leaf of the surface package: the explorer's overlays, the browser viewer and the PyVista figures
all take an :class:`Overlay`, so any page or notebook can draw its own values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .rois import HEMIS

__all__ = ["Overlay"]


@dataclass
class Overlay:
    """Per-vertex values on both hemispheres and how to draw them."""
    name: str
    label: str
    values: dict[str, np.ndarray]  # hemi -> (n_vertices,) float, NaN = no value
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    symmetric: bool = False  # diverging around 0 (threshold applies to |value|)
    categories: list[dict] = field(default_factory=list)  # categorical: [{"name", "colour"}], value = index + 1
    units: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def categorical(self) -> bool:
        return bool(self.categories)

    def default_range(self) -> tuple[float, float]:
        v = np.concatenate([self.values[h] for h in HEMIS])
        v = v[np.isfinite(v)]
        if self.categorical:
            return 0.5, len(self.categories) + 0.5
        if v.size == 0:
            return 0.0, 1.0
        if self.symmetric:
            m = float(np.percentile(np.abs(v), 99)) or 1.0
            return (-m if self.vmin is None else self.vmin), (m if self.vmax is None else self.vmax)
        lo = float(np.percentile(v, 1)) if self.vmin is None else self.vmin
        hi = float(np.percentile(v, 99)) if self.vmax is None else self.vmax
        return lo, (hi if hi > lo else lo + 1.0)
