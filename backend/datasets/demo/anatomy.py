"""Where the demo world puts visual cortex: ROI seeds at literature locations, a retinotopic map of
V1-V3 and hV4, and the 'nsdgeneral'-like visual mask, all on fsaverage5.

Only the synthetic subjects (:mod:`.subjects`) use these; real data brings its own ROI files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...surface.meshes import Hemisphere, hemi_mm, nearest_vertex
from ...surface.rois import HEMIS

# Literature locations of category ROIs (MNI305 / fsaverage mm, right hemisphere; x is mirrored for lh).
# Sources: Kanwisher 1997 / Grill-Spector & Weiner 2014 (faces), Epstein 1998 / Dilks 2013 (places),
# Downing 2001 / Peelen 2005 (bodies), Cohen 2000 / Dehaene 2011 (VWFA, left only).
ROI_SEEDS: dict[str, dict] = {
    # name: dict(file, mm=(x, y, z) right hemisphere, radius mm, hemis)
    "OFA": dict(file="floc-faces", mm=(41, -79, -9), radius=9, hemis=HEMIS),
    "FFA-1": dict(file="floc-faces", mm=(40, -60, -18), radius=9, hemis=HEMIS),
    "FFA-2": dict(file="floc-faces", mm=(39, -45, -20), radius=8, hemis=HEMIS),
    "aTL-faces": dict(file="floc-faces", mm=(36, -8, -36), radius=7, hemis=("rh",)),
    "PPA": dict(file="floc-places", mm=(26, -44, -9), radius=11, hemis=HEMIS),
    "RSC": dict(file="floc-places", mm=(14, -54, 12), radius=9, hemis=HEMIS),
    "OPA": dict(file="floc-places", mm=(35, -84, 22), radius=10, hemis=HEMIS),
    "EBA": dict(file="floc-bodies", mm=(48, -70, 3), radius=12, hemis=HEMIS),
    "FBA-1": dict(file="floc-bodies", mm=(45, -52, -12), radius=8, hemis=HEMIS),
    "OWFA": dict(file="floc-words", mm=(46, -72, -8), radius=8, hemis=("lh",)),
    "VWFA-1": dict(file="floc-words", mm=(46, -57, -12), radius=9, hemis=("lh",)),
    "VWFA-2": dict(file="floc-words", mm=(45, -44, -15), radius=7, hemis=("lh",)),
}
STREAM_SEEDS = {"midventral": (30, -78, -12), "midlateral": (42, -80, 2), "midparietal": (24, -82, 28),
                "ventral": (35, -50, -16), "lateral": (50, -62, 6), "parietal": (26, -64, 48)}
# Our food ROI (see ``surface.rois.EXTRA_ROI_FILES``), medial/posterior to FFA.
EXTRA_ROI_SEEDS = {"ventral-food": dict(file="food", mm=(29, -62, -12), radius=10, hemis=HEMIS)}

@dataclass
class RetinotopicMap:
    """Early visual areas of one hemisphere from a wedge model around the occipital pole.

    Arrays are (n_vertices,): ``label`` (prf-visualrois id, 0 outside), ``ecc`` (deg),
    ``angle`` (deg, 0 = right horizontal meridian, +90 upper vertical), ``x, y`` (deg, pRF centre).
    """
    label: np.ndarray
    ecc: np.ndarray
    angle: np.ndarray
    x: np.ndarray
    y: np.ndarray


def retinotopic_map(hemi: Hemisphere, pole_shift_mm=(0.0, 0.0), extent: float = 1.0,
                    wedges=(25.0, 45.0, 62.0, 80.0), ecc_max: float = 12.0) -> RetinotopicMap:
    """V1-V3 and hV4 as wedges around the calcarine sulcus (the 'wedge-dipole' layout, simplified).

    The foveal confluence sits at the occipital pole; eccentricity grows log-linearly along the
    calcarine sulcus toward the parieto-occipital junction; polar angle alternates between the
    vertical (V1/V2, V3 outer border) and horizontal (V2/V3) meridians. Dorsal areas map the lower
    visual field, ventral areas the upper field; each hemisphere maps the contralateral hemifield.
    """
    mid = hemi.midthickness
    sign = 1.0 if hemi.name == "rh" else -1.0
    # occipital pole: the most posterior cortical vertex near the midline height of the calcarine
    post = np.where(hemi.cortex if hemi.cortex is not None else True, mid[:, 1], np.inf)
    pole = int(np.argmin(post + 0.05 * np.abs(mid[:, 2] - 2.0)))
    calc = nearest_vertex(mid, hemi_mm((9, -66, 6), hemi.name), hemi.cortex)
    s = hemi.sphere / np.linalg.norm(hemi.sphere, axis=1, keepdims=True)
    p, c = s[pole], s[calc]
    # tangent frame at the pole: e1 toward calcarine's anterior end, e2 toward dorsal
    e1 = c - p * (c @ p)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(p, e1)
    up = s[nearest_vertex(mid, hemi_mm((9, -80, 30), hemi.name))]
    if (up - p) @ e2 < 0:
        e2 = -e2
    # azimuthal equidistant projection at the pole (mm on a 100 mm sphere)
    cosang = np.clip(s @ p, -1, 1)
    ang = np.arccos(cosang)
    t = s - np.outer(cosang, p)
    tn = np.maximum(np.linalg.norm(t, axis=1), 1e-9)
    u = 100 * ang * (t @ e1) / tn + pole_shift_mm[0]
    v = 100 * ang * (t @ e2) / tn + pole_shift_mm[1]
    rho = np.hypot(u, v)
    phi = np.degrees(np.arctan2(v, u))  # 0 along the calcarine, + dorsal
    rho_max = 100 * np.arccos(np.clip(c @ p, -1, 1)) * 1.2 * extent
    w1, w2, w3, w4 = wedges
    n = hemi.n_vertices
    label = np.zeros(n, np.int16)
    angle = np.zeros(n, np.float32)
    inside = (rho < rho_max) & (rho > 0.5) & (hemi.cortex if hemi.cortex is not None else True)
    a = np.abs(phi)
    dors = phi > 0
    # (label dorsal, label ventral, lower bound, upper bound, angle at lower bound, angle at upper bound)
    bands = [(2, 1, 0, w1, 0, 90), (4, 3, w1, w2, 90, 0), (6, 5, w2, w3, 0, 90)]
    for ld, lv, lo, hi, a0, a1 in bands:
        m = inside & (a >= lo) & (a < hi)
        frac = (a - lo) / (hi - lo)
        mag = a0 + (a1 - a0) * frac  # |polar angle| from the horizontal meridian
        label[m & dors] = ld
        label[m & ~dors] = lv
        angle[m] = np.where(dors[m], -mag[m], mag[m])
    m4 = inside & ~dors & (a >= w3) & (a < w4)
    label[m4] = 7
    angle[m4] = (90 - 180 * (a[m4] - w3) / (w4 - w3))
    ecc = np.where(label > 0, 0.3 * (np.exp(np.log(ecc_max / 0.3 + 1) * rho / rho_max) - 1), 0).astype(np.float32)
    # the left hemisphere sees the right visual field
    x = np.where(label > 0, -sign * ecc * np.cos(np.radians(angle)), 0).astype(np.float32)
    y = np.where(label > 0, ecc * np.sin(np.radians(angle)), 0).astype(np.float32)
    return RetinotopicMap(label, ecc, angle.astype(np.float32), x, y)


def visual_mask(hemi: Hemisphere) -> np.ndarray:
    """A posterior 'nsdgeneral'-like mask: occipital, ventral temporal and posterior parietal cortex."""
    m = hemi.midthickness
    cortex = hemi.cortex if hemi.cortex is not None else np.ones(hemi.n_vertices, bool)
    occ_par = m[:, 1] < -48
    ventral = (m[:, 1] < -25) & (m[:, 2] < -4)
    return cortex & (occ_par | ventral)
