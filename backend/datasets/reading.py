"""Reading a workspace's dataset: stimulus images, captions, a subject's betas and voxels.

The same functions serve the demo world, NSD and Algonauts imports (the ``stimulus_sources`` table
says where the pixels live: a registered array, NSD's HDF5 ``imgBrick``, or image files).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidInputError, NotFoundError
from ..store import Workspace, require_subject, stimulus_ids

__all__ = ["stimulus_images", "captions", "subject_voxels", "subject_betas", "sample_stimulus_ids"]


def stimulus_images(ws: Workspace, stim_ids, size: int | None = None) -> list[np.ndarray]:
    """The pixels of stimuli, wherever the dataset keeps them.

    Parameters
    ----------
    stim_ids : sequence of int
    size : int, optional
        Resize every image to ``size`` x ``size`` (bilinear).

    Returns
    -------
    list of ndarray
        RGB uint8 images (H, W, 3), in the order of ``stim_ids``.
    """
    from PIL import Image

    ids = [int(i) for i in stim_ids]
    if not ids:
        return []
    rows = ws.query("SELECT s.stim_id, s.image_index, s.file, src.kind, src.path, src.dataset FROM stimuli s "
                    "JOIN stimulus_sources src USING (source) WHERE s.stim_id IN (SELECT unnest(?::INTEGER[]))",
                    [ids]).set_index("stim_id")
    missing = sorted(set(ids) - set(rows.index))
    if missing:
        raise NotFoundError(f"stimuli {missing[:5]} are not in workspace {ws.path}")
    out = []
    arrays: dict[str, np.ndarray] = {}
    h5 = {}
    try:
        for i in ids:
            r = rows.loc[i]
            if r.kind == "array":
                if r.path not in arrays:
                    arrays[r.path] = ws.array(r.path)
                img = np.asarray(arrays[r.path][int(r.image_index)])
            elif r.kind == "hdf5":
                import h5py

                if r.path not in h5:
                    h5[r.path] = h5py.File(r.path, "r")
                img = np.asarray(h5[r.path][r.dataset][int(r.image_index)])
            else:
                img = np.asarray(Image.open(r.file).convert("RGB"))
            if size is not None and img.shape[0] != size:
                img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
            out.append(img)
    finally:
        for f in h5.values():
            f.close()
    return out


def find_stimuli(ws: Workspace, words: str, subject: str | None = None, split: str | None = None,
                 limit: int = 50) -> pd.DataFrame:
    """Stimuli whose captions contain every word of ``words`` (case-insensitive), optionally among the images a
    subject saw (``split``: train / test): ``stim_id`` and one matching ``caption``, at most ``limit``."""
    terms = [w for w in words.lower().split() if w]
    if not terms:
        raise InvalidInputError("type one or more words to look for in the image captions, e.g. 'face house'")
    cond = " AND ".join(["lower(c.caption) LIKE ?"] * len(terms))
    args = [f"%{t}%" for t in terms]
    sql = f"SELECT c.stim_id, min(c.caption) AS caption FROM captions c WHERE {cond}"
    if subject:
        sql += " AND c.stim_id IN (SELECT stim_id FROM subject_stimuli WHERE subject = ?" + \
               (" AND split = ?)" if split else ")")
        args += [require_subject(ws, subject)] + ([split] if split else [])
    return ws.query(sql + " GROUP BY c.stim_id ORDER BY c.stim_id LIMIT ?", args + [int(limit)])


def stimulus_masks(ws: Workspace, stim_ids) -> tuple[np.ndarray, pd.DataFrame]:
    """Object masks of stimuli (worlds that have them: the demo world).

    Returns
    -------
    masks : ndarray (n, H, W) uint8
        0 = background, k = object ``obj == k`` of the image (later objects occlude earlier ones).
    objects : DataFrame
        ``stim_id, obj, category, area`` of those images.
    """
    ids = [int(i) for i in stim_ids]
    names = set(ws.query("SELECT name FROM arrays").name)
    if "stimuli_masks" not in names:
        raise NotFoundError(f"workspace {ws.path} has no object masks (only the demo world has them)")
    idx = ws.query("SELECT stim_id, image_index FROM stimuli WHERE stim_id IN (SELECT unnest(?::INTEGER[]))",
                   [ids]).set_index("stim_id")
    missing = sorted(set(ids) - set(idx.index))
    if missing:
        raise NotFoundError(f"stimuli {missing[:5]} are not in workspace {ws.path}")
    masks = np.asarray(ws.array("stimuli_masks")[idx.loc[ids].image_index.to_numpy()])
    objects = ws.query("SELECT stim_id, obj, category, area FROM stimulus_objects "
                       "WHERE stim_id IN (SELECT unnest(?::INTEGER[])) ORDER BY stim_id, obj", [ids])
    return masks, objects


def captions(ws: Workspace, stim_ids) -> dict[int, list[str]]:
    """{stim_id: its captions in order} for ``stim_ids`` (an empty list for images without captions)."""
    ids = [int(i) for i in stim_ids]
    df = ws.query("SELECT stim_id, caption FROM captions WHERE stim_id IN (SELECT unnest(?::INTEGER[])) "
                  "ORDER BY stim_id, k", [ids])
    out: dict[int, list[str]] = {i: [] for i in ids}
    for sid, cap in zip(df.stim_id, df.caption):
        out[int(sid)].append(cap)
    return out


def subject_voxels(ws: Workspace, subject: str) -> pd.DataFrame:
    """Every column of the subject's rows of the ``voxels`` table, in voxel order."""
    df = ws.query("SELECT * FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
    if df.empty:
        require_subject(ws, subject)
    return df


def subject_betas(ws: Workspace, subject: str):
    """(betas (n_images, n_voxels) memory-mapped, rows DataFrame with stim_id / split / n_reps per row)."""
    rows = ws.query("SELECT row, stim_id, n_reps, split FROM subject_stimuli WHERE subject = ? ORDER BY row",
                    [subject])
    if rows.empty:
        require_subject(ws, subject)
    return ws.array(f"betas_{subject}"), rows


def sample_stimulus_ids(ws: Workspace, n: int, seed: int = 0) -> list[int]:
    """``n`` stimulus ids drawn at random (reproducibly from ``seed``), in ascending order."""
    ids = stimulus_ids(ws)
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(ids, size=min(n, ids.size), replace=False))
