"""The Natural Scenes Dataset (NSD) release layout on fsaverage: import.

Files read (paths relative to the NSD root)::

    nsddata/experiments/nsd/nsd_expdesign.mat          masterordering, subjectim, sharedix
    nsddata/experiments/nsd/nsd_stim_info_merged.csv    nsdId, cocoId, cropBox, shared1000, subjectN, ...
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5        imgBrick (73000, 425, 425, 3) uint8
    nsddata_stimuli/stimuli/nsd/annotations/captions_*.json   COCO captions (optional)
    nsddata_betas/ppdata/subjXX/fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.betas_sessionNN.mgh
    nsddata_betas/ppdata/subjXX/fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.ncsnr.mgh (optional)
    nsddata/freesurfer/fsaverage/surf/{lh,rh}.{pial,white,inflated,sphere}
    nsddata/freesurfer/fsaverage/label/{lh,rh}.nsdgeneral.mgz   the visual mask (default vertex selection)
    nsddata/freesurfer/subjXX/label/{lh,rh}.<roi-file>.mgz + <roi-file>.mgz.ctab
    nsddata/ppdata/subjXX/transforms/{lh,rh}.white-to-fsaverage.mgz   NSD's native -> fsaverage transforms

ROI label files in fsaverage space are read as they are (``nsddata/freesurfer/subjXX/label/fsaverage/`` first
when it exists). NSD ships them on each subject's native surface: with the transform files above they are
mapped to fsaverage (nearest neighbour, as NSD's ``nsdcode`` does); without them the import keeps the
``nsdgeneral`` voxels with empty ROI columns and its report says how to add ROIs.

Betas are read a chunk of voxels at a time (for each chunk, the chunk's range of every session file), z-scored
per voxel within each session and averaged over repeats (:mod:`backend.datasets.betas`), so memory stays near
``IMPORT_MEMORY_MB`` for any subject size (a full 327,684-vertex subject of 40 sessions included); the averaged
betas are written to a memory-mapped file in the workspace's ``staging/`` folder and adopted by the writer.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..store import ProgressFn, report
from ..surface.meshes import SPACE_BY_VERTICES
from ..surface.rois import ALL_ROI_FILES, HEMIS
from .betas import RepeatAverager, zscore_session
from .subject import roi_label_frame, write_subject

__all__ = ["import_nsd", "load_nsd_betas", "ImportReport", "NSDFormatError", "read_expdesign", "read_stim_info",
           "read_coco_captions", "read_ctab", "SPACE_BY_VERTICES"]

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
STIM_INFO = "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
STIM_HDF5 = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
ANNOTATIONS = "nsddata_stimuli/stimuli/nsd/annotations"
FSAVERAGE = "nsddata/freesurfer/fsaverage"
BETAS = "nsddata_betas/ppdata/{subject}/fsaverage/betas_fithrf_GLMdenoise_RR"
LABELS = "nsddata/freesurfer/{subject}/label"
TRANSFORMS = "nsddata/ppdata/{subject}/transforms"
ROI_FILE_NAMES = tuple(ALL_ROI_FILES)  # the ROI files read when present (NSD's, plus our food file)


class NSDFormatError(InvalidInputError):
    """A file of the NSD layout is missing, truncated or does not match the others."""


def _subject_index(subject: str) -> int:
    m = re.fullmatch(r"subj(\d\d)", subject)
    if not m:
        raise NSDFormatError(f"subject must look like 'subj01', got {subject!r}")
    return int(m.group(1)) - 1


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise NSDFormatError(f"{path} is missing ({what})")
    return path


# ----------------------------------------------------------------------------- small readers
def read_expdesign(root: Path) -> dict:
    """masterordering (n_trials,) and subjectim (n_subjects, n_images) as 0-based arrays, sharedix."""
    from scipy.io import loadmat

    path = _need(root / EXPDESIGN, "the NSD experimental design")
    try:
        mat = loadmat(str(path))
    except Exception as exc:  # noqa: BLE001
        raise NSDFormatError(f"{path} is not a readable .mat file: {exc}") from exc
    for key in ("masterordering", "subjectim", "sharedix"):
        if key not in mat:
            raise NSDFormatError(f"{path} has no field '{key}'")
    mo = np.asarray(mat["masterordering"]).ravel().astype(np.int64) - 1
    si = np.asarray(mat["subjectim"]).astype(np.int64) - 1
    shared = np.asarray(mat["sharedix"]).ravel().astype(np.int64) - 1
    if mo.min() < 0 or mo.max() >= si.shape[1]:
        raise NSDFormatError(f"{path}: masterordering indexes images 1..{mo.max() + 1} but subjectim has "
                             f"{si.shape[1]} columns")
    return {"masterordering": mo, "subjectim": si, "sharedix": shared}


def read_stim_info(root: Path) -> pd.DataFrame:
    """``nsd_stim_info_merged.csv`` as a DataFrame; an error names the file or the missing column."""
    path = _need(root / STIM_INFO, "NSD stimulus information")
    df = pd.read_csv(path)
    for col in ("nsdId", "cocoId", "cropBox", "shared1000"):
        if col not in df.columns:
            raise NSDFormatError(f"{path} has no column '{col}'")
    return df


def read_coco_captions(paths) -> dict[int, list[str]]:
    """{cocoId: [captions]} from COCO ``captions_*.json`` files."""
    caps: dict[int, list[str]] = {}
    for p in paths:
        try:
            data = json.loads(Path(p).read_text())
        except Exception as exc:  # noqa: BLE001
            raise NSDFormatError(f"{p} is not a readable COCO captions JSON: {exc}") from exc
        if "annotations" not in data:
            raise NSDFormatError(f"{p} has no 'annotations' list (expected COCO captions format)")
        for a in data["annotations"]:
            caps.setdefault(int(a["image_id"]), []).append(str(a["caption"]).strip())
    return caps


def read_ctab(path: Path) -> dict[int, str]:
    """``<roi>.mgz.ctab``: lines 'id name'."""
    out = {}
    for line in _need(path, "ROI colour table").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
            out[int(parts[0])] = parts[1]
    return out


def read_surface_values(path: Path, n_vertices: int, what: str) -> np.ndarray:
    """A per-vertex .mgh/.mgz map (n_vertices,) or (n_vertices, n_frames)."""
    import nibabel as nib

    _need(path, what)
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001
        raise NSDFormatError(f"{path.name} is truncated or unreadable ({exc})") from exc
    if data.shape[0] != n_vertices:
        raise NSDFormatError(f"{path.name} has {data.shape[0]} vertices, expected {n_vertices}")
    return data.reshape(n_vertices, -1).squeeze(axis=1) if data.reshape(n_vertices, -1).shape[1] == 1 \
        else data.reshape(n_vertices, -1)


def session_files(root: Path, subject: str) -> dict[int, dict[str, Path]]:
    """Sessions present on disk: {session (1-based): {'lh': path, 'rh': path}}."""
    d = root / BETAS.format(subject=subject)
    out: dict[int, dict[str, Path]] = {}
    for p in sorted(d.glob("?h.betas_session*.mgh")):
        m = re.fullmatch(r"([lr]h)\.betas_session(\d+)\.mgh", p.name)
        if m:
            out.setdefault(int(m.group(2)), {})[m.group(1)] = p
    return out


@dataclass
class ImportReport:
    """What an NSD import read and kept: sessions, trials, images, voxels, dropped voxels, notes."""
    subject: str
    space: str
    sessions: list[int]
    n_trials: int
    n_images: int
    n_voxels: int
    notes: list[str] = field(default_factory=list)
    dropped_voxels: int = 0
    ncsnr_file_r: float | None = None

    def text(self) -> str:
        lines = [f"imported {self.subject} ({self.space}): {len(self.sessions)} sessions, {self.n_trials:,} trials, "
                 f"{self.n_images:,} images, {self.n_voxels:,} voxels"]
        if self.ncsnr_file_r is not None:
            lines.append(f"  computed ncsnr vs the release's ncsnr file: r = {self.ncsnr_file_r:.4f}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.dropped_voxels:
            lines.append(f"  dropped {self.dropped_voxels} voxels with no valid beta for some image")
        return "\n".join(lines)


def select_vertices(root: Path, n_vertices: dict[str, int], vertices=None) -> dict[str, np.ndarray]:
    """Vertex indices per hemisphere: given, 'all', or the fsaverage ``nsdgeneral`` mask (default)."""
    if vertices == "all":
        return {h: np.arange(n_vertices[h]) for h in HEMIS}
    if vertices is not None:
        return {h: np.asarray(vertices[h], np.int64) for h in HEMIS}
    out = {}
    for h in HEMIS:
        m = read_surface_values(root / FSAVERAGE / "label" / f"{h}.nsdgeneral.mgz", n_vertices[h], "the nsdgeneral mask")
        out[h] = np.flatnonzero(m > 0)
    return out


def native_to_fsaverage(root: Path, subject: str, hemi: str, path: Path, n_fsaverage: int) -> np.ndarray | None:
    """Labels of a native-surface file (``path``) on fsaverage, or None when NSD's transform file is absent.

    NSD's ``{hemi}.white-to-fsaverage.mgz`` (in ``nsddata/ppdata/subjXX/transforms``) holds, for every
    fsaverage vertex, the 1-based index of the nearest vertex of the subject's white surface; mapping is
    nearest neighbour, as NSD's own ``nsdcode`` does for this case (``NSDmapdata.fit(subj, 'lh.white',
    'fsaverage', data)``). We do the one indexing step here because nsdcode 1.1 fails on it with NumPy >= 1.24
    (it calls the removed ``np.int``)."""
    import nibabel as nib

    tfile = root / TRANSFORMS.format(subject=subject) / f"{hemi}.white-to-fsaverage.mgz"
    if not tfile.exists():
        return None
    try:
        index = np.asarray(nib.load(str(tfile)).dataobj).reshape(-1)
        labels = np.asarray(nib.load(str(path)).dataobj).reshape(-1)
    except Exception as exc:  # noqa: BLE001
        raise NSDFormatError(f"{tfile.name} or {path.name} is truncated or unreadable ({exc})") from exc
    if index.size != n_fsaverage:
        raise NSDFormatError(f"{tfile} has {index.size} vertices, expected {n_fsaverage} (fsaverage)")
    index = np.round(index).astype(np.int64)
    if index.min() < 1 or index.max() > labels.size:
        raise NSDFormatError(f"{tfile} points to native vertices {index.min()}..{index.max()}, but {path.name} has "
                             f"{labels.size} (1-based indices expected)")
    return labels[index - 1]


def read_roi_labels(root: Path, subject: str, n_vertices: dict[str, int], vertices: dict[str, np.ndarray],
                    notes: list[str] | None = None):
    """{roi file: (n_selected,) label names}, from the subject's label files.

    Files in fsaverage space are read as they are. Files on the subject's native surface (as NSD's release
    keeps them) are mapped to fsaverage with NSD's transform files when present (:func:`native_to_fsaverage`);
    without them, or when a file is missing, its ROI columns stay empty. Both are said in ``notes``. A label id
    its ``.ctab`` does not name is an error."""
    base = root / LABELS.format(subject=subject)
    labels, native, mapped = {}, [], set()
    for roi in ROI_FILE_NAMES:
        d = base / "fsaverage" if (base / "fsaverage" / f"lh.{roi}.mgz").exists() else base
        if not (d / f"lh.{roi}.mgz").exists():
            if roi == "streams" and (root / FSAVERAGE / "label" / "lh.streams.mgz").exists():
                d = root / FSAVERAGE / "label"
            else:
                continue
        ctab_path = d / f"{roi}.mgz.ctab"
        names = read_ctab(ctab_path)
        per_h = []
        for h in HEMIS:
            p = d / f"{h}.{roi}.mgz"
            try:
                v = read_surface_values(p, n_vertices[h], f"ROI labels {roi}")
            except NSDFormatError as exc:
                if "vertices, expected" not in str(exc):
                    raise
                v = native_to_fsaverage(root, subject, h, p, n_vertices[h])
                if v is None:  # on the subject's native surface and no transform to fsaverage
                    native.append(p.name)
                    break
                mapped.add(roi)
            ids = np.asarray(v, np.int64)[vertices[h]]
            unknown = sorted(set(np.unique(ids[ids > 0]).tolist()) - set(names))
            if unknown:
                raise NSDFormatError(f"{p.name} uses label ids {unknown} that {ctab_path.name} does not name")
            lut = np.array([""] + [names.get(i, "") for i in range(1, max(names, default=0) + 1)], dtype=object)
            per_h.append(lut[np.clip(ids, 0, None)])
        if len(per_h) == len(HEMIS):
            labels[roi] = np.concatenate(per_h)
    if notes is not None:
        if mapped:
            notes.append(f"mapped {', '.join(sorted(mapped))} from {subject}'s native surface to fsaverage with NSD's "
                         f"transforms ({TRANSFORMS.format(subject=subject)}/{{lh,rh}}.white-to-fsaverage.mgz, "
                         "nearest neighbour)")
        if native:
            notes.append(f"{', '.join(native)} in {base} are on {subject}'s native surface, not on fsaverage: those "
                         f"ROI columns are left empty. To add ROIs, map the files to fsaverage with NSD's nsdcode "
                         f"(NSDmapdata(root).fit({subject[-1]}, 'lh.white', 'fsaverage', file)) and save them under "
                         f"{base / 'fsaverage'}, then import again")
        elif not labels:
            notes.append(f"no ROI label files for {subject} (looked in {base}): ROI columns are empty; voxels come "
                         "from the nsdgeneral mask")
    return labels


# ----------------------------------------------------------------------------- import
IMPORT_MEMORY_MB = 2048  # working memory of the betas read: the voxel chunk is sized to fit it


def _open_session(paths: dict[str, Path], n_vertices: dict[str, int], n_trials: int | None) -> dict:
    """Check one session's two files by their headers (no data read): {hemi: lazy (n_vertices, n_trials) data}."""
    import nibabel as nib

    out = {}
    for h in HEMIS:
        if h not in paths:
            other = paths[next(iter(paths))]
            raise NSDFormatError(f"{other.parent / other.name.replace(other.name[:2], h)} is missing "
                                 f"(the other hemisphere of this session exists)")
        p = paths[h]
        try:
            img = nib.load(str(p))
            shape = img.shape
        except Exception as exc:  # noqa: BLE001
            raise NSDFormatError(f"{p.name} is truncated or unreadable ({exc})") from exc
        if shape[0] != n_vertices[h]:
            raise NSDFormatError(f"{p.name} has {shape[0]} vertices, expected {n_vertices[h]}")
        t = int(np.prod(shape[1:]))
        if n_trials is not None and t != n_trials:
            raise NSDFormatError(f"{p.name} has {t} trials, expected {n_trials}")
        out[h] = (p, img.dataobj, t)
    return out


