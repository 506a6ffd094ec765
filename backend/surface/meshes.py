"""Cortical surfaces: plain containers of numpy arrays and the loaders that fill them.

``Hemisphere`` holds one hemisphere's meshes (coordinates in mm, triangles, sulcal depth);
``Surface`` both hemispheres of a space. The demo world lives on nilearn's shipped fsaverage5 mesh
(10,242 vertices per hemisphere, MNI305-aligned coordinates); NSD data lives on the full fsaverage
mesh read from ``nsddata/freesurfer/fsaverage/surf`` with nibabel. ``workspace_surface`` gives the
surface a workspace's vertices live on.
"""
from __future__ import annotations

from dataclasses import dataclass
import uuid
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .rois import HEMIS

__all__ = ["Hemisphere", "Surface", "load_fsaverage5", "load_freesurfer_surface", "workspace_surface",
           "mesh_graph", "geodesic_distance", "nearest_vertex", "hemi_mm", "vertex_normals", "SPACE_BY_VERTICES"]

_NILEARN_HEMI = {"lh": "left", "rh": "right"}
# the fsaverage family, by vertices per hemisphere
SPACE_BY_VERTICES = {163842: "fsaverage", 40962: "fsaverage6", 10242: "fsaverage5", 2562: "fsaverage4"}

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
            raise InvalidInputError(f"hemisphere must be 'lh' or 'rh', got {hemi!r}")
        return getattr(self, hemi)

    @property
    def n_vertices(self) -> dict[str, int]:
        return {h: self[h].n_vertices for h in HEMIS}


_FIELDS = ("pial", "white", "inflated", "sphere", "faces", "sulc", "flat", "cortex", "flat_faces")
SURFACE_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "surfaces"


def load_fsaverage5(cache: Path | None = SURFACE_CACHE) -> Surface:
    """fsaverage5 as shipped inside nilearn (no network).

    Importing ``nilearn.datasets`` costs 3-4 s (it pulls in scikit-learn and scipy.stats), so the arrays are also
    kept in ``cache`` as one ``.npz`` per nilearn version (written atomically at the first load, typically by the
    world job): a page's first visit then reads them in milliseconds. ``cache=None`` always reads nilearn."""
    from importlib.metadata import version

    path = cache / f"fsaverage5-nilearn{version('nilearn')}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return Surface("fsaverage5", *(Hemisphere(name=h, **{f: z[f"{h}_{f}"] for f in _FIELDS}) for h in HEMIS))
    surface = _read_nilearn_fsaverage5()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp.npz")
            np.savez(tmp, **{f"{h}_{f}": getattr(surface[h], f) for h in HEMIS for f in _FIELDS})
            tmp.replace(path)
        except OSError:
            pass  # a read-only checkout: no cache, the surface is still right
    return surface


def _read_nilearn_fsaverage5() -> Surface:
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
                raise InvalidInputError(f"{path} is not a readable FreeSurfer surface: {exc}") from exc
            if faces is not None and coords.shape[0] != arrays["pial"].shape[0]:
                raise InvalidInputError(f"{path} has {coords.shape[0]} vertices, expected {arrays['pial'].shape[0]} "
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
    """Index of the vertex of ``coords`` (n, 3) closest to ``mm`` (among ``mask`` when given)."""
    d = np.linalg.norm(coords - np.asarray(mm, np.float32), axis=1)
    if mask is not None:
        d = np.where(mask, d, np.inf)
    return int(np.argmin(d))


def hemi_mm(mm, hemi: str) -> np.ndarray:
    """Mirror a right-hemisphere coordinate into ``hemi``."""
    x, y, z = mm
    return np.array([x if hemi == "rh" else -x, y, z], np.float32)


def vertex_normals(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (n_vertices, 3): area-weighted sums of the adjacent face normals."""
    tri = coords[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(coords)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-9)


def workspace_surface(ws) -> Surface:
    """The surface a workspace's vertices live on (fsaverage5 from nilearn, or the NSD fsaverage folder)."""
    meta = ws.meta()
    if meta.get("space") == "fsaverage5":
        return load_fsaverage5()
    root = meta.get("nsd_root")
    if root:
        return load_freesurfer_surface(Path(root) / "nsddata/freesurfer/fsaverage/surf", meta.get("space", "fsaverage"))
    raise FileNotFoundError(f"no surface files known for space {meta.get('space')!r} in workspace {ws.path}")
