"""Summaries of what a workspace holds (for `python -m backend info` and the home page)."""
from __future__ import annotations

from ..surface.rois import ROI_ORDER
from .workspace import Workspace, one_connection

__all__ = ["workspace_info"]


@one_connection
def workspace_info(ws: Workspace) -> dict:
    """What ``ws`` holds, as plain values.

    Returns
    -------
    dict
        ``path``, ``exists``; when it exists also ``dataset``, ``space``, ``n_images``, ``n_captions``,
        ``n_runs`` and ``subjects``: one dict per subject (``subject``, ``n_sessions``, ``n_images``,
        ``n_voxels``, ``n_train``, ``n_test``, ``median_nc`` in %, ``voxels_per_roi`` in display order).
    """
    info = {"path": str(ws.path), "exists": ws.exists}
    if not info["exists"]:
        return info
    with ws.read() as con:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        info["dataset"] = meta.get("dataset", "?")
        info["space"] = meta.get("space", "?")
        info["n_images"] = con.execute("SELECT count(*) FROM stimuli").fetchone()[0]
        info["n_captions"] = con.execute("SELECT count(*) FROM captions").fetchone()[0]
        info["n_runs"] = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        subs = con.execute("SELECT subject, n_sessions, n_images, n_voxels FROM subjects ORDER BY subject").fetchall()
        info["subjects"] = []
        for subject, n_sessions, n_images, n_voxels in subs:
            split = dict(con.execute("SELECT split, count(*) FROM subject_stimuli WHERE subject = ? GROUP BY split",
                                     [subject]).fetchall())
            counts = dict(con.execute("SELECT roi, count(*) FROM voxels WHERE subject = ? AND roi IS NOT NULL "
                                      "GROUP BY roi", [subject]).fetchall())
            order = [r for r in ROI_ORDER if r in counts] + sorted(set(counts) - set(ROI_ORDER))
            nc = con.execute("SELECT median(noise_ceiling) FROM voxels WHERE subject = ?", [subject]).fetchone()[0]
            info["subjects"].append(dict(
                subject=subject, n_sessions=n_sessions, n_images=n_images, n_voxels=n_voxels,
                n_train=split.get("train", 0), n_test=split.get("test", 0), median_nc=None if nc is None or nc != nc else float(nc),
                voxels_per_roi={r: counts[r] for r in order}))
    return info
