"""Voxel-wise encoders: ridge from unit-normalised image embeddings to each voxel's betas.

Per subject: regularisation chosen per voxel by cross-validation on the training images
(:mod:`backend.ridge`), evaluated on the shared test images (Pearson r, R^2 and R^2 normalised by
the NSD noise ceiling of the test split), everything stored in the workspace. The weights live in
embedding space: ``encoder_weights`` gives (n_voxels, dim) per subject, the object BrainSCUBA,
BrainDiVE and LaVCa work with.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .data import subject_betas
from .progress import ProgressFn, report
from .ridge import DEFAULT_ALPHAS, fit_ridge_cv, pearson_columns, r2_columns
from .workspace import Workspace


def design_matrices(ws: Workspace, subject: str, features: np.ndarray):
    """(X_train, Y_train, X_test, Y_test, rows) for a subject, features indexed in stim_id order."""
    betas, rows = subject_betas(ws, subject)
    all_ids = ws.query("SELECT stim_id FROM stimuli ORDER BY stim_id").stim_id.to_numpy()
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
        raise ValueError(f"{subject} has no test images (split = 'test' in subject_stimuli)")
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
    """(W (n_voxels, dim), intercept (n_voxels,), feature_key) of a stored encoder (the newest if no key)."""
    q = "SELECT feature_key, weights_array FROM encoders WHERE subject = ?" + (" AND feature_key = ?" if feature_key
                                                                                 else "")
    df = ws.query(q + " ORDER BY run_id DESC", [subject] + ([feature_key] if feature_key else []))
    if df.empty:
        raise KeyError(f"no encoder for {subject} in workspace {ws.path} (run `python -m backend encoder fit`)")
    arr = np.asarray(ws.array(df.weights_array.iloc[0]))
    return arr[:-1].T.copy(), arr[-1].copy(), df.feature_key.iloc[0]


def fit_encoders(ws: Workspace, subjects=None, device: str = "cpu", cv: str = "gcv", only_missing: bool = False,
                 progress: ProgressFn = None) -> list[dict]:
    """Embed the stimuli with the configured embedder (cached) and fit an encoder per subject.
    ``only_missing``: skip subjects that already have an encoder on these features."""
    from .features import stimulus_features
    from .models import load_role, model_config

    cfg = model_config()
    emb = load_role("embedder", device, cfg)
    subjects = subjects or ws.query("SELECT subject FROM subjects ORDER BY subject").subject.tolist()
    feats, key = stimulus_features(ws, emb, cfg["embedder"]["path"], device=device, progress=progress)
    done = set(ws.query("SELECT subject FROM encoders WHERE feature_key = ?", [key]).subject) if only_missing else set()
    return [fit_encoder(ws, s, feats, key, emb.model_id, cv=cv, device=device, progress=progress)
            for s in subjects if s not in done]
