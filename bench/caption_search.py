"""Caption search speed at NSD scale: 300,000 voxels x 2 methods = 600,000 captions.

    .venv/bin/python bench/caption_search.py [--voxels 300000]

Two tables: (1) realistic — captions resampled from the demo workspace's BrainSCUBA and LaVCa captions
(so many voxels share a caption, as they do in practice), embedded with the real sentence embedder;
(2) worst case — every caption distinct (600,000 synthetic strings) with random unit 384-d embeddings
standing in for sentence embeddings (embedding 600k sentences would take ~13 min on 2 cores and does not
change the search cost). Prints the index build time (warm-up) and the median / max time of keyword and
semantic searches, the query embedding included.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.captions import CaptionIndex  # noqa: E402

QUERIES = ["food", "face", "a smiling face", "building", "person shirt", "gold", "something to eat",
           "a house in a field", "written text", "zeppelin"]


def table(n_vox: int, captions: np.ndarray, rng) -> pd.DataFrame:
    rows = []
    for method in ("brainscuba", "lavca"):
        rows.append(pd.DataFrame({"subject": "subjXX", "method": method, "voxel": np.arange(n_vox),
                                  "hemi": np.where(np.arange(n_vox) % 2, "lh", "rh"),
                                  "vertex": np.arange(n_vox) // 2, "roi": None,
                                  "caption": captions[rng.integers(0, len(captions), n_vox)] if len(captions) < 2 * n_vox
                                  else captions[(0 if method == "brainscuba" else n_vox):][:n_vox]}))
    return pd.concat(rows, ignore_index=True)


def timed(fn, repeats=5):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return ts, out


def run(name: str, index: CaptionIndex, build_s: float) -> None:
    print(f"\n{name}: {len(index.table):,} captions, {len(index.uniq):,} distinct; index built in {build_s:.1f} s")
    for kind in ("keyword", "semantic"):
        fn = index.keyword if kind == "keyword" else index.semantic
        fn(QUERIES[0])  # warm-up
        allt = []
        for q in QUERIES:
            ts, out = timed(lambda q=q: fn(q))
            allt += ts
        p90 = float(np.percentile(allt, 90))
        print(f"  {kind:8s} search: median {statistics.median(allt) * 1000:.1f} ms, 90th percentile {p90 * 1000:.1f} ms, "
              f"max {max(allt) * 1000:.1f} ms "
              f"over {len(QUERIES)} queries x 5 (last: {len(out):,} voxel rows)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxels", type=int, default=300_000)
    args = ap.parse_args()
    from backend.models import load_role
    from backend.store import Workspace

    rng = np.random.default_rng(0)
    sent = load_role("sentence_embedder")
    caps = Workspace().query("SELECT DISTINCT caption FROM voxel_captions").caption.to_numpy(dtype=object)
    if len(caps) == 0:
        raise SystemExit("no captions in the workspace: run `python -m backend captions all` first")
    t = time.perf_counter()
    index = CaptionIndex(table(args.voxels, caps, rng), sent)
    run("realistic (captions resampled from the demo world)", index, time.perf_counter() - t)

    n = 2 * args.voxels
    words = np.array(sorted({w for c in caps for w in c.split()}))
    synth = np.array([" ".join(rng.choice(words, 8)) + f" #{i}" for i in range(n)], dtype=object)
    t = time.perf_counter()
    E = rng.normal(size=(n, 384)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    tab = table(args.voxels, synth, rng)
    index = CaptionIndex(tab, sent, embeddings=E)  # random embeddings stand in for the distinct captions' ones
    run("worst case (every caption distinct, random 384-d embeddings)", index, time.perf_counter() - t)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
