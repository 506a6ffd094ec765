"""``python -m backend import nsd|algonauts ROOT --subject subjXX``: data from disk."""
from __future__ import annotations

from pathlib import Path

from ._args import int_ranges, progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="import a dataset from disk")
    p.add_argument("layout", choices=["nsd", "algonauts"])
    p.add_argument("root", help="NSD root (holding nsddata/, nsddata_betas/, nsddata_stimuli/) or Algonauts root")
    p.add_argument("--subject", required=True, help="e.g. subj01")
    p.add_argument("--sessions", help="NSD sessions to read, e.g. 1-10 (default: all present)")
    p.add_argument("--vertices", choices=["nsdgeneral", "all"], default="nsdgeneral",
                   help="nsd: the vertices kept: the nsdgeneral mask (default) or the whole cortex")
    p.add_argument("--coco-captions", nargs="*", default=None, help="COCO captions_*.json files")
    p.add_argument("--algonauts-rois", default=None, help="nsd: the subject's Algonauts roi_masks folder, for ROI files "
                                                          "the NSD tree lacks in fsaverage space")
    p.set_defaults(func=run)


def run(ws, args) -> int:
    from ..datasets import import_algonauts, import_nsd

    bar = progress_bar()
    try:
        if args.layout == "nsd":
            rep = import_nsd(ws, Path(args.root), args.subject, sessions=int_ranges(args.sessions), progress=bar,
                             vertices="all" if args.vertices == "all" else None,
                             coco_captions=args.coco_captions, algonauts_rois=args.algonauts_rois).text()
        else:
            rep = import_algonauts(ws, Path(args.root), args.subject, progress=bar)
    finally:
        bar.close()
    print(rep)
    return 0
