"""The voxel card: everything about one voxel - identity, ROI, noise ceiling, encoding accuracy, its top
images (measured and predicted), its category profile, its captions, ground truth on the demo world, and
for early visual voxels a receptive field estimated from its responses to local contrast energy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..captions.registry import CAPTION_METHODS, method_label
from ..datasets.image_features import FIELD_DEG
from ..datasets.reading import captions, stimulus_images, subject_betas
from ..encoders.features import contrast_energy_matrix, stored_features
from ..encoders.voxelwise import encoder_weights
from ..errors import InvalidInputError, NotFoundError
from ..store import ProgressFn, Workspace, current_encoder, one_connection, stimulus_ids, voxel_at, voxel_table
from ..surface.rois import HEMIS

__all__ = ["find_voxel", "voxel_card", "receptive_field", "training_contrast_energy", "voxel_receptive_field"]


def find_voxel(ws: Workspace, subject: str, hemi: str, vertex: int) -> int | None:
    """The subject's voxel at ``hemi`` vertex ``vertex``; None when that vertex holds no voxel."""
    if hemi not in HEMIS:
        raise InvalidInputError(f"hemisphere must be 'lh' or 'rh', got {hemi!r}")
    return voxel_at(ws, subject, hemi, vertex)


@one_connection
def voxel_card(ws: Workspace, subject: str, voxel: int, n_top: int = 8, image_size: int | None = None,
               encoder: str | None = None) -> dict:
    """Everything the voxel card shows.

    Parameters
    ----------
    voxel : int
        Index into the subject's voxels.
    n_top : int
        How many top images (by measured and by predicted response).
    image_size : int, optional
        Also load the top images' pixels at this size (``top_measured_images``, ``top_predicted_images``)
        and add each top image's first caption (a ``caption`` column).
    encoder : str, optional
        Which of the subject's encoders predicts and is scored ('ridge', 'in-context'); default: the one made from
        the most images.

    Returns
    -------
    dict
        ``subject, voxel, hemi, vertex, roi, noise_ceiling, ncsnr, r_test, r2_test, r2_nc``;
        ``top_measured`` (stim_id, response, n_reps, split) and ``top_predicted`` (stim_id, predicted, seen;
        None without an encoder) DataFrames; ``encoder`` (method, n_train: the images it was made from, run_id;
        None without one); ``category_means`` (mean, sem, n per category);
        ``truth`` (the demo world's ground truth, else None); ``captions`` (method, label, how, caption,
        keywords, sentence_r).
    """
    vox = voxel_table(ws, subject, method=encoder)
    if not 0 <= voxel < len(vox):
        raise NotFoundError(f"{subject} has no voxel {voxel} (it has {len(vox)})")
    row = vox.iloc[voxel]
    betas, rows = subject_betas(ws, subject)
    b = np.asarray(betas[:, voxel], np.float64)
    order = np.argsort(-b)[:n_top]
    measured = pd.DataFrame({"stim_id": rows.stim_id.to_numpy()[order], "response": b[order],
                             "n_reps": rows.n_reps.to_numpy()[order], "split": rows.split.to_numpy()[order]})
    card = {"subject": subject, "voxel": int(voxel), "hemi": row.hemi, "vertex": int(row.vertex),
            "roi": row.roi if isinstance(row.roi, str) else None,
            "noise_ceiling": float(row.noise_ceiling), "ncsnr": float(row.ncsnr),
            "r_test": _f(row.get("r_test")), "r2_test": _f(row.get("r2_test")), "r2_nc": _f(row.get("r2_nc")),
            "top_measured": measured, "top_predicted": None, "encoder": None}
    enc = current_encoder(ws, subject, method=encoder)
    if enc is not None:
        card["encoder"] = {"method": enc["method"], "n_train": int(enc["n_train"]), "run_id": enc["run_id"]}
        W, icpt, key = encoder_weights(ws, subject, method=enc["method"])
        F = stored_features(ws, key)
        pred = F @ W[voxel] + icpt[voxel]
        ids = stimulus_ids(ws)
        top = np.argsort(-pred)[:n_top]
        seen = set(rows.stim_id.tolist())
        card["top_predicted"] = pd.DataFrame({"stim_id": ids[top], "predicted": pred[top],
                                              "seen": [int(i) in seen for i in ids[top]]})
    cats = ws.query("SELECT stim_id, categories FROM stimuli WHERE stim_id IN (SELECT unnest(?::INTEGER[]))",
                    [rows.stim_id.tolist()]).set_index("stim_id").categories
    ex = pd.DataFrame({"stim_id": rows.stim_id, "response": b}).join(cats, on="stim_id").explode("categories")
    ex = ex.dropna(subset=["categories"])
    g = ex.groupby("categories").response
    card["category_means"] = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.size()}).sort_values(
        "mean", ascending=False)
    truth = ws.query("SELECT category, prf_x, prf_y, prf_sigma, prf_share FROM voxel_truth WHERE subject = ? "
                     "AND voxel = ?", [subject, int(voxel)])
    card["truth"] = truth.iloc[0].to_dict() if not truth.empty else None
    caps = ws.query("SELECT c.method, c.caption, c.keywords, e.sentence_r FROM voxel_captions c "
                    "LEFT JOIN caption_eval e USING (subject, method, voxel) "
                    "WHERE c.subject = ? AND c.voxel = ? ORDER BY c.method", [subject, int(voxel)])
    card["captions"] = caps.assign(label=[method_label(m) for m in caps.method],
                                   how=[getattr(CAPTION_METHODS.get(m), "how", "") for m in caps.method])
    if image_size:
        for k in ("top_measured", "top_predicted"):
            if card[k] is not None:
                ids = card[k].stim_id.tolist()
                card[k + "_images"] = stimulus_images(ws, ids, size=image_size)
                first = captions(ws, ids)
                card[k]["caption"] = [(first.get(int(i)) or [""])[0] for i in ids]
    return card


