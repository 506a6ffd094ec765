"""Stimulus features: embeddings of every stimulus (computed once per embedder and kept in the
workspace), and local contrast energy of any set of stimuli.

The array ``features/<embedder key>`` holds unit-normalised image features (n_stimuli, dim) in
``stim_id`` order of the ``stimuli`` table; the ``feature_sets`` table says which embedder made it
(model id and a fingerprint of its weights) and which run.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from ..datasets.image_features import contrast_energy
from ..datasets.reading import stimulus_images
from ..errors import NotFoundError
from ..store import ProgressFn, Workspace, report, stimulus_ids

__all__ = ["stimulus_features", "embed_chunk", "stimulus_patch_tokens", "stored_features", "fingerprint", "feature_key",
           "contrast_energy_matrix", "caption_features"]


def fingerprint(folder: str | Path) -> str:
    """Short hash of a model folder's weight files (so retrained weights never reuse stale features)."""
    h = hashlib.sha256()
    folder = Path(folder)
    for p in sorted(folder.rglob("*")):
        if p.suffix in (".safetensors", ".bin", ".json") and p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def feature_key(model_id: str, fp: str) -> str:
    """The key of a feature set: the embedder's model id, slugged, plus its weights' fingerprint."""
    return re.sub(r"[^A-Za-z0-9]+", "-", model_id).strip("-").lower() + "-" + fp


def stored_features(ws: Workspace, key: str) -> np.ndarray:
    """The stored feature matrix (n_stimuli, dim) of feature set ``key``, in stim_id order."""
    if (have := _stored(ws, key)) is None:
        raise NotFoundError(f"feature set {key} is missing from workspace {ws.path}")
    return np.asarray(have)


def _stored(ws: Workspace, key: str):
    """The stored array of feature set ``key``, or None."""
    with ws.read() as con:
        row = con.execute("SELECT array_name FROM feature_sets WHERE key = ?", [key]).fetchone()
    return None if row is None else ws.array(row[0])


def _register(tx, key: str, model_id: str, fp: str, name: str, n: int, dim: int, run: str) -> None:
    """Record (or replace) feature set ``key``: the array ``name`` of ``n`` stimuli x ``dim`` made by ``model_id``."""
    tx.sql("DELETE FROM feature_sets WHERE key = ?", [key])
    tx.sql("INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?, ?, ?)", [key, model_id, fp, name, int(n), int(dim), run])


_EMBEDDERS: dict = {}  # per process: (folder, device) -> embedder (a Ray worker loads its own, once)


