"""Voxel captions: BrainSCUBA and LaVCa for every voxel, stored in the workspace, evaluated and searchable.

BrainSCUBA (Luo et al. 2024): each voxel's encoder weights, unit-normalised, are projected onto a bank of
natural-image embeddings (softmax over cosine similarity, temperature 150, averaged over random subsets
of the bank); the projected embedding is decoded to a sentence by the caption decoder (beam search).

LaVCa (Matsuyama et al. 2025): each voxel's top-N images of a pool by predicted response; their captions;
keywords; a sentence. With a language model configured (``models.toml``: language_model) it extracts
keywords and writes the sentence. Without one, a documented deterministic method does:

* keywords: every word of the top-N captions (minus function words) scored by
  ``share_top * log(share_top / share_pool)``, where ``share_top`` is the fraction of the voxel's top-N
  captions that contain the word and ``share_pool`` the fraction of all pool captions that do: words that
  occur much more often among the voxel's favourite images than in general. The 5 best with
  ``share_top >= 0.2`` and ``share_top > share_pool`` are kept, best first.
* sentence: ``"images of " + k1 + ", " + k2 + ... + " and " + k_last`` (the keywords in score order).

Banks: for the demo, embeddings (and captions) of procedurally rendered images from a seed the subjects
never saw (``build_demo_bank``); for real use, any (n, dim) array of embeddings from the same embedder,
with optional captions and image paths (``import_bank``).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .progress import ProgressFn, report
from .workspace import Workspace

METHODS = ("brainscuba", "lavca")
DEFAULTS = {
    "brainscuba": {"temperature": 150.0, "n_subsets": 5, "subset_fraction": 0.5, "beam_size": 5, "seed": 0},
    "lavca": {"top_n": 50, "n_keywords": 5, "min_share": 0.2},
}
STOPWORDS = set("""a an the of on in at to with and or its it is are was be by for from as this that these those
there here some very next near left right top bottom upper lower centre center middle picture image photo
photograph view shows showing one two three four five six small large big little""".split())
_WORD = re.compile(r"[a-z]+")
_QUERY_WORD = re.compile(r"[\w'-]+")  # search terms and the index's words: letters, digits, ' and -


# ---------------------------------------------------------------------------------------------- banks
def bank_table(ws: Workspace) -> pd.DataFrame:
    return ws.query("SELECT * FROM banks ORDER BY bank")


def load_bank(ws: Workspace, bank: str) -> tuple[np.ndarray, list[str] | None, dict]:
    row = ws.query("SELECT * FROM banks WHERE bank = ?", [bank])
    if row.empty:
        known = ", ".join(bank_table(ws).bank) or "none"
        raise KeyError(f"no embedding bank {bank!r} in workspace {ws.path} (banks: {known}; build the demo one "
                       "with `python -m backend captions bank-demo`)")
    r = row.iloc[0].to_dict()
    emb = np.array(ws.array(r["array_name"]), np.float32)  # a writable copy (the stored file is read-only)
    caps = ws.query("SELECT caption FROM bank_items WHERE bank = ? ORDER BY idx", [bank]).caption
    return emb, (caps.tolist() if caps.notna().all() and len(caps) == len(emb) else None), r


def build_demo_bank(ws: Workspace, embedder, n: int = 50_000, seed: int = 1_000, size: int = 64,
                    chunk: int = 2_000, name: str = "demo", progress: ProgressFn = None) -> dict:
    """Render ``n`` procedural images from ``seed`` (the world uses another seed, so the subjects never saw
    them), embed them, keep their first captions. Resumable: finished chunks are kept in a staging folder."""
    from .stimuli import render_stimulus

    staging = ws.path / "staging" / f"bank_{name}_{seed}_{n}_{embedder.model_id.replace('/', '_')}"
    staging.mkdir(parents=True, exist_ok=True)
    chunks = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    done = sum((staging / f"{a:07d}.npz").exists() for a, _ in chunks)
    report(progress, "Demo image bank (render + embed)", min(done * chunk, n), n)
    for a, b in chunks:
        out = staging / f"{a:07d}.npz"
        if out.exists():
            continue
        imgs, caps = [], []
        for i in range(a, b):
            img, _, s = render_stimulus(seed, i, size)
            imgs.append(img)
            caps.append(s.captions[0])
        feats = embedder.image_features(np.stack(imgs))
        tmp = staging / f"{a:07d}.tmp.npz"
        np.savez(tmp, feats=feats.astype(np.float32), captions=np.array(caps, dtype=object))
        tmp.replace(out)
        done += 1
        report(progress, "Demo image bank (render + embed)", min(done * chunk, n), n)
    feats, caps = [], []
    for a, _ in chunks:
        z = np.load(staging / f"{a:07d}.npz", allow_pickle=True)
        feats.append(z["feats"])
        caps.extend(z["captions"].tolist())
    info = _store_bank(ws, name, np.concatenate(feats), caps, None, embedder,
                       {"source": "demo", "n": n, "seed": seed, "size": size})
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
    return info


def import_bank(ws: Workspace, name: str, embeddings_path: str | Path, embedder, captions_path=None,
                images_path=None) -> dict:
    """Register a user bank: an .npy (n, dim) of image embeddings made with the configured embedder, and
    optionally a text file of n captions (one per line) and a text file of n image paths."""
    p = Path(embeddings_path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    try:
        emb = np.load(p, mmap_mode="r")
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{p} is not a readable .npy array: {exc}") from exc
    if emb.ndim != 2:
        raise ValueError(f"{p} must be a 2-D array (n_images, dim), got shape {emb.shape}")
    if emb.shape[1] != embedder.dim:
        raise ValueError(f"{p} has embeddings of dimension {emb.shape[1]}, but the configured embedder "
                         f"{embedder.model_id} makes {embedder.dim}-dimensional ones: embed the bank with it")
    emb = np.asarray(emb, np.float32)
    if not np.isfinite(emb).all():
        raise ValueError(f"{p} contains NaN or infinite values")
    caps = imgs = None
    for what, path in (("captions", captions_path), ("image paths", images_path)):
        if path is None:
            continue
        lines = Path(path).read_text().splitlines()
        if len(lines) != len(emb):
            raise ValueError(f"{path} has {len(lines)} {what}, {p} has {len(emb)} embeddings: they must match")
        if what == "captions":
            caps = lines
        else:
            imgs = lines
    return _store_bank(ws, name, emb, caps, imgs, embedder, {"source": str(p)})


def _store_bank(ws, name, emb, caps, imgs, embedder, params) -> dict:
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
    with ws.writer() as tx:
        run = tx.new_run("bank", {"name": name, **params, "n": int(len(emb))}, model_ids={"embedder": embedder.model_id})
        arr = f"bank_{name}"
        tx.put_array(arr, emb.astype(np.float32), run, f"unit image embeddings of bank {name!r} (n, dim)")
        tx.sql("DELETE FROM banks WHERE bank = ?", [name])
        tx.sql("DELETE FROM bank_items WHERE bank = ?", [name])
        tx.sql("INSERT INTO banks VALUES (?, ?, ?, ?, ?, ?, ?)",
               [name, embedder.model_id, arr, int(len(emb)), int(emb.shape[1]), params.get("source", ""), run])
        tx.insert_df("bank_items", pd.DataFrame({"bank": name, "idx": np.arange(len(emb)),
                                                 "caption": caps if caps is not None else None,
                                                 "image": imgs if imgs is not None else None}))
    return {"bank": name, "n": int(len(emb)), "dim": int(emb.shape[1]), "run": run}


# ---------------------------------------------------------------------------------------------- BrainSCUBA
def brainscuba_project(W: np.ndarray, bank: np.ndarray, temperature: float = 150.0, n_subsets: int = 5,
                       subset_fraction: float = 0.5, seed: int = 0, device: str = "cpu",
                       chunk: int = 256) -> np.ndarray:
    """(n_voxels, dim) unit embeddings: softmax(temperature * cos(w, bank)) @ bank, averaged over subsets.

    Written to stay close to the cost of its two matrix products: the temperature is folded into the
    weights, the softmax is done in place (subtract the row max, exp) and normalised after the second
    product (dividing n x dim numbers instead of n x bank), voxels go in chunks that keep the
    (chunk x bank) matrix small."""
    import torch

    Wt = torch.as_tensor(np.asarray(W, np.float32), device=device)
    Wt = Wt / Wt.norm(dim=1, keepdim=True).clamp_min(1e-8)
    B = torch.as_tensor(np.asarray(bank, np.float32), device=device)
    rng = np.random.default_rng(seed)
    m = B.shape[0]
    k = max(1, int(round(m * subset_fraction)))
    out = torch.zeros_like(Wt)
    for _ in range(n_subsets):
        idx = torch.as_tensor(np.sort(rng.choice(m, k, replace=False)) if k < m else np.arange(m), device=device)
        Bs = B[idx].contiguous()
        BsT = Bs.T.contiguous()
        for a in range(0, Wt.shape[0], chunk):
            S = torch.mm(Wt[a:a + chunk] * temperature, BsT)
            # clamp before exp: e^-80 is already negligible next to the row max's e^0, and smaller values
            # would underflow to denormal floats, which make exp and the next product several times slower
            S.sub_(S.amax(dim=1, keepdim=True)).clamp_(min=-80.0).exp_()
            out[a:a + chunk] += torch.mm(S, Bs) / S.sum(dim=1, keepdim=True)
    out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return out.cpu().numpy()


# ---------------------------------------------------------------------------------------------- LaVCa
def caption_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


class KeywordModel:
    """The deterministic LaVCa keyword extractor and sentence rule (see the module docstring)."""

    def __init__(self, pool_captions: list[str], n_keywords: int = 5, min_share: float = 0.2):
        self.sets = [caption_words(c) for c in pool_captions]
        counts = Counter(w for s in self.sets for w in s)
        self.pool_share = {w: c / len(self.sets) for w, c in counts.items()}
        self.n_keywords, self.min_share = n_keywords, min_share

    def keywords(self, top: np.ndarray) -> list[tuple[str, float]]:
        counts = Counter(w for i in top for w in self.sets[i])
        n = len(top)
        scored = []
        for w, c in counts.items():
            s = c / n
            p = self.pool_share[w]
            if s >= self.min_share and s > p:
                scored.append((w, s * math.log(s / p)))
        scored.sort(key=lambda x: (-x[1], x[0]))
        return scored[: self.n_keywords]

    @staticmethod
    def sentence(keywords: list[str]) -> str:
        if not keywords:
            return "images with no distinctive content"
        if len(keywords) == 1:
            return f"images of {keywords[0]}"
        return "images of " + ", ".join(keywords[:-1]) + " and " + keywords[-1]


def lm_sentence(lm, captions: list[str]) -> tuple[str, list[str]]:
    """LaVCa with a language model: keywords, then one sentence, from the voxel's top captions."""
    listing = "\n".join(f"- {c}" for c in captions[:20])
    kw = lm.generate(f"Image descriptions:\n{listing}\nThe five most common content words, comma separated:")
    keywords = [k.strip() for k in kw.replace("\n", ",").split(",") if k.strip()][:5]
    sent = lm.generate(f"Keywords: {', '.join(keywords)}\nOne short sentence describing images with these:")
    return sent.split("\n")[0].strip(), keywords


