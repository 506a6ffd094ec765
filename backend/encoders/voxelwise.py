"""Voxel-wise encoders: ridge from unit-normalised image embeddings to each voxel's betas.

Per subject: regularisation chosen per voxel by cross-validation on the training images
(:mod:`backend.encoders.ridge`), evaluated on the shared test images (Pearson r, R^2 and R^2 normalised by
the NSD noise ceiling of the test split), everything stored in the workspace. The weights live in
embedding space: ``encoder_weights`` gives (n_voxels, dim) per subject, the object BrainSCUBA,
BrainDiVE and LaVCa work with.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets.reading import subject_betas
from ..errors import InvalidInputError, NotFoundError
from ..store import ProgressFn, Workspace, current_encoder, report, require_subject, stimulus_ids
from ..store import subjects as all_subjects
from .ridge import DEFAULT_ALPHAS, fit_ridge_cv, pearson_columns, r2_columns

__all__ = ["fit_encoders", "fit_encoder", "encoder_weights", "design_matrices", "fit_encoder_halves",
           "encoder_half", "predict_images"]


def design_matrices(ws: Workspace, subject: str, features: np.ndarray):
    """A subject's train and test matrices.

    Parameters
    ----------
    features : ndarray, shape (n_stimuli, dim)
        Per-stimulus features in stim_id order.

    Returns
    -------
    X_train, Y_train, X_test, Y_test : ndarray
        Features (n, dim) and betas (n, n_voxels) of the training and the shared test images.
    rows : DataFrame
        The subject's ``subject_stimuli`` rows (stim_id, n_reps, split), in betas row order.
    """
    betas, rows = subject_betas(ws, subject)
    all_ids = stimulus_ids(ws)
    pos = np.searchsorted(all_ids, rows.stim_id.to_numpy())
    X = np.asarray(features)[pos]
    B = np.asarray(betas, np.float32)
    train = (rows.split == "train").to_numpy()
    return X[train], B[train], X[~train], B[~train], rows


def fit_encoder(ws: Workspace, subject: str, features: np.ndarray, feature_key: str, model_id: str,
                alphas=DEFAULT_ALPHAS, cv: str = "gcv", device: str = "cpu", progress: ProgressFn = None) -> dict:
    """Fit, evaluate and store the encoder of ``subject``. Returns a summary with per-ROI medians."""
    Xtr, Ytr, Xte, Yte, rows = design_matrices(ws, subject, features)
    if len(Xte) == 0:
        raise InvalidInputError(f"{subject} has no test images (split = 'test' in subject_stimuli)")
    fit = fit_ridge_cv(Xtr, Ytr, alphas=alphas, cv=cv, device=device, progress=progress)
    pred = fit.predict(Xte)
    r = pearson_columns(Yte, pred)
    r2 = r2_columns(Yte, pred)
    vox = ws.query("SELECT voxel, roi, noise_ceiling_test FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
    nc = vox.noise_ceiling_test.to_numpy(np.float32) / 100
    with np.errstate(invalid="ignore", divide="ignore"):
        r2_nc = np.where(nc > 0, r2 / nc, np.nan).astype(np.float32)
    report(progress, "Storing encoder", 0, 1)
    with ws.writer() as tx:
        run = tx.new_run("encoder-ridge", {"subject": subject, "cv": cv, "alphas": list(map(float, alphas)),
                                           "features": feature_key, "n_train": int(len(Xtr)), "n_test": int(len(Xte)),
                                           "targets": "betas z-scored per session, repeats averaged"},
                         model_ids={"embedder": model_id})
        name = f"encoder_{subject}_{feature_key}"
        tx.put_array(name, np.vstack([fit.coef, fit.intercept[None]]).astype(np.float32), run,
                     "(dim + 1, n_voxels): ridge weights in embedding space, last row = intercept")
        tx.sql("DELETE FROM encoders WHERE subject = ? AND feature_key = ?", [subject, feature_key])
        tx.sql("INSERT INTO encoders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               [subject, feature_key, model_id, run, name, cv, int(len(Xtr)), int(len(Xte))])
        tx.sql("DELETE FROM voxel_encoding WHERE subject = ? AND feature_key = ?", [subject, feature_key])
        tx.insert_df("voxel_encoding", pd.DataFrame({
            "subject": subject, "feature_key": feature_key, "voxel": vox.voxel, "alpha": fit.alpha, "r_test": r,
            "r2_test": r2, "r2_nc": r2_nc}))
    report(progress, "Storing encoder", 1, 1)
    df = pd.DataFrame({"roi": vox.roi.fillna(""), "r2_nc": r2_nc, "r": r})
    return {"subject": subject, "run": run, "n_train": int(len(Xtr)), "n_test": int(len(Xte)),
            "median_r": float(np.nanmedian(r)), "median_r2_nc_by_roi": df.groupby("roi").r2_nc.median().to_dict()}


def encoder_weights(ws: Workspace, subject: str, feature_key: str | None = None):
    """A stored encoder in embedding space (the subject's current one when ``feature_key`` is None).

    Returns
    -------
    W : ndarray, shape (n_voxels, dim)
    intercept : ndarray, shape (n_voxels,)
    feature_key : str
    """
    enc = current_encoder(ws, subject, feature_key)
    if enc is None:
        raise NotFoundError(f"no encoder for {subject} in workspace {ws.path} (run `python -m backend encoder fit`)")
    arr = np.asarray(ws.array(enc["weights_array"]))
    return arr[:-1].T.copy(), arr[-1].copy(), enc["feature_key"]


def fit_encoder_halves(ws: Workspace, subject: str, feature_key: str | None = None, seed: int = 0,
                       cv: str = "gcv", device: str = "cpu", progress: ProgressFn = None) -> list[str]:
    """The subject's encoder fitted again on each half of its training images (a random split by ``seed``), so
    that one half can guide an image search and the other judge it without having seen the same data (BrainDiVE's
    re-ranking). Stored in ``encoder_halves``; fitted once per (subject, feature set). Returns the run ids."""
    from .features import stored_features

    enc = current_encoder(ws, subject, feature_key)
    if enc is None:
        raise NotFoundError(f"no encoder for {subject} in workspace {ws.path} (run `python -m backend encoder fit`)")
    key = enc["feature_key"]
    have = ws.query("SELECT half, run_id FROM encoder_halves WHERE subject = ? AND feature_key = ? ORDER BY half",
                    [subject, key]) if ws.has_table("encoder_halves") else None
    if have is not None and len(have) == 2:
        return have.run_id.tolist()
    Xtr, Ytr, _, _, _ = design_matrices(ws, subject, stored_features(ws, key))
    order = np.random.default_rng(seed).permutation(len(Xtr))
    halves = [np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])]
    fits = []
    for h, idx in enumerate(halves):
        report(progress, f"Fitting {subject}'s encoder on half {h + 1} of its training images", h, 2)
        fits.append(fit_ridge_cv(Xtr[idx], Ytr[idx], cv=cv, device=device))
    runs = []
    with ws.writer() as tx:
        tx.sql("DELETE FROM encoder_halves WHERE subject = ? AND feature_key = ?", [subject, key])
        for h, (fit, idx) in enumerate(zip(fits, halves)):
            run = tx.new_run("encoder-ridge-half", {"subject": subject, "features": key, "half": h, "of": 2,
                                                    "split_seed": seed, "cv": cv, "n_train": int(len(idx))},
                             seed=seed, model_ids={"embedder": enc["model_id"]})
            name = f"encoder_{subject}_{key}_half{h}"
            tx.put_array(name, np.vstack([fit.coef, fit.intercept[None]]).astype(np.float32), run,
                         f"(dim + 1, n_voxels): ridge weights on half {h} of the training images, last row = intercept")
            tx.sql("INSERT INTO encoder_halves VALUES (?, ?, ?, ?, ?, ?)", [subject, key, h, run, name, int(len(idx))])
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


def predict_images(ws: Workspace, subject: str, images, embedder, feature_key: str | None = None) -> np.ndarray:
    """The subject's ridge encoder's predicted response of every voxel to ``images`` (RGB uint8 arrays):
    (n_images, n_voxels), in the units of the betas it was fitted on."""
    W, b, _ = encoder_weights(ws, subject, feature_key)
    return np.asarray(embedder.image_features(list(images)), np.float32) @ W.T + b


def fit_encoders(ws: Workspace, subjects=None, device: str = "cpu", cv: str = "gcv", only_missing: bool = False,
                 progress: ProgressFn = None) -> list[dict]:
    """Embed the stimuli with the configured embedder (cached) and fit an encoder per subject.

    Parameters
    ----------
    subjects : list of str, optional
        Default: every subject of the workspace.
    cv : {"gcv", "loo"}
        How each voxel's regularisation is chosen (see :func:`backend.encoders.ridge.fit_ridge_cv`).
    only_missing : bool
        Skip subjects that already have an encoder on these features.

    Returns
    -------
    list of dict
        One summary per fitted subject (see :func:`fit_encoder`).
    """
    from ..models import load_role, model_config
    from .features import caption_features, stimulus_features

    names = [require_subject(ws, s) for s in subjects] if subjects else all_subjects(ws)  # before any work
    cfg = model_config()
    emb = load_role("embedder", device, cfg)
    feats, key = stimulus_features(ws, emb, cfg["embedder"]["path"], device=device, progress=progress)
    caption_features(ws, emb, key, progress=progress)  # what concept maps match a text against
    done = {s for s in names if only_missing and current_encoder(ws, s, key) is not None}
    return [fit_encoder(ws, s, feats, key, emb.model_id, cv=cv, device=device, progress=progress)
            for s in names if s not in done]
