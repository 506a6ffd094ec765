"""Cortical surfaces and regions of interest.

Surfaces are plain containers of numpy arrays (``Hemisphere``: coordinates in mm, triangles).
The demo world lives on nilearn's shipped fsaverage5 mesh (10,242 vertices per hemisphere,
MNI305-aligned coordinates); NSD data lives on the full fsaverage mesh read from
``nsddata/freesurfer/fsaverage/surf`` with nibabel.  Both go through :class:`Surface`.

ROI names, label ids and file names follow NSD (``prf-visualrois``, ``floc-faces`` ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEMIS = ("lh", "rh")
_NILEARN_HEMI = {"lh": "left", "rh": "right"}

# NSD ROI files: file name -> {label id: label name}
ROI_FILES: dict[str, dict[int, str]] = {
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {1: "early", 2: "midventral", 3: "midlateral", 4: "midparietal", 5: "ventral", 6: "lateral",
                7: "parietal"},
}
FLOC_CATEGORY = {"floc-faces": "face", "floc-places": "place", "floc-bodies": "body", "floc-words": "word"}

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
# Literature centroids used by the tests (group-average FFA, MNI, per hemisphere)
LITERATURE_MM = {"FFA": {"rh": (40, -52, -18), "lh": (-40, -52, -18)},
                 "PPA": {"rh": (26, -44, -9), "lh": (-26, -44, -9)},
                 "EBA": {"rh": (48, -70, 3), "lh": (-48, -70, 3)},
                 "VWFA": {"lh": (-45, -57, -13)},
                 "V1": {"rh": (10, -85, 5), "lh": (-10, -85, 5)}}
STREAM_SEEDS = {"midventral": (30, -78, -12), "midlateral": (42, -80, 2), "midparietal": (24, -82, 28),
                "ventral": (35, -50, -16), "lateral": (50, -62, 6), "parietal": (26, -64, 48)}


@dataclass
class Hemisphere:
    """One hemisphere's meshes. Arrays: coordinates (n_vertices, 3) in mm, faces (n_faces, 3) int."""
    name: str
    pial: np.ndarray
    white: np.ndarray
    inflated: np.ndarray
    sphere: np.ndarray
    faces: np.ndarray
    sulc: np.ndarray  # (n_vertices,) sulcal depth (positive = deep)
    flat: np.ndarray | None = None
    cortex: np.ndarray | None = None  # (n_vertices,) bool, False on the medial wall
    flat_faces: np.ndarray | None = None  # the flat patch's faces (the cut removes some)

    @property
    def n_vertices(self) -> int:
        return self.pial.shape[0]

    @property
    def midthickness(self) -> np.ndarray:
        return (self.pial + self.white) / 2


@dataclass
class Surface:
    """Both hemispheres of a surface space (e.g. ``fsaverage5``, ``fsaverage``)."""
    space: str
    lh: Hemisphere
    rh: Hemisphere

    def __getitem__(self, hemi: str) -> Hemisphere:
        if hemi not in HEMIS:
            raise KeyError(f"hemisphere must be 'lh' or 'rh', got {hemi!r}")
        return getattr(self, hemi)

    @property
    def n_vertices(self) -> dict[str, int]:
        return {h: self[h].n_vertices for h in HEMIS}


def load_fsaverage5() -> Surface:
    """fsaverage5 as shipped inside nilearn (no network)."""
    from nilearn import datasets

    fs = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data("fsaverage5", data_type="sulcal")
    thick = datasets.load_fsaverage_data("fsaverage5", data_type="thickness")
    hemis = {}
    for h in HEMIS:
        n = _NILEARN_HEMI[h]
        hemis[h] = Hemisphere(
            name=h,
            pial=np.asarray(fs["pial"].parts[n].coordinates, np.float32),
            white=np.asarray(fs["white_matter"].parts[n].coordinates, np.float32),
            inflated=np.asarray(fs["inflated"].parts[n].coordinates, np.float32),
            sphere=np.asarray(fs["sphere"].parts[n].coordinates, np.float32),
            flat=np.asarray(fs["flat"].parts[n].coordinates, np.float32),
            flat_faces=np.asarray(fs["flat"].parts[n].faces, np.int32),
            faces=np.asarray(fs["pial"].parts[n].faces, np.int32),
            sulc=np.asarray(sulc.data.parts[n], np.float32),
            cortex=np.asarray(thick.data.parts[n]) > 0,
        )
    return Surface("fsaverage5", hemis["lh"], hemis["rh"])


