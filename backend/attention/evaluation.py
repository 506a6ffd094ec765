"""The attention encoder held to ridge and to ground truth.

* :func:`accuracy_vs_ridge` - per ROI, median noise-ceiling-normalised R^2 of the attention encoder and of the
  ridge encoder on the same test images.
* :func:`attention_ground_truth` - on test images of a world with object masks (the demo world): the share of each
  category ROI's attention (or dense-map) mass inside the masks of its category's objects, against the masks'
  share of the image (chance); for early visual ROIs, how often the attention centre of mass lies in the visual
  field quadrant the ROI represents (dorsal V1-V3: lower field, ventral: upper; left hemisphere: right field;
  hV4: the hemifield only).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets import stimulus_images, stimulus_masks
from ..errors import NotFoundError
from ..store import Workspace, current_encoder, one_connection, require_subject
from ..surface.rois import EARLY_ROIS, HEMIS, ROI_ORDER
from .maps import attention_maps, dense_maps, patch_fractions, roi_weight_vector, to_distribution

__all__ = ["accuracy_vs_ridge", "roi_categories", "attention_ground_truth", "expected_quadrant", "centre_of_mass"]


@one_connection
def accuracy_vs_ridge(ws: Workspace, subject: str, attention_key: str | None = None) -> pd.DataFrame:
    """Per ROI (in the atlas order): voxels, median R^2/NC of ridge and of attention, and attention - ridge."""
    subject = require_subject(ws, subject)
    ridge = current_encoder(ws, subject)
    if ridge is None:
        raise NotFoundError(f"{subject} has no ridge encoder to compare with (run `python -m backend encoder fit`)")
    if attention_key is None:
        row = ws.query("SELECT feature_key FROM attention_encoders WHERE subject = ? ORDER BY run_id DESC LIMIT 1",
                       [subject])
        if row.empty:
            raise NotFoundError(f"{subject} has no attention encoder (run `python -m backend attention fit`)")
        attention_key = f"attention:{row.feature_key.iloc[0]}"
    df = ws.query("SELECT v.roi, e.feature_key, e.r2_nc FROM voxel_encoding e JOIN voxels v USING (subject, voxel) "
                  "WHERE e.subject = ? AND e.feature_key IN (?, ?) AND v.roi IS NOT NULL",
                  [subject, ridge["feature_key"], attention_key])
    df["model"] = np.where(df.feature_key == attention_key, "attention", "ridge")
    tab = df.groupby(["roi", "model"]).r2_nc.median().unstack()
    n = df[df.model == "ridge"].groupby("roi").size()
    order = [r for r in ROI_ORDER if r in tab.index] + sorted(set(tab.index) - set(ROI_ORDER))
    out = pd.DataFrame({"ROI": order, "voxels": n.reindex(order).fillna(0).astype(int).to_numpy(),
                        "ridge": tab.reindex(order).get("ridge"), "attention": tab.reindex(order).get("attention")})
    out["attention - ridge"] = out.attention - out.ridge
    return out.reset_index(drop=True)


def roi_categories(ws: Workspace) -> dict[str, str]:
    """ROI name -> the category it is selective for (category ROIs only)."""
    df = ws.query("SELECT name, category FROM roi_labels WHERE category IS NOT NULL AND category <> ''")
    return dict(zip(df.name, df.category))


def expected_quadrant(roi: str, hemi: str) -> tuple[int, int]:
    """(sign of x, sign of y) of the visual field an early ROI represents; 0 = not constrained."""
    x = 1 if hemi == "lh" else -1  # each hemisphere sees the opposite visual hemifield
    y = -1 if roi.endswith("d") else 1 if roi.endswith("v") else 0  # dorsal: lower field, ventral: upper
    return x, y


def centre_of_mass(dist: np.ndarray) -> tuple[float, float]:
    """(x, y) of a map's centre of mass in image units from -1 to 1 (x to the right, y up)."""
    rows, cols = dist.shape
    ys = 1 - (np.arange(rows) + 0.5) / rows * 2
    xs = (np.arange(cols) + 0.5) / cols * 2 - 1
    s = dist.sum()
    return float((dist.sum(0) * xs).sum() / s), float((dist.sum(1) * ys).sum() / s)


