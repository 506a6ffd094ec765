"""What the cortex explorer shows: per-vertex overlays, concept maps and voxel cards.

Every function takes a workspace and a subject and works the same on the demo world and on imported
NSD / Algonauts data. Overlays are full per-hemisphere vertex arrays (NaN where the subject has no voxel),
so any page can add its own (``Overlay``) and the viewer and the PyVista figures draw them alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cortex import HEMIS
from .workspace import Workspace

EARLY_ROIS = ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4")


@dataclass
class Overlay:
    """Per-vertex values on both hemispheres and how to draw them."""
    name: str
    label: str
    values: dict[str, np.ndarray]  # hemi -> (n_vertices,) float, NaN = no value
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    symmetric: bool = False  # diverging around 0 (threshold applies to |value|)
    categories: list[dict] = field(default_factory=list)  # categorical: [{"name", "colour"}], value = index + 1
    units: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def categorical(self) -> bool:
        return bool(self.categories)

    def default_range(self) -> tuple[float, float]:
        v = np.concatenate([self.values[h] for h in HEMIS])
        v = v[np.isfinite(v)]
        if self.categorical:
            return 0.5, len(self.categories) + 0.5
        if v.size == 0:
            return 0.0, 1.0
        if self.symmetric:
            m = float(np.percentile(np.abs(v), 99)) or 1.0
            return (-m if self.vmin is None else self.vmin), (m if self.vmax is None else self.vmax)
        lo = float(np.percentile(v, 1)) if self.vmin is None else self.vmin
        hi = float(np.percentile(v, 99)) if self.vmax is None else self.vmax
        return lo, (hi if hi > lo else lo + 1.0)


# name -> (label, needs an encoder)
OVERLAYS = {
    "rois": ("ROIs", False),
    "noise_ceiling": ("Noise ceiling", False),
    "r2_nc": ("Encoding accuracy (test R² / noise ceiling)", True),
    "r_test": ("Encoding accuracy (test r)", True),
    "concept": ("Concept map", True),
}


def subjects(ws: Workspace) -> list[str]:
    return ws.query("SELECT subject FROM subjects ORDER BY subject").subject.tolist()


def voxel_table(ws: Workspace, subject: str) -> pd.DataFrame:
    """The subject's voxels with ROI, noise ceiling and (if an encoder was fitted) encoding accuracy."""
    vox = ws.query("SELECT voxel, hemi, vertex, roi, ncsnr, noise_ceiling, noise_ceiling_test FROM voxels "
                   "WHERE subject = ? ORDER BY voxel", [subject])
    if vox.empty:
        raise KeyError(f"subject {subject!r} is not in workspace {ws.path} "
                       f"(subjects: {', '.join(subjects(ws)) or 'none'})")
    enc = ws.query("SELECT e.voxel, e.r_test, e.r2_test, e.r2_nc FROM voxel_encoding e JOIN "
                   "(SELECT feature_key FROM encoders WHERE subject = ? ORDER BY run_id DESC LIMIT 1) k "
                   "USING (feature_key) WHERE e.subject = ?", [subject, subject])
    return vox.merge(enc, on="voxel", how="left")


def has_encoder(ws: Workspace, subject: str) -> bool:
    return not ws.query("SELECT 1 FROM encoders WHERE subject = ? LIMIT 1", [subject]).empty


def _scatter(vox: pd.DataFrame, values: np.ndarray, n_vertices: dict[str, int]) -> dict[str, np.ndarray]:
    out = {}
    for h in HEMIS:
        arr = np.full(n_vertices[h], np.nan)
        m = (vox.hemi == h).to_numpy()
        arr[vox.vertex.to_numpy()[m]] = values[m]
        out[h] = arr
    return out


def roi_overlay(ws: Workspace, subject: str, n_vertices: dict[str, int]) -> Overlay:
    from .figures import ROI_COLOURS

    vox = voxel_table(ws, subject)
    names = [n for n in ROI_COLOURS if n in set(vox.roi.dropna())]
    names += sorted(set(vox.roi.dropna()) - set(names))
    index = {n: i + 1 for i, n in enumerate(names)}
    vals = vox.roi.map(index).astype(float).to_numpy()
    cats = [{"name": n, "colour": ROI_COLOURS.get(n, "#888888")} for n in names]
    return Overlay("rois", "ROIs", _scatter(vox, vals, n_vertices), categories=cats)


