"""``python -m backend encoder fit``: voxel-wise encoders."""
from __future__ import annotations

from ._args import progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("encoder", help="voxel-wise encoders")
    esub = p.add_subparsers(dest="enc_cmd", required=True)
    f = esub.add_parser("fit", help="embed the stimuli (cached) and fit ridge encoders per subject")
    f.add_argument("--subject", nargs="*", default=None, help="default: every subject")
    f.add_argument("--cv", choices=["gcv", "loo"], default="gcv")
    f.add_argument("--if-missing", action="store_true", help="only subjects without an encoder")
    f.add_argument("--device", default="cpu")
    f.set_defaults(func=fit)
    h = esub.add_parser("halves", help="fit each subject's encoder again on each half of its training images "
                                       "(BrainDiVE guides with one, re-ranks with the other)")
    h.add_argument("--subject", nargs="*", default=None, help="default: every subject")
    h.add_argument("--device", default="cpu")
    h.set_defaults(func=halves)


def fit(ws, args) -> int:
    from ..encoders import fit_encoders

    bar = progress_bar()
    try:
        results = fit_encoders(ws, args.subject, device=args.device, cv=args.cv, only_missing=args.if_missing,
                               progress=bar)
    finally:
        bar.close()
    for res in results:
        rois = ", ".join(f"{r or 'other'} {v:.2f}" for r, v in sorted(res["median_r2_nc_by_roi"].items()))
        print(f"{res['subject']}: {res['n_train']:,} train / {res['n_test']:,} test images, "
              f"median test r {res['median_r']:.3f}")
        print(f"  median noise-ceiling-normalised R^2 by ROI: {rois}")
    if not results:
        print("every subject already has an encoder")
    return 0


def halves(ws, args) -> int:
    from ..encoders import fit_encoder_halves
    from ..store import subjects

    bar = progress_bar()
    try:
        for s in args.subject or subjects(ws):
            runs = fit_encoder_halves(ws, s, device=args.device, progress=bar)
            print(f"{s}: half-data encoders {', '.join(runs)}")
    finally:
        bar.close()
    return 0
