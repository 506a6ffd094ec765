"""Concept maps: type a concept, see where on the cortex voxels are predicted to prefer it.

Four definitions of a voxel's score for a concept (text ``t``, the embedder's unit text features; ``w_v`` the
voxel's encoder weights in embedding space; ``c`` the mean of the dataset's caption features; ``x`` the stimuli's
image features, mean ``x̄``, covariance ``Σ``; ``σ_v = sqrt(w_vᵀ Σ w_v)`` the spread of the voxel's predicted
responses over the dataset's images; ``m_K`` the mean image features of the ``K`` = 100 stimuli that match the
concept best):

``captions`` (the default)
    ``w_v · (m_K - x̄)``, the stimuli matched by their *captions* (text against text, in the text tower where the
    words are): the voxel's predicted response to the images that show the concept, relative to the average
    image, in the units of its betas (z-scored per session). Where the dataset has no captions the images are
    matched to the text directly.
``images``
    ``w_v · (m_K - x̄) / σ_v``, the stimuli matched by their *images* (text against image features): the same
    response in z units of the voxel's predicted responses. The demo embedder's image tower places rendered words
    poorly ("a word" matched 60% word images), and dividing by σ_v lifts voxels whose predictions barely vary
    (noise after regularisation): on the demo world "a word" put 0-25% of its top 20 in word ROIs.
``calibrated``
    ``w_v · (t - c) / σ_v``: the ``weights`` contrast in units of the voxel's predicted-response spread (a
    selectivity comparable across voxels); it too lifts voxels the encoder barely predicts (on the tests' tiny
    world 2 of the top 10 for "a face" were face voxels).
``weights``
    ``w_v · (t - c)``: the encoder's predicted response to the concept's *text* minus that to an average caption
    (the map before issue 15). Text and image features sit apart in embedding space, and for words the text
    direction missed: the word ROIs' voxels scored below average for "a word".

``concept_scores(..., definition=)`` computes any of them; :data:`DEFINITIONS` describes them for a page.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..encoders.voxelwise import encoder_weights
from ..errors import InvalidInputError
from ..store import Workspace, feature_set_model, voxel_table

__all__ = ["concept_scores", "top_voxels", "DEFINITIONS", "DEFAULT_DEFINITION", "UNITS",
           "concept_context", "concept_contrast", "winner_map", "parse_concepts", "concept_map"]

DEFINITIONS = {
    "captions": "predicted response to the 100 stimuli whose captions match the concept best, vs the average "
                "image (z of the voxel's betas)",
    "images": "the same for the 100 stimuli whose images match the concept best, in z of the voxel's predicted "
              "responses",
    "calibrated": "the concept's text vs an average caption, in units of the voxel's predicted-response spread",
    "weights": "the concept's text vs an average caption, in the voxel's response units (z of its betas)",
}
UNITS = {"captions": "predicted response vs the average image, z", "images": "z of the predicted responses",
         "calibrated": "z of the predicted responses", "weights": "predicted response vs an average caption, z"}
DEFAULT_DEFINITION = "captions"
N_MATCHING_IMAGES = 100


def concept_context(ws: Workspace, subject: str, embedder, encoder: str | None = None) -> dict:
    """What every concept map of ``subject`` needs, computed once (pass it to :func:`concept_scores` to map many
    concepts quickly): the encoder (W, feature key; the subject's default one, or its ``encoder`` method: 'ridge',
    'in-context'), the mean caption feature, the stimuli's image features, their mean, each voxel's
    predicted-response spread σ_v, and the stimuli's caption features (None without captions)."""
    from ..encoders.features import caption_features, stored_features

    W, _, key = encoder_weights(ws, subject, method=encoder)
    model_id = feature_set_model(ws, key)
    if model_id is not None and model_id != embedder.model_id:
        raise InvalidInputError(f"the encoder of {subject} was fitted on features of {model_id}, "
                                f"but the loaded embedder is {embedder.model_id}")
    X = np.asarray(stored_features(ws, key), dtype=np.float32)
    mean = X.astype(np.float64).mean(0)
    cov = np.cov(X - mean, rowvar=False)
    sigma = np.sqrt(np.maximum(np.einsum("vd,de,ve->v", W, cov, W, optimize=True), 1e-12)).astype(np.float32)
    T = caption_features(ws, embedder, key, store=False)
    if T is None:
        baseline = np.zeros(W.shape[1], np.float32)
    else:  # the mean caption feature, from the captions' features already at hand (rows of zeros: no caption)
        T = np.asarray(T, np.float32)
        baseline = T[np.abs(T).sum(1) > 0].mean(0)
    return {"subject": subject, "encoder": encoder, "key": key, "W": W, "X": X, "mean": mean.astype(np.float32), "sigma": sigma,
            "T": T, "baseline": baseline}


