"""Ridge regression with one regularisation per target, chosen by cross-validation, from one SVD of X.

Shapes follow himalaya/scikit-learn: X (n_samples, n_features), Y (n_samples, n_targets).

With X centred and X = U S V^T (thin SVD), the ridge fit for alpha is ``W = V diag(s / (s^2 + alpha)) U^T Y``
and its in-sample prediction ``U diag(f) U^T Y`` with ``f = s^2 / (s^2 + alpha)``. So ``Z = U^T Y`` is
computed once and serves every alpha and every target:

* ``cv="loo"``: exact leave-one-out error, ``e_i = r_i / (1 - h_ii)`` with ``h_ii = 1/n + sum_k U_ik^2 f_k``
  (the same criterion as scikit-learn's ``RidgeCV(alpha_per_target=True)``), one n x k x targets product per
  alpha, targets in chunks;
* ``cv="gcv"``: generalised cross-validation, ``||r||^2 / (1 - tr(H)/n)^2`` where
  ``||r||^2 = ||Y||^2 - sum_k (2 f_k - f_k^2) Z_k^2``: k x targets work per alpha, no product with U at all.

Runs in float32 on ``device`` (torch), so the same code uses a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..store.progress import ProgressFn, report

__all__ = ["RidgeFit", "fit_ridge_cv", "ridge_factors", "ridge_chunk", "pearson_columns", "r2_columns", "DEFAULT_ALPHAS"]

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 15))


@dataclass
class RidgeFit:
    """coef (n_features, n_targets), intercept (n_targets,), alpha (n_targets,), cv_error (n_targets,)."""
    coef: np.ndarray
    intercept: np.ndarray
    alpha: np.ndarray
    cv_error: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, np.float32) @ self.coef + self.intercept


def _t(a, device):
    import torch

    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)


def ridge_factors(X, alphas=DEFAULT_ALPHAS, cv: str = "gcv") -> dict:
    """What every target's fit shares: the thin SVD of the centred ``X`` and the per-alpha shrinkage (NumPy arrays,
    so an executor can ship them once to every worker)."""
    import torch  # here, not at import: pages that only read stored results never load torch

    if cv not in ("loo", "gcv"):
        raise InvalidInputError(f"cv must be 'loo' or 'gcv', got {cv!r}")
    X = np.asarray(X, np.float32)
    if X.ndim != 2:
        raise InvalidInputError(f"X {X.shape} must be (n_samples, n_features)")
    if not np.isfinite(X).all():
        raise InvalidInputError("X and Y must be finite (no NaN/inf)")
    x_mean = X.mean(0)
    U, s, Vt = torch.linalg.svd(torch.as_tensor(X - x_mean), full_matrices=False)  # U (n, k), s (k,), Vt (k, p)
    return {"U": U.numpy(), "s": s.numpy(), "Vt": Vt.numpy(), "x_mean": x_mean, "cv": cv,
            "alphas": np.asarray(sorted(alphas), np.float32)}


def ridge_chunk(factors: dict, Y: np.ndarray, device: str = "cpu", first: int = 0):
    """The ridge fit of a block of targets ``Y`` (n_samples, t) from :func:`ridge_factors`: (coef (p, t), intercept
    (t,), alpha (t,), cv error (t,)). The task an executor maps over blocks of voxels; ``first`` (the block's first
    target) only names it in errors."""
    import torch

    Y = np.asarray(Y, np.float32)
    if not np.isfinite(Y).all():
        raise InvalidInputError(f"X and Y must be finite (no NaN/inf): Y has NaN/inf in targets {first}-"
                                f"{first + Y.shape[1] - 1}")
    U, s, Vt = (_t(factors[k], device) for k in ("U", "s", "Vt"))
    alphas_t = _t(factors["alphas"], device)
    n = U.shape[0]
    s2 = s * s
    F = s2[None, :] / (s2[None, :] + alphas_t[:, None])  # (n_alphas, k)
    Yc = _t(Y, device)
    y_mean = Yc.mean(0)
    Yc = Yc - y_mean
    Z = U.T @ Yc  # (k, t)
    if factors["cv"] == "loo":
        H = 1.0 / n + (U * U) @ F.T  # (n, n_alphas) leverage per sample and alpha
        denom = (1 - H).clamp_min(1e-6)
        errs = torch.empty((len(alphas_t), Y.shape[1]), device=device)
        for i in range(len(alphas_t)):
            R = Yc - U @ (F[i][:, None] * Z)
            errs[i] = ((R / denom[:, i:i + 1]) ** 2).mean(0)
    else:
        dof = F.sum(1) + 1.0  # trace of the hat matrix, with the intercept
        gcv_scale = 1.0 / (n * (1 - dof / n).clamp_min(1e-6) ** 2)
        yy = (Yc * Yc).sum(0)  # (t,)
        rss = yy[None, :] - (2 * F - F * F) @ (Z * Z)  # (n_alphas, t)
        errs = rss.clamp_min(0) * gcv_scale[:, None]
    best = errs.argmin(0)
    g = s[None, :] / (s2[None, :] + alphas_t[best][:, None])  # (t, k)
    W = Vt.T @ (g.T * Z)  # (p, t)
    intercept = y_mean - _t(factors["x_mean"], device) @ W
    return (W.cpu().numpy(), intercept.cpu().numpy(), alphas_t[best].cpu().numpy(),
            errs.gather(0, best[None]).squeeze(0).cpu().numpy())


def fit_ridge_cv(X, Y, alphas=DEFAULT_ALPHAS, cv: str = "gcv", device: str = "cpu", chunk: int = 4096,
                 progress: ProgressFn = None, rows: np.ndarray | None = None, executor=None) -> RidgeFit:
    """Fit ridge per target with its own alpha from ``alphas`` chosen by ``cv`` ('loo' or 'gcv').

    ``Y`` may be memory-mapped and larger than memory: it is read ``chunk`` targets at a time, and only its
    ``rows`` (an index of the samples; all when None), so a full-size subject's betas are never loaded whole.
    ``executor`` (:mod:`backend.executor`; default local): where the blocks of targets are fitted; Ray spreads them
    over a cluster, each block a task, with the same result."""
    from ..executor import get_executor, gpus_for

    X = np.asarray(X, np.float32)
    if not isinstance(Y, np.ndarray):
        Y = np.asarray(Y, np.float32)
    n_rows = Y.shape[0] if rows is None else len(rows)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != n_rows:
        raise InvalidInputError(f"X {X.shape} and Y {(n_rows,) + Y.shape[1:]} must be (n_samples, n_features) and "
                                "(n_samples, n_targets)")
    ex = get_executor(executor)
    factors = ridge_factors(X, alphas, cv)
    ref = ex.put(factors)
    n_targets = Y.shape[1]
    starts = range(0, n_targets, chunk)
    tasks = ((ref, np.asarray(Y[:, a:a + chunk] if rows is None else Y[rows, a:a + chunk], np.float32), device, a)
             for a in starts)  # a generator: each block is read only when its task is submitted
    coef = np.empty((X.shape[1], n_targets), np.float32)
    intercept, best_alpha, best_err = (np.empty(n_targets, np.float32) for _ in range(3))
    results = ex.map(ridge_chunk, tasks, num_gpus=gpus_for(device))
    for a, (W, b, alpha, err) in zip(starts, results):
        e = a + W.shape[1]
        coef[:, a:e], intercept[a:e], best_alpha[a:e], best_err[a:e] = W, b, alpha, err
        report(progress, "Fitting ridge", e, n_targets)
    return RidgeFit(coef, intercept, best_alpha, best_err)


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of a and b (n_samples, n_targets)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / den, np.nan).astype(np.float32)


def r2_columns(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column (1 - SS_res / SS_tot, test-set mean)."""
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan).astype(np.float32)
