"""Compact binary surface data for the browser viewer, and icosahedral subdivision.

The viewer gets geometry once, as static files that the browser caches, and only overlay values on
change. Files are gzip-compressed containers (see ``pack``): a JSON header naming typed arrays, then
the arrays. Positions are quantised to uint16 per axis (about 0.003 mm steps on fsaverage: far below
a pixel); faces are rotated so the smallest index comes first (winding kept), sorted, and stored as
deltas, which compresses about 3x better than raw indices; sulcal depth is one byte per vertex.
Overlay values travel as uint16 codes over a value range (65535 = no value).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from .meshes import Hemisphere, Surface
from .rois import HEMIS

MAGIC = b"VSM1"
NO_VALUE = 65535
SURFACE_KINDS = ("inflated", "pial", "white", "flat")


def pack(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """``MAGIC | u32 header length | header JSON | arrays (each 4-byte aligned)``, little endian."""
    entries, chunks, offset = [], [], 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        raw = a.tobytes()
        entries.append({"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "offset": offset,
                        "nbytes": len(raw)})
        pad = (-len(raw)) % 4
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    head = json.dumps({**header, "arrays": entries}, separators=(",", ":")).encode()
    head += b" " * ((-len(head)) % 4)
    return MAGIC + np.uint32(len(head)).tobytes() + head + b"".join(chunks)


def unpack(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of ``pack`` (used by tests and tools)."""
    if blob[:4] != MAGIC:
        raise ValueError("not a VoxelScope mesh container (bad magic)")
    n = int(np.frombuffer(blob[4:8], np.uint32)[0])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    arrays = {}
    for e in header.pop("arrays"):
        start = base + e["offset"]
        arrays[e["name"]] = np.frombuffer(blob[start:start + e["nbytes"]], e["dtype"]).reshape(e["shape"])
    return header, arrays


def encode_faces(faces: np.ndarray) -> np.ndarray:
    """Faces as int32 deltas: each triangle rotated so its smallest index is first (same winding),
    triangles sorted, first indices delta-coded along the list, the other two relative to the first."""
    f = np.asarray(faces, np.int64)
    k = f.argmin(1)
    rows = np.arange(len(f))[:, None]
    f = f[rows, (k[:, None] + np.arange(3)[None, :]) % 3]
    f = f[np.lexsort((f[:, 2], f[:, 1], f[:, 0]))]
    out = np.empty_like(f)
    out[:, 0] = np.diff(f[:, 0], prepend=0)
    out[:, 1] = f[:, 1] - f[:, 0]
    out[:, 2] = f[:, 2] - f[:, 0]
    return out.astype(np.int32)


def decode_faces(enc: np.ndarray) -> np.ndarray:
    """Inverse of ``encode_faces``."""
    enc = np.asarray(enc, np.int64)
    first = np.cumsum(enc[:, 0])
    return np.stack([first, first + enc[:, 1], first + enc[:, 2]], 1)


def quantise_positions(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint16 codes (n, 3), lo, step): positions quantised per axis over their range."""
    lo = xyz.min(0).astype(np.float32)
    span = np.maximum(xyz.max(0) - lo, 1e-6).astype(np.float32)
    q = np.round((xyz - lo) / span * 65535).astype(np.uint16)
    return q, lo, span / 65535


def dequantise_positions(q: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Inverse of ``quantise_positions``."""
    return q.astype(np.float32) * step + lo


def surface_key(surface: Surface) -> str:
    """A content hash of the surface's geometry: cache files are named by it."""
    h = hashlib.sha1(surface.space.encode())
    for hemi in HEMIS:
        for kind in ("faces", "inflated", "pial"):
            h.update(np.ascontiguousarray(getattr(surface[hemi], kind)).tobytes())
    return h.hexdigest()[:16]


def available_kinds(surface: Surface) -> list[str]:
    """The meshes of ``surface`` the viewer can show (``SURFACE_KINDS`` present)."""
    return [k for k in SURFACE_KINDS if all(getattr(surface[h], k) is not None for h in HEMIS)]


def sulc_codes(sulc: np.ndarray) -> np.ndarray:
    """Sulcal depth as one byte per vertex (128 = 0; the 98th percentile of |depth| maps to the ends)."""
    lim = float(np.percentile(np.abs(sulc), 98)) or 1.0
    return np.round(np.clip(sulc / lim, -1, 1) * 127 + 128).astype(np.uint8)


def topology_blob(surface: Surface) -> bytes:
    """The faces (and flat-patch faces) of both hemispheres, delta-coded, as a container."""
    arrays, header = {}, {"space": surface.space, "kinds": available_kinds(surface), "n": {}}
    for h in HEMIS:
        hemi = surface[h]
        header["n"][h] = hemi.n_vertices
        arrays[f"{h}.faces"] = encode_faces(hemi.faces)
        if hemi.flat_faces is not None:
            arrays[f"{h}.flat_faces"] = encode_faces(hemi.flat_faces)
        arrays[f"{h}.sulc"] = sulc_codes(hemi.sulc)
    return pack(header, arrays)