def top_pool_indices(W: np.ndarray, b: np.ndarray, pool: np.ndarray, n: int, device: str = "cpu") -> np.ndarray:
    """(n_voxels, n) indices of the pool images with the highest predicted response, best first."""
    import torch

    P = torch.as_tensor(np.asarray(pool, np.float32), device=device)
    Wt = torch.as_tensor(np.asarray(W, np.float32), device=device)
    pred = Wt @ P.T + torch.as_tensor(np.asarray(b, np.float32), device=device)[:, None]
    return pred.topk(n, dim=1).indices.cpu().numpy()


# ---------------------------------------------------------------------------------------------- precompute
def _write(ws: Workspace, fn, wait_s: float = 120.0):
    """Run ``fn(tx)`` in a write transaction, retrying while a reader (the app) holds the file for a moment."""
    import time

    from .workspace import WorkspaceBusy

    t0 = time.monotonic()
    delay = 0.05
    while True:
        try:
            with ws.writer() as tx:
                return fn(tx)
        except WorkspaceBusy:
            if time.monotonic() - t0 > wait_s:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def caption_runs(ws: Workspace, subject: str) -> pd.DataFrame:
    return ws.query("SELECT method, count(*) AS n, any_value(run_id) AS run_id FROM voxel_captions WHERE subject = ? "
                    "GROUP BY method ORDER BY method", [subject])


