"""Synthetic subjects on the fsaverage5 cortex, with ground truth for every voxel.

A subject is a set of ROI labels placed at their literature locations (jittered and scaled per
subject), a visual mask ('nsdgeneral'), and for every voxel of the mask a response model:

* early visual voxels (V1-V3, hV4): a Gaussian population receptive field (pRF) on the visual
  field whose centre follows the retinotopic map and whose size grows with eccentricity; the
  response is the compressed contrast energy inside the pRF;
* category ROI voxels (faces, bodies, places, words and food): a response to the visible size
  of objects of their category wherever they appear (position tolerant, size dependent), with
  some mixed selectivity; place voxels also respond to scenes;
* the rest of the mask: weak, mixed tuning.

Single-trial betas follow an NSD-like design (``Design``): each subject sees shared images
plus its own, each up to three times, in sessions of ``trials_per_session`` trials; each
voxel has a true noise-ceiling SNR that sets its trial-to-trial noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InvalidInputError
from ...surface.meshes import Surface, geodesic_distance, hemi_mm, nearest_vertex
from ...surface.rois import ALL_ROI_FILES, FILE_CATEGORY, HEMIS, ROI_FILES
from ..image_features import CONTRAST_GRID, FIELD_DEG
from .anatomy import EXTRA_ROI_SEEDS, ROI_SEEDS, STREAM_SEEDS, retinotopic_map, visual_mask
from .stimuli import CATEGORIES

SEMANTIC_FEATURES = (*CATEGORIES, "scene-indoor", "scene-outdoor")
PRF_SIZE = {1: (0.12, 0.35), 2: (0.12, 0.35), 3: (0.18, 0.45), 4: (0.18, 0.45), 5: (0.3, 0.6), 6: (0.3, 0.6),
            7: (0.45, 0.8)}  # label -> (slope, intercept): sigma_deg = slope * ecc + intercept


@dataclass
class Design:
    """NSD-like experimental design for one world.

    ``masterordering`` (n_trials_total,) indexes (0-based) into a subject's image list; every
    subject shares it, as in NSD. ``subjectim`` (n_subjects, n_images_per_subject) gives world
    stimulus ids (0-based); its first ``n_shared`` columns are the shared images (the test split).
    """
    masterordering: np.ndarray
    subjectim: np.ndarray
    n_shared: int
    trials_per_session: int
    sessions: list[int]  # sessions completed per subject

    def trials(self, subject_index: int, session: int) -> np.ndarray:
        """World stimulus ids shown in ``session`` (0-based) to a subject, in trial order."""
        t0 = session * self.trials_per_session
        order = self.masterordering[t0: t0 + self.trials_per_session]
        return self.subjectim[subject_index, order]


def make_design(seed: int, n_subjects: int, n_shared: int, n_unique: int, trials_per_session: int,
                sessions: list[int], reps: int = 3) -> Design:
    """Each subject sees ``n_shared`` shared + ``n_unique`` own images, ``reps`` times each, spread over
    ``len(masterordering) / trials_per_session`` sessions; a subject who stopped early saw fewer repeats."""
    rng = np.random.default_rng([seed, 7])
    n_per = n_shared + n_unique
    total = n_per * reps
    if total % trials_per_session:
        raise InvalidInputError(f"{n_per} images x {reps} repeats is not a whole number of {trials_per_session}-trial "
                                "sessions")
    # spread the repeats of an image over the experiment: repeat k of each image falls in the k-th third
    order = np.concatenate([rng.permutation(n_per) for _ in range(reps)])
    # mix within sliding windows so that repeats are not in lockstep
    win = max(trials_per_session, total // (reps * 2))
    for s in range(0, total, win):
        seg = order[s:s + win]
        order[s:s + win] = seg[rng.permutation(len(seg))]
    shared = np.arange(n_shared)
    subjectim = np.empty((n_subjects, n_per), np.int64)
    for k in range(n_subjects):
        own = n_shared + k * n_unique + np.arange(n_unique)
        subjectim[k] = np.concatenate([shared, own])
    n_sessions_total = total // trials_per_session
    for k, s in enumerate(sessions):
        if s > n_sessions_total:
            raise InvalidInputError(f"subject {k + 1}: {s} sessions requested but the design has {n_sessions_total}")
    return Design(order, subjectim, n_shared, trials_per_session, list(sessions))


@dataclass
class SubjectTruth:
    """Ground truth of one synthetic subject. Per-voxel arrays have shape (n_voxels,)."""
    name: str
    hemi: np.ndarray         # 'lh' / 'rh'
    vertex: np.ndarray       # fsaverage5 vertex index
    roi: dict[str, dict[str, np.ndarray]]  # roi file -> hemi -> (n_vertices,) int labels
    nsdgeneral: dict[str, np.ndarray]       # hemi -> (n_vertices,) bool
    category: np.ndarray     # preferred category ('' = none)
    weights: np.ndarray      # (n_voxels, len(SEMANTIC_FEATURES)) tuning weights
    prf_x: np.ndarray        # deg, NaN where no pRF
    prf_y: np.ndarray
    prf_sigma: np.ndarray
    prf_share: np.ndarray    # share of the signal variance from the pRF (low-level) part
    ncsnr: np.ndarray        # true noise-ceiling SNR
    gain: np.ndarray         # % signal change per unit signal
    baseline: np.ndarray


def place_rois(surface: Surface, rng: np.random.Generator, scale: float = 1.0, jitter_mm: float = 3.0):
    """ROI labels of one subject: ``{roi_file: {hemi: (n_vertices,) int16}}`` and the visual mask."""
    rois = {f: {h: np.zeros(surface[h].n_vertices, np.int16) for h in HEMIS} for f in ALL_ROI_FILES}
    masks = {}
    seeds = {**ROI_SEEDS, **EXTRA_ROI_SEEDS}
    # faces first, then food, places, bodies, words: a vertex belongs to one category ROI at most
    order = ["OFA", "FFA-1", "FFA-2", "ventral-food", "VWFA-1", "VWFA-2", "OWFA", "aTL-faces", "PPA", "RSC", "OPA",
             "EBA", "FBA-1"]
    for h in HEMIS:
        hemi = surface[h]
        ret = retinotopic_map(hemi, pole_shift_mm=tuple(rng.normal(0, 1.5, 2)), extent=float(np.sqrt(scale)))
        rois["prf-visualrois"][h][:] = ret.label
        claimed = ret.label > 0
        mid = hemi.midthickness
        for name in order:
            spec = seeds[name]
            if h not in spec["hemis"]:
                continue
            file = spec["file"]
            label = {v: k for k, v in ALL_ROI_FILES[file].items()}[name]
            target = hemi_mm(spec["mm"], h) + rng.normal(0, jitter_mm, 3).astype(np.float32)
            seed_v = nearest_vertex(mid, target, hemi.cortex & ~claimed if hemi.cortex is not None else ~claimed)
            radius = spec["radius"] * scale * rng.uniform(0.85, 1.15)
            d = geodesic_distance(hemi, seed_v, limit=radius * 1.01)
            patch = (d <= radius) & ~claimed
            if hemi.cortex is not None:
                patch &= hemi.cortex
            rois[file][h][patch] = label
            claimed |= patch
        mask = visual_mask(hemi) | claimed
        masks[h] = mask
        # streams: early = V1-V3; the rest of the mask goes to the nearest stream seed
        streams = rois["streams"][h]
        early = (ret.label > 0) & (ret.label < 7)
        streams[early] = 1
        names = list(STREAM_SEEDS)
        pts = np.stack([hemi_mm(STREAM_SEEDS[n], h) for n in names])
        rest = mask & ~early
        d = np.linalg.norm(mid[rest][:, None, :] - pts[None], axis=2)
        inv = {v: k for k, v in ROI_FILES["streams"].items()}
        streams[rest] = np.array([inv[n] for n in names], np.int16)[np.argmin(d, axis=1)]
    return rois, masks


def make_subject(surface: Surface, name: str, seed: int, scale: float = 1.0, jitter_mm: float = 3.0,
                 ncsnr_median: float = 0.6) -> SubjectTruth:
    """Place ROIs and draw every voxel's tuning for one synthetic subject."""
    rng = np.random.default_rng([seed, 1])
    rois, masks = place_rois(surface, rng, scale, jitter_mm)
    hemi_l, vert_l = [], []
    for h in HEMIS:
        v = np.flatnonzero(masks[h])
        hemi_l.append(np.full(v.size, h))
        vert_l.append(v)
    hemi = np.concatenate(hemi_l)
    vertex = np.concatenate(vert_l).astype(np.int32)
    n = vertex.size
    nf = len(SEMANTIC_FEATURES)
    category = np.full(n, "", dtype=object)
    weights = rng.uniform(0, 0.25, (n, nf)).astype(np.float32)  # weak mixed tuning everywhere
    prf_x = np.full(n, np.nan, np.float32)
    prf_y = np.full(n, np.nan, np.float32)
    prf_sigma = np.full(n, np.nan, np.float32)
    prf_share = np.full(n, 0.15, np.float32)
    ncsnr = np.exp(rng.normal(np.log(ncsnr_median * 0.35), 0.5, n)).astype(np.float32)  # rest of mask: weak
    gain = rng.uniform(0.8, 2.5, n).astype(np.float32)
    baseline = rng.uniform(-0.5, 1.5, n).astype(np.float32)

    # per-voxel ROI memberships
    def labels_of(file):
        return np.concatenate([rois[file][h][masks[h]] for h in HEMIS])

    ret_label = labels_of("prf-visualrois")
    # early visual: pRFs from the retinotopic map
    for h in HEMIS:
        ret = retinotopic_map(surface[h])  # unjittered map gives angles; labels come from the subject's map
        sel = hemi == h
        v = vertex[sel]
        lab = ret_label[sel]
        early = lab > 0
        ex, ey = ret.x[v], ret.y[v]
        # vertices labelled by the jittered map but outside the template one get a nearby template value
        ecc = np.hypot(ex, ey)
        slope = np.array([PRF_SIZE.get(int(l), (0.3, 0.6))[0] for l in lab], np.float32)
        inter = np.array([PRF_SIZE.get(int(l), (0.3, 0.6))[1] for l in lab], np.float32)
        sig = slope * ecc + inter
        idx = np.flatnonzero(sel)[early]
        prf_x[idx] = ex[early] + rng.normal(0, 0.1, early.sum())
        prf_y[idx] = ey[early] + rng.normal(0, 0.1, early.sum())
        prf_sigma[idx] = sig[early] * rng.uniform(0.85, 1.15, early.sum())
    is_early = ret_label > 0
    prf_share[is_early] = np.where(ret_label[is_early] == 7, 0.75, 0.95)
    weights[is_early] *= 0.4
    ncsnr[is_early] = np.exp(rng.normal(np.log(ncsnr_median), 0.35, is_early.sum()))
    # category ROIs
    for file, cat in FILE_CATEGORY.items():
        lab = labels_of(file)
        m = lab > 0
        k = m.sum()
        if not k:
            continue
        ci = SEMANTIC_FEATURES.index(cat)
        category[m] = cat
        w = rng.uniform(0.0, 0.15, (k, nf)).astype(np.float32)
        w[:, ci] = 1.0
        if cat == "place":
            w[:, SEMANTIC_FEATURES.index("scene-indoor")] = rng.uniform(0.4, 0.7, k)
            w[:, SEMANTIC_FEATURES.index("scene-outdoor")] = rng.uniform(0.5, 0.8, k)
        mixed = rng.random(k) < 0.2  # some voxels are also driven by a second category
        other = rng.choice([c for c in range(len(CATEGORIES)) if c != ci], size=k)
        w[np.flatnonzero(mixed), other[mixed]] = rng.uniform(0.35, 0.7, mixed.sum())
        weights[m] = w
        prf_share[m] = 0.1
        ncsnr[m] = np.exp(rng.normal(np.log(ncsnr_median), 0.35, k))
        # a large, foveal pRF gives category voxels a little position dependence
        prf_x[m] = rng.normal(0, 1.0, k)
        prf_y[m] = rng.normal(0, 1.0, k)
        prf_sigma[m] = rng.uniform(3, 5, k)
    # the rest of the mask: a broad pRF too
    rest = np.isnan(prf_x)
    prf_x[rest] = rng.normal(0, 2.0, rest.sum())
    prf_y[rest] = rng.normal(0, 2.0, rest.sum())
    prf_sigma[rest] = rng.uniform(2, 5, rest.sum())
    ncsnr = np.clip(ncsnr, 0.02, 2.0).astype(np.float32)
    return SubjectTruth(name, hemi, vertex, rois, masks, category, weights, prf_x, prf_y, prf_sigma,
                        prf_share, ncsnr, gain, baseline)


