"""Surface figures of a workspace's subjects: the ROI map and the publication panel of any overlay.

The drawing itself is :mod:`backend.surface.figures` (it takes overlays); here the overlays are made
from the workspace. The ``*_subprocess``/``cached_*`` helpers render in a child process
(``python -m backend figure ...``) so that VTK's EGL context stays out of the caller's threads (a page).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..store import Workspace, default_subject
from ..surface.figures import overlay_figure, roi_map_figure, save_png
from ..surface.meshes import workspace_surface
from .overlays import overlay, roi_overlay

__all__ = ["render_roi_map", "render_overlay", "cached_roi_map", "overlay_png_subprocess"]

_ROOT = Path(__file__).resolve().parent.parent.parent


def render_roi_map(ws: Workspace, subject: str | None, out: Path) -> Path:
    """The subject's ROI map (inflated surface, 2 hemispheres x 3 views) saved as PNG ``out``."""
    subject = subject or default_subject(ws)
    surface = workspace_surface(ws)
    return save_png(roi_map_figure(surface, roi_overlay(ws, subject, surface.n_vertices), title=subject), out)


def render_overlay(ws: Workspace, subject: str, overlay_name: str, out: Path, concept: str = "", vmin=None,
                   vmax=None, threshold=None, outlines: bool = True, mesh: str = "inflated",
                   device: str = "cpu", definition: str | None = None, encoder: str | None = None) -> Path:
    """The publication panel of overlay ``overlay_name`` (see ``OVERLAYS``) saved as PNG ``out``; a concept
    map loads the configured embedder on ``device``."""
    surface = workspace_surface(ws)
    n = surface.n_vertices
    embedder = None
    if overlay_name in ("concept", "synthesis"):
        from ..models import load_role

        embedder = load_role("embedder", device)
    ov = overlay(ws, subject, overlay_name, n, concept=concept, embedder=embedder, definition=definition,
                 encoder=encoder)
    fig = overlay_figure(surface, ov, roi_overlay(ws, subject, n), title=f"{subject} · {ov.label}", vmin=vmin,
                         vmax=vmax, threshold=threshold, outlines=outlines, mesh=mesh)
    return save_png(fig, out)


def _run_cli(args: list[str], out: Path) -> Path:
    res = subprocess.run([sys.executable, "-m", "backend", *args], capture_output=True, text=True, cwd=_ROOT)
    if res.returncode != 0 or not Path(out).exists():
        raise RuntimeError(f"rendering the figure failed: {res.stderr.strip()[-600:]}")
    return Path(out)


def cached_roi_map(ws: Workspace, subject: str) -> Path:
    """The ROI map PNG for ``subject``, rendered once per world (in a child process) and kept in
    ``<workspace>/figures``."""
    run = ws.query("SELECT run_id FROM subjects WHERE subject = ?", [subject]).run_id.iloc[0]
    out = ws.path / "figures" / f"rois_{subject}_{run}.png"
    if out.exists():
        return out
    return _run_cli(["--workspace", str(ws.path), "figure", "rois", str(out), "--subject", subject], out)


def overlay_png_subprocess(ws: Workspace, subject: str, overlay_name: str, out: Path, concept: str = "", vmin=None,
                           vmax=None, threshold=None, outlines: bool = True, mesh: str = "inflated",
                           definition: str | None = None, encoder: str | None = None) -> Path:
    """:func:`render_overlay` in a child process."""
    cmd = ["--workspace", str(ws.path), "figure", "overlay", str(out), "--subject", subject, "--overlay",
           overlay_name, "--surface", mesh]
    if concept:
        cmd += ["--concept", concept]
    if definition:
        cmd += ["--definition", definition]
    if encoder:
        cmd += ["--encoder", encoder]
    for flag, val in (("--vmin", vmin), ("--vmax", vmax), ("--threshold", threshold)):
        if val is not None:
            cmd += [flag, repr(float(val))]
    if not outlines:
        cmd.append("--no-outlines")
    return _run_cli(cmd, out)
