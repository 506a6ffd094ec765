"""A subject's encoder made again from each half of its images, so that one half can guide an image search and the
other judge it without having seen the same data (BrainDiVE's re-ranking): ridge on each half of the training
images for a ridge encoder, the in-context network on each half of the context images for an in-context one.
"""
from __future__ import annotations

import numpy as np

from ..errors import NotFoundError
from ..store import ProgressFn, Workspace, current_encoder, report
from .incontext import incontext_halves
from .ridge import fit_ridge_cv
from .features import stored_features
from .voxelwise import design_matrices

__all__ = ["fit_encoder_halves", "encoder_half"]


def fit_encoder_halves(ws: Workspace, subject: str, feature_key: str | None = None, seed: int = 0,
                       cv: str = "gcv", device: str = "cpu", progress: ProgressFn = None) -> list[str]:
    """The subject's encoder made again from each half of its images (a random split by ``seed``), so that one half
    can guide an image search and the other judge it without having seen the same data (BrainDiVE's re-ranking).

    For a ridge encoder, ridge on each half of the training images; for an in-context encoder, the in-context
    model on each half of its context images. Stored in ``encoder_halves``; made once per (subject, feature set,
    method). Returns the run ids."""
    enc = current_encoder(ws, subject, feature_key)
    if enc is None:
        raise NotFoundError(f"no encoder for {subject} in workspace {ws.path} (run `python -m backend encoder fit`)")
    key, method = enc["feature_key"], enc["method"]
    have = ws.query("SELECT h.half, h.run_id, r.method FROM encoder_halves h JOIN runs r USING (run_id) "
                    "WHERE h.subject = ? AND h.feature_key = ? ORDER BY h.half", [subject, key]) \
        if ws.has_table("encoder_halves") else None
    if have is not None and len(have) == 2 and (have.method == f"encoder-{method}-half").all():
        return have.run_id.tolist()
    if method == "in-context":
        report(progress, f"Making {subject}'s in-context encoder from each half of its images", 0, 2)
        fits = [(W, b, n, {"incontext_encoder": mid}) for W, b, n, mid in incontext_halves(ws, subject, enc, seed,
                                                                                            device)]
    else:
        Xtr, Ytr, _, _, _ = design_matrices(ws, subject, stored_features(ws, key))
        order = np.random.default_rng(seed).permutation(len(Xtr))
        fits = []
        for h, idx in enumerate([np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])]):
            report(progress, f"Fitting {subject}'s encoder on half {h + 1} of its training images", h, 2)
            fit = fit_ridge_cv(Xtr[idx], Ytr[idx], cv=cv, device=device)
            fits.append((fit.coef.T, fit.intercept, len(idx), {}))
    runs = []
    with ws.writer() as tx:
        tx.sql("DELETE FROM encoder_halves WHERE subject = ? AND feature_key = ?", [subject, key])
        for h, (W, b, n, ids) in enumerate(fits):
            run = tx.new_run(f"encoder-{method}-half", {"subject": subject, "features": key, "half": h, "of": 2,
                                                        "split_seed": seed, "n_train": int(n),
                                                        **({"cv": cv} if method == "ridge" else {})},
                             seed=seed, model_ids={"embedder": enc["model_id"], **ids})
            name = f"encoder_{subject}_{key}_half{h}"
            tx.put_array(name, np.vstack([np.asarray(W, np.float32).T, np.asarray(b, np.float32)[None]]), run,
                         f"(dim + 1, n_voxels): {method} encoder weights from half {h} of the images, last row = "
                         "intercept")
            tx.sql("INSERT INTO encoder_halves VALUES (?, ?, ?, ?, ?, ?)", [subject, key, h, run, name, int(n)])
            runs.append(run)
    report(progress, f"Fitting {subject}'s encoder on half 2 of its training images", 2, 2)
    return runs


def encoder_half(ws: Workspace, subject: str, half: int, feature_key: str | None = None):
    """(W (n_voxels, dim), intercept (n_voxels,), run id) of the encoder fitted on ``half`` (0 or 1) of the
    training images (:func:`fit_encoder_halves`)."""
    enc = current_encoder(ws, subject, feature_key)
    key = enc["feature_key"] if enc is not None else feature_key
    row = ws.query("SELECT weights_array, run_id FROM encoder_halves WHERE subject = ? AND feature_key = ? AND half = ?",
                   [subject, key, int(half)]) if ws.has_table("encoder_halves") else None
    if row is None or row.empty:
        raise NotFoundError(f"no half-data encoders for {subject} (fit them with `python -m backend encoder halves`)")
    arr = np.asarray(ws.array(row.weights_array.iloc[0]))
    return arr[:-1].T.copy(), arr[-1].copy(), row.run_id.iloc[0]
