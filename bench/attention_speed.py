"""Attention encoder speed against ridge, on a workspace with patch tokens (``python -m backend attention fit``).

    .venv/bin/python bench/attention_speed.py [--subject subj01] [--steps 50] [--threads 1] [--device cpu]

Prints: one training step (batch 16) and the time of one epoch over the subject's training images; inference
images per second (patch tokens -> every voxel's predicted response and the attention maps); the ridge fit of
the same subject (GCV over the global embeddings) for comparison; and the time of the stored run's training
from its parameters (epochs) when the workspace has one.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", default=None)
    ap.add_argument("--subject", default="subj01")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from backend.encoders import (AttentionConfig, design_matrices, fit_ridge_cv, load_attention_encoder,
                                  stimulus_features, stimulus_patch_tokens)
    from backend.encoders.attention import _build, voxel_queries
    from backend.models import load_role, model_config
    from backend.store import Workspace

    torch.set_num_threads(args.threads)
    ws = Workspace(args.workspace)
    cfg = model_config()
    emb = load_role("embedder", args.device, cfg)
    tokens, _ = stimulus_patch_tokens(ws, emb, cfg["embedder"]["path"])
    Xtr, Ytr, Xte, _, _ = design_matrices(ws, args.subject, tokens)
    vox = ws.query("SELECT hemi, roi FROM voxels WHERE subject = ? ORDER BY voxel", [args.subject])
    names, qidx = voxel_queries(vox)
    c = AttentionConfig()
    model = _build(Xtr.shape[2], len(names), qidx, emb.patch_grid, c).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    rng = np.random.default_rng(0)
    y = torch.as_tensor(Ytr[:, :], dtype=torch.float32)

    def step():
        b = np.sort(rng.choice(len(Xtr), c.batch_size, replace=False))
        x = torch.as_tensor(np.asarray(Xtr[b], np.float32), device=args.device)
        loss = ((model(x)[0] - y[b].to(args.device)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - t) / args.steps
    epoch = per_step * np.ceil(0.9 * len(Xtr) / c.batch_size)
    print(f"{args.subject}: {len(Xtr):,} training images, {Ytr.shape[1]:,} voxels, {len(names)} queries, "
          f"{args.threads} thread(s)")
    print(f"attention encoder: {per_step * 1000:.0f} ms per step of {c.batch_size}, {epoch:.0f} s per epoch")
    try:
        enc = load_attention_encoder(ws, args.subject)
        runs = ws.query("SELECT parameters FROM runs WHERE run_id = ?", [enc.info["run"]])
        epochs = json.loads(runs.parameters.iloc[0])["epochs"]
        print(f"  the stored run trained {epochs} epochs: about {epochs * epoch / 60:.1f} min at this speed")
        x = np.asarray(Xte[:256], np.float32)
        enc.predict(x[:16], with_attention=True)
        t = time.perf_counter()
        enc.predict(x, with_attention=True)
        print(f"  inference: {len(x) / (time.perf_counter() - t):,.0f} images/s (responses + attention maps)")
    except LookupError:
        print("  (no stored attention encoder of this subject: inference not timed)")
    feats, _ = stimulus_features(ws, emb, cfg["embedder"]["path"])
    Ftr, Rtr, _, _, _ = design_matrices(ws, args.subject, feats)
    t = time.perf_counter()
    fit_ridge_cv(Ftr, Rtr, device=args.device)
    print(f"ridge (GCV, {Ftr.shape[1]}-d global embedding): {time.perf_counter() - t:.1f} s for the whole fit")


if __name__ == "__main__":
    main()