def embed_chunk(folder: str, device: str, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Unit image features of a chunk of images by the embedder in ``folder``: the task an executor maps over chunks
    of stimuli. It never opens the workspace."""
    key = (str(folder), str(device))
    if (emb := _EMBEDDERS.get(key)) is None:
        from ..models.embedder import load_embedder

        emb = _EMBEDDERS[key] = load_embedder(folder, device)
    return emb.image_features(np.asarray(images), batch_size=batch_size)


def stimulus_features(ws: Workspace, embedder, folder: str | Path, device: str = "cpu", batch_size: int = 256,
                      progress: ProgressFn = None, executor=None) -> tuple[np.ndarray, str]:
    """The embedder's image features of every stimulus, computed and stored on first use.

    Parameters
    ----------
    embedder : Embedder
        From ``backend.models.load_role("embedder")``.
    folder : path
        The embedder's model folder (its weights are fingerprinted, so retrained weights never reuse
        stale features).
    executor : str or Executor, optional
        Where chunks of 1,024 stimuli are embedded (``local``, the default: with ``embedder``; ``ray``: each worker
        loads the embedder from ``folder``); stored here either way.

    Returns
    -------
    features : ndarray, shape (n_stimuli, dim)
        Unit-normalised, in stim_id order.
    key : str
        The feature set's key (``feature_sets`` table).
    """
    fp = fingerprint(folder)
    key = feature_key(embedder.model_id, fp)
    if (have := _stored(ws, key)) is not None:
        return have, key
    from ..executor import get_executor, gpus_for

    ex = get_executor(executor)
    ids = stimulus_ids(ws)
    feats = np.empty((ids.size, embedder.dim), np.float32)
    step = 1024
    starts = range(0, ids.size, step)
    tasks = ((str(folder), device, np.stack(stimulus_images(ws, ids[a:a + step])), batch_size) for a in starts)
    _EMBEDDERS[(str(folder), str(device))] = embedder  # the local executor's tasks use it
    try:
        for a, f in zip(starts, ex.map(embed_chunk, tasks, num_gpus=gpus_for(device))):
            feats[a:a + step] = f
            report(progress, f"Embedding stimuli ({embedder.model_id})", min(a + step, ids.size), ids.size)
    finally:
        _EMBEDDERS.pop((str(folder), str(device)), None)
    with ws.writer() as tx:
        run = tx.new_run("features", {"what": "image_features", "batch_size": batch_size, "n": int(ids.size)},
                         model_ids={"embedder": embedder.model_id, "fingerprint": fp})
        name = f"features_{key}"
        tx.put_array(name, feats, run, f"unit image features of every stimulus (n, {embedder.dim}), stim_id order")
        _register(tx, key, embedder.model_id, fp, name, ids.size, embedder.dim, run)
    return feats, key


def caption_features(ws: Workspace, embedder, key: str, store: bool = True, batch_size: int = 256,
                     progress: ProgressFn = None) -> np.ndarray | None:
    """The embedder's unit text features of each stimulus's first caption (n_stimuli, dim), stim_id order; zero
    rows for stimuli without a caption; None when the dataset has no captions at all. ``key`` is the feature set
    of the same embedder's image features (its weights' fingerprint). Stored as feature set ``captions-<key>`` on
    first use (``store=False``: computed, not stored, e.g. by a reader such as the app)."""
    ckey = f"captions-{key}"
    if (have := _stored(ws, ckey)) is not None:
        return have
    caps = ws.query("SELECT stim_id, min_by(caption, k) AS caption FROM captions GROUP BY stim_id")
    if caps.empty:
        return None
    ids = stimulus_ids(ws)
    where = dict(zip(caps.stim_id.to_numpy(), caps.caption))
    have = [i for i, s in enumerate(ids) if where.get(s)]
    feats = np.zeros((ids.size, embedder.dim), np.float32)
    step = 2048
    for a in range(0, len(have), step):
        rows = have[a:a + step]
        feats[rows] = embedder.text_features([where[ids[i]] for i in rows], batch_size=batch_size)
        report(progress, f"Embedding the stimuli's captions ({embedder.model_id})", min(a + step, len(have)),
               len(have))
    if store:
        with ws.writer() as tx:
            run = tx.new_run("features", {"what": "caption_features", "caption": "each stimulus's first (k = 0)",
                                          "n": int(ids.size), "with_caption": len(have)},
                             model_ids={"embedder": embedder.model_id, "image_features": key})
            name = f"features_{ckey}"
            tx.put_array(name, feats, run, f"unit text features of each stimulus's first caption (n, {embedder.dim}), "
                                           "stim_id order; zero rows: no caption")
            _register(tx, ckey, embedder.model_id, key.rsplit("-", 1)[-1], name, ids.size, embedder.dim, run)
    return feats


def stimulus_patch_tokens(ws: Workspace, embedder, folder: str | Path, device: str = "cpu", batch_size: int = 256,
                          progress: ProgressFn = None) -> tuple[np.ndarray, str]:
    """The embedder's patch tokens of every stimulus (the attention encoder's input), computed and stored on first use.

    Stored as float16 (n_stimuli, n_patches, token dim) in stim_id order, memory-mapped when read; computed into a
    staging file chunk by chunk (a 20,000-image demo world: 0.66 GB), then registered in one short write.

    Returns
    -------
    tokens : ndarray (memory-mapped), shape (n_stimuli, n_patches, dim), float16
    key : str
        ``patches-`` + the feature set key of the embedder (``feature_sets`` table).
    """
    from numpy.lib.format import open_memmap

    fp = fingerprint(folder)
    key = "patches-" + feature_key(embedder.model_id, fp)
    if (have := _stored(ws, key)) is not None:
        return have, key
    ids = stimulus_ids(ws)
    first = embedder.patch_tokens(np.stack(stimulus_images(ws, ids[:1])))
    tmp = ws.staging_dir / f"{key}.{os.getpid()}.npy"
    out = open_memmap(tmp, mode="w+", dtype=np.float16, shape=(ids.size, *first.shape[1:]))
    step = 1024
    stage = f"Patch tokens of the stimuli ({embedder.model_id})"
    for a in range(0, ids.size, step):
        imgs = np.stack(stimulus_images(ws, ids[a:a + step]))
        out[a:a + step] = embedder.patch_tokens(imgs, batch_size=batch_size)
        report(progress, stage, min(a + step, ids.size), ids.size)
    out.flush()
    del out
    with ws.writer() as tx:
        run = tx.new_run("features", {"what": "patch_tokens", "grid": list(embedder.patch_grid),
                                      "batch_size": batch_size, "n": int(ids.size), "dtype": "float16"},
                         model_ids={"embedder": embedder.model_id, "fingerprint": fp})
        name = f"features_{key}"
        tx.adopt_array(name, tmp, run, f"patch tokens of every stimulus (n, {first.shape[1]}, {first.shape[2]}) "
                                       f"on a {embedder.patch_grid[0]}x{embedder.patch_grid[1]} grid, stim_id order")
        _register(tx, key, embedder.model_id, fp, name, ids.size, first.shape[2], run)
    return ws.array(name), key


def contrast_energy_matrix(ws: Workspace, stim_ids, grid: int = 16, progress: ProgressFn = None) -> np.ndarray:
    """Local contrast energy of stimuli.

    Returns
    -------
    ndarray, shape (n, grid, grid)
        Row 0 = top of the image.
    """
    ids = np.asarray(stim_ids)
    out = np.empty((ids.size, grid, grid), np.float32)
    step = 1000
    for a in range(0, ids.size, step):
        for j, img in enumerate(stimulus_images(ws, ids[a:a + step])):
            out[a + j] = contrast_energy(img, grid)
        report(progress, "Contrast energy of the stimuli", min(a + step, ids.size), ids.size)
    return out
