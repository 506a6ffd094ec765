"""Banks of natural-image embeddings: what voxel captions are projected onto (BrainSCUBA) or ranked
over (LaVCa).

For the demo world: embeddings (and captions) of procedurally rendered images from a seed the subjects
never saw (``build_demo_bank``). For real use: any (n, dim) array of embeddings from the configured
embedder, with optional captions and image paths (``import_bank``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidInputError, NotFoundError
from ..store import ProgressFn, Workspace, report

__all__ = ["bank_table", "load_bank", "build_demo_bank", "import_bank"]


def bank_table(ws: Workspace) -> pd.DataFrame:
    """The registered banks (one row each: name, embedder model id, size, dimension, source, run)."""
    return ws.query("SELECT * FROM banks ORDER BY bank")


def load_bank(ws: Workspace, bank: str) -> tuple[np.ndarray, list[str] | None, dict]:
    """A bank's unit embeddings (n, dim), its captions (or None) and its ``banks`` row."""
    row = ws.query("SELECT * FROM banks WHERE bank = ?", [bank])
    if row.empty:
        known = ", ".join(bank_table(ws).bank) or "none"
        raise NotFoundError(f"no embedding bank {bank!r} in workspace {ws.path} (banks: {known}; build the demo one "
                       "with `python -m backend captions bank-demo`)")
    r = row.iloc[0].to_dict()
    emb = np.array(ws.array(r["array_name"]), np.float32)  # a writable copy (the stored file is read-only)
    caps = ws.query("SELECT caption FROM bank_items WHERE bank = ? ORDER BY idx", [bank]).caption
    return emb, (caps.tolist() if caps.notna().all() and len(caps) == len(emb) else None), r


def build_demo_bank(ws: Workspace, embedder, n: int = 50_000, seed: int = 1_000, size: int = 64,
                    chunk: int = 2_000, name: str = "demo", progress: ProgressFn = None) -> dict:
    """Render ``n`` procedural images from ``seed`` (the world uses another seed, so the subjects never saw
    them), embed them, keep their first captions. Resumable: finished chunks are kept in a staging folder."""
    from ..datasets.demo.stimuli import render_stimulus

    staging = ws.staging_dir / f"bank_{name}_{seed}_{n}_{embedder.model_id.replace('/', '_')}"
    staging.mkdir(parents=True, exist_ok=True)
    chunks = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    done = sum((staging / f"{a:07d}.npz").exists() for a, _ in chunks)
    report(progress, "Demo image bank (render + embed)", min(done * chunk, n), n)
    for a, b in chunks:
        out = staging / f"{a:07d}.npz"
        if out.exists():
            continue
        imgs, caps = [], []
        for i in range(a, b):
            img, _, s = render_stimulus(seed, i, size)
            imgs.append(img)
            caps.append(s.captions[0])
        feats = embedder.image_features(np.stack(imgs))
        tmp = staging / f"{a:07d}.tmp.npz"
        np.savez(tmp, feats=feats.astype(np.float32), captions=np.array(caps, dtype=object))
        tmp.replace(out)
        done += 1
        report(progress, "Demo image bank (render + embed)", min(done * chunk, n), n)
    feats, caps = [], []
    for a, _ in chunks:
        z = np.load(staging / f"{a:07d}.npz", allow_pickle=True)
        feats.append(z["feats"])
        caps.extend(z["captions"].tolist())
    info = _store_bank(ws, name, np.concatenate(feats), caps, None, embedder,
                       {"source": "demo", "n": n, "seed": seed, "size": size})
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
    return info


def import_bank(ws: Workspace, name: str, embeddings_path: str | Path, embedder, captions_path=None,
                images_path=None) -> dict:
    """Register a user bank: an .npy (n, dim) of image embeddings made with the configured embedder, and
    optionally a text file of n captions (one per line) and a text file of n image paths."""
    p = Path(embeddings_path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    try:
        emb = np.load(p, mmap_mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InvalidInputError(f"{p} is not a readable .npy array: {exc}") from exc
    if emb.ndim != 2:
        raise InvalidInputError(f"{p} must be a 2-D array (n_images, dim), got shape {emb.shape}")
    if emb.shape[1] != embedder.dim:
        raise InvalidInputError(f"{p} has embeddings of dimension {emb.shape[1]}, but the configured embedder "
                                f"{embedder.model_id} makes {embedder.dim}-dimensional ones: embed the bank with it")
    emb = np.asarray(emb, np.float32)
    if not np.isfinite(emb).all():
        raise InvalidInputError(f"{p} contains NaN or infinite values")
    caps = imgs = None
    for what, path in (("captions", captions_path), ("image paths", images_path)):
        if path is None:
            continue
        lines = Path(path).read_text().splitlines()
        if len(lines) != len(emb):
            raise InvalidInputError(f"{path} has {len(lines)} {what}, {p} has {len(emb)} embeddings: they must match")
        if what == "captions":
            caps = lines
        else:
            imgs = lines
    return _store_bank(ws, name, emb, caps, imgs, embedder, {"source": str(p)})


def _store_bank(ws, name, emb, caps, imgs, embedder, params) -> dict:
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
    with ws.writer() as tx:
        run = tx.new_run("bank", {"name": name, **params, "n": int(len(emb))},
                         model_ids={"embedder": embedder.model_id})
        arr = f"bank_{name}"
        tx.put_array(arr, emb.astype(np.float32), run, f"unit image embeddings of bank {name!r} (n, dim)")
        tx.sql("DELETE FROM banks WHERE bank = ?", [name])
        tx.sql("DELETE FROM bank_items WHERE bank = ?", [name])
        tx.sql("INSERT INTO banks VALUES (?, ?, ?, ?, ?, ?, ?)",
               [name, embedder.model_id, arr, int(len(emb)), int(emb.shape[1]), params.get("source", ""), run])
        tx.insert_df("bank_items", pd.DataFrame({"bank": name, "idx": np.arange(len(emb)),
                                                 "caption": caps if caps is not None else None,
                                                 "image": imgs if imgs is not None else None}))
    return {"bank": name, "n": int(len(emb)), "dim": int(emb.shape[1]), "run": run}