def read_session(session: dict, vertices: dict[str, np.ndarray]) -> np.ndarray:
    """The betas of the given vertices in one session opened by :func:`_open_session`:
    (n_trials, n_selected) float32, lh then rh. Only the file range spanning those vertices is read."""
    parts = []
    for h in HEMIS:
        p, data, t = session[h]
        v = vertices[h]
        if not v.size:
            parts.append(np.empty((t, 0), np.float32))
            continue
        lo, hi = int(v.min()), int(v.max()) + 1
        try:
            block = np.asarray(data[lo:hi], dtype=np.float32).reshape(hi - lo, t)
        except Exception as exc:  # noqa: BLE001
            raise NSDFormatError(f"{p.name} is truncated or unreadable ({exc})") from exc
        parts.append(block[v - lo].T)
    return np.concatenate(parts, axis=1)


def voxel_chunk(n_images: int, n_trials: int, memory_mb: float) -> int:
    """Voxels per chunk so that one chunk's repeat accumulators (9 bytes per image and voxel, and a byte of masks)
    and one session's betas with their z-scores (12 bytes per trial and voxel) fit in ``memory_mb``."""
    return max(1, int(memory_mb * 2 ** 20 // (10 * n_images + 12 * n_trials)))


def _write_columns(path: Path, offset: int, block: np.ndarray, first: int, n_cols: int) -> None:
    """Write ``block`` (rows, k) as columns ``first .. first + k`` of the C-order float32 ``.npy`` at ``path``."""
    block = np.ascontiguousarray(block, np.float32)
    fd = os.open(path, os.O_WRONLY)
    try:
        for i in range(block.shape[0]):
            os.pwrite(fd, block[i].tobytes(), offset + (i * n_cols + first) * 4)
    finally:
        os.close(fd)


def load_nsd_betas(root: Path, subject: str, sessions=None, vertices=None, progress: ProgressFn = None,
                   out: Path | None = None, memory_mb: float = IMPORT_MEMORY_MB):
    """Read, z-score and repeat-average one subject's fsaverage betas, a chunk of voxels at a time.

    Memory stays near ``memory_mb`` whatever the subject's size: for each chunk of voxels every session is
    read (only the chunk's range of each file), z-scored and added to per-image sums, then the chunk's averages
    are written out. ``out``: an ``.npy`` path to write the betas to (memory-mapped, for subjects larger than
    memory); in memory otherwise.

    Returns a dict: betas (n_seen_images, n_voxels) over the images the sessions showed (in the subject's
    image-list order; ``seen`` marks them), reps (n_images,), ncsnr (n_voxels,), keep (n_voxels,) voxels
    with a valid beta for every seen image, short (n_voxels,) images averaged over fewer repeats than shown, hemi, vertex, image_ids (nsdId, 0-based), sessions, n_trials,
    space, n_vertices, vertices, report notes."""
    from ..surface.meshes import load_freesurfer_surface

    root = Path(root)
    k = _subject_index(subject)
    design = read_expdesign(root)
    if k >= design["subjectim"].shape[0]:
        raise NSDFormatError(f"{root / EXPDESIGN}: subjectim has {design['subjectim'].shape[0]} subjects, "
                             f"no {subject}")
    surf = load_freesurfer_surface(root / FSAVERAGE / "surf")
    n_vertices = surf.n_vertices
    vertices = select_vertices(root, n_vertices, vertices)
    present = session_files(root, subject)
    if not present:
        raise NSDFormatError(f"no betas in {root / BETAS.format(subject=subject)} "
                             "(expected lh.betas_session01.mgh ...)")
    sessions = sorted(present) if sessions is None else list(sessions)
    for s in sessions:
        if s not in present:
            raise NSDFormatError(f"{root / BETAS.format(subject=subject)}/lh.betas_session{s:02d}.mgh is missing")
    mo = design["masterordering"]
    # every file's header before any data: a wrong file fails the import at once
    opened, n_trials = {}, None
    for s in sessions:
        opened[s] = _open_session(present[s], n_vertices, n_trials)
        if n_trials is None:
            n_trials = opened[s]["lh"][2]
            if len(mo) % n_trials:
                raise NSDFormatError(f"{present[s]['lh'].name} has {n_trials} trials, which does not divide the "
                                     f"{len(mo)} trials of masterordering")
        if s * n_trials > len(mo):
            raise NSDFormatError(f"session {s} goes past the {len(mo)} trials of masterordering")
    n_images = design["subjectim"].shape[1]
    image_rows = {s: mo[(s - 1) * n_trials: s * n_trials] for s in sessions}
    reps = np.bincount(np.concatenate(list(image_rows.values())), minlength=n_images).astype(np.int32)
    seen = reps > 0
    seen_row = np.cumsum(seen) - 1  # image-list row -> row of the seen-only betas
    hemi = np.concatenate([np.full(vertices[h].size, h) for h in HEMIS])
    vertex = np.concatenate([vertices[h] for h in HEMIS]).astype(np.int32)
    n_vox, n_seen = vertex.size, int(seen.sum())
    if out is None:
        betas = np.empty((n_seen, n_vox), np.float32)
    else:  # the file is written with pwrite, row segment by row segment: no mapping fills the page tables
        header = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n_seen, n_vox))
        offset = header.offset
        del header
    ncsnr = np.empty(n_vox, np.float32)
    keep = np.empty(n_vox, bool)
    short = np.empty(n_vox, np.int32)  # images averaged over fewer repeats than shown (NaN trials)
    nan_vox = {s: 0 for s in sessions}
    nan_trials = {s: np.zeros(n_trials, bool) for s in sessions}
    chunk = voxel_chunk(n_seen, n_trials, memory_mb)
    mb = {s: sum(p.stat().st_size for p in present[s].values()) / 1e6 for s in sessions}  # progress in MB: MB/s
    stage, read_mb, total_mb = f"Reading {subject}: {len(sessions)} sessions of betas (MB)", 0.0, sum(mb.values())
    report(progress, stage, 0.0, round(total_mb, 1))
    for a in range(0, n_vox, chunk):
        b = min(a + chunk, n_vox)
        part = {h: vertex[a:b][hemi[a:b] == h] for h in HEMIS}
        acc = RepeatAverager(n_seen, b - a)
        for s in sessions:
            data = read_session(opened[s], part)
            nan = ~np.isfinite(data)
            if nan.any():
                nan_vox[s] += int(nan.any(axis=0).sum())
                nan_trials[s] |= nan.any(axis=1)
            acc.add_session(zscore_session(data), seen_row[image_rows[s]])
            read_mb += mb[s] * (b - a) / n_vox
            report(progress, stage, round(read_mb, 1), round(total_mb, 1))
        keep[a:b] = (acc.count > 0).all(axis=0)
        short[a:b] = (acc.count < np.minimum(acc.trials, 255)[:, None]).sum(axis=0)
        mean, _, ncsnr[a:b] = acc.result()
        if out is None:
            betas[:, a:b] = mean
        else:
            _write_columns(out, offset, mean, a, n_vox)
        del acc, mean
    if out is not None:
        betas = np.load(out, mmap_mode="r")
    notes = [f"session {s:02d}: {nan_vox[s]} voxels have NaN betas in {int(nan_trials[s].sum())} of {n_trials} "
             "trials; those trials are left out of their z-scores and averages" for s in sessions if nan_vox[s]]
    if not np.isfinite(ncsnr).any():
        notes.append("no image was shown twice in the sessions read: ncsnr and noise ceilings are unavailable")
    return dict(betas=betas, seen=seen, reps=reps, ncsnr=ncsnr, keep=keep, short=short, hemi=hemi, vertex=vertex,
                image_ids=design["subjectim"][k], sharedix=design["sharedix"], sessions=sessions,
                n_trials=n_trials * len(sessions),
                space=SPACE_BY_VERTICES.get(n_vertices["lh"], f"fsaverage-{n_vertices['lh']}"),
                n_vertices=n_vertices, vertices=vertices, notes=notes, chunk=chunk)


