"""Figures rendered off-screen with PyVista (EGL, no X server) and composed with matplotlib.

Every function takes a :class:`~backend.surface.meshes.Surface` and :class:`~backend.surface.overlay.Overlay`
objects (never a workspace or an overlay name) and returns a matplotlib figure the caller can save
(``save_png`` writes it atomically):

* ``roi_map_figure``: ROIs on the inflated surface of both hemispheres from the lateral, medial and
  ventral views, over sulcal shading, with a legend;
* ``overlay_figure``: the publication panel of any overlay, with colour bar (or legend) and ROI outlines.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .meshes import Surface
from .overlay import Overlay
from .rois import HEMIS, roi_legend_name

__all__ = ["VIEWS", "render_views", "sulcal_shading", "roi_map_figure", "overlay_figure", "save_png"]

VIEWS = ("lateral", "medial", "ventral")


def _pyvista():
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    pv.OFF_SCREEN = True
    return pv


def camera(view: str, hemi: str):
    """(view vector from the focal point to the camera, view-up) for a named view."""
    side = -1.0 if hemi == "lh" else 1.0
    return {"lateral": ((side, 0, 0), (0, 0, 1)), "medial": ((-side, 0, 0), (0, 0, 1)),
            "ventral": ((0, 0, -1), (0, 1, 0)), "posterior": ((0, -1, 0), (0, 0, 1))}[view]


def render_views(surface: Surface, colours: dict[str, np.ndarray], views=VIEWS, size=(360, 300),
                 mesh: str = "inflated") -> np.ndarray:
    """Render per-vertex RGB colours ({hemi: (n_vertices, 3) float 0-1}) to one (H, W, 3) uint8 panel:
    rows = hemispheres, columns = views."""
    pv = _pyvista()
    pl = pv.Plotter(off_screen=True, shape=(2, len(views)), window_size=(size[0] * len(views), size[1] * 2),
                    border=False)
    for r, h in enumerate(HEMIS):
        hemi = surface[h]
        faces = np.hstack([np.full((hemi.faces.shape[0], 1), 3), hemi.faces]).ravel()
        poly = pv.PolyData(getattr(hemi, mesh).astype(np.float32), faces)
        poly["rgb"] = (np.clip(colours[h], 0, 1) * 255).astype(np.uint8)
        for c, view in enumerate(views):
            pl.subplot(r, c)
            pl.add_mesh(poly, scalars="rgb", rgb=True, smooth_shading=True, ambient=0.3, diffuse=0.7, specular=0.0)
            vec, up = camera(view, h)
            pl.view_vector(vec, viewup=up)
            pl.camera.zoom(1.05 if view == "ventral" else 1.35)
            pl.add_text(f"{h} {view}", font_size=9, position="upper_left", color="#444444")
    img = pl.screenshot(return_img=True)
    pl.close()
    return img


def sulcal_shading(surface: Surface) -> dict[str, np.ndarray]:
    """Grey background: light gyri, darker sulci. {hemi: (n_vertices, 3)}."""
    out = {}
    for h in HEMIS:
        s = surface[h].sulc
        g = np.where(s > 0, 0.55, 0.78).astype(np.float32)
        out[h] = np.repeat(g[:, None], 3, axis=1)
    return out


def roi_map_figure(surface: Surface, rois: Overlay, title: str = "", dpi: int = 110):
    """ROIs on the inflated surface, 2 hemispheres x 3 views, with a legend titled ``title``.

    Parameters
    ----------
    surface : Surface
    rois : Overlay
        A categorical overlay (value = index into ``rois.categories`` + 1), e.g. the explorer's ROI overlay.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    colours = sulcal_shading(surface)
    for h in HEMIS:
        v = rois.values[h]
        for j, cat in enumerate(rois.categories, start=1):
            colours[h][v == j] = to_rgb(cat["colour"])
    img = render_views(surface, colours)
    fig = plt.figure(figsize=(img.shape[1] / dpi + 1.6, img.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, img.shape[1] / (img.shape[1] + 1.6 * dpi), 1])
    ax.imshow(img)
    ax.axis("off")
    handles, seen = [], set()
    for cat in rois.categories:
        label = roi_legend_name(cat["name"])
        if label is None or (cat["colour"], label) in seen:
            continue
        seen.add((cat["colour"], label))
        handles.append(Patch(facecolor=cat["colour"], label=label))
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize=11, title=title, title_fontsize=12)
    return fig


def save_png(fig, out: Path) -> Path:
    """Write a matplotlib figure to ``out`` atomically (a reader never sees half a PNG) and close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, out)
    plt.close(fig)
    return out


def overlay_figure(surface: Surface, ov: Overlay, rois: Overlay | None = None, title: str = "", vmin=None,
                   vmax=None, threshold=None, outlines: bool = True, mesh: str = "inflated", dpi: int = 150):
    """Publication panel of one overlay: both hemispheres x lateral / medial / ventral, sulcal shading,
    ROI outlines (from ``rois``), colour bar (or legend) and ``title``.

    Parameters
    ----------
    surface : Surface
    ov : Overlay
        What to draw; ``vmin``/``vmax`` default to its own range, ``threshold`` hides smaller values.
    rois : Overlay, optional
        The ROI overlay whose borders are outlined.
    mesh : str
        ``inflated``, ``pial`` or ``white``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    from .viewer import vertex_colours

    lo, hi = ov.default_range()
    lo = lo if vmin is None else vmin
    hi = hi if vmax is None else vmax
    colours = vertex_colours(surface, ov, rois, lo, hi, threshold, outlines)
    img = render_views(surface, colours, size=(520, 430), mesh=mesh)
    side = 2.2
    fig = plt.figure(figsize=(img.shape[1] / dpi + side, img.shape[0] / dpi + 0.5), dpi=dpi)
    w = img.shape[1] / (img.shape[1] + side * dpi)
    ax = fig.add_axes([0, 0, w, img.shape[0] / (img.shape[0] + 0.5 * dpi)])
    ax.imshow(img)
    ax.axis("off")
    fig.suptitle(title or ov.label, x=w / 2, fontsize=12)
    if ov.categorical:
        fig.legend(handles=[Patch(facecolor=c["colour"], label=c["name"]) for c in ov.categories],
                   loc="center right", frameon=False, fontsize=8, ncol=1 if len(ov.categories) < 16 else 2)
    else:
        cax = fig.add_axes([w + 0.25 * (1 - w), 0.15, 0.12 * (1 - w), 0.6])
        cb = fig.colorbar(ScalarMappable(Normalize(lo, hi), colormaps[ov.cmap]), cax=cax)
        cb.set_label(ov.units or ov.label, fontsize=9)
        if threshold is not None:
            cax.set_title(f"|v| ≥ {threshold:g}" if ov.symmetric else f"≥ {threshold:g}", fontsize=8)
    return fig
