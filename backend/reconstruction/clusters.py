"""Brain-IT's voxel clusters, shared across subjects.

Each voxel is described by what it encodes, in spaces every subject shares: its ridge encoder's weights in the
embedder's space (semantic tuning) and the weights of a ridge from the stimuli's local contrast energy on an 8 x 8
grid (where in the visual field it responds: a pRF-like profile computed from data, not from the demo's truth). The
two parts are unit-normalised, concatenated with equal weight and L2-normalised; a Gaussian mixture (scikit-learn,
diagonal covariances) of K components is fitted over the voxels of all subjects together, so cluster k means the
same function in every subject. The paper uses K = 128 for ~40,000 voxels per subject; the demo default K = 32 keeps
about the paper's number of voxels per cluster per subject (~200 of the demo's ~6,400 voxels) so that a cluster token
averages enough voxels to be reliable with one hour of data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets.reading import subject_betas
from ..encoders.features import contrast_energy_matrix
from ..encoders.ridge import fit_ridge_cv
from ..encoders.voxelwise import encoder_weights
from ..errors import InvalidInputError, NotFoundError
from ..store import ProgressFn, Workspace, report, require_subject
from ..store import subjects as all_subjects

__all__ = ["voxel_vectors", "mixture", "fit_clusters", "voxel_clusters", "DEFAULT_K", "SPATIAL_GRID"]

DEFAULT_K = 32
SPATIAL_GRID = 8


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)


def voxel_vectors(ws: Workspace, subject: str, n_train: int | None = None, device: str = "cpu") -> np.ndarray:
    """(n_voxels, dim + 64) unit vectors: [semantic encoder weights | contrast-energy (visual field) weights].

    ``n_train``: use only the subject's first ``n_train`` training images (the "1 hour of data" regime: the
    semantic weights are then refitted on those images instead of read from the stored encoder)."""
    from ..encoders.features import stored_features
    from ..store import stimulus_ids

    W, _, key = encoder_weights(ws, subject)
    betas, rows = subject_betas(ws, subject)
    train = np.flatnonzero((rows.split == "train").to_numpy())
    if n_train is not None:
        train = train[:n_train]
        feats = stored_features(ws, key)[np.searchsorted(stimulus_ids(ws), rows.stim_id.to_numpy()[train])]
        W = fit_ridge_cv(np.asarray(feats, np.float32), np.asarray(betas, np.float32)[train], device=device).coef.T
    ce = contrast_energy_matrix(ws, rows.stim_id.to_numpy()[train], grid=SPATIAL_GRID).reshape(len(train), -1)
    ce = (ce - ce.mean(0)) / np.maximum(ce.std(0), 1e-6)
    spatial = fit_ridge_cv(ce, np.asarray(betas, np.float32)[train], device=device).coef.T  # (n_voxels, 64)
    return np.ascontiguousarray(_unit(np.hstack([_unit(W), _unit(spatial)])), np.float32)


def mixture(vectors: list[np.ndarray], k: int, seed: int = 0):
    """The Gaussian mixture over the stacked voxel vectors, and each voxel's (cluster, probability) per subject."""
    from sklearn.mixture import GaussianMixture

    X = np.vstack(vectors)
    if k < 2:
        raise InvalidInputError(f"the number of clusters must be at least 2, got {k}")
    if k > len(X):
        raise InvalidInputError(f"{k} clusters for {len(X)} voxels: choose at most {len(X)}")
    gmm = GaussianMixture(k, covariance_type="diag", random_state=seed, max_iter=200, reg_covar=1e-5).fit(X)
    out = []
    for v in vectors:
        p = gmm.predict_proba(v)
        out.append((p.argmax(1).astype(np.int32), p.max(1).astype(np.float32)))
    return gmm, out


def fit_clusters(ws: Workspace, k: int = DEFAULT_K, subjects=None, seed: int = 0, device: str = "cpu",
                 progress: ProgressFn = None) -> str:
    """Fit the shared Gaussian mixture over all ``subjects``' voxel vectors and store each voxel's cluster and its
    probability (table ``voxel_clusters``). Returns the run id."""
    subjects = [require_subject(ws, s) for s in (subjects or all_subjects(ws))]
    vecs = []
    for i, s in enumerate(subjects):
        report(progress, "Voxel vectors (encoder and visual-field weights)", i, len(subjects))
        vecs.append(voxel_vectors(ws, s, device=device))
    report(progress, "Voxel vectors (encoder and visual-field weights)", len(subjects), len(subjects))
    n = sum(len(v) for v in vecs)
    report(progress, f"Gaussian mixture of {k} components over {n:,} voxels", 0, 1)
    gmm, assigned = mixture(vecs, k, seed)
    frames = [pd.DataFrame({"subject": s, "voxel": np.arange(len(c), dtype=np.int32), "cluster": c, "prob": p})
              for s, (c, p) in zip(subjects, assigned)]
    with ws.writer() as tx:
        run = tx.new_run("brainit-clusters", {"k": k, "subjects": subjects, "covariance": "diag",
                                              "vector": "unit(encoder weights) | unit(contrast-energy 8x8 weights)",
                                              "converged": bool(gmm.converged_)}, seed=seed)
        tx.sql("DELETE FROM voxel_clusters")
        for f in frames:
            f.insert(4, "run_id", run)
            tx.insert_df("voxel_clusters", f)
    report(progress, f"Gaussian mixture of {k} components over {n:,} voxels", 1, 1)
    return run


def voxel_clusters(ws: Workspace, subject: str) -> pd.DataFrame:
    """The stored clusters of ``subject``'s voxels: voxel, cluster, prob, run_id (voxel order)."""
    subject = require_subject(ws, subject)
    df = ws.query("SELECT voxel, cluster, prob, run_id FROM voxel_clusters WHERE subject = ? ORDER BY voxel",
                  [subject]) if ws.has_table("voxel_clusters") else pd.DataFrame()
    if df.empty:
        raise NotFoundError(f"no voxel clusters for {subject} (run `python -m backend reconstruction clusters`)")
    return df
