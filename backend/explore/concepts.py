"""Concept maps: type a concept, see where on the cortex voxels are predicted to prefer it.

The score of a voxel is its encoder's predicted response to the concept's text embedding minus its
predicted response to an average caption of the dataset (z units of the voxel's response).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..encoders.voxelwise import encoder_weights
from ..errors import InvalidInputError
from ..store import Workspace, feature_set_model, voxel_table

__all__ = ["concept_scores", "caption_baseline", "top_voxels"]


def caption_baseline(ws: Workspace, embedder, n: int = 1000) -> np.ndarray:
    """Mean unit text feature of ``n`` of the dataset's captions (evenly spaced over the stimuli): the
    reference a concept is contrasted with, so the map shows what the concept adds over an average caption
    (it also removes the offset between text and image embeddings that every text query shares)."""
    caps = ws.query("SELECT caption FROM captions WHERE k = 0 ORDER BY stim_id").caption.tolist()
    if not caps:
        return np.zeros(embedder.dim, np.float32)
    pick = np.linspace(0, len(caps) - 1, min(n, len(caps))).round().astype(int)
    return embedder.text_features([caps[i] for i in pick]).mean(0).astype(np.float32)


def concept_scores(ws: Workspace, subject: str, text: str, embedder, baseline: np.ndarray | None = None) -> np.ndarray:
    """Per voxel: the encoder's predicted response to the concept minus its predicted response to an average
    caption, in z units of the voxel's response: W_v . (t - mean caption feature), t = the embedder's unit
    text features of ``text``."""
    text = (text or "").strip()
    if not text:
        raise InvalidInputError("the concept is empty: type a word or a phrase, e.g. 'a smiling face'")
    W, _, key = encoder_weights(ws, subject)
    model_id = feature_set_model(ws, key)
    if model_id is not None and model_id != embedder.model_id:
        raise InvalidInputError(f"the encoder of {subject} was fitted on features of {model_id}, "
                                f"but the loaded embedder is {embedder.model_id}")
    t = embedder.text_features([text])[0].astype(np.float32)
    if t.shape[0] != W.shape[1]:
        raise InvalidInputError(f"text features have {t.shape[0]} dimensions, the encoder of {subject} {W.shape[1]}")
    base = caption_baseline(ws, embedder) if baseline is None else baseline
    return W @ (t / max(np.linalg.norm(t), 1e-8) - base)


def top_voxels(ws: Workspace, subject: str, scores: np.ndarray, n: int = 15) -> pd.DataFrame:
    """The ``n`` voxels with the highest ``scores`` (one per voxel): voxel, hemi, vertex, roi, score,
    noise ceiling and R^2 / noise ceiling."""
    vox = voxel_table(ws, subject)
    vox["score"] = scores
    return vox.sort_values("score", ascending=False).head(n)[["voxel", "hemi", "vertex", "roi", "score",
                                                               "noise_ceiling", "r2_nc"]]
