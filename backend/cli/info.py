"""``python -m backend info``: what the workspace holds."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="what the workspace holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(ws, args) -> int:
    from ..store import workspace_info

    info = workspace_info(ws)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"workspace: {info['path']}")
    if not info["exists"]:
        print("  (empty: run `python -m backend demo build` or `python -m backend import nsd ...`)")
        return 1
    print(f"dataset:   {info['dataset']} ({info['space']})")
    print(f"images:    {info['n_images']:,} ({info['n_captions']:,} captions)")
    for s in info["subjects"]:
        nc = f"{s['median_nc']:.1f}%" if s["median_nc"] is not None else "n/a"
        print(f"{s['subject']}:    {s['n_voxels']:,} voxels, {s['n_images']:,} images seen "
              f"({s['n_train']:,} train / {s['n_test']:,} test), {s['n_sessions']} sessions, median noise ceiling {nc}")
        rois = ", ".join(f"{r} {n}" for r, n in s["voxels_per_roi"].items())
        print(f"           voxels per ROI: {rois}")
    print(f"runs:      {info['n_runs']} recorded")
    return 0
