"""Concept maps held to ground truth: the share of each concept's top voxels that lie in the category's ROIs, per
world seed, subject, category, prompt and definition (prints a table; not a test).

    .venv/bin/python bench/concept_maps.py --seeds 41 77 131 --root /tmp/cm      # builds the worlds first (minutes)
    .venv/bin/python bench/concept_maps.py --workspace /tmp/full                 # an existing workspace
    .venv/bin/python bench/concept_maps.py --workspace /tmp/full --encoder in-context --images 100

A built world has fewer sessions than the demo (``--sessions 12 9``), ROIs rescaled (``--roi-scale 1.2 0.8``) and
moved (``--jitter 6`` mm), 1,000 shared + 3,000 own images per subject. Encoders: the default ridge encoder on the
configured embedder.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from backend.explore.concepts import DEFINITIONS, concept_context, concept_scores  # noqa: E402
from backend.store import Workspace, current_encoder, voxel_table  # noqa: E402
from backend.surface.rois import FILE_CATEGORY  # noqa: E402

# prompts in the demo world's own words (its captions' vocabulary), two per category
PROMPTS = {"face": ["a face", "a smiling face"], "place": ["a house", "a building"],
           "body": ["a person", "a person walking"], "food": ["some food", "a pizza"],
           "word": ["a word", "the word hello"]}
CATEGORY_FILE = {c: f for f, c in FILE_CATEGORY.items()}


def build(root: Path, seed: int, a) -> Workspace:
    from backend.datasets.demo.world import WorldConfig, build_demo_world
    from backend.encoders import fit_encoders

    ws = Workspace(root / f"seed{seed}")
    if not ws.exists:
        cfg = WorldConfig(seed=seed, n_images=a.shared + 2 * a.unique, n_shared=a.shared, n_unique=a.unique,
                          sessions=list(a.sessions), roi_scale=list(a.roi_scale), roi_jitter_mm=a.jitter)
        t = time.perf_counter()
        build_demo_world(ws, cfg, workers=2)
        print(f"seed {seed}: world built in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    fit_encoders(ws, only_missing=True)
    print(f"seed {seed}: encoders in {time.perf_counter() - t:.0f} s", flush=True)
    return ws


def evaluate(ws: Workspace, label: str, emb, top: int, encoder: str | None = None, images: int = 100) -> pd.DataFrame:
    rows = []
    for subject in ws.query("SELECT DISTINCT subject FROM voxels ORDER BY subject").subject:
        if encoder == "in-context":
            enc = current_encoder(ws, subject, method="in-context")
            if enc is None or enc["n_train"] != images:
                from backend.encoders import fit_incontext_encoder

                fit_incontext_encoder(ws, subject, images, embedder=emb)
        vox = voxel_table(ws, subject, method=encoder)
        files = ws.query("SELECT * FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
        ctx = concept_context(ws, subject, emb, encoder)
        for cat, prompts in PROMPTS.items():
            inside = files[CATEGORY_FILE[cat]].notna().to_numpy()
            for prompt in prompts:
                for d in DEFINITIONS:
                    s = concept_scores(ws, subject, prompt, emb, definition=d, context=ctx, encoder=encoder)
                    best = np.argsort(-s)[:top]
                    rows.append({"world": label, "subject": subject, "category": cat, "prompt": prompt,
                                 "definition": d, "share": float(inside[best].mean()),
                                 "top ROIs": ", ".join(f"{r}" for r, _ in vox.roi.iloc[best].fillna("-")
                                                       .value_counts().head(3).items())})
    return pd.DataFrame(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[])
    ap.add_argument("--root", default="/tmp/concept_worlds")
    ap.add_argument("--workspace", action="append", default=[], help="also evaluate an existing workspace")
    ap.add_argument("--shared", type=int, default=1000)
    ap.add_argument("--unique", type=int, default=3000)
    ap.add_argument("--sessions", type=int, nargs="+", default=[12, 9])
    ap.add_argument("--roi-scale", type=float, nargs="+", default=[1.2, 0.8])
    ap.add_argument("--jitter", type=float, default=6.0)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--csv", help="write the long table here")
    ap.add_argument("--encoder", choices=["ridge", "in-context"], default=None,
                    help="in-context: each subject's encoders written from its first --images images (stored)")
    ap.add_argument("--images", type=int, default=100)
    a = ap.parse_args()
    from backend.models import load_role

    emb = load_role("embedder")
    worlds = [(f"seed {s}", build(Path(a.root), s, a)) for s in a.seeds]
    worlds += [(w, Workspace(w)) for w in a.workspace]
    table = pd.concat([evaluate(ws, label, emb, a.top, a.encoder, a.images) for label, ws in worlds],
                      ignore_index=True)
    if a.csv:
        table.to_csv(a.csv, index=False)
    pd.set_option("display.width", 200)
    wide = table.pivot_table(index=["world", "subject", "category", "prompt"], columns="definition",
                             values="share").reindex(columns=list(DEFINITIONS))
    print(f"\nshare of the top {a.top} voxels in the category's ROIs")
    print((100 * wide).round(0).to_string())
    print("\nper definition: minimum / mean over every row; rows below 80%")
    for d in DEFINITIONS:
        col = wide[d]
        print(f"  {d:11s} min {100 * col.min():5.1f}%  mean {100 * col.mean():5.1f}%  below 80%: {(col < 0.8).sum()}"
              f" of {len(col)}")
    worst = table[table.definition == list(DEFINITIONS)[0]].nsmallest(5, "share")
    print("\nlowest rows of the default:\n" + worst[["world", "subject", "prompt", "share", "top ROIs"]].to_string())


if __name__ == "__main__":
    main()
