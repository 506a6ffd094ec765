"""``python -m backend figure rois|overlay OUT.png``: surface figures rendered off-screen."""
from __future__ import annotations

from pathlib import Path

from ._args import DEVICE_HELP


def add_parser(sub) -> None:
    from ..explore.overlays import OVERLAYS

    p = sub.add_parser("figure", help="render figures off-screen")
    fsub = p.add_subparsers(dest="fig_cmd", required=True)
    r = fsub.add_parser("rois", help="ROI map, both hemispheres, several views")
    r.add_argument("out")
    r.add_argument("--subject", default=None)
    r.set_defaults(func=rois)
    o = fsub.add_parser("overlay", help="an overlay (ROIs, noise ceiling, encoding accuracy, concept map) as a "
                                        "multi-view PNG panel with colour bar and ROI outlines")
    o.add_argument("out")
    o.add_argument("--subject", default=None)
    o.add_argument("--overlay", default="rois", choices=list(OVERLAYS))
    o.add_argument("--concept", default="", help="text of the concept map (with --overlay concept); "
                   "'<run id>:<seed>' of a synthesized image (with --overlay synthesis)")
    o.add_argument("--encoder", choices=["ridge", "in-context"], default=None,
                   help="which of the subject's encoders (default: the one made from the most images)")
    o.add_argument("--definition", default=None, help="concept-map definition: captions (default), calibrated, "
                   "weights, images")
    o.add_argument("--vmin", type=float, default=None)
    o.add_argument("--vmax", type=float, default=None)
    o.add_argument("--threshold", type=float, default=None)
    o.add_argument("--surface", default="inflated", choices=["inflated", "pial", "white"])
    o.add_argument("--no-outlines", action="store_true")
    o.add_argument("--device", default="auto", help=DEVICE_HELP)
    o.set_defaults(func=overlay)


def rois(ws, args) -> int:
    from ..explore import render_roi_map

    print(f"wrote {render_roi_map(ws, args.subject, Path(args.out))}")
    return 0


def overlay(ws, args) -> int:
    from ..explore import render_overlay
    from ..store import default_subject

    path = render_overlay(ws, args.subject or default_subject(ws), args.overlay, Path(args.out), concept=args.concept,
                          vmin=args.vmin, vmax=args.vmax, threshold=args.threshold, outlines=not args.no_outlines,
                          mesh=args.surface, device=args.device, definition=args.definition,
                          encoder=args.encoder)
    print(f"wrote {path}")
    return 0
