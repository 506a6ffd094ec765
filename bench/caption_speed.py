"""Caption speed: BrainSCUBA's projection against a bare matrix product of the same shapes, and voxels
captioned per second end to end for each method (on the demo workspace's encoder and bank).

    .venv/bin/python bench/caption_speed.py [--voxels 2048] [--device cpu]

Projection: for each of the 5 bank subsets (25,000 x 256 of the 50,000-image bank), softmax(150 * W Bs^T) Bs.
The bare reference is the two matrix products W Bs^T and P Bs of the same shapes (same FLOPs, no softmax).
End to end: projection + beam-search decoding (BrainSCUBA), top-50 pool images + keyword rule (LaVCa),
plus writing the rows to a scratch DuckDB table, for ``--voxels`` voxels of subj01.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def best_of(fn, n=3):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> int:
    import duckdb
    import pandas as pd
    import torch

    from backend import captions as C
    from backend.encoders import encoder_weights
    from backend.models import load_role
    from backend.store import Workspace

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxels", type=int, default=2048)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    ws = Workspace()
    W, b, _ = encoder_weights(ws, "subj01")
    bank, caps, _ = C.load_bank(ws, "demo")
    n = min(args.voxels, len(W))
    Wv = W[:n]
    p = C.CAPTION_METHODS["brainscuba"].defaults
    k = int(len(bank) * p["subset_fraction"])
    print(f"threads: {torch.get_num_threads()}, device {args.device}; W {Wv.shape}, bank {bank.shape}, "
          f"{p['n_subsets']} subsets of {k:,}")

    Wt = torch.as_tensor(Wv)
    Bs = torch.as_tensor(bank[:k])

    def bare():
        for _ in range(p["n_subsets"]):
            S = Wt @ Bs.T
            S @ Bs

    t_bare = best_of(bare)
    t_proj = best_of(lambda: C.brainscuba_project(Wv, bank, p["temperature"], p["n_subsets"], p["subset_fraction"],
                                                  p["seed"], args.device))
    flops = p["n_subsets"] * 2 * (2 * n * k * Wv.shape[1])
    print(f"projection: {t_proj:.3f} s ({flops / t_proj / 1e9:.1f} GFLOP/s); bare matrix products of the same "
          f"shapes: {t_bare:.3f} s ({flops / t_bare / 1e9:.1f} GFLOP/s); projection throughput = "
          f"{t_bare / t_proj:.0%} of the bare products")

    cap = load_role("captioner", args.device)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (voxel INTEGER, caption VARCHAR, keywords VARCHAR)")

    def write(v, cs, ks):
        con.register("_df", pd.DataFrame({"voxel": v, "caption": cs, "keywords": ks}))
        con.execute("INSERT INTO t SELECT * FROM _df")
        con.unregister("_df")

    m = min(n, 512)
    t = time.perf_counter()
    for a in range(0, m, 256):
        proj = C.brainscuba_project(W[a:a + 256][: m - a], bank, p["temperature"], p["n_subsets"],
                                    p["subset_fraction"], p["seed"], args.device)
        cs = cap.generate(proj, beam_size=p["beam_size"], batch_size=128)
        write(np.arange(a, a + len(cs)), cs, [None] * len(cs))
    t_scuba = time.perf_counter() - t
    km = C.KeywordModel(caps)
    t = time.perf_counter()
    for a in range(0, n, 256):
        top = C.top_pool_indices(W[a:a + 256], b[a:a + 256], bank, 50, args.device)
        ks = [[w for w, _ in km.keywords(tt)] for tt in top]
        write(np.arange(a, a + len(ks)), [km.sentence(x) for x in ks], [", ".join(x) for x in ks])
    t_lavca = time.perf_counter() - t
    print(f"end to end: BrainSCUBA {m / t_scuba:.0f} voxels/s ({m} voxels, beam {p['beam_size']}); "
          f"LaVCa (keyword rule) {n / t_lavca:.0f} voxels/s ({n} voxels); "
          f"300,000 voxels: BrainSCUBA "
          f"{300_000 / (m / t_scuba) / 60:.0f} min, LaVCa {300_000 / (n / t_lavca) / 60:.1f} min on this machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