def positions_blob(surface: Surface, kind: str) -> bytes:
    """One mesh's quantised vertex positions and the sulcal codes, as a container."""
    if kind not in available_kinds(surface):
        raise ValueError(f"surface {kind!r} is not available for {surface.space} "
                         f"(available: {', '.join(available_kinds(surface))})")
    arrays, header = {}, {"space": surface.space, "kind": kind, "lo": {}, "step": {}}
    for h in HEMIS:
        q, lo, step = quantise_positions(getattr(surface[h], kind).astype(np.float64))
        arrays[f"{h}.xyz"] = q
        header["lo"][h], header["step"][h] = lo.tolist(), step.tolist()
    return pack(header, arrays)


def write_mesh_files(surface: Surface, folder: str | Path) -> dict:
    """Write ``topo-<key>.bin.gz`` and ``<kind>-<key>.bin.gz`` (gzip) into ``folder`` once; return
    {"key", "topo": filename, "positions": {kind: filename}, "bytes": {filename: size}}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = surface_key(surface)
    names = {"topo": f"topo-{key}.bin.gz", "positions": {k: f"{k}-{key}.bin.gz" for k in available_kinds(surface)}}
    todo = [(names["topo"], lambda: topology_blob(surface))]
    todo += [(n, (lambda k=k: positions_blob(surface, k))) for k, n in names["positions"].items()]
    sizes = {}
    for name, make in todo:
        path = folder / name
        if not path.exists():
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(gzip.compress(make(), compresslevel=6, mtime=0))
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        sizes[name] = path.stat().st_size
    return {"key": key, **names, "bytes": sizes}


def encode_overlay(values: np.ndarray, lo: float | None = None, hi: float | None = None):
    """float values (NaN = none) -> (uint16 codes, lo, hi). Codes 0..65534 span [lo, hi]."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    if lo is None:
        lo = float(v[ok].min()) if ok.any() else 0.0
    if hi is None:
        hi = float(v[ok].max()) if ok.any() else 1.0
    if hi <= lo:
        hi = lo + 1.0
    codes = np.full(v.shape, NO_VALUE, np.uint16)
    codes[ok] = np.round((np.clip(v[ok], lo, hi) - lo) / (hi - lo) * 65534).astype(np.uint16)
    return codes, lo, hi


def decode_overlay(codes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of ``encode_overlay`` (NaN where no value)."""
    out = lo + codes.astype(np.float64) / 65534 * (hi - lo)
    out[codes == NO_VALUE] = np.nan
    return out


# --- icosahedral subdivision (fsaverage5 -> fsaverage6 -> fsaverage-sized meshes) ---

def _subdivide_hemi(hemi: Hemisphere) -> Hemisphere:
    f = np.asarray(hemi.faces, np.int64)
    n = hemi.n_vertices
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    uniq, inv = np.unique(edges, axis=0, return_inverse=True)
    inv = inv.ravel()
    m = len(f)
    ab, bc, ca = n + inv[:m], n + inv[m:2 * m], n + inv[2 * m:]
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    faces = np.concatenate([np.stack([a, ab, ca], 1), np.stack([b, bc, ab], 1), np.stack([c, ca, bc], 1),
                            np.stack([ab, bc, ca], 1)]).astype(np.int32)

    def mid(x):
        if x is None:
            return None
        return np.concatenate([x, (x[uniq[:, 0]] + x[uniq[:, 1]]) / 2]).astype(x.dtype)

    sphere = mid(hemi.sphere)
    r = np.linalg.norm(hemi.sphere, axis=1).mean()
    sphere[n:] *= r / np.linalg.norm(sphere[n:], axis=1, keepdims=True)
    cortex = None
    if hemi.cortex is not None:
        cortex = np.concatenate([hemi.cortex, hemi.cortex[uniq[:, 0]] & hemi.cortex[uniq[:, 1]]])
    return replace(hemi, pial=mid(hemi.pial), white=mid(hemi.white), inflated=mid(hemi.inflated), sphere=sphere,
                   faces=faces, sulc=mid(hemi.sulc), flat=None, flat_faces=None, cortex=cortex)


def subdivide(surface: Surface, times: int = 1) -> Surface:
    """Split every triangle into four (new vertices at edge midpoints, numbered after the old ones, as in
    FreeSurfer's icosahedral meshes). fsaverage5 subdivided twice has fsaverage's 163,842 vertices per
    hemisphere: the size NSD betas come in. The flat patch is dropped (its cut is not subdivided)."""
    out = surface
    for _ in range(times):
        out = Surface(f"{out.space}+ico", _subdivide_hemi(out.lh), _subdivide_hemi(out.rh))
    return out
