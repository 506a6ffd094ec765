"""Searching voxel captions: by words (every word must occur) or by meaning (sentence embeddings), and
the summaries the Captions page shows (matches per ROI, the match overlay, per-ROI words).

Search input is never turned into SQL: the index is built once from the workspace and answers from memory.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..store import ProgressFn, Workspace, one_connection, report, subjects, voxel_table
from ..surface.overlay import Overlay
from ..surface.rois import HEMIS
from .lavca import KeywordModel

__all__ = ["CaptionIndex", "filter_results", "matches_per_roi", "caption_match_overlay", "roi_summaries",
           "store_caption_embeddings", "stored_caption_embeddings", "INDEX_ARRAY"]

INDEX_ARRAY = "caption_sentence_embeddings"


def _unit(E: np.ndarray) -> np.ndarray:
    return (E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-8)).astype(np.float32)


def _has_index(ws: Workspace) -> bool:
    return "caption_index" in set(ws.query("SELECT table_name FROM duckdb_tables()").table_name)


def stored_caption_model(ws: Workspace) -> str | None:
    """The sentence embedder that made the stored caption embeddings (None when none are stored)."""
    if not _has_index(ws):
        return None
    df = ws.query("SELECT any_value(model_id) AS m FROM caption_index")
    return None if df.empty or df.m.iloc[0] is None else str(df.m.iloc[0])


def stored_caption_embeddings(ws: Workspace, model_id: str) -> dict[str, np.ndarray]:
    """{caption: unit sentence embedding} stored by :func:`store_caption_embeddings` with ``model_id``
    ({} when none are stored, or they were made by another sentence embedder)."""
    rows = ws.query("SELECT caption, row FROM caption_index WHERE model_id = ?", [model_id]) if _has_index(ws) \
        else pd.DataFrame()
    if rows.empty:
        return {}
    E = ws.array(INDEX_ARRAY)
    return dict(zip(rows.caption, np.asarray(E)[rows.row.to_numpy()]))


def store_caption_embeddings(ws: Workspace, sentence_embedder, chunk: int = 2048, progress: ProgressFn = None) -> dict:
    """Embed every distinct voxel caption with the sentence embedder (reusing the ones already stored with the same
    model) and store them, so semantic search starts without embedding anything. Part of the caption job.

    Returns
    -------
    dict
        ``n`` (distinct captions), ``new`` (embedded now), ``run``.
    """
    caps = ws.query("SELECT DISTINCT caption FROM voxel_captions ORDER BY caption").caption.tolist()
    known = stored_caption_embeddings(ws, sentence_embedder.model_id)
    missing = [c for c in caps if c not in known]
    stage = "Sentence embeddings of the captions (search index)"
    report(progress, stage, len(caps) - len(missing), len(caps))
    for a in range(0, len(missing), chunk):
        part = missing[a:a + chunk]
        known.update(zip(part, _unit(sentence_embedder.encode(part))))
        report(progress, stage, len(caps) - len(missing) + a + len(part), len(caps))
    if not missing and len(known) == len(caps):
        return {"n": len(caps), "new": 0, "run": None}
    E = np.stack([known[c] for c in caps]).astype(np.float32) if caps else np.zeros((0, 1), np.float32)
    with ws.writer() as tx:
        run = tx.new_run("caption-index", {"n": len(caps), "what": "unit sentence embeddings of distinct captions"},
                         model_ids={"sentence_embedder": sentence_embedder.model_id})
        tx.put_array(INDEX_ARRAY, E, run, "(n_distinct_captions, dim) unit sentence embeddings; rows: caption_index")
        tx.sql("DELETE FROM caption_index")
        tx.insert_df("caption_index", pd.DataFrame({"caption": caps, "row": np.arange(len(caps)),
                                                    "model_id": sentence_embedder.model_id, "run_id": run}))
    return {"n": len(caps), "new": len(missing), "run": run}

MAX_QUERY_CHARS = 300  # a caption is a sentence; longer input is a paste gone wrong (or an attack)
_QUERY_WORD = re.compile(r"[\w'-]+")  # search terms and the index's words: letters, digits, ' and -


class CaptionIndex:
    """Search over voxel captions: keyword (all words must occur) and semantic (sentence embeddings of the
    distinct captions, cosine similarity). Semantic search embeds only distinct captions, then expands to
    voxels; ``search`` answers from memory."""

    def __init__(self, table: pd.DataFrame, sentence_embedder=None, embeddings: dict[str, np.ndarray] | None = None,
                 embeddings_model: str | None = None, load_embedder=None):
        """``embeddings``: stored {caption: unit embedding} made by ``embeddings_model``; with ``load_embedder``
        (a function returning the sentence embedder) instead of ``sentence_embedder``, the model is loaded only
        for the first semantic search (and the stored embeddings are used only if it is the model that made
        them)."""
        self.table = table.reset_index(drop=True)
        # text columns as categoricals: taking matched rows is then an integer gather (fast at 600k rows)
        for col in ("subject", "method", "hemi", "roi", "caption", "keywords"):
            if col in self.table:
                self.table[col] = self.table[col].astype("category")
        self.uniq, self.inv = np.unique(self.table.caption.to_numpy(dtype=str), return_inverse=True)
        self.inv = self.inv.ravel()
        self._postings = None  # built at the first search by words (a page that lists captions never needs it)
        self.sentence_embedder = sentence_embedder
        self._load_embedder = load_embedder
        self._stored, self._stored_model = embeddings or {}, embeddings_model
        self.E = None
        self.n_encoded = 0  # distinct captions embedded here (the others came stored, from ``embeddings``)
        if sentence_embedder is not None:
            self._embed()
        elif load_embedder is not None and len(self.uniq) and all(c in self._stored for c in self.uniq):
            self.E = np.stack([self._stored[c] for c in self.uniq]).astype(np.float32)  # checked at first search
        # voxels of each distinct caption, for expanding matches
        order = np.argsort(self.inv, kind="stable")
        self._order = order
        self._starts = np.searchsorted(self.inv[order], np.arange(len(self.uniq)))
        self._ends = np.append(self._starts[1:], len(order))

    @property
    def postings(self) -> dict[str, np.ndarray]:
        """Inverted index: word -> ids of the distinct captions that contain it."""
        if self._postings is None:
            post: dict[str, list[int]] = {}
            for i, c in enumerate(self.uniq):
                for w in set(_QUERY_WORD.findall(str(c).lower())):
                    post.setdefault(w, []).append(i)
            self._postings = {w: np.asarray(v, np.int64) for w, v in post.items()}
        return self._postings

    def _embed(self) -> None:
        """Sentence embeddings of every distinct caption: stored ones when the embedder made them, others now."""
        if not len(self.uniq):
            return
        same = self._stored_model is None or self._stored_model == self.sentence_embedder.model_id
        known = self._stored if same else {}
        missing = [c for c in self.uniq if c not in known]
        if missing:
            known = {**known, **dict(zip(missing, _unit(self.sentence_embedder.encode(missing))))}
            self.n_encoded = len(missing)
        self.E = np.stack([known[c] for c in self.uniq]).astype(np.float32)
        self._Et = None

    @classmethod
    def from_workspace(cls, ws: Workspace, sentence_embedder=None, load_embedder=None) -> "CaptionIndex":
        """Every voxel caption of the workspace with its voxel's hemi, vertex, ROI, noise ceiling, encoding
        accuracy (the subject's current encoder) and caption evaluation."""
        with ws.reading():
            return cls._from_workspace(ws, sentence_embedder, load_embedder)

    @classmethod
    def _from_workspace(cls, ws: Workspace, sentence_embedder, load_embedder) -> "CaptionIndex":
        t = ws.query("SELECT c.subject, c.method, c.voxel, c.caption, c.keywords, v.hemi, v.vertex, v.roi, "
                     "v.noise_ceiling, e.sentence_r FROM voxel_captions c JOIN voxels v USING (subject, voxel) "
                     "LEFT JOIN caption_eval e USING (subject, method, voxel) ORDER BY c.subject, c.method, c.voxel")
        acc = [voxel_table(ws, s)[["voxel", "r_test", "r2_nc"]].assign(subject=s) for s in subjects(ws)]
        if acc:
            t = t.merge(pd.concat(acc), on=["subject", "voxel"], how="left")
        else:
            t = t.assign(r_test=np.nan, r2_nc=np.nan)
        model = sentence_embedder.model_id if sentence_embedder is not None else stored_caption_model(ws)
        stored = stored_caption_embeddings(ws, model) if model else {}
        return cls(t, sentence_embedder, stored, model, load_embedder)

    @staticmethod
    def parse(query: str) -> list[str]:
        q = (query or "").strip()
        if not q:
            raise InvalidInputError("the search is empty: type a word or a phrase, e.g. 'food' or 'a smiling face'")
        if len(q) > MAX_QUERY_CHARS:
            raise InvalidInputError(f"the search is {len(q):,} characters long; type at most {MAX_QUERY_CHARS}")
        words = [w for w in _QUERY_WORD.findall(q.lower()) if w]
        if not words:
            raise InvalidInputError(f"the search {query!r} has no words to look for (only punctuation or symbols)")
        return words

    def _expand(self, caption_ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        """The voxel rows of the matching distinct captions, each with its caption's score."""
        caption_ids = np.asarray(caption_ids, np.int64)
        if caption_ids.size == 0:
            return self.table.iloc[[]].assign(score=np.array([], np.float32))
        lens = self._ends[caption_ids] - self._starts[caption_ids]
        starts = np.repeat(self._starts[caption_ids] - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        idx = self._order[starts]
        return self.table.iloc[idx].assign(score=np.repeat(np.asarray(scores, np.float32), lens))

    def keyword(self, query: str) -> pd.DataFrame:
        """Voxels whose caption contains every word of the query (case-insensitive, whole words)."""
        words = self.parse(query)
        ids = None
        for w in words:
            p = self.postings.get(w, np.zeros(0, np.int64))
            ids = p if ids is None else np.intersect1d(ids, p, assume_unique=True)
        return self._expand(ids, np.ones(len(ids), np.float32))

    def semantic(self, query: str, top_captions: int = 200) -> pd.DataFrame:
        """Voxels ranked by the cosine similarity of their caption to the query (sentence embeddings)."""
        self.parse(query)
        if self.sentence_embedder is None and self._load_embedder is not None:
            self.sentence_embedder = self._load_embedder()
            self._embed()  # the stored embeddings are kept only if this is the model that made them
        if self.E is None:
            raise InvalidInputError("semantic search needs the sentence embedder (models.toml: sentence_embedder)")
        enc = getattr(self.sentence_embedder, "encode_query", None)
        q = enc(query) if enc else self.sentence_embedder.encode([query])[0]
        q = q / max(np.linalg.norm(q), 1e-8)
        # score with torch, the same thread pool the query encoder just used: mixing numpy's BLAS threads
        # with torch's made every few queries 4x slower on 2 cores (bench/caption_search.py)
        import torch

        if getattr(self, "_Et", None) is None or self._Et.shape[0] != len(self.E):
            self._Et = torch.from_numpy(np.ascontiguousarray(self.E, np.float32))
        s = torch.mv(self._Et, torch.from_numpy(q.astype(np.float32)))
        vals, top = torch.topk(s, min(top_captions, s.shape[0]))
        return self._expand(top.numpy(), vals.numpy())

    def search(self, query: str, mode: str = "words") -> pd.DataFrame:
        """Keyword (``mode="words"``) or semantic (``"meaning"``) search; every caption when ``query`` is blank.
        The rows carry a ``score`` (1 for keyword matches, cosine similarity for meaning, NaN for no query)."""
        if not (query or "").strip():
            return self.table.assign(score=np.float32(np.nan))
        return self.semantic(query) if mode == "meaning" else self.keyword(query)


def filter_results(res: pd.DataFrame, subject: str, methods, rois=None, min_r2_nc: float = 0.0,
                   by_score: bool = False) -> pd.DataFrame:
    """The rows of ``res`` for ``subject``, ``methods`` and ``rois`` (all when empty) whose voxel's
    R^2 / noise ceiling is at least ``min_r2_nc``; sorted by score (``by_score``) or by test r."""
    res = res[(res.subject == subject) & res.method.isin(list(methods))]
    if rois:
        res = res[res.roi.isin(list(rois))]
    if min_r2_nc > 0:
        res = res[res.r2_nc.fillna(-1) >= min_r2_nc]
    if by_score:
        return res.sort_values("score", ascending=False)
    return res.sort_values("r_test", ascending=False, na_position="last")


def matches_per_roi(matches: pd.DataFrame, table: pd.DataFrame, subject: str, methods, top: int = 12) -> pd.DataFrame:
    """Share of each ROI's voxels whose caption matches, per method (ROIs as rows, methods as columns),
    the ``top`` ROIs with the highest share first."""
    def by_roi(df):
        roi = df.roi.astype(object).where(df.roi.notna(), "(no ROI)")
        return df.assign(roi=roi).groupby(["roi", "method"], observed=True).voxel.nunique()

    allv = table[(table.subject == subject) & table.method.isin(list(methods))]
    per = pd.DataFrame({"matches": by_roi(matches), "voxels": by_roi(allv)})
    per = per.dropna().assign(share=lambda d: d.matches / d.voxels).reset_index()
    if per.empty:
        return pd.DataFrame()
    wide = per.pivot(index="roi", columns="method", values="share").fillna(0.0)
    return wide.loc[wide.max(axis=1).sort_values(ascending=False).index].head(top)


def caption_match_overlay(matches: pd.DataFrame, n_vertices: dict[str, int], query: str = "") -> Overlay:
    """The matching voxels as a surface overlay: each vertex's best match score (NaN where nothing matches)."""
    vals = {h: np.full(n_vertices[h], np.nan) for h in HEMIS}
    if query and len(matches):
        best = matches.groupby(["hemi", "vertex"], observed=True).score.max()
        for (h, v), sc in best.items():
            vals[h][v] = sc
    return Overlay("caption_match", f"Caption match: “{query}”" if query else "Caption match (search to map)", vals,
                   cmap="plasma", vmin=0.0, vmax=1.0)


@one_connection
def roi_summaries(ws: Workspace) -> pd.DataFrame:
    """Per ROI and method: the number of captioned voxels, the most characteristic words of their captions
    (the LaVCa keyword score of the ROI's captions against all captions of that method) and the two most
    common captions."""
    t = ws.query("SELECT c.method, v.roi, c.caption FROM voxel_captions c JOIN voxels v "
                 "USING (subject, voxel) WHERE v.roi IS NOT NULL")
    rows = []
    for method, g in t.groupby("method"):
        km = KeywordModel(g.caption.tolist(), n_keywords=6, min_share=0.05)
        g = g.reset_index(drop=True)
        for roi, r in g.groupby("roi"):
            words = [w for w, _ in km.keywords(r.index.to_numpy())]
            examples = r.caption.value_counts().head(2).index.tolist()
            rows.append({"ROI": roi, "method": method, "voxels": len(r), "characteristic words": ", ".join(words),
                         "most common captions": " · ".join(examples)})
    return pd.DataFrame(rows)