def overlay(ws: Workspace, subject: str, name: str, n_vertices: dict[str, int], concept: str = "",
            embedder=None, baseline: np.ndarray | None = None) -> Overlay:
    """A named overlay (see ``OVERLAYS``). ``concept`` needs the embedder (text tower)."""
    if name not in OVERLAYS:
        raise KeyError(f"unknown overlay {name!r} (known: {', '.join(OVERLAYS)})")
    if name == "rois":
        return roi_overlay(ws, subject, n_vertices)
    vox = voxel_table(ws, subject)
    if OVERLAYS[name][1] and not has_encoder(ws, subject):
        raise LookupError(f"overlay {name!r} needs an encoder for {subject}: run `python -m backend encoder fit "
                          f"--subject {subject}`")
    if name == "noise_ceiling":
        return Overlay(name, OVERLAYS[name][0], _scatter(vox, vox.noise_ceiling.to_numpy(float), n_vertices),
                       cmap="inferno", vmin=0.0, units="% of variance")
    if name in ("r2_nc", "r_test"):
        return Overlay(name, OVERLAYS[name][0], _scatter(vox, vox[name].to_numpy(float), n_vertices),
                       cmap="viridis", vmin=0.0, vmax=1.0 if name == "r2_nc" else None)
    scores = concept_scores(ws, subject, concept, embedder, baseline)
    return Overlay(name, f"Concept map: “{concept}”", _scatter(vox, scores, n_vertices), cmap="RdBu_r",
                   symmetric=True, units="predicted response vs an average caption, z", meta={"concept": concept})


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
    from .encoder import encoder_weights

    text = (text or "").strip()
    if not text:
        raise ValueError("the concept is empty: type a word or a phrase, e.g. 'a smiling face'")
    W, _, key = encoder_weights(ws, subject)
    model_id = ws.query("SELECT model_id FROM feature_sets WHERE key = ?", [key])
    if not model_id.empty and model_id.model_id.iloc[0] != embedder.model_id:
        raise ValueError(f"the encoder of {subject} was fitted on features of {model_id.model_id.iloc[0]}, "
                         f"but the loaded embedder is {embedder.model_id}")
    t = embedder.text_features([text])[0].astype(np.float32)
    if t.shape[0] != W.shape[1]:
        raise ValueError(f"text features have {t.shape[0]} dimensions, the encoder of {subject} {W.shape[1]}")
    base = caption_baseline(ws, embedder) if baseline is None else baseline
    return W @ (t / max(np.linalg.norm(t), 1e-8) - base)


def top_voxels(ws: Workspace, subject: str, scores: np.ndarray, n: int = 15) -> pd.DataFrame:
    vox = voxel_table(ws, subject)
    vox["score"] = scores
    return vox.sort_values("score", ascending=False).head(n)[["voxel", "hemi", "vertex", "roi", "score",
                                                               "noise_ceiling", "r2_nc"]]


def find_voxel(ws: Workspace, subject: str, hemi: str, vertex: int) -> int | None:
    if hemi not in HEMIS:
        raise ValueError(f"hemisphere must be 'lh' or 'rh', got {hemi!r}")
    df = ws.query("SELECT voxel FROM voxels WHERE subject = ? AND hemi = ? AND vertex = ?", [subject, hemi, int(vertex)])
    return None if df.empty else int(df.voxel.iloc[0])