def _existing_run(ws, subject, method) -> tuple[str | None, dict | None]:
    df = ws.query("SELECT DISTINCT c.run_id, r.parameters FROM voxel_captions c JOIN runs r USING (run_id) "
                  "WHERE c.subject = ? AND c.method = ?", [subject, method])
    if df.empty:
        return None, None
    return df.run_id.iloc[0], json.loads(df.parameters.iloc[0])


def precompute(ws: Workspace, subject: str, methods=METHODS, bank: str = "demo", device: str = "cpu",
               batch: int = 256, params: dict | None = None, overwrite: bool = False, embedder=None,
               captioner=None, language_model=None, voxels=None, progress: ProgressFn = None) -> dict:
    """Caption every voxel of ``subject`` (or only ``voxels``) with each method, ``batch`` voxels per committed
    transaction. Rerun after an interruption, it continues with the voxels that have no caption yet (same
    parameters)."""
    from .encoder import encoder_weights
    from .models import load_role, model_config

    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown caption method {m!r} (known: {', '.join(METHODS)})")
    cfg = model_config()
    W, icpt, key = encoder_weights(ws, subject)
    emb_bank, bank_caps, bank_row = load_bank(ws, bank)
    embedder = embedder or load_role("embedder", device, cfg)
    if bank_row["model_id"] != embedder.model_id or emb_bank.shape[1] != W.shape[1]:
        raise ValueError(f"bank {bank!r} was embedded with {bank_row['model_id']} ({emb_bank.shape[1]}-d), the encoder "
                         f"of {subject} uses {embedder.model_id} ({W.shape[1]}-d): rebuild the bank with this embedder")
    summary = {}
    for method in methods:
        p = {**DEFAULTS[method], **((params or {}).get(method, {}))}
        run, old = _existing_run(ws, subject, method)
        full = {"method": method, "subject": subject, "bank": bank, "encoder_features": key, **p}
        if run is not None and old != full:
            if not overwrite:
                raise ValueError(f"captions of {subject} by {method} exist with other parameters ({old}); pass "
                                 f"overwrite=True (--overwrite) to replace them")
            _write(ws, lambda tx: tx.sql("DELETE FROM voxel_captions WHERE subject = ? AND method = ?",
                                         [subject, method]))
            run = None
        model_ids = {"embedder": embedder.model_id, "bank": bank_row["run_id"]}
        captioner_ = language_model_ = None
        if method == "brainscuba":
            captioner_ = captioner or load_role("captioner", device, cfg)
            model_ids["captioner"] = captioner_.model_id
        else:
            if bank_caps is None:
                raise ValueError(f"bank {bank!r} has no captions; LaVCa needs a captioned pool")
            language_model_ = language_model if language_model is not None else load_role("language_model", device, cfg)
            model_ids["language_model"] = language_model_.model_id if language_model_ else "none (keyword rule)"
            kw_model = KeywordModel(bank_caps, p["n_keywords"], p["min_share"])
        if run is None:
            run = _write(ws, lambda tx: tx.new_run(f"captions-{method}", full, seed=p.get("seed"), model_ids=model_ids))
        done = set(ws.query("SELECT voxel FROM voxel_captions WHERE subject = ? AND method = ?",
                            [subject, method]).voxel.tolist())
        wanted = range(len(W)) if voxels is None else sorted({int(v) for v in voxels})
        bad = [v for v in wanted if not 0 <= v < len(W)]
        if bad:
            raise ValueError(f"{subject} has no voxel {bad[0]} (it has {len(W)})")
        todo = np.array([v for v in wanted if v not in done], dtype=int)
        total = len(wanted)
        done_n = total - len(todo)
        stage = f"{subject}: {'BrainSCUBA' if method == 'brainscuba' else 'LaVCa'} captions"
        report(progress, stage, done_n, total)
        for a in range(0, len(todo), batch):
            vox = todo[a:a + batch]
            if method == "brainscuba":
                proj = brainscuba_project(W[vox], emb_bank, p["temperature"], p["n_subsets"], p["subset_fraction"],
                                          p["seed"], device)
                caps = captioner_.generate(proj, beam_size=p["beam_size"], batch_size=128)
                kws = [None] * len(caps)
            else:
                top = top_pool_indices(W[vox], icpt[vox], emb_bank, p["top_n"], device)
                caps, kws = [], []
                for t in top:
                    if language_model_ is not None:
                        s, k = lm_sentence(language_model_, [bank_caps[i] for i in t])
                    else:
                        k = [w for w, _ in kw_model.keywords(t)]
                        s = kw_model.sentence(k)
                    caps.append(s)
                    kws.append(", ".join(k))
            rows = pd.DataFrame({"subject": subject, "method": method, "voxel": vox, "caption": caps,
                                 "keywords": kws, "run_id": run})
            # one transaction per batch: a kill loses at most this batch
            _write(ws, lambda tx: tx.insert_df("voxel_captions", rows))
            report(progress, stage, done_n + a + len(vox), total)
        summary[method] = {"run": run, "n": int(total), "new": int(len(todo))}
    return summary


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate(ws: Workspace, subject: str, embedder=None, device: str = "cpu") -> pd.DataFrame:
    """Per voxel and method: sentence-level prediction r (the caption's text embedding as the encoding
    weights, correlated with the measured test responses) and, on the demo world, whether the caption names
    the voxel's true category. Stored in ``caption_eval``; returned as a DataFrame."""
    from .encoder import design_matrices, encoder_weights
    from .features import stored_features
    from .models import load_role
    from .models.evaluate import names_category
    from .ridge import pearson_columns

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
    def store(tx):
        tx.sql("DELETE FROM caption_eval WHERE subject = ?", [subject])
        if not res.empty:
            tx.insert_df("caption_eval", res)

    _write(ws, store)
    return res


