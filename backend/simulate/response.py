"""The synthetic subject's response to any image (see the package docstring)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..datasets.demo.subjects import (SEMANTIC_FEATURES, STAT_NAMES, combine, drive, normalisation,
                                      semantic_features)
from ..datasets.image_features import contrast_energy
from ..errors import InvalidInputError, NotFoundError
from ..store import Workspace, require_subject, stimulus_ids

__all__ = ["SimulatedSubject", "simulated_subject", "simulate_response", "simulate_trials", "world_semantic_features",
           "has_ground_truth", "roi_agreement", "segmentation_png", "check_against_truth", "world_target_responses"]

STIMULUS_SIZE = 128  # the world's stimuli: contrast energy is measured at this resolution


@dataclass
class SimulatedSubject:
    """One synthetic subject's ground truth, with the normalisation of its responses over the world's images."""
    subject: str
    weights: np.ndarray  # (n_voxels, n_semantic)
    prf_x: np.ndarray
    prf_y: np.ndarray
    prf_sigma: np.ndarray
    prf_share: np.ndarray
    ncsnr: np.ndarray
    stats: dict  # low/high/mix mean and std per voxel over the world's images

    def respond(self, sem: np.ndarray, contrast: np.ndarray) -> np.ndarray:
        """(n_images, n_voxels) noise-free responses (the units of the world's true signal) to images given by
        their semantic features (n, n_semantic) and contrast energy maps (n, grid, grid)."""
        low, high = drive(self.weights, self.prf_x, self.prf_y, self.prf_sigma, sem, contrast)
        return combine(low, high, self.prf_share, self.stats)


def world_semantic_features(ws: Workspace) -> np.ndarray:
    """(n_stimuli, n_semantic) semantic features of the world's stimuli from their annotations (stim_id order)."""
    ids = stimulus_ids(ws)
    objects = ws.query("SELECT stim_id, category, area FROM stimulus_objects")
    pos = pd.Series(np.arange(ids.size), index=ids)
    objects["stim_id"] = pos.reindex(objects.stim_id).to_numpy()
    bg = ws.query("SELECT background FROM stimuli ORDER BY stim_id").background.to_numpy()
    return semantic_features(objects, bg)


def simulated_subject(ws: Workspace, subject: str) -> SimulatedSubject:
    """The subject's ground truth from the workspace (demo worlds only), with the normalisation of its responses
    (stored by the world builder; for worlds built before, computed in one pass); kept in memory per world."""
    subject = require_subject(ws, subject)
    meta = ws.meta()
    if not has_ground_truth(ws):
        raise NotFoundError(f"workspace {ws.path} has no ground truth: only the demo world's subjects can be simulated")
    return _simulated(str(ws.path), meta.get("world_run", ""), subject)


@functools.lru_cache(maxsize=4)
def _simulated(path: str, world_run: str, subject: str) -> SimulatedSubject:
    ws = Workspace(path)
    t = ws.query("SELECT * FROM voxel_truth WHERE subject = ? ORDER BY voxel", [subject])
    if t.empty:
        raise NotFoundError(f"{subject} has no ground truth in workspace {ws.path}")
    names = json.loads(ws.meta().get("semantic_features", json.dumps(SEMANTIC_FEATURES)))
    if tuple(names) != SEMANTIC_FEATURES:
        raise InvalidInputError(f"workspace {ws.path} was built with semantic features {names}, this code has "
                                f"{list(SEMANTIC_FEATURES)}: rebuild the world")
    weights = np.stack(t.weights.to_numpy()).astype(np.float32)
    arr = {k: t[k].to_numpy(np.float32) for k in ("prf_x", "prf_y", "prf_sigma", "prf_share", "ncsnr_true")}
    stored = f"simulation_stats_{subject}"
    if stored in set(ws.query("SELECT name FROM arrays").name):  # written by the world builder
        a = np.asarray(ws.array(stored), np.float32)
        stats = dict(zip(STAT_NAMES, a))
    else:  # worlds built before the builder stored them: one pass over the world's images
        stats = normalisation(weights, arr["prf_x"], arr["prf_y"], arr["prf_sigma"], arr["prf_share"],
                              world_semantic_features(ws), ws.array("stimuli_contrast"))
    return SimulatedSubject(subject, weights, arr["prf_x"], arr["prf_y"], arr["prf_sigma"], arr["prf_share"],
                            arr["ncsnr_true"], stats)


def _as_stimuli(images) -> list[np.ndarray]:
    """Images as RGB uint8 at the world's stimulus size (contrast energy depends on the resolution)."""
    from PIL import Image

    out = []
    for k, im in enumerate(images):
        a = np.asarray(im)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise InvalidInputError(f"image {k}: expected RGB uint8 (H, W, 3), got {a.dtype} {a.shape}")
        if a.shape[:2] != (STIMULUS_SIZE, STIMULUS_SIZE):
            a = np.asarray(Image.fromarray(a).resize((STIMULUS_SIZE, STIMULUS_SIZE), Image.Resampling.BILINEAR))
        out.append(a)
    return out


def simulate_response(ws: Workspace, subject: str, images, judge=None, return_seen: bool = False):
    """The synthetic subject's noise-free response of every voxel to ``images``.

    Parameters
    ----------
    images : sequence of (H, W, 3) uint8 arrays (any size; squared images are expected, as stimuli are)
    judge : Judge, optional
        The eyes (:func:`backend.models.judge.load_judge` by default).
    return_seen : bool
        Also return what the judge saw: (objects per image, background per image, segmentation).

    Returns
    -------
    (n_images, n_voxels) float32, in the units of the world's true signal (z over the world's images).
    """
    from ..models.judge import load_judge

    sim = simulated_subject(ws, subject)
    stims = _as_stimuli(images)
    if not stims:
        raise InvalidInputError("no images given")
    judge = judge or load_judge()
    objects, backgrounds, labels = judge.features(stims)
    rows = pd.DataFrame([{"stim_id": i, **o} for i, objs in enumerate(objects) for o in objs],
                        columns=["stim_id", "category", "area"])
    sem = semantic_features(rows, np.array(backgrounds))
    contrast = np.stack([contrast_energy(s) for s in stims])
    resp = sim.respond(sem, contrast)
    return (resp, (objects, backgrounds, labels)) if return_seen else resp


def world_target_responses(ws: Workspace, weights: dict[str, np.ndarray], chunk: int = 1000) -> np.ndarray:
    """The true (annotation-based, noise-free) response of a weighted voxel set to each of the world's stimuli,
    averaged over subjects: ``weights`` = subject -> (n_voxels,) voxel weights. (n_stimuli,), stim_id order; the
    reference distribution against which synthesized images are scored."""
    sem = world_semantic_features(ws)
    contrast = ws.array("stimuli_contrast")
    out = np.zeros(len(sem), np.float64)
    for subject, w in weights.items():
        sim = simulated_subject(ws, subject)
        keep = np.flatnonzero(w)
        part = SimulatedSubject(sim.subject, sim.weights[keep], sim.prf_x[keep], sim.prf_y[keep], sim.prf_sigma[keep],
                                sim.prf_share[keep], sim.ncsnr[keep], {k: v[keep] for k, v in sim.stats.items()})
        for a in range(0, len(sem), chunk):
            out[a:a + chunk] += part.respond(sem[a:a + chunk], np.asarray(contrast[a:a + chunk], np.float32)) @ w[keep]
    return (out / max(len(weights), 1)).astype(np.float32)


def simulate_trials(ws: Workspace, subject: str, images, repeats: int = 1, seed: int = 0, judge=None) -> np.ndarray:
    """Single trials of a virtual experiment: (n_images * repeats, n_voxels), image-major (image 0's repeats
    first). Each trial is the noise-free response plus the subject's own trial noise (its true noise-ceiling SNR),
    in the units of the true signal (the world's betas are these, scaled and z-scored per session)."""
    if repeats < 1:
        raise InvalidInputError(f"repeats must be at least 1, got {repeats}")
    sim = simulated_subject(ws, subject)
    resp = simulate_response(ws, subject, images, judge)
    rng = np.random.default_rng(seed)
    trials = np.repeat(resp, repeats, axis=0)
    return (trials + rng.standard_normal(trials.shape, dtype=np.float32) / sim.ncsnr).astype(np.float32)


def has_ground_truth(ws: Workspace) -> bool:
    """Whether the workspace's subjects can be simulated (a demo world, with its ``voxel_truth`` rows)."""
    if "voxel_truth" not in set(ws.query("SELECT table_name FROM information_schema.tables").table_name):
        return False
    return bool(ws.query("SELECT count(*) AS n FROM voxel_truth").n.iloc[0])


def roi_agreement(ws: Workspace, subject: str, simulated: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Per ROI, for one image: the mean simulated (true) and predicted response of its voxels and their
    correlation over the ROI's voxels (both hemispheres). Rows in atlas order."""
    from ..surface.rois import ROI_ORDER

    vox = ws.query("SELECT roi FROM voxels WHERE subject = ? ORDER BY voxel", [require_subject(ws, subject)])
    simulated, predicted = np.asarray(simulated, np.float64), np.asarray(predicted, np.float64)
    if simulated.shape != (len(vox),) or predicted.shape != (len(vox),):
        raise InvalidInputError(f"{subject} has {len(vox)} voxels; got {simulated.shape} and {predicted.shape}")
    rows = []
    for roi in [r for r in ROI_ORDER if r in set(vox.roi.dropna())]:
        m = (vox.roi == roi).to_numpy()
        a, b = simulated[m], predicted[m]
        r = float(np.corrcoef(a, b)[0, 1]) if m.sum() > 2 and a.std() > 0 and b.std() > 0 else float("nan")
        rows.append({"ROI": roi, "voxels": int(m.sum()), "simulated": float(a.mean()), "predicted": float(b.mean()),
                     "r over voxels": r})
    return pd.DataFrame(rows)


SEGMENT_COLOURS = {"background": (40, 40, 40), "face": (230, 90, 60), "body": (240, 200, 60),
                   "place": (70, 150, 230), "food": (90, 190, 90), "word": (190, 90, 210), "object": (160, 160, 160)}


def segmentation_png(image: np.ndarray, labels: np.ndarray, title: str = "What the simulated subject sees") -> bytes:
    """The image next to the judge's segmentation, coloured by category, with a legend (PNG bytes)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ..models.judge import JUDGE_CLASSES

    lut = np.array([SEGMENT_COLOURS[c] for c in JUDGE_CLASSES], np.uint8)
    fig, ax = plt.subplots(1, 2, figsize=(6.4, 3.6), dpi=110)
    ax[0].imshow(image)
    ax[0].set_title("image", fontsize=9)
    ax[1].imshow(lut[labels], interpolation="nearest")
    ax[1].set_title(title, fontsize=9)
    for a in ax:
        a.axis("off")
    present = [c for k, c in enumerate(JUDGE_CLASSES) if (labels == k).any()]
    fig.legend(handles=[Patch(color=np.array(SEGMENT_COLOURS[c]) / 255, label=c) for c in present],
               loc="lower center", ncol=len(present), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def check_against_truth(ws: Workspace, subject: str, n_images: int = 1000, judge=None, batch: int = 250
                        ) -> pd.DataFrame:
    """``simulate_response`` from pixels alone against the world's annotation-based true signal, on the world's
    first ``n_images`` stimuli: per ROI, the median over its voxels of the correlation over images."""
    from ..datasets import stimulus_images
    from ..encoders import pearson_columns
    from ..models.judge import load_judge

    sim = simulated_subject(ws, subject)
    judge = judge or load_judge()
    ids = stimulus_ids(ws)[:n_images]
    true = sim.respond(world_semantic_features(ws)[:len(ids)], np.asarray(ws.array("stimuli_contrast")[:len(ids)],
                                                                          np.float32))
    pred = np.concatenate([simulate_response(ws, subject, stimulus_images(ws, ids[a:a + batch]), judge)
                           for a in range(0, len(ids), batch)])
    r = pearson_columns(true, pred)
    roi = ws.query("SELECT roi FROM voxels WHERE subject = ? ORDER BY voxel", [subject]).roi.fillna("(none)")
    from ..surface.rois import ROI_ORDER

    t = pd.DataFrame({"ROI": roi.to_numpy(), "r": r}).groupby("ROI").r.agg(["median", "size"]).reset_index()
    order = {n: k for k, n in enumerate(ROI_ORDER)}
    t = t.sort_values("ROI", key=lambda c: c.map(lambda n: order.get(n, len(order))))
    return t.rename(columns={"median": "median r", "size": "voxels"}).assign(images=len(ids)).reset_index(drop=True)
