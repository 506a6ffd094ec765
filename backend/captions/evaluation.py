"""How good are voxel captions? Sentence-level prediction, ground truth, diversity.

* sentence-level prediction r: each caption's text embedding used as the voxel's encoding weights,
  correlated with the measured responses to the shared test images;
* on the demo world, the check against ground truth: does the caption name the voxel's true category;
* lexical and semantic diversity of the captions within each ROI.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..encoders.features import stored_features
from ..encoders.ridge import pearson_columns
from ..encoders.voxelwise import design_matrices, encoder_weights
from ..models.demo.evaluate import names_category
from ..store import Workspace, one_connection
from .lavca import WORD_RE

__all__ = ["evaluate", "ground_truth_table", "diversity", "evaluation_summary"]


def evaluate(ws: Workspace, subject: str, embedder=None, device: str = "cpu") -> pd.DataFrame:
    """Per voxel and method: sentence-level prediction r (the caption's text embedding as the encoding
    weights, correlated with the measured test responses) and, on the demo world, whether the caption names
    the voxel's true category. Stored in ``caption_eval``; returned as a DataFrame."""
    from ..models import load_role

    embedder = embedder or load_role("embedder", device)
    _, _, key = encoder_weights(ws, subject)
    _, _, Ft, Bt, _ = design_matrices(ws, subject, stored_features(ws, key))
    caps = ws.query("SELECT method, voxel, caption FROM voxel_captions WHERE subject = ? ORDER BY method, voxel",
                    [subject])
    truth = ws.query("SELECT voxel, category FROM voxel_truth WHERE subject = ?", [subject]).set_index("voxel").category
    out = []
    for method, g in caps.groupby("method"):
        uniq, inv = np.unique(g.caption.to_numpy(), return_inverse=True)
        T = embedder.text_features(list(uniq))[inv]
        pred = Ft @ T.T  # (n_test, n_voxels_of_g)
        r = pearson_columns(Bt[:, g.voxel.to_numpy()], pred)
        df = pd.DataFrame({"subject": subject, "method": method, "voxel": g.voxel.to_numpy(), "sentence_r": r})
        if len(truth):
            cat = truth.reindex(g.voxel).to_numpy()
            df["names_truth"] = [bool(c) and isinstance(c, str) and names_category(t, c)
                                 for t, c in zip(g.caption, cat)]
        else:
            df["names_truth"] = None
        out.append(df)
    res = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    with ws.writer() as tx:
        tx.sql("DELETE FROM caption_eval WHERE subject = ?", [subject])
        if not res.empty:
            tx.insert_df("caption_eval", res)
    return res


@one_connection
def ground_truth_table(ws: Workspace, subjects=None) -> pd.DataFrame:
    """Share of category-selective voxels (by ROI) whose caption names their true category, per method.

    Returns
    -------
    DataFrame
        One row per (subject, category, roi), one column per method (share in 0-1); empty without
        ground truth (real data) or before ``evaluate``.
    """
    q = ("SELECT v.subject, v.roi, t.category, e.method, avg(CAST(e.names_truth AS DOUBLE)) AS share, count(*) AS n "
         "FROM caption_eval e JOIN voxels v USING (subject, voxel) JOIN voxel_truth t USING (subject, voxel) "
         "WHERE t.category IS NOT NULL AND t.category <> '' AND v.roi IS NOT NULL "
         "GROUP BY ALL ORDER BY v.subject, t.category, v.roi, e.method")
    df = ws.query(q)
    if subjects:
        df = df[df.subject.isin(subjects)]
    return df.pivot_table(index=["subject", "category", "roi"], columns="method", values="share").reset_index()


def diversity(ws: Workspace, subject: str, sentence_embedder) -> pd.DataFrame:
    """Lexical diversity (distinct words / words) and semantic diversity (mean pairwise cosine distance of
    sentence embeddings) of the captions within each ROI, per method, and across all voxels."""
    df = ws.query("SELECT c.method, v.roi, c.caption FROM voxel_captions c JOIN voxels v USING (subject, voxel) "
                  "WHERE c.subject = ?", [subject])
    df["roi"] = df.roi.fillna("(none)")
    rows = []
    for (method, roi), g in list(df.groupby(["method", "roi"])) + [((m, "ALL"), df[df.method == m])
                                                                  for m in df.method.unique()]:
        words = [w for c in g.caption for w in WORD_RE.findall(c.lower())]
        caps = g.caption.tolist()
        if len(caps) > 400:
            caps = list(np.random.default_rng(0).choice(caps, 400, replace=False))
        E = sentence_embedder.encode(caps)
        E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-8)
        S = E @ E.T
        k = len(caps)
        sem = float(1 - (S.sum() - k) / max(k * (k - 1), 1))
        rows.append({"method": method, "roi": roi, "n": len(g), "distinct_captions": g.caption.nunique(),
                     "lexical": len(set(words)) / max(len(words), 1), "semantic": sem})
    return pd.DataFrame(rows)




def evaluation_summary(ws: Workspace) -> pd.DataFrame:
    """Per subject and method: median and mean sentence-level prediction r and the number of voxels."""
    return ws.query("SELECT subject, method, median(sentence_r) AS median_r, avg(sentence_r) AS mean_r, "
                    "count(*) AS n FROM caption_eval GROUP BY ALL ORDER BY subject, method")