def voxel_card(ws: Workspace, subject: str, voxel: int, n_top: int = 8) -> dict:
    """Everything the voxel card shows: identity, ROI, noise ceiling, encoding accuracy, top images by
    measured and by predicted response, mean response per stimulus category, ground truth when known."""
    from .data import subject_betas
    from .encoder import encoder_weights

    vox = voxel_table(ws, subject)
    if not 0 <= voxel < len(vox):
        raise KeyError(f"{subject} has no voxel {voxel} (it has {len(vox)})")
    row = vox.iloc[voxel]
    betas, rows = subject_betas(ws, subject)
    b = np.asarray(betas[:, voxel], np.float64)
    order = np.argsort(-b)[:n_top]
    measured = pd.DataFrame({"stim_id": rows.stim_id.to_numpy()[order], "response": b[order],
                             "n_reps": rows.n_reps.to_numpy()[order], "split": rows.split.to_numpy()[order]})
    card = {"subject": subject, "voxel": int(voxel), "hemi": row.hemi, "vertex": int(row.vertex),
            "roi": row.roi if isinstance(row.roi, str) else None,
            "noise_ceiling": float(row.noise_ceiling), "ncsnr": float(row.ncsnr),
            "r_test": _f(row.get("r_test")), "r2_test": _f(row.get("r2_test")), "r2_nc": _f(row.get("r2_nc")),
            "top_measured": measured, "top_predicted": None}
    if has_encoder(ws, subject):
        W, icpt, key = encoder_weights(ws, subject)
        from .features import stored_features

        F = stored_features(ws, key)
        pred = F @ W[voxel] + icpt[voxel]
        ids = ws.query("SELECT stim_id FROM stimuli ORDER BY stim_id").stim_id.to_numpy()
        top = np.argsort(-pred)[:n_top]
        seen = set(rows.stim_id.tolist())
        card["top_predicted"] = pd.DataFrame({"stim_id": ids[top], "predicted": pred[top],
                                              "seen": [int(i) in seen for i in ids[top]]})
    cats = ws.query("SELECT stim_id, categories FROM stimuli WHERE stim_id IN (SELECT unnest(?::INTEGER[]))",
                    [rows.stim_id.tolist()]).set_index("stim_id").categories
    ex = pd.DataFrame({"stim_id": rows.stim_id, "response": b}).join(cats, on="stim_id").explode("categories")
    ex = ex.dropna(subset=["categories"])
    g = ex.groupby("categories").response
    card["category_means"] = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.size()}).sort_values(
        "mean", ascending=False)
    truth = ws.query("SELECT category, prf_x, prf_y, prf_sigma, prf_share FROM voxel_truth WHERE subject = ? "
                     "AND voxel = ?", [subject, int(voxel)])
    card["truth"] = truth.iloc[0].to_dict() if not truth.empty else None
    card["captions"] = ws.query("SELECT c.method, c.caption, c.keywords, e.sentence_r FROM voxel_captions c "
                                "LEFT JOIN caption_eval e USING (subject, method, voxel) "
                                "WHERE c.subject = ? AND c.voxel = ? ORDER BY c.method", [subject, int(voxel)])
    return card


def _f(x):
    return None if x is None or not np.isfinite(x) else float(x)


def contrast_energy_matrix(ws: Workspace, stim_ids, grid: int = 16, progress=None) -> np.ndarray:
    """(n, grid, grid) local contrast energy of the stimuli (row 0 = top of the image)."""
    from .data import stimulus_images
    from .progress import report
    from .synthetic import contrast_energy

    ids = np.asarray(stim_ids)
    out = np.empty((ids.size, grid, grid), np.float32)
    step = 1000
    for a in range(0, ids.size, step):
        for j, img in enumerate(stimulus_images(ws, ids[a:a + step])):
            out[a + j] = contrast_energy(img, grid)
        report(progress, "Contrast energy of the stimuli", min(a + step, ids.size), ids.size)
    return out


def receptive_field(betas_column: np.ndarray, energy: np.ndarray, field_deg: float) -> dict:
    """Estimate a voxel's receptive field from its responses: the correlation of the response with the local
    contrast energy at each grid cell (a map), and the centre and size of the Gaussian that fits the
    positive part of the map (moments). Coordinates in degrees, +y up, the image centre at 0."""
    n, g, _ = energy.shape
    E = energy.reshape(n, -1).astype(np.float64)
    E = (E - E.mean(0)) / np.maximum(E.std(0), 1e-9)
    y = np.asarray(betas_column, np.float64)
    y = (y - y.mean()) / max(y.std(), 1e-9)
    r = (E.T @ y / n).reshape(g, g)
    c = (np.arange(g) + 0.5) / g * field_deg - field_deg / 2
    gx, gy = np.meshgrid(c, -c)
    w = np.clip(r - 0.5 * r.max(), 0, None)
    if w.sum() <= 0:
        return {"map": r, "x": None, "y": None, "sigma": None, "peak_r": float(r.max()), "extent": field_deg / 2}
    x0, y0 = float((w * gx).sum() / w.sum()), float((w * gy).sum() / w.sum())
    sigma = float(np.sqrt((w * ((gx - x0) ** 2 + (gy - y0) ** 2)).sum() / w.sum() / 2))
    return {"map": r, "x": x0, "y": y0, "sigma": sigma, "peak_r": float(r.max()), "extent": field_deg / 2}
