"""Per-vertex overlays of a subject: ROIs, noise ceiling, encoding accuracy, concept maps.

Every overlay is a full per-hemisphere vertex array (NaN where the subject has no voxel) in an
:class:`~backend.surface.overlay.Overlay`, so the browser viewer and the PyVista figures draw them alike,
and works the same on the demo world and on imported NSD / Algonauts data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidInputError, NotFoundError
from ..store import Workspace, has_encoder, one_connection, voxel_table
from ..surface.overlay import Overlay
from ..surface.rois import HEMIS, ROI_COLOURS

__all__ = ["OVERLAYS", "overlay", "roi_overlay", "scatter_to_vertices", "predicted_overlay"]

# name -> (label, needs an encoder)
OVERLAYS = {
    "rois": ("ROIs", False),
    "noise_ceiling": ("Noise ceiling", False),
    "r2_nc": ("Encoding accuracy (test R² / noise ceiling)", True),
    "r_test": ("Encoding accuracy (test r)", True),
    "concept": ("Concept map", True),
    "synthesis": ("Synthesized image: predicted response", True),
    "clusters": ("Brain-IT voxel clusters (shared across subjects)", False),
}


def scatter_to_vertices(vox: pd.DataFrame, values: np.ndarray, n_vertices: dict[str, int]) -> dict[str, np.ndarray]:
    """Per-voxel ``values`` (aligned with ``vox`` rows, which carry ``hemi`` and ``vertex``) as
    {hemi: (n_vertices,)} arrays, NaN where there is no voxel."""
    out = {}
    for h in HEMIS:
        arr = np.full(n_vertices[h], np.nan)
        m = (vox.hemi == h).to_numpy()
        arr[vox.vertex.to_numpy()[m]] = values[m]
        out[h] = arr
    return out


def predicted_overlay(ws: Workspace, subject: str, predicted: np.ndarray, n_vertices: dict[str, int],
                      label: str = "Predicted response") -> Overlay:
    """An image's predicted response of every voxel (e.g. from the attention encoder) as a diverging overlay."""
    vox = ws.query("SELECT hemi, vertex FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
    if len(vox) != len(predicted):
        raise InvalidInputError(f"{len(predicted)} predicted values for {len(vox)} voxels of {subject}")
    return Overlay("predicted", label, scatter_to_vertices(vox, np.asarray(predicted, np.float64), n_vertices),
                   cmap="RdBu_r", symmetric=True, units="z")


def synthesis_overlay(ws: Workspace, subject: str, image_ref: str, n_vertices: dict[str, int], embedder,
                      encoder: str | None = None) -> Overlay:
    """The subject's predicted response to a stored synthesized image, ``image_ref`` = ``"<run id>:<seed>"``."""
    from ..encoders import predict_images
    from ..synthesis import require_run, run_images, synthesis_images

    run_id, _, seed = (image_ref or "").rpartition(":")
    if not run_id or not seed.isdigit():
        raise InvalidInputError(f"synthesized image {image_ref!r}: expected '<run id>:<seed>'")
    run = require_run(ws, run_id)
    rows = synthesis_images(ws, run_id)
    rows = rows[rows.seed == int(seed)]
    if rows.empty:
        raise NotFoundError(f"synthesis run {run_id} has no image for seed {seed}")
    pred = predict_images(ws, subject, run_images(ws, rows), embedder, method=encoder)[0]
    ov = predicted_overlay(ws, subject, pred, n_vertices, label=f"Predicted response to {run['label']} seed {seed}")
    ov.name, ov.meta = "synthesis", {"image": image_ref}
    return ov


def roi_overlay(ws: Workspace, subject: str, n_vertices: dict[str, int]) -> Overlay:
    """The subject's ROIs as a categorical overlay (ROI colours of ``surface.rois``, others grey)."""
    vox = voxel_table(ws, subject)
    names = [n for n in ROI_COLOURS if n in set(vox.roi.dropna())]
    names += sorted(set(vox.roi.dropna()) - set(names))
    index = {n: i + 1 for i, n in enumerate(names)}
    vals = vox.roi.map(index).astype(float).to_numpy()
    cats = [{"name": n, "colour": ROI_COLOURS.get(n, "#888888")} for n in names]
    return Overlay("rois", "ROIs", scatter_to_vertices(vox, vals, n_vertices), categories=cats)


def cluster_overlay(ws: Workspace, subject: str, n_vertices: dict[str, int]) -> Overlay:
    """Each voxel's Brain-IT cluster as a categorical overlay: the same colour is the same cluster in every
    subject."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from ..reconstruction import voxel_clusters

    c = voxel_clusters(ws, subject)
    vox = ws.query("SELECT voxel, hemi, vertex FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
    k = int(ws.query("SELECT max(cluster) k FROM voxel_clusters").k.iloc[0]) + 1
    colours = [to_hex(colormaps["tab20"](i % 20)) if i < 20 else to_hex(colormaps["tab20b"](i % 20)) for i in range(k)]
    sizes = c.cluster.value_counts()
    cats = [{"name": f"cluster {i} ({int(sizes.get(i, 0))} voxels)", "colour": colours[i]} for i in range(k)]
    return Overlay("clusters", OVERLAYS["clusters"][0],
                   scatter_to_vertices(vox, c.cluster.to_numpy(float) + 1, n_vertices), categories=cats,
                   meta={"run": c.run_id.iloc[0]})


@one_connection
def overlay(ws: Workspace, subject: str, name: str, n_vertices: dict[str, int], concept: str = "",
            embedder=None, context: dict | None = None, definition: str | None = None,
            encoder: str | None = None) -> Overlay:
    """A named overlay (see ``OVERLAYS``). ``concept`` needs the embedder (text tower; a single concept, a contrast
    "a - b" or a list "a, b, c" drawn as a winner-take-all map; ``definition`` and ``context``: see
    :func:`~backend.explore.concepts.concept_scores`); ``synthesis`` takes the image as ``concept = "<run id>:<seed>"``
    (a BrainDiVE image) and needs the embedder (image tower). ``encoder``: which of the subject's encoders
    ('ridge', 'in-context'; default: the one made from the most images) accuracy, concept and predicted overlays
    use."""
    if name not in OVERLAYS:
        raise InvalidInputError(f"unknown overlay {name!r} (known: {', '.join(OVERLAYS)})")
    if name == "rois":
        return roi_overlay(ws, subject, n_vertices)
    if name == "clusters":
        return cluster_overlay(ws, subject, n_vertices)
    vox = voxel_table(ws, subject, method=encoder)
    if OVERLAYS[name][1] and not has_encoder(ws, subject):
        raise NotFoundError(f"overlay {name!r} needs an encoder for {subject}: run `python -m backend encoder fit "
                          f"--subject {subject}`")
    if name == "noise_ceiling":
        return Overlay(name, OVERLAYS[name][0], scatter_to_vertices(vox, vox.noise_ceiling.to_numpy(float), n_vertices),
                       cmap="inferno", vmin=0.0, units="% of variance")
    if name in ("r2_nc", "r_test"):
        return Overlay(name, OVERLAYS[name][0], scatter_to_vertices(vox, vox[name].to_numpy(float), n_vertices),
                       cmap="viridis", vmin=0.0, vmax=1.0 if name == "r2_nc" else None)
    if name == "synthesis":
        return synthesis_overlay(ws, subject, concept, n_vertices, embedder, encoder)
    from .concepts import DEFAULT_DEFINITION, UNITS, concept_map

    definition = definition or DEFAULT_DEFINITION
    m = concept_map(ws, subject, concept, embedder, definition=definition, context=context, encoder=encoder)
    meta = {"concept": concept, "definition": definition, "kind": m["kind"]}
    if m["kind"] == "winner":
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        counts = pd.Series(m["winner"]).value_counts()
        cats = [{"name": f"{c} ({int(counts.get(i, 0))} voxels)", "colour": to_hex(colormaps["tab10"](i))}
                for i, c in enumerate(m["concepts"])]
        vals = np.where(m["winner"] >= 0, m["winner"] + 1.0, np.nan)  # blank: no concept above the average
        return Overlay(name, "Which concept wins: " + ", ".join(f"“{c}”" for c in m["concepts"]),
                       scatter_to_vertices(vox, vals, n_vertices), categories=cats, meta=meta)
    title = (f"Concept map: “{m['concepts'][0]}”" if m["kind"] == "single"
             else f"Concept contrast: “{m['concepts'][0]}” minus “{m['concepts'][1]}”")
    return Overlay(name, title, scatter_to_vertices(vox, m["scores"], n_vertices), cmap="RdBu_r", symmetric=True,
                   units=UNITS.get(definition, ""), meta=meta)