# ----------------------------------------------------------------------------- stimulus features
def semantic_features(objects, backgrounds) -> np.ndarray:
    """(n_images, len(SEMANTIC_FEATURES)): per category, the sum over its objects of sqrt(visible area
    fraction) (position tolerant, size dependent); scene features are 1 for indoor/outdoor backgrounds.

    ``objects``: DataFrame with columns stim_id (0..n-1), category, area. ``backgrounds``: (n_images,) str.
    """
    n = len(backgrounds)
    f = np.zeros((n, len(SEMANTIC_FEATURES)), np.float32)
    ci = objects["category"].map({c: i for i, c in enumerate(CATEGORIES)}).to_numpy()
    np.add.at(f, (objects["stim_id"].to_numpy(), ci), np.sqrt(objects["area"].to_numpy(np.float32)) * 3)
    bg = np.asarray(backgrounds)
    f[:, SEMANTIC_FEATURES.index("scene-indoor")] = bg == "indoor"
    f[:, SEMANTIC_FEATURES.index("scene-outdoor")] = bg == "outdoor"
    return f


def prf_matrix(x, y, sigma, grid: int = CONTRAST_GRID) -> np.ndarray:
    """(grid*grid, n_voxels) Gaussian pRF weights over the contrast grid (image spans FIELD_DEG).

    Weights are normalised over the whole plane, so a pRF partly outside the image gets less drive."""
    half = FIELD_DEG / 2
    c = (np.arange(grid) + 0.5) / grid * FIELD_DEG - half
    gx, gy = np.meshgrid(c, -c)  # row 0 = top of the image = +y
    cell = (FIELD_DEG / grid) ** 2
    d2 = (gx.ravel()[:, None] - x[None]) ** 2 + (gy.ravel()[:, None] - y[None]) ** 2
    g = np.exp(-d2 / (2 * sigma[None] ** 2)) * cell / (2 * np.pi * sigma[None] ** 2)
    return g.astype(np.float32)


