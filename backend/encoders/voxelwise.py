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

__all__ = ["fit_encoders", "fit_encoder", "store_encoder", "encoder_weights", "design_matrices", "predict_images"]


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
                alphas=DEFAULT_ALPHAS, cv: str = "gcv", device: str = "cpu", progress: ProgressFn = None,
                executor=None) -> dict:
    """Fit, evaluate and store the encoder of ``subject``. Returns a summary with per-ROI medians.

    The betas stay memory-mapped: the ridge reads them a chunk of voxels at a time (any subject size), each chunk a
    task of ``executor`` (:mod:`backend.executor`: local by default, or Ray across a cluster)."""
    betas, rows = subject_betas(ws, subject)
    pos = np.searchsorted(stimulus_ids(ws), rows.stim_id.to_numpy())
    X = np.asarray(features, np.float32)[pos]
    train = np.flatnonzero((rows.split == "train").to_numpy())
    test = np.flatnonzero((rows.split != "train").to_numpy())
    if len(test) == 0:
        raise InvalidInputError(f"{subject} has no test images (split = 'test' in subject_stimuli)")
    Xtr, Xte = X[train], X[test]
    fit = fit_ridge_cv(Xtr, betas, alphas=alphas, cv=cv, device=device, progress=progress, rows=train,
                       executor=executor)
    Yte = np.asarray(betas[test], np.float32)
    return store_encoder(ws, subject, "ridge", fit.coef.T, fit.intercept, feature_key, model_id, Xte, Yte,
                         n_train=len(Xtr), cv=cv, alpha=fit.alpha, progress=progress,
                         parameters={"cv": cv, "alphas": list(map(float, alphas)),
                                     "targets": "betas z-scored per session, repeats averaged"})