def concept_scores(ws: Workspace, subject: str, text: str, embedder, definition: str = DEFAULT_DEFINITION,
                   context: dict | None = None, n_images: int = N_MATCHING_IMAGES,
                   encoder: str | None = None) -> np.ndarray:
    """Per voxel: how much the voxel is predicted to prefer the concept ``text`` (see the module's docstring for
    the ``definition`` choices). ``context``: :func:`concept_context` of the subject and ``encoder`` (computed
    when not given)."""
    if definition not in DEFINITIONS:
        raise InvalidInputError(f"unknown concept-map definition {definition!r}: choose one of {sorted(DEFINITIONS)}")
    text = (text or "").strip()
    if not text:
        raise InvalidInputError("the concept is empty: type a word or a phrase, e.g. 'a smiling face'")
    same = context is not None and context["subject"] == subject and context.get("encoder") == encoder
    c = context if same else concept_context(ws, subject, embedder, encoder)
    W = c["W"]
    t = embedder.text_features([text])[0].astype(np.float32)
    if t.shape[0] != W.shape[1]:
        raise InvalidInputError(f"text features have {t.shape[0]} dimensions, the encoder of {subject} {W.shape[1]}")
    t /= max(float(np.linalg.norm(t)), 1e-8)
    if definition == "weights":
        return W @ (t - c["baseline"])
    if definition == "calibrated":
        return (W @ (t - c["baseline"])) / c["sigma"]
    X = c["X"]
    sim = (X if definition == "images" or c["T"] is None else c["T"]) @ t
    top = np.argpartition(-sim, min(n_images, len(X)) - 1)[:n_images]
    response = W @ (X[top].mean(0) - c["mean"])
    return response / c["sigma"] if definition == "images" else response


def concept_contrast(ws: Workspace, subject: str, first: str, second: str, embedder, **kw) -> np.ndarray:
    """"faces - places": the first concept's scores minus the second's (same definition)."""
    return concept_scores(ws, subject, first, embedder, **kw) - concept_scores(ws, subject, second, embedder, **kw)


def winner_map(ws: Workspace, subject: str, concepts: list[str], embedder, min_score: float = 0.0, **kw):
    """Several concepts at once: per voxel, the index of the concept with the highest score (-1 where no score
    reaches ``min_score``) and that score. Returns (winner (n_voxels,) int, best score (n_voxels,))."""
    concepts = [c.strip() for c in concepts if c and c.strip()]
    if len(concepts) < 2:
        raise InvalidInputError("a winner-take-all map needs at least two concepts, e.g. 'a face, a house'")
    if len(concepts) > 8:
        raise InvalidInputError(f"{len(concepts)} concepts: a winner-take-all map shows at most 8")
    S = np.stack([concept_scores(ws, subject, c, embedder, **kw) for c in concepts], 1)
    win = S.argmax(1)
    best = S.max(1)
    return np.where(best >= min_score, win, -1).astype(np.int32), best


_CONTRAST = re.compile(r"\s+-\s*|\s*-\s+")  # a minus with a space on at least one side ("well-lit" stays whole)


def parse_concepts(query: str) -> tuple[str, list[str]]:
    """What a concept box holds: ``("single", [text])``; ``"faces - places"`` -> ``("contrast", [a, b])`` (a
    difference of two concepts; " - " with spaces, so hyphenated words stay whole); ``"a face, a house, food"`` ->
    ``("winner", [...])`` (which concept wins at each voxel)."""
    q = (query or "").strip()
    if not q:
        raise InvalidInputError("the concept is empty: type a word or a phrase, e.g. 'a smiling face'")
    if "," in q:
        parts = [p.strip() for p in q.split(",")]
        if any(not p for p in parts):
            raise InvalidInputError(f"an empty concept in the list {q!r}: separate concepts with commas, e.g. "
                                    "'a face, a house, food'")
        if any(_CONTRAST.search(p) for p in parts):
            raise InvalidInputError(f"{q!r} mixes a list (commas) and a contrast (' - '): use one or the other")
        return "winner", parts
    if _CONTRAST.search(q):
        parts = [p.strip() for p in _CONTRAST.split(q)]
        if len(parts) != 2 or not all(parts):
            raise InvalidInputError(f"a contrast is two concepts, 'first - second' (e.g. 'a face - a house'), "
                                    f"got {q!r}")
        return "contrast", parts
    return "single", [q]


def concept_map(ws: Workspace, subject: str, query: str, embedder, **kw) -> dict:
    """A concept box's map: ``kind`` (single, contrast, winner), ``concepts``, and ``scores`` (one per voxel; for a
    winner-take-all map the winning score) plus, for ``winner``, ``winner`` (the index of the winning concept per
    voxel, -1 where no concept scores above 0)."""
    kind, concepts = parse_concepts(query)
    if kw.get("context") is None:  # once for every concept of the box
        kw["context"] = concept_context(ws, subject, embedder, kw.get("encoder"))
    if kind == "single":
        return {"kind": kind, "concepts": concepts, "scores": concept_scores(ws, subject, concepts[0], embedder, **kw)}
    if kind == "contrast":
        return {"kind": kind, "concepts": concepts, "scores": concept_contrast(ws, subject, *concepts, embedder, **kw)}
    win, best = winner_map(ws, subject, concepts, embedder, **kw)
    return {"kind": kind, "concepts": concepts, "scores": best, "winner": win}


def top_voxels(ws: Workspace, subject: str, scores: np.ndarray, n: int = 15, encoder: str | None = None
               ) -> pd.DataFrame:
    """The ``n`` voxels with the highest ``scores`` (one per voxel): voxel, hemi, vertex, roi, score,
    noise ceiling and R^2 / noise ceiling (of the ``encoder`` method's encoder; default: the subject's)."""
    vox = voxel_table(ws, subject, method=encoder)
    vox["score"] = scores
    return vox.sort_values("score", ascending=False).head(n)[["voxel", "hemi", "vertex", "roi", "score",
                                                               "noise_ceiling", "r2_nc"]]