def import_nsd(ws, root: Path, subject: str, sessions=None, vertices=None, progress: ProgressFn = None,
               coco_captions=None, algonauts_rois: str | Path | None = None) -> ImportReport:
    """Import one NSD subject into workspace ``ws`` (which must be empty or hold NSD data).

    ``algonauts_rois``: the subject's Algonauts 2023 ``roi_masks`` folder, used for the ROI files that the NSD
    tree does not give in (or map to) fsaverage space."""
    import h5py

    root = Path(root)
    if ws.exists and ws.meta().get("dataset") not in ("nsd", None):
        raise NSDFormatError(f"workspace {ws.path} holds the {ws.meta().get('dataset')} world; import NSD into another "
                             "folder (--workspace)")
    # check every small file before the long read
    info = read_stim_info(root)
    design = read_expdesign(root)
    hdf5 = _need(root / STIM_HDF5, "NSD stimulus images")
    try:
        with h5py.File(hdf5, "r") as f:
            if "imgBrick" not in f:
                raise NSDFormatError(f"{hdf5} has no dataset 'imgBrick'")
            shape = f["imgBrick"].shape
    except OSError as exc:
        raise NSDFormatError(f"{hdf5} is truncated or not HDF5 ({exc})") from exc
    if shape[0] <= design["subjectim"].max():
        raise NSDFormatError(f"{hdf5}: imgBrick has {shape[0]} images but subjectim refers to nsdId "
                             f"{design['subjectim'].max() + 1}")
    shared_csv = set(info.loc[info["shared1000"].astype(bool), "nsdId"].astype(int))
    if shared_csv and shared_csv != set(design["sharedix"].tolist()):
        raise NSDFormatError(f"{root / STIM_INFO}: column 'shared1000' disagrees with sharedix in {EXPDESIGN}")
    check_image_list(root, info, design, subject)
    # the betas go to a file in the workspace's staging folder while they are read (minutes for a full subject,
    # with no writer open, so the app keeps reading), and are adopted by the writer at the end
    stage = ws.staging_dir / f"betas_{subject}.{uuid.uuid4().hex[:8]}.npy"
    kept = stage.with_suffix(".kept.npy")
    try:
        return _import_nsd(ws, root, subject, sessions, vertices, progress, coco_captions, algonauts_rois, info,
                           design, hdf5, shape, stage, kept)
    finally:
        stage.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)


