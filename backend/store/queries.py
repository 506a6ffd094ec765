"""The questions every part of VoxelScope asks the workspace, each answered in one place.

Pages, the command line and the methods call these instead of writing their own SQL, so that
"the current encoder of a subject" or "the stimulus order" means the same thing everywhere.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import NotFoundError
from .workspace import Workspace, one_connection

__all__ = ["subjects", "default_subject", "require_subject", "stimulus_ids", "current_encoder", "has_encoder",
           "encoding_key", "subject_encoders",
           "voxel_table", "feature_set_model", "voxel_at"]


def subjects(ws: Workspace) -> list[str]:
    """Subject names of the workspace, sorted."""
    return ws.query("SELECT subject FROM subjects ORDER BY subject").subject.tolist()


def default_subject(ws: Workspace) -> str:
    """The first subject (what commands use when none is named)."""
    subs = subjects(ws)
    if not subs:
        raise NotFoundError(f"workspace {ws.path} has no subjects (build the demo world or import a dataset)")
    return subs[0]


def require_subject(ws: Workspace, subject: str) -> str:
    """``subject`` if the workspace has it; otherwise a :class:`NotFoundError` that lists the subjects."""
    subs = subjects(ws)
    if subject not in subs:
        raise NotFoundError(f"subject {subject!r} is not in workspace {ws.path} "
                            f"(subjects: {', '.join(subs) or 'none'})")
    return subject


def stimulus_ids(ws: Workspace) -> np.ndarray:
    """(n_stimuli,) every stim_id in ascending order: the row order of every per-stimulus array."""
    return ws.query("SELECT stim_id FROM stimuli ORDER BY stim_id").stim_id.to_numpy()


def current_encoder(ws: Workspace, subject: str, feature_key: str | None = None,
                    method: str | None = None) -> dict | None:
    """The subject's encoder as a dict of its ``encoders`` row (plus ``encoding_key``, its rows in
    ``voxel_encoding``); None if it has none.

    A subject can have a ridge encoder and an in-context one (``method``); without ``method`` the one fitted on
    the most images is used (then the newest), so a subject with only an in-context encoder uses that one."""
    df = ws.query("SELECT * FROM encoders WHERE subject = ?", [subject])
    if "method" not in df:  # a workspace written before in-context encoders
        df["method"] = "ridge"
    if feature_key:
        df = df[df.feature_key == feature_key]
    if method:
        df = df[df.method == method]
    if df.empty:
        return None
    enc = df.sort_values(["n_train", "run_id"], ascending=False).iloc[0].to_dict()
    enc["encoding_key"] = encoding_key(enc["method"], enc["feature_key"])
    return enc


def encoding_key(method: str, feature_key: str) -> str:
    """The ``voxel_encoding.feature_key`` under which an encoder's test accuracy is stored."""
    return feature_key if method == "ridge" else f"{method}:{feature_key}"


def subject_encoders(ws: Workspace, subject: str) -> pd.DataFrame:
    """Every encoder of ``subject``: method, feature_key, n_train (images it was made from), run_id, default
    (the one :func:`current_encoder` picks without a method); the default first."""
    df = ws.query("SELECT * FROM encoders WHERE subject = ?", [subject])
    if "method" not in df:
        df["method"] = "ridge"
    df = df.sort_values(["n_train", "run_id"], ascending=False).reset_index(drop=True)
    df["default"] = df.index == 0
    return df[["method", "feature_key", "n_train", "run_id", "model_id", "default"]]


def has_encoder(ws: Workspace, subject: str) -> bool:
    """Whether ``subject`` has a fitted encoder."""
    return current_encoder(ws, subject) is not None


@one_connection
def voxel_table(ws: Workspace, subject: str, method: str | None = None) -> pd.DataFrame:
    """The subject's voxels, one row per voxel in voxel order.

    Returns
    -------
    DataFrame
        ``voxel, hemi, vertex, roi, ncsnr, noise_ceiling, noise_ceiling_test`` and, from the current
        encoder (its ``method`` one if given; NaN without one), ``r_test, r2_test, r2_nc``.
    """
    vox = ws.query("SELECT voxel, hemi, vertex, roi, ncsnr, noise_ceiling, noise_ceiling_test FROM voxels "
                   "WHERE subject = ? ORDER BY voxel", [subject])
    if vox.empty:
        require_subject(ws, subject)
    enc = current_encoder(ws, subject, method=method)
    acc = ws.query("SELECT voxel, r_test, r2_test, r2_nc FROM voxel_encoding WHERE subject = ? AND feature_key = ?",
                   [subject, enc["encoding_key"] if enc else ""])
    return vox.merge(acc, on="voxel", how="left")


def feature_set_model(ws: Workspace, feature_key: str) -> str | None:
    """The model id of the embedder that made feature set ``feature_key`` (None if unknown)."""
    df = ws.query("SELECT model_id FROM feature_sets WHERE key = ?", [feature_key])
    return None if df.empty else str(df.model_id.iloc[0])


def voxel_at(ws: Workspace, subject: str, hemi: str, vertex: int) -> int | None:
    """The subject's voxel at ``hemi`` vertex ``vertex``, or None when the vertex holds none."""
    df = ws.query("SELECT voxel FROM voxels WHERE subject = ? AND hemi = ? AND vertex = ?",
                  [subject, hemi, int(vertex)])
    return None if df.empty else int(df.voxel.iloc[0])