def attention_ground_truth(ws: Workspace, subject: str, encoder, tokens: np.ndarray, embedder=None,
                           ridge_weights: np.ndarray | None = None, max_images: int | None = None) -> pd.DataFrame:
    """Attention (and, with ``embedder`` and ``ridge_weights``, dense maps) against the world's ground truth.

    Parameters
    ----------
    encoder : AttentionEncoder
        The subject's attention encoder.
    tokens : ndarray (n_stimuli, P, d)
        Stored patch tokens of every stimulus (stim_id order).
    ridge_weights : ndarray (n_voxels, dim), optional
        The subject's ridge encoder in embedding space, for the dense maps.
    max_images : int, optional
        Use at most this many test images (the first in stim_id order).

    Returns
    -------
    DataFrame
        One row per ROI and method (``attention``, ``dense``): ``kind`` (category / early), ``category``,
        ``images``, ``score`` (category: mean share of mass in the category's masks; early: share of images whose
        centre of mass is in the expected quadrant), ``chance`` (category: mean mask share of the image; early:
        the share expected of a random centre, 0.25 for a quadrant, 0.5 for a hemifield).
    """
    from ..store import stimulus_ids

    subject = require_subject(ws, subject)
    test = ws.query("SELECT stim_id FROM subject_stimuli WHERE subject = ? AND split = 'test' ORDER BY stim_id",
                    [subject]).stim_id.to_numpy()
    if max_images:
        test = test[:max_images]
    masks, objects = stimulus_masks(ws, test)
    pos = np.searchsorted(stimulus_ids(ws), test)
    maps, _ = attention_maps(encoder, np.asarray(tokens[pos], np.float32))  # (n, Q, rows, cols)
    rows, cols = encoder.grid
    cats = roi_categories(ws)
    vox = ws.query("SELECT voxel, hemi, roi FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
    present = [r for r in ROI_ORDER if r in set(vox.roi.dropna())]
    do_dense = embedder is not None and ridge_weights is not None
    images = np.stack(stimulus_images(ws, test)) if do_dense else None
    out = []
    for roi in present:
        queries = {h: encoder.names.index(f"{roi} {h}") for h in HEMIS if f"{roi} {h}" in encoder.names}
        if not queries:
            continue
        dense = None
        if do_dense:
            w = np.stack([roi_weight_vector(ridge_weights, vox.index[(vox.roi == roi) & (vox.hemi == h)].to_numpy())
                          for h in queries])
            dense = dense_maps(embedder, w, images, size=masks.shape[1])  # (n, len(queries), H, W)
        if roi in cats:
            cat = cats[roi]
            rows_scores = {"attention": [], "dense": []}
            chance = []
            for i, sid in enumerate(test):
                objs = objects[objects.stim_id == sid]
                mine = objs[objs.category == cat].obj.to_numpy()
                if mine.size == 0 or len(objs) < 2:
                    continue
                m = np.isin(masks[i], mine).astype(np.float32)
                if m.sum() == 0:
                    continue  # fully occluded
                frac = patch_fractions(m, rows, cols)
                rows_scores["attention"].append(np.mean([(maps[i, q] * frac).sum() for q in queries.values()]))
                if dense is not None:
                    rows_scores["dense"].append(np.mean([(to_distribution(dense[i, k]) * m).sum()
                                                         for k in range(len(queries))]))
                chance.append(m.mean())
            for method, sc in rows_scores.items():
                if sc:
                    out.append({"ROI": roi, "kind": "category", "category": cat, "method": method,
                                "images": len(sc), "score": float(np.mean(sc)), "chance": float(np.mean(chance))})
        elif roi in EARLY_ROIS:
            hits = {"attention": [], "dense": []}
            for k, (h, q) in enumerate(queries.items()):
                ex, ey = expected_quadrant(roi, h)
                for i in range(len(test)):
                    for method, dist in (("attention", maps[i, q]),
                                         ("dense", to_distribution(dense[i, k]) if dense is not None else None)):
                        if dist is None:
                            continue
                        x, y = centre_of_mass(dist)
                        hits[method].append(np.sign(x) == ex and (ey == 0 or np.sign(y) == ey))
            for method, hv in hits.items():
                if hv:
                    out.append({"ROI": roi, "kind": "early", "category": "", "method": method, "images": len(test),
                                "score": float(np.mean(hv)), "chance": 0.5 if roi == "hV4" else 0.25})
    return pd.DataFrame(out)