def check_image_list(root: Path, info: pd.DataFrame, design: dict, subject: str) -> None:
    """The subject's images in the design (``subjectim``) against the stimulus table's ``subjectN`` column (when it
    has one): a mismatch means files from different releases or subjects, and stops the import naming both."""
    k = _subject_index(subject)
    col = f"subject{k + 1}"
    if col not in info.columns or k >= design["subjectim"].shape[0]:
        return
    listed = set(info.loc[info[col].astype(bool), "nsdId"].astype(int))
    design_ids = set(design["subjectim"][k].tolist())
    if listed != design_ids:
        def some(ids):
            return f"{len(ids):,}" + (f" (nsdId {', '.join(map(str, ids[:3]))}{' ...' if len(ids) > 3 else ''})"
                                      if ids else "")

        raise NSDFormatError(
            f"{root / STIM_INFO}: column '{col}' lists {len(listed):,} images for {subject} but subjectim in "
            f"{root / EXPDESIGN} has {len(design_ids):,}; {some(sorted(listed - design_ids))} only in the CSV, "
            f"{some(sorted(design_ids - listed))} only in the design: are both files from the same NSD release?")


def _take_columns(src: np.ndarray, keep: np.ndarray, out: Path) -> Path:
    """Write the ``keep`` columns of ``src`` to the ``.npy`` file ``out``, a block of rows at a time."""
    dst = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(src.shape[0], int(keep.sum())))
    rows = max(1, 2 ** 25 // max(src.shape[1], 1))  # about 128 MB of rows at a time
    for a in range(0, src.shape[0], rows):
        dst[a:a + rows] = src[a:a + rows][:, keep]
    dst.flush()
    del dst
    return out


def _import_nsd(ws, root, subject, sessions, vertices, progress, coco_captions, algonauts_rois, info, design,
                hdf5, shape, stage, kept) -> ImportReport:
    d = load_nsd_betas(root, subject, sessions, vertices, progress, out=stage)
    reps, ncsnr, seen = d["reps"], d["ncsnr"], d["seen"]
    # voxels with no valid beta for some seen image cannot be modelled: report and drop them
    keep = d["keep"]
    betas_file = stage if keep.all() else _take_columns(d["betas"], keep, kept)
    del d["betas"]
    rep = ImportReport(subject, d["space"], d["sessions"], d["n_trials"], int(seen.sum()), int(keep.sum()),
                       d["notes"], int((~keep).sum()))
    ncsnr_dir = root / BETAS.format(subject=subject)
    if (ncsnr_dir / "lh.ncsnr.mgh").exists():
        f = np.concatenate([np.asarray(read_surface_values(ncsnr_dir / f"{h}.ncsnr.mgh", d["n_vertices"][h],
                                                           "ncsnr"))[d["vertices"][h]] for h in HEMIS])
        ok = np.isfinite(f) & np.isfinite(ncsnr)
        rep.ncsnr_file_r = float(np.corrcoef(f[ok], ncsnr[ok])[0, 1]) if ok.sum() > 2 else None
    roi_notes: list[str] = []
    labels = read_roi_labels(root, subject, d["n_vertices"], d["vertices"], roi_notes)
    if algonauts_rois is not None:
        from .algonauts import fsaverage_roi_labels

        extra = fsaverage_roi_labels(Path(algonauts_rois), d["vertices"])
        filled = [roi for roi in extra if roi not in labels]
        labels.update({roi: extra[roi] for roi in filled})
        if filled:
            roi_notes = [n for n in roi_notes if n.startswith("mapped")] + [
                f"ROI labels of {', '.join(filled)} from the Algonauts masks in {algonauts_rois}"]
    rep.notes.extend(roi_notes)
    labels = {k: v[keep] for k, v in labels.items()}
    caption_files = coco_captions
    if caption_files is None:
        caption_files = sorted((root / ANNOTATIONS).glob("captions_*.json")) if (root / ANNOTATIONS).exists() else []
    caps = read_coco_captions(caption_files)
    image_ids = d["image_ids"]
    shared_mask = np.isin(image_ids, design["sharedix"])
    info = info.set_index("nsdId")
    with ws.writer() as tx:
        run = tx.new_run("import-nsd", {"root": str(root.resolve()), "subject": subject, "sessions": d["sessions"],
                                        "n_vertices_selected": int(d["vertex"].size), "preprocessing":
                                        "z-score per session, average repeats"}, seed=None)
        tx.set_meta(dataset="nsd", space=d["space"], nsd_root=str(root.resolve()))
        tx.sql("INSERT OR REPLACE INTO stimulus_sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                       ["nsd", "hdf5", str(hdf5.resolve()), "imgBrick", shape[0], shape[1], shape[2]])
        new = sorted(set(image_ids[seen].tolist()) - set(
            r[0] for r in tx.sql("SELECT stim_id FROM stimuli")))
        if new:
            sub = info.loc[new]
            tx.insert_df("stimuli", pd.DataFrame({
                "stim_id": new, "source": "nsd", "image_index": new, "coco_id": sub["cocoId"].astype(np.int64).values,
                "shared": sub["shared1000"].astype(bool).values}))
            crow = [(sid, k, c) for sid, coco in zip(new, sub["cocoId"].astype(int).values)
                    for k, c in enumerate(caps.get(int(coco), []))]
            if crow:
                tx.insert_df("captions", pd.DataFrame(crow, columns=["stim_id", "k", "caption"]))
        if not tx.sql("SELECT count(*) FROM roi_labels")[0][0]:
            tx.insert_df("roi_labels", roi_label_frame())
        write_subject(tx, run, subject, d["space"], "nsd", len(d["sessions"]), d["n_trials"], image_ids, reps,
                      betas_file, ncsnr[keep], d["hemi"][keep], d["vertex"][keep], labels,
                      shared_mask=shared_mask)
        tx.set_meta(complete="true")
    return rep
