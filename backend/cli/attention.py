"""``python -m backend attention fit|compare|evaluate|objects|map``: the attention-routing encoder and its maps."""
from __future__ import annotations

from ._args import DEVICE_HELP, progress_bar


def add_parser(sub) -> None:
    from ..encoders.attention import QUERY_MODES, AttentionConfig

    d = AttentionConfig()
    p = sub.add_parser("attention", help="transformer encoder with attention routing (Adeli et al.) and its maps")
    asub = p.add_subparsers(dest="att_cmd", required=True)
    f = asub.add_parser("fit", help="patch tokens of the stimuli (cached), then an attention encoder per subject")
    f.add_argument("--subject", nargs="*", default=None, help="default: every subject")
    f.add_argument("--query-mode", choices=QUERY_MODES, default=d.query_mode)
    f.add_argument("--d-model", type=int, default=d.d_model)
    f.add_argument("--heads", type=int, default=d.heads)
    f.add_argument("--layers", type=int, default=d.layers, help="cross-attention decoder layers")
    f.add_argument("--max-epochs", type=int, default=d.max_epochs)
    f.add_argument("--patience", type=int, default=d.patience, help="early stopping on the validation images")
    f.add_argument("--lr", type=float, default=d.lr)
    f.add_argument("--batch-size", type=int, default=d.batch_size)
    f.add_argument("--seed", type=int, default=d.seed)
    f.add_argument("--if-missing", action="store_true", help="only subjects without an attention encoder")
    f.add_argument("--device", default="auto", help=DEVICE_HELP)
    f.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where subjects train: this process, one after another (default, or $VOXELSCOPE_EXECUTOR), or "
                        "a Ray task per subject ($RAY_ADDRESS, else a local Ray cluster); stored here either way")
    f.set_defaults(func=fit)
    c = asub.add_parser("compare", help="per ROI: median R^2/NC of the attention encoder vs ridge")
    c.add_argument("--subject", nargs="*", default=None)
    c.set_defaults(func=compare)
    e = asub.add_parser("evaluate", help="attention (and dense maps) against the demo world's masks and retinotopy")
    e.add_argument("--subject", nargs="*", default=None)
    e.add_argument("--dense", action="store_true", help="also the dense selectivity maps (slower)")
    e.add_argument("--max-images", type=int, default=None, help="at most this many test images")
    e.add_argument("--csv", default=None, help="also write the table here")
    e.set_defaults(func=evaluate)
    o = asub.add_parser("objects", help="each query's attention on two objects composed from the world's grammar "
                                        "(both sides, several seeds): which object each ROI prefers")
    o.add_argument("--subject", nargs="*", default=None)
    o.add_argument("--pair", nargs=2, default=["face", "place:house"], metavar="CATEGORY[:KIND]",
                   help="the two objects (default: a face of any kind and a house)")
    o.add_argument("--seeds", type=int, default=10, help="seeds per side (colours, textures)")
    o.add_argument("--background", default="plain", choices=["plain", "indoor", "outdoor"])
    o.set_defaults(func=objects)
    m = asub.add_parser("map", help="a grid of every ROI's attention over one image, as a PNG")
    m.add_argument("out", help="output PNG")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--stim-id", type=int, help="a stimulus of the workspace")
    src.add_argument("--image", help="a PNG or JPEG file")
    m.add_argument("--subject", default=None)
    m.add_argument("--head", type=int, default=None, help="one attention head (default: mean over heads)")
    m.set_defaults(func=map_)


def fit(ws, args) -> int:
    from ..encoders.attention import AttentionConfig, fit_attention_encoders

    cfg = AttentionConfig(d_model=args.d_model, heads=args.heads, layers=args.layers, query_mode=args.query_mode,
                          max_epochs=args.max_epochs, patience=args.patience, lr=args.lr,
                          batch_size=args.batch_size, seed=args.seed)
    bar = progress_bar()
    try:
        results = fit_attention_encoders(ws, args.subject, cfg, device=args.device, only_missing=args.if_missing,
                                         progress=bar, executor=args.executor)
    finally:
        bar.close()
    for r in results:
        rois = ", ".join(f"{k or 'other'} {v:.2f}" for k, v in sorted(r["median_r2_nc_by_roi"].items()))
        print(f"{r['subject']}: {r['n_queries']} queries, {r['epochs']} epochs (best {r['best_epoch']}), "
              f"run {r['run']}")
        print(f"  median noise-ceiling-normalised R^2 by ROI: {rois}")
    if not results:
        print("every subject already has an attention encoder")
    return 0