def drive(weights, prf_x, prf_y, prf_sigma, sem: np.ndarray, contrast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two raw parts of every voxel's response, before normalisation: (low, high), each (n_images, n_voxels).

    low = sqrt(contrast energy inside the pRF) (compressive spatial summation); high = semantic features @ tuning."""
    low = contrast.reshape(contrast.shape[0], -1).astype(np.float32) @ prf_matrix(prf_x, prf_y, prf_sigma)
    return np.sqrt(np.maximum(low, 0)), (sem @ np.asarray(weights, np.float32).T).astype(np.float32)


def combine(low: np.ndarray, high: np.ndarray, prf_share: np.ndarray, stats: dict | None = None) -> np.ndarray:
    """sqrt(share) z(low) + sqrt(1 - share) z(high), z-scored again; the z-scores use ``stats`` (means and stds
    of low, high and the mix over the world's images: ``low_mean, low_std, high_mean, high_std, mix_mean,
    mix_std``) or, without them, the images given."""
    def z(a, m, sd):
        return (a - m) / np.maximum(sd, 1e-6)

    st = stats or {"low_mean": low.mean(0), "low_std": low.std(0), "high_mean": high.mean(0), "high_std": high.std(0)}
    mix = np.sqrt(prf_share) * z(low, st["low_mean"], st["low_std"]) + \
        np.sqrt(1 - prf_share) * z(high, st["high_mean"], st["high_std"])
    if stats is None:
        return z(mix, mix.mean(0), mix.std(0)).astype(np.float32)
    return z(mix, stats["mix_mean"], stats["mix_std"]).astype(np.float32)


def normalisation(weights, prf_x, prf_y, prf_sigma, prf_share, sem: np.ndarray, contrast, chunk: int = 2000) -> dict:
    """Means and stds over the world's images of each voxel's low and high drive and of their mix, in one pass over
    the images (chunks): the mix sqrt(s) z(low) + sqrt(1 - s) z(high) has mean 0 and variance
    1 + 2 sqrt(s (1 - s)) corr(low, high), so the parts' sums, squares and cross products are enough."""
    n = sem.shape[0]
    acc = {k: np.zeros(len(prf_x)) for k in ("l", "l2", "h", "h2", "lh")}
    for a in range(0, n, chunk):
        low, high = drive(weights, prf_x, prf_y, prf_sigma, sem[a:a + chunk], np.asarray(contrast[a:a + chunk],
                                                                                         np.float32))
        low, high = low.astype(np.float64), high.astype(np.float64)
        acc["l"] += low.sum(0)
        acc["l2"] += (low * low).sum(0)
        acc["h"] += high.sum(0)
        acc["h2"] += (high * high).sum(0)
        acc["lh"] += (low * high).sum(0)
    ml, mh = acc["l"] / n, acc["h"] / n
    sl = np.sqrt(np.maximum(acc["l2"] / n - ml * ml, 0))
    sh = np.sqrt(np.maximum(acc["h2"] / n - mh * mh, 0))
    corr = (acc["lh"] / n - ml * mh) / np.maximum(np.maximum(sl, 1e-6) * np.maximum(sh, 1e-6), 1e-12)
    share = np.asarray(prf_share, np.float64)
    # a part with no variance is 0 after z-scoring (combine divides by max(std, 1e-6)); it adds no variance
    var = share * (sl > 1e-6) + (1 - share) * (sh > 1e-6) + 2 * np.sqrt(share * (1 - share)) * corr * \
        (sl > 1e-6) * (sh > 1e-6)
    return {"low_mean": ml.astype(np.float32), "low_std": sl.astype(np.float32), "high_mean": mh.astype(np.float32),
            "high_std": sh.astype(np.float32), "mix_mean": np.zeros(len(prf_x), np.float32),
            "mix_std": np.sqrt(np.maximum(var, 0)).astype(np.float32)}


STAT_NAMES = ("low_mean", "low_std", "high_mean", "high_std", "mix_mean", "mix_std")


def true_signal(truth: SubjectTruth, sem: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """Noise-free response of every voxel to every image, z-scored over images: (n_images, n_voxels).

    ``sem``: (n_images, n_semantic); ``contrast``: (n_images, grid, grid)."""
    low, high = drive(truth.weights, truth.prf_x, truth.prf_y, truth.prf_sigma, sem, contrast)
    return combine(low, high, truth.prf_share)


def simulate_session(truth: SubjectTruth, signal: np.ndarray, stim_ids: np.ndarray, seed: int,
                     session: int) -> np.ndarray:
    """Single-trial betas (% signal change) of one session: (n_trials, n_voxels) float32.

    beta = baseline + session drift + gain * session gain * (signal + noise / ncsnr)."""
    rng = np.random.default_rng([seed, 2, session])
    n = truth.vertex.size
    drift = rng.normal(0, 0.3, n).astype(np.float32)
    sgain = rng.uniform(0.8, 1.2, n).astype(np.float32)
    noise = rng.standard_normal((stim_ids.size, n), dtype=np.float32) / truth.ncsnr
    return truth.baseline + drift + truth.gain * sgain * (signal[stim_ids] + noise)