def store_encoder(ws: Workspace, subject: str, method: str, W: np.ndarray, b: np.ndarray, feature_key: str,
                  model_id: str, Xte: np.ndarray, Yte: np.ndarray, n_train: int, cv: str = "",
                  alpha: np.ndarray | None = None, parameters: dict | None = None, seed: int | None = None,
                  model_ids: dict | None = None, progress: ProgressFn = None) -> dict:
    """Evaluate a subject's linear encoder (``W`` (n_voxels, dim), ``b``) on its test images and store it as the
    subject's ``method`` encoder on ``feature_key`` (replacing the previous one of that method), with its run.

    Returns a summary: run, n_train, n_test, median test r, median noise-ceiling-normalised R^2 per ROI."""
    from ..store import encoding_key

    n_vox = W.shape[0]
    r, r2 = np.empty(n_vox, np.float32), np.empty(n_vox, np.float32)
    for a in range(0, n_vox, 8192):  # a block of voxels at a time: bounded memory for any subject size
        pred = Xte @ W[a:a + 8192].T + b[a:a + 8192]
        r[a:a + 8192] = pearson_columns(Yte[:, a:a + 8192], pred)
        r2[a:a + 8192] = r2_columns(Yte[:, a:a + 8192], pred)
    vox = ws.query("SELECT voxel, roi, noise_ceiling_test FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
    nc = vox.noise_ceiling_test.to_numpy(np.float32) / 100
    with np.errstate(invalid="ignore", divide="ignore"):
        r2_nc = np.where(nc > 0, r2 / nc, np.nan).astype(np.float32)
    report(progress, "Storing encoder", 0, 1)
    key = encoding_key(method, feature_key)
    with ws.writer() as tx:
        run = tx.new_run(f"encoder-{method}", {"subject": subject, "features": feature_key, "n_train": int(n_train),
                                               "n_test": int(len(Xte)), **(parameters or {})},
                         seed=seed, model_ids={"embedder": model_id, **(model_ids or {})})
        name = f"encoder_{subject}_{key}".replace(":", "_")
        tx.put_array(name, np.vstack([np.asarray(W, np.float32).T, np.asarray(b, np.float32)[None]]), run,
                     f"(dim + 1, n_voxels): {method} encoder weights in embedding space, last row = intercept")
        tx.sql("DELETE FROM encoders WHERE subject = ? AND feature_key = ? AND method = ?", [subject, feature_key, method])
        tx.sql("INSERT INTO encoders (subject, feature_key, model_id, run_id, weights_array, cv, n_train, n_test, method) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [subject, feature_key, model_id, run, name, cv, int(n_train), int(len(Xte)), method])
        tx.sql("DELETE FROM voxel_encoding WHERE subject = ? AND feature_key = ?", [subject, key])
        tx.insert_df("voxel_encoding", pd.DataFrame({
            "subject": subject, "feature_key": key, "voxel": vox.voxel,
            "alpha": np.asarray(alpha, np.float32) if alpha is not None else np.float32(np.nan), "r_test": r,
            "r2_test": r2, "r2_nc": r2_nc}))
    report(progress, "Storing encoder", 1, 1)
    df = pd.DataFrame({"roi": vox.roi.fillna(""), "r2_nc": r2_nc, "r": r})
    return {"subject": subject, "method": method, "run": run, "n_train": int(n_train), "n_test": int(len(Xte)),
            "median_r": float(np.nanmedian(r)), "mean_r2": float(np.nanmean(r2)),
            "median_r2_nc_by_roi": df.groupby("roi").r2_nc.median().to_dict()}


def encoder_weights(ws: Workspace, subject: str, feature_key: str | None = None, method: str | None = None):
    """A stored encoder in embedding space (the subject's current one when ``feature_key`` and ``method`` are
    None; ``method`` 'ridge' or 'in-context' picks one of a subject's encoders).

    Returns
    -------
    W : ndarray, shape (n_voxels, dim)
    intercept : ndarray, shape (n_voxels,)
    feature_key : str
    """
    enc = current_encoder(ws, subject, feature_key, method)
    if enc is None:
        what = f"{method} encoder" if method else "encoder"
        raise NotFoundError(f"no {what} for {subject} in workspace {ws.path} (run `python -m backend encoder "
                            f"{'in-context' if method == 'in-context' else 'fit'}`)")
    arr = np.asarray(ws.array(enc["weights_array"]))
    return arr[:-1].T.copy(), arr[-1].copy(), enc["feature_key"]


def predict_images(ws: Workspace, subject: str, images, embedder, feature_key: str | None = None,
                   method: str | None = None) -> np.ndarray:
    """The subject's encoder's (its default one, or its ``method`` one) predicted response of every voxel to
    ``images`` (RGB uint8 arrays): (n_images, n_voxels), in the units of the betas it was fitted on."""
    W, b, _ = encoder_weights(ws, subject, feature_key, method)
    return np.asarray(embedder.image_features(list(images)), np.float32) @ W.T + b


def fit_encoders(ws: Workspace, subjects=None, device: str = "cpu", cv: str = "gcv", only_missing: bool = False,
                 progress: ProgressFn = None, executor=None) -> list[dict]:
    """Embed the stimuli with the configured embedder (cached) and fit an encoder per subject.

    Parameters
    ----------
    subjects : list of str, optional
        Default: every subject of the workspace.
    cv : {"gcv", "loo"}
        How each voxel's regularisation is chosen (see :func:`backend.encoders.ridge.fit_ridge_cv`).
    only_missing : bool
        Skip subjects that already have an encoder on these features.
    executor : str or Executor, optional
        Where chunks of stimuli are embedded and blocks of voxels are fitted (``local``, the default, or ``ray``);
        stored here either way.

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
    feats, key = stimulus_features(ws, emb, cfg["embedder"]["path"], device=device, progress=progress,
                                   executor=executor)
    caption_features(ws, emb, key, progress=progress)  # what concept maps match a text against
    done = {s for s in names if only_missing and current_encoder(ws, s, key) is not None}
    return [fit_encoder(ws, s, feats, key, emb.model_id, cv=cv, device=device, progress=progress, executor=executor)
            for s in names if s not in done]