def _f(x):
    return None if x is None or not np.isfinite(x) else float(x)


def receptive_field(betas_column: np.ndarray, energy: np.ndarray, field_deg: float = FIELD_DEG) -> dict:
    """Estimate a voxel's receptive field from its responses: the correlation of the response with the local
    contrast energy at each grid cell (a map), and the centre and size of the Gaussian that fits the
    positive part of the map (moments). Coordinates in degrees, +y up, the image centre at 0."""
    n, g, _ = energy.shape
    E = energy.reshape(n, -1).astype(np.float64)
    E = (E - E.mean(0)) / np.maximum(E.std(0), 1e-9)
    y = np.asarray(betas_column, np.float64)
    y = (y - y.mean()) / max(y.std(), 1e-9)
    r = (E.T @ y / n).reshape(g, g)
    c = (np.arange(g) + 0.5) / g * field_deg - field_deg / 2
    gx, gy = np.meshgrid(c, -c)
    w = np.clip(r - 0.5 * r.max(), 0, None)
    if w.sum() <= 0:
        return {"map": r, "x": None, "y": None, "sigma": None, "peak_r": float(r.max()), "extent": field_deg / 2}
    x0, y0 = float((w * gx).sum() / w.sum()), float((w * gy).sum() / w.sum())
    sigma = float(np.sqrt((w * ((gx - x0) ** 2 + (gy - y0) ** 2)).sum() / w.sum() / 2))
    return {"map": r, "x": x0, "y": y0, "sigma": sigma, "peak_r": float(r.max()), "extent": field_deg / 2}


def training_contrast_energy(ws: Workspace, subject: str, grid: int = 16, progress: ProgressFn = None):
    """The contrast energy of the subject's training images, for receptive-field estimates (compute once,
    reuse for every voxel).

    Returns
    -------
    train : ndarray of bool, shape (n_images_seen,)
        Which rows of the subject's betas are training images.
    energy : ndarray, shape (n_train, grid, grid)
    """
    _, rows = subject_betas(ws, subject)
    train = (rows.split == "train").to_numpy()
    return train, contrast_energy_matrix(ws, rows.stim_id.to_numpy()[train], grid=grid, progress=progress)


def voxel_receptive_field(ws: Workspace, subject: str, voxel: int, train_energy=None) -> dict:
    """:func:`receptive_field` of one voxel from its training responses; ``train_energy`` is the result of
    :func:`training_contrast_energy` (computed when omitted)."""
    train, energy = train_energy if train_energy is not None else training_contrast_energy(ws, subject)
    betas, _ = subject_betas(ws, subject)
    return receptive_field(np.asarray(betas[train, voxel]), energy, FIELD_DEG)
