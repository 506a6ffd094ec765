"""``python -m backend reconstruction clusters|fit|run|evaluate|list``: Brain-IT image reconstruction."""
from __future__ import annotations

from ._args import DEVICE_HELP, progress_bar


def _recon_args(p) -> None:
    p.add_argument("--images", type=int, default=100, help="the first N test images of the subject (0 = all)")
    p.add_argument("--samples", type=int, default=3, help="generator samples per image (the best is kept)")
    p.add_argument("--strength", type=float, default=0.7, help="img2img strength (0 keeps the low-level image)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance on the predicted embedding")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_parser(sub) -> None:
    p = sub.add_parser("reconstruction", help="Brain-IT: reconstruct seen images from betas")
    rsub = p.add_subparsers(dest="rec_cmd", required=True)
    c = rsub.add_parser("clusters", help="fit the voxel clusters shared across subjects (Gaussian mixture)")
    c.add_argument("--k", type=int, default=None, help="number of clusters (demo default 32)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=clusters)
    f = rsub.add_parser("fit", help="train a decoder: BIT (all subjects) or the ridge baseline")
    f.add_argument("--kind", choices=["bit", "ridge"], default="bit")
    f.add_argument("--one-hour", default=None, metavar="SUBJECT",
                   help="that subject gets only 2 sessions' worth of training images")
    f.add_argument("--alone", action="store_true", help="with --one-hour: train on that subject alone")
    f.add_argument("--epochs", type=int, default=None)
    f.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="bit: train in this process (default, or $VOXELSCOPE_EXECUTOR) or as one Ray task "
                        "($RAY_ADDRESS, else a local Ray cluster); stored here either way")
    f.add_argument("--min-steps", type=int, default=None,
                   help="small data gets more epochs, up to this many steps (default 600; 0 = just --epochs)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="auto", help=DEVICE_HELP)
    f.set_defaults(func=fit)
    r = rsub.add_parser("run", help="reconstruct a subject's test images with a stored decoder (resumable)")
    r.add_argument("decoder", help="decoder id (`reconstruction list`), or 'bit' / 'ridge' for the newest full one")
    r.add_argument("--subject", default=None)
    r.add_argument("--out", default=None, help="PNG: seen | low-level | reconstruction rows")
    _recon_args(r)
    r.set_defaults(func=run)
    e = rsub.add_parser("evaluate", help="the papers' table: BIT, ridge and the 1-hour regimes on every subject")
    e.add_argument("--one-hour", default=None, metavar="SUBJECT", help="default: the first subject")
    _recon_args(e)
    e.set_defaults(func=evaluate)
    ls = rsub.add_parser("list", help="stored decoders and reconstruction runs")
    ls.set_defaults(func=list_all)


def clusters(ws, args) -> int:
    from ..reconstruction import DEFAULT_K, fit_clusters, voxel_clusters
    from ..store import subjects

    bar = progress_bar()
    try:
        run = fit_clusters(ws, args.k or DEFAULT_K, seed=args.seed, progress=bar)
    finally:
        bar.close()
    for s in subjects(ws):
        c = voxel_clusters(ws, s)
        n = c.cluster.value_counts()
        print(f"{s}: {len(c)} voxels in {len(n)} clusters (median {int(n.median())} voxels, smallest {n.min()}, "
              f"largest {n.max()})")
    print(f"run {run}")
    return 0


def fit(ws, args) -> int:
    from ..reconstruction import BITConfig, fit_bit, fit_ridge_decoder

    bar = progress_bar()
    try:
        if args.kind == "ridge":
            did = fit_ridge_decoder(ws, one_hour=args.one_hour, device=args.device, progress=bar)
        else:
            cfg = BITConfig(seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}),
                            **({"min_steps": args.min_steps} if args.min_steps is not None else {}))
            did = fit_bit(ws, cfg=cfg, one_hour=args.one_hour, alone=args.alone, device=args.device, progress=bar,
                          executor=args.executor)
    finally:
        bar.close()
    print(f"decoder {did}")
    return 0


def _cfg(args):
    from ..reconstruction import ReconConfig

    return ReconConfig(n_images=args.images, samples=args.samples, strength=args.strength, steps=args.steps,
                       guidance=args.guidance)


def _row(label: str, m: dict) -> str:
    return f"| {label} | " + " | ".join(f"{m[k]:.3f}" if "dist" in k or k in ("PixCorr", "SSIM") else f"{100 * m[k]:.1f}%"
                                       for k in m) + " |"


def run(ws, args) -> int:
    from ..reconstruction import ensure_decoder, reconstruct, run_reconstructions
    from ..store import default_subject

    subject = args.subject or default_subject(ws)
    bar = progress_bar()
    try:
        res = reconstruct(ws, ensure_decoder(ws, args.decoder, device=args.device, progress=bar), subject, _cfg(args), device=args.device, progress=bar)
    finally:
        bar.close()
    m = res["metrics"]
    print(f"run {res['run_id']} ({'re-opened' if res['reopened'] else 'reconstructed'}), {m['n']} test images")
    print("| images | " + " | ".join(m["final"]) + " |")
    print(_row("final", m["final"]))
    print(_row("low-level", m["low-level"]))
    if args.out:
        from PIL import Image

        from ..datasets.reading import stimulus_images
        from ..images import image_grid

        _, best, low, stim = run_reconstructions(ws, res["run_id"])
        n = min(12, len(stim))
        seen = stimulus_images(ws, stim[:n])
        grid = image_grid(list(seen) + list(low[:n]) + list(best[:n]), columns=n, size=96)
        Image.fromarray(grid).save(args.out)
        print(f"seen | low-level | reconstruction: {args.out}")
    return 0


def evaluate(ws, args) -> int:
    from ..reconstruction import ensure_decoder, reconstruct
    from ..store import subjects

    subs = subjects(ws)
    one = args.one_hour or subs[0]
    bar = progress_bar()
    rows = []
    try:
        regimes = [("bit", None, False), ("ridge", None, False), ("bit", one, False), ("bit", one, True)]
        for kind, hour, alone in regimes:
            did = ensure_decoder(ws, kind, hour, alone, args.device, bar)
            regime = "full" if hour is None else f"1h, {'alone' if alone else 'shared'}"
            for s in (subs if hour is None else [hour]):
                res = reconstruct(ws, did, s, _cfg(args), device=args.device, progress=bar)
                rows.append((f"{s} {'BIT' if kind == 'bit' else 'ridge'} ({regime})", res["metrics"]))
    finally:
        bar.close()
    first = rows[0][1]["final"]
    print("| | " + " | ".join(first) + " |")
    print("|---" * (len(first) + 1) + "|")
    for label, m in rows:
        print(_row(label, m["final"]))
    truth = [(label, m["truth"]) for label, m in rows if m.get("truth")]
    if truth:
        rois = sorted(truth[0][1])
        print("\nsimulated subject: r(response to the seen image, to its reconstruction) over each ROI's voxels, "
              "mean over images (shuffled pairs in brackets)")
        print("| | " + " | ".join(rois) + " |")
        for label, t in truth:
            print(f"| {label} | " + " | ".join(f"{t[r]['r']:.2f} ({t[r]['shuffled']:.2f})" if r in t else "" for r in rois)
                  + " |")
    return 0


def list_all(ws, args) -> int:
    from ..reconstruction import decoders, reconstruction_runs

    d = decoders(ws)
    print(d.to_string(index=False) if not d.empty else "no decoders")
    r = reconstruction_runs(ws)
    if not r.empty:
        print(r[["run_id", "subject", "kind", "regime", "n_images", "samples", "strength", "state"]].to_string(index=False))
    return 0