def _subjects(ws, names):
    from ..store import subjects

    return names or subjects(ws)


def compare(ws, args) -> int:
    from ..attention import accuracy_vs_ridge

    for s in _subjects(ws, args.subject):
        t = accuracy_vs_ridge(ws, s)
        print(f"{s}: median R^2 / noise ceiling on the shared test images")
        print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def evaluate(ws, args) -> int:
    import pandas as pd

    from ..attention import attention_ground_truth
    from ..encoders import encoder_weights, load_attention_encoder
    from ..encoders.features import stimulus_patch_tokens
    from ..models import load_role, model_config

    cfg = model_config()
    emb = load_role("embedder", config=cfg)
    tokens, _ = stimulus_patch_tokens(ws, emb, cfg["embedder"]["path"])
    tables = []
    for s in _subjects(ws, args.subject):
        enc = load_attention_encoder(ws, s)
        W = encoder_weights(ws, s)[0] if args.dense else None
        t = attention_ground_truth(ws, s, enc, tokens, emb if args.dense else None, W, args.max_images)
        tables.append(t.assign(subject=s))
        print(f"{s}: category ROIs - share of attention mass in the masks of the ROI's category (chance: the masks' "
              "share of the image); early ROIs - share of images whose centre of mass is in the ROI's quadrant")
        print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        pd.concat(tables).to_csv(args.csv, index=False)
    return 0


def objects(ws, args) -> int:
    import pandas as pd

    from ..attention import attention_on_objects, image_attention
    from ..datasets.demo import compose_stimulus
    from ..encoders import load_attention_encoder
    from ..errors import InvalidInputError
    from ..models import load_role

    specs = []
    for item in args.pair:
        cat, _, kind = item.partition(":")
        specs.append({"category": cat, **({"kind": kind} if kind else {})})
    names = [s.get("kind") or s["category"] for s in specs]
    if names[0] == names[1]:
        raise InvalidInputError(f"--pair names the same object twice ({names[0]})")
    emb = load_role("embedder")
    for s in _subjects(ws, args.subject):
        enc = load_attention_encoder(ws, s)
        tables = []
        for seed in range(args.seeds):
            for sides in (("left", "right"), ("right", "left")):
                image, mask, _ = compose_stimulus([{**specs[0], "place": sides[0]}, {**specs[1], "place": sides[1]}],
                                                  args.background, seed)
                att = image_attention(ws, s, image, enc, emb)
                tables.append(attention_on_objects(att, mask, names,
                                                   [n for n in att.names if not n.startswith("outside")]))
        t = pd.concat(tables).groupby(level=0, sort=False).mean()
        print(f"{s}: mean share of each query's attention on each object over {len(tables)} composed images "
              f"({names[0]} and {names[1]}, sides swapped; first row: the objects' share of the image)")
        print(t.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def map_(ws, args) -> int:
    from pathlib import Path

    import numpy as np

    from ..attention import attention_grid_png, image_attention, load_image_file
    from ..datasets import stimulus_images
    from ..encoders import load_attention_encoder
    from ..models import load_role
    from ..store import default_subject

    subject = args.subject or default_subject(ws)
    if args.image:
        image = load_image_file(Path(args.image).read_bytes(), args.image)
    else:
        image = stimulus_images(ws, [args.stim_id])[0]
    att = image_attention(ws, subject, np.asarray(image), load_attention_encoder(ws, subject),
                          load_role("embedder"))
    Path(args.out).write_bytes(attention_grid_png(att, [n for n in att.names if not n.startswith("outside")],
                                                  head=args.head))
    print(f"wrote {args.out}")
    return 0