def load_freesurfer_surface(surf_dir: str | Path, space: str = "fsaverage") -> Surface:
    """Read ``{lh,rh}.{pial,white,inflated,sphere}`` (+ optional ``.sulc``) from a FreeSurfer ``surf`` folder."""
    import nibabel as nib

    surf_dir = Path(surf_dir)
    hemis = {}
    for h in HEMIS:
        arrays = {}
        faces = None
        for kind in ("pial", "white", "inflated", "sphere"):
            path = surf_dir / f"{h}.{kind}"
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing (FreeSurfer surface '{h}.{kind}' is required)")
            try:
                coords, f = nib.freesurfer.read_geometry(str(path))
            except Exception as exc:  # noqa: BLE001 - report which file is broken
                raise ValueError(f"{path} is not a readable FreeSurfer surface: {exc}") from exc
            if faces is not None and coords.shape[0] != arrays["pial"].shape[0]:
                raise ValueError(f"{path} has {coords.shape[0]} vertices, expected {arrays['pial'].shape[0]} "
                                 f"(as in {h}.pial)")
            arrays[kind] = coords.astype(np.float32)
            faces = f if faces is None else faces
        sulc_path = surf_dir / f"{h}.sulc"
        sulc = (np.asarray(nib.freesurfer.read_morph_data(str(sulc_path)), np.float32) if sulc_path.exists()
                else _sulc_from_geometry(arrays["white"], arrays["inflated"]))
        hemis[h] = Hemisphere(name=h, faces=np.asarray(faces, np.int32), sulc=sulc, **arrays)
    return Surface(space, hemis["lh"], hemis["rh"])


def _sulc_from_geometry(white: np.ndarray, inflated: np.ndarray) -> np.ndarray:
    """A sulcal-depth proxy when no ``.sulc`` file exists: distance of the inflated point from its hull centre."""
    c = inflated - inflated.mean(0)
    r = np.linalg.norm(c, axis=1)
    return (r.mean() - r).astype(np.float32)


def mesh_graph(coords: np.ndarray, faces: np.ndarray):
    """Sparse (n_vertices, n_vertices) graph of mesh edges weighted by their length in mm."""
    from scipy import sparse

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    w = np.linalg.norm(coords[e[:, 0]] - coords[e[:, 1]], axis=1)
    n = coords.shape[0]
    g = sparse.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n))
    return (g + g.T).tocsr()


def geodesic_distance(hemi: Hemisphere, sources, limit: float = np.inf) -> np.ndarray:
    """Shortest-path distance (mm, along white-surface edges) from ``sources`` to every vertex."""
    from scipy.sparse.csgraph import dijkstra

    g = mesh_graph(hemi.white, hemi.faces)
    d = dijkstra(g, indices=np.atleast_1d(sources), limit=limit, min_only=True)
    return d


def nearest_vertex(coords: np.ndarray, mm, mask: np.ndarray | None = None) -> int:
    d = np.linalg.norm(coords - np.asarray(mm, np.float32), axis=1)
    if mask is not None:
        d = np.where(mask, d, np.inf)
    return int(np.argmin(d))


def hemi_mm(mm, hemi: str) -> np.ndarray:
    """Mirror a right-hemisphere coordinate into ``hemi``."""
    x, y, z = mm
    return np.array([x if hemi == "rh" else -x, y, z], np.float32)


def vertex_normals(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = coords[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(coords)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-9)


# ----------------------------------------------------------------------------- retinotopy
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
