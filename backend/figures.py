"""Figures rendered off-screen with PyVista (EGL, no X server) and composed with matplotlib.

``roi_map_figure`` draws a subject's ROIs on the inflated surface of both hemispheres from the
lateral, medial and ventral views, over sulcal shading, with a legend. Returns a matplotlib figure
the caller can save (``render_roi_map`` saves it as PNG).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .cortex import HEMIS, Surface

ROI_COLOURS = {
    "V1v": "#1f3b99", "V1d": "#1f3b99", "V2v": "#3f6fd1", "V2d": "#3f6fd1", "V3v": "#78a6e8", "V3d": "#78a6e8",
    "hV4": "#3fb7c4",
    "OFA": "#f4a3a3", "FFA-1": "#d62728", "FFA-2": "#a01010", "aTL-faces": "#ff6f6f", "mTL-faces": "#ff6f6f",
    "OPA": "#98df8a", "PPA": "#2ca02c", "RSC": "#17702a",
    "EBA": "#ff9f1c", "FBA-1": "#e07b00", "FBA-2": "#e07b00", "mTL-bodies": "#ffbb78",
    "OWFA": "#c5b0d5", "VWFA-1": "#9467bd", "VWFA-2": "#6a3d9a", "mfs-words": "#b39ddb", "mTL-words": "#b39ddb",
    "ventral-food": "#8c564b",
}
VIEWS = ("lateral", "medial", "ventral")


def _pyvista():
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    pv.OFF_SCREEN = True
    return pv


def workspace_surface(ws) -> Surface:
    """The surface a workspace's vertices live on (fsaverage5 from nilearn, or the NSD fsaverage folder)."""
    from .cortex import load_fsaverage5, load_freesurfer_surface

    meta = ws.meta()
    if meta.get("space") == "fsaverage5":
        return load_fsaverage5()
    root = meta.get("nsd_root")
    if root:
        return load_freesurfer_surface(Path(root) / "nsddata/freesurfer/fsaverage/surf", meta.get("space", "fsaverage"))
    raise FileNotFoundError(f"no surface files known for space {meta.get('space')!r} in workspace {ws.path}")


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


def roi_map_figure(ws, subject: str | None = None, dpi: int = 110):
    """Matplotlib figure: the subject's ROIs on the inflated surface, 2 hemispheres x 3 views, with legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    surface = workspace_surface(ws)
    subject = subject or ws.query("SELECT min(subject) AS s FROM subjects").s.iloc[0]
    vox = ws.query("SELECT hemi, vertex, roi FROM voxels WHERE subject = ? AND roi IS NOT NULL", [subject])
    colours = sulcal_shading(surface)
    present = []
    for roi, c in ROI_COLOURS.items():
        sel = vox[vox.roi == roi]
        if sel.empty:
            continue
        present.append(roi)
        for h in HEMIS:
            v = sel[sel.hemi == h].vertex.to_numpy()
            colours[h][v] = to_rgb(c)
    img = render_views(surface, colours)
    fig = plt.figure(figsize=(img.shape[1] / dpi + 1.6, img.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, img.shape[1] / (img.shape[1] + 1.6 * dpi), 1])
    ax.imshow(img)
    ax.axis("off")
    seen = []
    handles = []
    for roi in present:
        key = ROI_COLOURS[roi]
        label = roi[:-1] if roi in ("V1v", "V2v", "V3v") else roi
        if (key, label) in seen or roi in ("V1d", "V2d", "V3d"):
            continue
        seen.append((key, label))
        handles.append(Patch(facecolor=key, label=label))
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize=11, title=subject, title_fontsize=12)
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


def render_roi_map(ws, subject: str | None, out: Path) -> Path:
    return save_png(roi_map_figure(ws, subject), out)


def cached_roi_map(ws, subject: str) -> Path:
    """The ROI map PNG for ``subject``, rendered once per world (in a child process: VTK stays out of the
    caller's threads) and kept in ``<workspace>/figures``."""
    import subprocess
    import sys

    run = ws.query("SELECT run_id FROM subjects WHERE subject = ?", [subject]).run_id.iloc[0]
    out = ws.path / "figures" / f"rois_{subject}_{run}.png"
    if not out.exists():
        res = subprocess.run([sys.executable, "-m", "backend", "--workspace", str(ws.path), "figure", "rois",
                              str(out), "--subject", subject], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent.parent)
        if res.returncode != 0 or not out.exists():
            raise RuntimeError(f"rendering the ROI map failed: {res.stderr.strip()[-500:]}")
    return out


def overlay_figure(ws, subject: str, overlay_name: str, concept: str = "", vmin=None, vmax=None, threshold=None,
                   outlines: bool = True, mesh: str = "inflated", dpi: int = 150, device: str = "cpu"):
    """Publication panel of one overlay: both hemispheres x lateral / medial / ventral, sulcal shading,
    ROI outlines, colour bar (or ROI legend) and a title naming subject, overlay and range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    from .explore import overlay, roi_overlay
    from .viewer import vertex_colours

    surface = workspace_surface(ws)
    n = surface.n_vertices
    embedder = None
    if overlay_name == "concept":
        from .models import load_role

        embedder = load_role("embedder", device)
    ov = overlay(ws, subject, overlay_name, n, concept=concept, embedder=embedder)
    rois = roi_overlay(ws, subject, n)
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
    fig.suptitle(f"{subject} · {ov.label}", x=w / 2, fontsize=12)
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


def render_overlay(ws, subject: str, overlay_name: str, out: Path, **kwargs) -> Path:
    return save_png(overlay_figure(ws, subject, overlay_name, **kwargs), out)


def overlay_png_subprocess(ws, subject: str, overlay_name: str, out: Path, concept: str = "", vmin=None, vmax=None,
                           threshold=None, outlines: bool = True, mesh: str = "inflated") -> Path:
    """``render_overlay`` in a child process (VTK's EGL context stays out of the caller's threads)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "backend", "--workspace", str(ws.path), "figure", "overlay", str(out),
           "--subject", subject, "--overlay", overlay_name, "--surface", mesh]
    if concept:
        cmd += ["--concept", concept]
    for flag, val in (("--vmin", vmin), ("--vmax", vmax), ("--threshold", threshold)):
        if val is not None:
            cmd += [flag, repr(float(val))]
    if not outlines:
        cmd.append("--no-outlines")
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if res.returncode != 0 or not Path(out).exists():
        raise RuntimeError(f"rendering the figure failed: {res.stderr.strip()[-600:]}")
    return Path(out)
