"""Benchmark: rendering the stimulus world and building the demo world (prints figures; not a test).

    .venv/bin/python bench/world_build.py [--images 10000] [--workers 2] [--full]

Prints: images rendered per second, seconds for N images, and with --full the whole demo build
(stimuli, subjects, sessions, workspace) in a temporary folder.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.datasets.demo.world import WorldConfig, build_demo_world, render_stimuli  # noqa: E402
from backend.store import Workspace  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also time the whole default demo build")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = WorldConfig(n_images=a.images, n_shared=0, n_unique=0, sessions=[], roi_scale=[])
        t = time.perf_counter()
        render_stimuli(cfg, Path(d) / "stim", workers=a.workers)
        dt = time.perf_counter() - t
        print(f"render {a.images:,} stimuli at {cfg.image_size}px with {a.workers} workers: {dt:.1f} s "
              f"({a.images / dt:,.0f} images/s)")
        if a.full:
            t = time.perf_counter()
            s = build_demo_world(Workspace(Path(d) / "ws"), WorldConfig(), workers=a.workers)
            print(f"full demo build ({s['images']:,} images, voxels {s['voxels']}): {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
