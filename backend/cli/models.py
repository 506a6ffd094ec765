"""``python -m backend models train|evaluate``: the demo models."""
from __future__ import annotations

import json
from pathlib import Path

from ._args import progress_bar

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets" / "models"


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="the demo models")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    t = msub.add_parser("train", help="retrain demo models reproducibly from a seed (CPU; see README)")
    t.add_argument("which", nargs="*", default=["all"], help="embedder, judge, captioner, generator (the default: "
                   "32 px pixel diffusion, object-weighted), latent_generator (64 px latent diffusion), "
                   "latent_generator_ow (its object-weighted second stage, not shipped), code_generator (compact-code "
                   "diffusion, not shipped) or all (every shipped one)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="folder (default assets/models)")
    t.add_argument("--cache", default=".cache/train_sets", help="where rendered training images are kept")
    t.add_argument("--embedder-steps", type=int, default=1400)
    t.add_argument("--image-norm", choices=["group", "channel"], default="group",
                   help="embedder image tower normalisation: over the whole map per group, or per position")
    t.add_argument("--vae", default=None, help="code_generator: copy this trained VAE folder instead of training one")
    t.set_defaults(func=train)
    u = msub.add_parser("extend-embedder", help="teach the shipped embedder the caption words it lacks after a "
                        "grammar change, nothing it knew moving (see backend/models/demo/vocabulary.py)")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--out", default=None, help="folder (default assets/models)")
    u.add_argument("--cache", default=".cache/train_sets", help="where rendered training images are kept")
    u.set_defaults(func=extend)
    v = msub.add_parser("evaluate", help="measure the demo models on held-out images (updates training.json)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--out", default=None)
    v.add_argument("--cache", default=".cache/train_sets")
    v.set_defaults(func=evaluate)


def train(ws, args) -> int:
    from ..models.demo.train import train_all

    which = ["embedder", "judge", "captioner", "generator", "latent_generator"] if "all" in args.which \
        else args.which
    bar = progress_bar()
    try:
        res = train_all(Path(args.out) if args.out else ASSETS, which, seed=args.seed, cache=Path(args.cache),
                        progress=bar, log=lambda m: (bar.close(), print(m, flush=True)),
                        embedder_steps=args.embedder_steps, image_norm=args.image_norm,
                        vae=Path(args.vae) if args.vae else None)
    finally:
        bar.close()
    print(json.dumps(res, indent=1, default=float))
    return 0


def extend(ws, args) -> int:
    from ..models.demo.vocabulary import extend_embedder

    bar = progress_bar()
    try:
        res = extend_embedder(Path(args.out) if args.out else ASSETS, seed=args.seed, cache=Path(args.cache),
                              progress=bar, log=lambda m: (bar.close(), print(m, flush=True)))
    finally:
        bar.close()
    print(json.dumps(res, indent=1, default=float))
    return 0


def evaluate(ws, args) -> int:
    from ..models.demo.train import evaluate_all

    evaluate_all(Path(args.out) if args.out else ASSETS, args.seed, Path(args.cache))
    return 0
