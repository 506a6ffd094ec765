"""``python -m backend demo build|export-nsd|export-algonauts``: the synthetic demo world."""
from __future__ import annotations

from pathlib import Path

from ._args import int_ranges, progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the synthetic demo world")
    dsub = p.add_subparsers(dest="demo_cmd", required=True)
    b = dsub.add_parser("build", help="build the demo world (resumes an interrupted build)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--tiny", action="store_true", help="a small world (for tests and quick looks)")
    b.add_argument("--workers", type=int, default=None)
    b.add_argument("--if-missing", action="store_true", help="do nothing when the workspace already has a world")
    b.set_defaults(func=build)
    e = dsub.add_parser("export-nsd", help="write the world in the NSD release layout")
    e.add_argument("out")
    e.add_argument("--sessions", help="e.g. 1-3 (default: all)")
    e.set_defaults(func=export_nsd)
    a = dsub.add_parser("export-algonauts", help="write the world in the Algonauts 2023 layout")
    a.add_argument("out")
    a.set_defaults(func=export_algonauts)


def build(ws, args) -> int:
    from ..datasets.demo import build_demo_world, default_config, tiny_config

    if args.if_missing and ws.exists:
        print(f"demo world already in {ws.path}")
        return 0
    cfg = tiny_config(args.seed) if args.tiny else default_config(args.seed)
    bar = progress_bar()
    try:
        summary = build_demo_world(ws, cfg, progress=bar, workers=args.workers)
    finally:
        bar.close()
    print(f"built the demo world in {summary['seconds']} s: {summary['images']:,} images, voxels {summary['voxels']}"
          f" -> {ws.path}")
    return 0


def export_nsd(ws, args) -> int:
    from ..datasets.demo import export_demo_nsd

    bar = progress_bar()
    try:
        export_demo_nsd(ws, Path(args.out), progress=bar, sessions=int_ranges(args.sessions))
    finally:
        bar.close()
    print(f"wrote nsd layout to {args.out}")
    return 0


def export_algonauts(ws, args) -> int:
    from ..datasets.demo import export_demo_algonauts

    export_demo_algonauts(ws, Path(args.out))
    print(f"wrote algonauts layout to {args.out}")
    return 0
