"""The browser viewer's wire format and the colouring shared by the viewer and the PyVista figures.

A viewer message is ``u32 header length | header JSON | overlay codes (uint16, lh then rh) | ROI index
(uint8, lh then rh)``. The header names the geometry files (static, cached by the browser), the view,
the colour look-up table, range and threshold, ROI labels and the selected vertex. See
``frontend/viewer/src/viewer.js`` for the reader.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from ..errors import InvalidInputError
from .meshes import Surface
from .overlay import Overlay
from .rois import EARLY_ROIS, HEMIS
from .wire import encode_overlay, sulc_codes

__all__ = ["VIEWS", "SHOW", "viewer_message", "parse_message", "vertex_colours", "roi_boundary", "roi_labels", "lut"]

VIEWS = ("lateral", "medial", "ventral", "posterior", "dorsal", "anterior")
SHOW = ("both", "lh", "rh")


def lut(overlay: Overlay, n: int = 256) -> list[int]:
    """Flat [r, g, b, ...] uint8 colours: one per category, or ``n`` samples of the colour map."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    if overlay.categorical:
        rgb = np.array([to_rgb(c["colour"]) for c in overlay.categories])
    else:
        if overlay.cmap not in colormaps:
            raise InvalidInputError(f"unknown colour map {overlay.cmap!r}")
        rgb = colormaps[overlay.cmap](np.linspace(0, 1, n))[:, :3]
    return np.round(rgb * 255).astype(int).ravel().tolist()


def roi_index(roi_overlay: Overlay) -> dict[str, np.ndarray]:
    """{hemi: (n_vertices,) uint8 ROI index (0 = none)} of a categorical ROI overlay."""
    return {h: np.nan_to_num(roi_overlay.values[h], nan=0).astype(np.uint8) for h in HEMIS}


def roi_labels(surface: Surface, roi_overlay: Overlay) -> list[dict]:
    """One label per ROI and hemisphere, at the ROI's vertex closest to its centre on the inflated surface.
    Sorted by importance (category ROIs first, then larger first): the viewer drops labels that would
    overlap ones placed before them."""
    out = []
    for h in HEMIS:
        v = roi_overlay.values[h]
        xyz = surface[h].inflated
        for j, cat in enumerate(roi_overlay.categories, start=1):
            idx = np.flatnonzero(v == j)
            if idx.size < 3:
                continue
            c = xyz[idx].mean(0)
            best = int(idx[np.argmin(((xyz[idx] - c) ** 2).sum(1))])
            out.append({"name": cat["name"], "hemi": h, "vertex": best, "colour": cat["colour"], "size": int(idx.size)})
    out.sort(key=lambda d: (d["name"] in EARLY_ROIS, -d["size"]))
    return out