def ground_truth_table(ws: Workspace, subjects=None) -> pd.DataFrame:
    """Share of category-selective voxels (by ROI) whose caption names their true category, per method."""
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
        words = [w for c in g.caption for w in _WORD.findall(c.lower())]
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


# ---------------------------------------------------------------------------------------------- search
class CaptionIndex:
    """Search over voxel captions: keyword (all words must occur) and semantic (sentence embeddings of the
    distinct captions, cosine similarity). Semantic search embeds only distinct captions, then expands to
    voxels; ``search`` answers from memory."""

    def __init__(self, table: pd.DataFrame, sentence_embedder=None, embeddings: np.ndarray | None = None):
        self.table = table.reset_index(drop=True)
        # text columns as categoricals: taking matched rows is then an integer gather (fast at 600k rows)
        for col in ("subject", "method", "hemi", "roi", "caption", "keywords"):
            if col in self.table:
                self.table[col] = self.table[col].astype("category")
        self.uniq, self.inv = np.unique(self.table.caption.to_numpy(dtype=str), return_inverse=True)
        self.inv = self.inv.ravel()
        # inverted index: word -> ids of the distinct captions that contain it
        post: dict[str, list[int]] = {}
        for i, c in enumerate(self.uniq):
            for w in set(_QUERY_WORD.findall(str(c).lower())):
                post.setdefault(w, []).append(i)
        self.postings = {w: np.asarray(v, np.int64) for w, v in post.items()}
        self.sentence_embedder = sentence_embedder
        self.E = embeddings
        if self.E is None and sentence_embedder is not None and len(self.uniq):
            E = sentence_embedder.encode(list(self.uniq))
            self.E = (E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-8)).astype(np.float32)
        # voxels of each distinct caption, for expanding matches
        order = np.argsort(self.inv, kind="stable")
        self._order = order
        self._starts = np.searchsorted(self.inv[order], np.arange(len(self.uniq)))
        self._ends = np.append(self._starts[1:], len(order))

    @classmethod
    def from_workspace(cls, ws: Workspace, sentence_embedder=None) -> "CaptionIndex":
        t = ws.query("SELECT c.subject, c.method, c.voxel, c.caption, c.keywords, v.hemi, v.vertex, v.roi, "
                     "v.noise_ceiling, enc.r_test, enc.r2_nc, e.sentence_r FROM voxel_captions c "
                     "JOIN voxels v USING (subject, voxel) "
                     "LEFT JOIN caption_eval e USING (subject, method, voxel) "
                     "LEFT JOIN (SELECT x.subject, x.voxel, x.r_test, x.r2_nc FROM voxel_encoding x JOIN encoders k "
                     "  ON x.subject = k.subject AND x.feature_key = k.feature_key) enc USING (subject, voxel) "
                     "ORDER BY c.subject, c.method, c.voxel")
        return cls(t, sentence_embedder)

    @staticmethod
    def parse(query: str) -> list[str]:
        q = (query or "").strip()
        if not q:
            raise ValueError("the search is empty: type a word or a phrase, e.g. 'food' or 'a smiling face'")
        words = [w for w in _QUERY_WORD.findall(q.lower()) if w]
        if not words:
            raise ValueError(f"the search {query!r} has no words to look for (only punctuation or symbols)")
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
        if self.E is None:
            raise RuntimeError("semantic search needs the sentence embedder (models.toml: sentence_embedder)")
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
