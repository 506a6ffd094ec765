"""The judge (the simulated subject's eyes) and simulate_response: images per second.

    .venv/bin/python bench/judge_speed.py [--n 512] [--threads 2] [--device cpu] [--workspace PATH]

Prints: the judge's segmentation throughput (64 px, batches of 64) and, given a demo-world workspace,
``simulate_response`` end to end (judge + contrast energy + every voxel's response of subj01), and the one-off
cost of the subject's normalisation over the world's images (first call).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workspace", default=None)
    args = ap.parse_args()

    import torch

    from backend.datasets.demo.stimuli import render_stimulus
    from backend.models.judge import load_judge

    torch.set_num_threads(args.threads)
    judge = load_judge(device=args.device)
    images = [render_stimulus(4242, i)[0] for i in range(args.n)]
    judge.segment(images[:64])  # warm-up
    t0 = time.perf_counter()
    judge.segment(images)
    dt = time.perf_counter() - t0
    print(f"judge: {args.n} images (128 px in, 64 px segmentation) in {dt:.2f} s = {args.n / dt:.0f} images/s "
          f"({args.threads} threads, {args.device})")
    if args.workspace:
        from backend.simulate import simulate_response, simulated_subject
        from backend.store import Workspace

        ws = Workspace(args.workspace)
        t0 = time.perf_counter()
        simulated_subject(ws, "subj01")
        print(f"subj01 normalisation over the world's images (once per process): {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        resp = simulate_response(ws, "subj01", images, judge)
        dt = time.perf_counter() - t0
        print(f"simulate_response: {args.n} images x {resp.shape[1]:,} voxels in {dt:.2f} s = {args.n / dt:.0f} "
              "images/s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
