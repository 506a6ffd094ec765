"""``python -m backend encoder fit|halves|in-context|in-context-train``: voxel-wise encoders."""
from __future__ import annotations

from ._args import DEVICE_HELP, progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("encoder", help="voxel-wise encoders")
    esub = p.add_subparsers(dest="enc_cmd", required=True)
    f = esub.add_parser("fit", help="embed the stimuli (cached) and fit ridge encoders per subject")
    f.add_argument("--subject", nargs="*", default=None, help="default: every subject")
    f.add_argument("--cv", choices=["gcv", "loo"], default="gcv")
    f.add_argument("--if-missing", action="store_true", help="only subjects without an encoder")
    f.add_argument("--device", default="auto", help=DEVICE_HELP)
    f.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where blocks of voxels are fitted: this process (default, or $VOXELSCOPE_EXECUTOR) or Ray "
                        "($RAY_ADDRESS, else a local Ray cluster); the encoders are stored here either way")
    f.set_defaults(func=fit)
    h = esub.add_parser("halves", help="fit each subject's encoder again on each half of its training images "
                                       "(BrainDiVE guides with one, re-ranks with the other)")
    h.add_argument("--subject", nargs="*", default=None, help="default: every subject")
    h.add_argument("--device", default="auto", help=DEVICE_HELP)
    h.set_defaults(func=halves)
    c = esub.add_parser("in-context", help="a subject's encoders from its first N images with the in-context "
                                           "encoder (BraInCoRL-style: no fitting, one forward pass)")
    c.add_argument("--subject", nargs="+", required=True)
    c.add_argument("--images", type=int, required=True, help="how many of the subject's training images to read")
    c.add_argument("--order", choices=["first", "random"], default="first",
                   help="its first N training images (as its first sessions would give them) or a random draw")
    c.add_argument("--seed", type=int, default=0, help="the random draw's seed (--order random)")
    c.add_argument("--model", default=None, help="in-context encoder folder (default: models.toml)")
    c.add_argument("--device", default="auto", help=DEVICE_HELP)
    c.set_defaults(func=in_context)
    t = esub.add_parser("in-context-train", help="train the in-context encoder on subjects with many images "
                                                 "(checkpointed: rerun the same command to resume)")
    t.add_argument("--subject", nargs="+", required=True, help="training subjects (their test images are never seen)")
    t.add_argument("--out", required=True, help="model folder to write")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help=DEVICE_HELP)
    t.set_defaults(func=in_context_train)


def fit(ws, args) -> int:
    from ..encoders import fit_encoders

    bar = progress_bar()
    try:
        results = fit_encoders(ws, args.subject, device=args.device, cv=args.cv, only_missing=args.if_missing,
                               progress=bar, executor=args.executor)
    finally:
        bar.close()
    for res in results:
        _print_summary(res, f"{res['n_train']:,} train / {res['n_test']:,} test images, "
                            f"median test r {res['median_r']:.3f}")
    if not results:
        print("every subject already has an encoder")
    return 0


def _print_summary(res: dict, line: str) -> None:
    """A fitted subject's line, then its median noise-ceiling-normalised R^2 per ROI."""
    rois = ", ".join(f"{r or 'other'} {v:.2f}" for r, v in sorted(res["median_r2_nc_by_roi"].items()))
    print(f"{res['subject']}: {line}")
    print(f"  median noise-ceiling-normalised R^2 by ROI: {rois}")


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


def in_context(ws, args) -> int:
    from ..encoders import fit_incontext_encoder, load_incontext_model

    model = load_incontext_model(args.model, args.device)
    bar = progress_bar()
    try:
        results = [fit_incontext_encoder(ws, s, args.images, order=args.order, seed=args.seed, model=model,
                                         device=args.device, progress=bar) for s in args.subject]
    finally:
        bar.close()
    for res in results:
        _print_summary(res, f"in-context encoders from {res['n_train']:,} images ({model.model_id}); on "
                            f"{res['n_test']:,} test images mean R^2 {res['mean_r2']:.3f}, median r "
                            f"{res['median_r']:.3f}")
    return 0


def in_context_train(ws, args) -> int:
    from ..encoders import train_incontext

    bar = progress_bar()
    try:
        cfg = train_incontext(ws, args.subject, args.out, steps=args.steps, seed=args.seed, device=args.device,
                              progress=bar, log=lambda m: (bar.close(), print(m, flush=True)))
    finally:
        bar.close()
    print(f"wrote {args.out} ({cfg['model_id']})")
    return 0