def viewer_message(surface: Surface, mesh_files: dict, static_url: str, overlay: Overlay, rois: Overlay, *,
                   surface_kind: str = "inflated", view: str = "lateral", show: str = "both",
                   vmin: float | None = None, vmax: float | None = None, threshold: float | None = None,
                   outlines: bool = True, labels: bool = True, selected: dict | None = None, height: int = 480,
                   status: str = "") -> bytes:
    """The binary message the browser viewer draws (see the module docstring for the layout).

    Parameters
    ----------
    surface : Surface
        Geometry the overlay lives on.
    mesh_files : dict
        File names from :func:`backend.surface.wire.write_mesh_files` (served under ``static_url``).
    overlay, rois : Overlay
        What to colour, and the ROI overlay used for outlines and labels.
    surface_kind, view, show : str
        One of the available meshes, one of ``VIEWS``, one of ``SHOW``.
    vmin, vmax, threshold : float or None
        Colour range (default: the overlay's) and the value below which vertices show the background.

    Returns
    -------
    bytes
    """
    if view not in VIEWS:
        raise InvalidInputError(f"unknown view {view!r} (known: {', '.join(VIEWS)})")
    if show not in SHOW:
        raise InvalidInputError(f"unknown hemisphere {show!r} (known: {', '.join(SHOW)})")
    if surface_kind not in mesh_files["positions"]:
        raise InvalidInputError(f"surface {surface_kind!r} is not available "
                                f"(available: {', '.join(mesh_files['positions'])})")
    n = surface.n_vertices
    for h in HEMIS:
        if overlay.values[h].shape != (n[h],):
            raise InvalidInputError(f"overlay {overlay.name!r} has {overlay.values[h].shape[0]} values on {h}, "
                                    f"the surface {n[h]} vertices")
    d_lo, d_hi = overlay.default_range()
    lo_v = d_lo if vmin is None else float(vmin)
    hi_v = d_hi if vmax is None else float(vmax)
    if hi_v <= lo_v:
        raise InvalidInputError(f"the colour range is empty: min {lo_v} >= max {hi_v}")
    allv = np.concatenate([overlay.values[h] for h in HEMIS])
    codes, lo, hi = encode_overlay(allv)
    ri = np.concatenate([roi_index(rois)[h] for h in HEMIS])
    ov = {"label": overlay.label, "units": overlay.units, "lut": lut(overlay), "lo": lo, "hi": hi,
          "vmin": lo_v, "vmax": hi_v, "threshold": None if overlay.categorical else threshold,
          "symmetric": overlay.symmetric, "categorical": overlay.categorical,
          "names": [c["name"] for c in overlay.categories]}
    header = {"n": n, "surface": surface_kind, "view": view, "hemi": show,
              "mesh": {"topo": static_url + mesh_files["topo"],
                       "positions": static_url + mesh_files["positions"][surface_kind]},
              "overlay": ov, "outlines": bool(outlines), "labels": roi_labels(surface, rois) if labels else [],
              "selected": selected, "height": int(height), "status": status}
    header["overlay_id"] = hashlib.sha1(codes.tobytes() + json.dumps(ov, sort_keys=True).encode()).hexdigest()[:12]
    header["roi_id"] = hashlib.sha1(ri.tobytes()).hexdigest()[:12]
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((-(len(head) + 4)) % 4)
    return np.uint32(len(head)).tobytes() + head + codes.astype("<u2").tobytes() + ri.tobytes()


def parse_message(blob: bytes) -> tuple[dict, np.ndarray, np.ndarray]:
    """Inverse of ``viewer_message`` (tests, tools)."""
    n = int(np.frombuffer(blob[:4], np.uint32)[0])
    header = json.loads(blob[4:4 + n])
    total = header["n"]["lh"] + header["n"]["rh"]
    codes = np.frombuffer(blob[4 + n:4 + n + 2 * total], "<u2")
    ri = np.frombuffer(blob[4 + n + 2 * total:4 + n + 3 * total], np.uint8)
    return header, codes, ri


def vertex_colours(surface: Surface, overlay: Overlay, rois: Overlay | None = None, vmin=None, vmax=None,
                   threshold=None, outlines: bool = True) -> dict[str, np.ndarray]:
    """Per-vertex RGB (0-1) as the viewer draws it: overlay over sulcal shading, ROI outlines in black."""
    table = np.asarray(lut(overlay), np.float64).reshape(-1, 3) / 255
    d_lo, d_hi = overlay.default_range()
    lo = d_lo if vmin is None else vmin
    hi = d_hi if vmax is None else vmax
    out = {}
    for h in HEMIS:
        grey = (190 - sulc_codes(surface[h].sulc).astype(np.float64) * 70 / 255) / 255  # as the viewer shades
        rgb = np.repeat(grey[:, None], 3, 1)
        v = overlay.values[h]
        ok = np.isfinite(v)
        if overlay.categorical:
            j = np.where(ok, np.round(np.nan_to_num(v)) - 1, -1).astype(int)
            m = (j >= 0) & (j < len(table))
            rgb[m] = table[j[m]]
        else:
            if threshold is not None:
                ok &= (np.abs(np.nan_to_num(v)) if overlay.symmetric else np.nan_to_num(v, nan=-np.inf)) >= threshold
            t = np.clip((np.nan_to_num(v) - lo) / (hi - lo), 0, 1)
            j = np.minimum(len(table) - 1, np.floor(t * len(table)).astype(int))
            rgb[ok] = table[j[ok]]
        if outlines and rois is not None:
            rgb[roi_boundary(surface[h].faces, roi_index(rois)[h])] = 20 / 255
        out[h] = rgb
    return out


def roi_boundary(faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Vertices with an ROI that share a face with a vertex of another label."""
    lab = labels[faces]
    diff = (lab != lab[:, [1, 2, 0]]) | (lab != lab[:, [2, 0, 1]])
    out = np.zeros(labels.shape[0], bool)
    m = diff & (lab > 0)
    out[faces[m]] = True
    return out
