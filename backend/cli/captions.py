"""``python -m backend captions ...``: banks, the caption runner, evaluation, search."""
from __future__ import annotations

from ._args import DEVICE_HELP, int_ranges, progress_bar


def add_parser(sub) -> None:
    from ..captions.registry import CAPTION_METHODS

    methods = list(CAPTION_METHODS)
    p = sub.add_parser("captions", help="voxel captions: " + ", ".join(m.label for m in CAPTION_METHODS.values()))
    csub = p.add_subparsers(dest="cap_cmd", required=True)
    b = csub.add_parser("bank-demo", help="render and embed the demo image bank (50,000 unseen images)")
    b.add_argument("--n", type=int, default=50_000)
    b.add_argument("--device", default="auto", help=DEVICE_HELP)
    b.set_defaults(func=bank_demo)
    i = csub.add_parser("bank-import", help="register a bank of image embeddings (.npy, n x dim)")
    i.add_argument("name")
    i.add_argument("embeddings")
    i.add_argument("--captions", help="text file, one caption per line, same order")
    i.add_argument("--images", help="text file, one image path per line, same order")
    i.add_argument("--device", default="auto", help=DEVICE_HELP)
    i.set_defaults(func=bank_import)
    for name, hlp, func in (("run", "caption every voxel (resumes an interrupted run)", run),
                            ("evaluate", "sentence-level prediction, diversity and the ground-truth check", evaluate),
                            ("all", "bank (if missing), captions (resuming), evaluation", run_all)):
        r = csub.add_parser(name, help=hlp)
        r.add_argument("--subject", nargs="*", default=None)
        r.add_argument("--method", nargs="*", default=None, choices=methods)
        r.add_argument("--bank", default="demo")
        r.add_argument("--batch", type=int, default=256)
        r.add_argument("--device", default="auto", help=DEVICE_HELP)
        r.add_argument("--overwrite", action="store_true", help="replace captions made with other parameters")
        r.add_argument("--n", type=int, default=50_000, help="size of the demo bank if it is built")
        r.add_argument("--voxels", default=None, help="only these voxels, e.g. 0-499 (default: all)")
        r.add_argument("--executor", choices=["local", "ray"], default=None,
                       help="where batches are captioned: this process (default, or $VOXELSCOPE_EXECUTOR) or Ray "
                            "($RAY_ADDRESS, else a local Ray cluster); the captions are stored here either way")
        r.set_defaults(func=func)
    s = csub.add_parser("search", help="search voxel captions")
    s.add_argument("query")
    s.add_argument("--semantic", action="store_true", help="rank by sentence-embedding similarity")
    s.add_argument("--subject", default=None)
    s.add_argument("--method", default=None, choices=methods)
    s.add_argument("--limit", type=int, default=20)
    s.set_defaults(func=search)


def _bank_line(info: dict) -> None:
    print(f"bank {info['bank']!r}: {info['n']:,} embeddings ({info['dim']}-d), run {info['run']}")


def bank_demo(ws, args) -> int:
    from ..captions import build_demo_bank
    from ..models import load_role

    bar = progress_bar()
    try:
        _bank_line(build_demo_bank(ws, load_role("embedder", args.device), n=args.n, progress=bar))
    finally:
        bar.close()
    return 0


def bank_import(ws, args) -> int:
    from ..captions import import_bank
    from ..models import load_role

    _bank_line(import_bank(ws, args.name, args.embeddings, load_role("embedder", args.device), args.captions,
                           args.images))
    return 0


def run(ws, args) -> int:
    from ..captions import precompute
    from ..store import subjects

    bar = progress_bar()
    try:
        for s in args.subject or subjects(ws):
            res = precompute(ws, s, args.method, bank=args.bank, device=args.device, batch=args.batch,
                             overwrite=args.overwrite, voxels=int_ranges(args.voxels), progress=bar,
                             executor=args.executor)
            bar.close()
            for m, r in res.items():
                print(f"{s} {m}: {r['n']:,} voxels captioned ({r['new']:,} new), run {r['run']}")
    finally:
        bar.close()
    return 0


def _print_evaluation(ws, evaluations: dict, subjects) -> None:
    from ..captions import ground_truth_table

    for s, ev in evaluations.items():
        if ev.empty:
            print(f"{s}: no captions yet")
            continue
        print(f"{s}: median sentence-level prediction r: " + ", ".join(
            f"{m} {g.sentence_r.median():.3f}" for m, g in ev.groupby("method")))
    gt = ground_truth_table(ws, subjects)
    if not gt.empty:
        print("share of category-selective voxels whose caption names their true category:")
        print(gt.to_string(index=False, float_format=lambda x: f"{x:.1%}"))


def evaluate(ws, args) -> int:
    from ..captions import diversity
    from ..captions import evaluate as evaluate_captions
    from ..models import load_role
    from ..store import subjects

    names = args.subject or subjects(ws)
    _print_evaluation(ws, {s: evaluate_captions(ws, s, device=args.device) for s in names}, names)
    sent = load_role("sentence_embedder")
    for s in names:
        dv = diversity(ws, s, sent)
        if dv.empty:
            continue
        print(f"{s}: caption diversity (lexical = distinct words / words; semantic = mean pairwise cosine distance "
              "of sentence embeddings)")
        wide = dv.pivot(index="roi", columns="method", values=["distinct_captions", "lexical", "semantic"])
        print(wide.round(3).to_string())
    return 0


def run_all(ws, args) -> int:
    from ..captions import caption_all

    bar = progress_bar()

    def log(msg: str) -> None:
        bar.close()
        print(msg, flush=True)

    try:
        res = caption_all(ws, args.subject, args.method, bank=args.bank, device=args.device, batch=args.batch,
                          overwrite=args.overwrite, voxels=int_ranges(args.voxels), bank_size=args.n, progress=bar,
                          log=log, executor=args.executor)
    finally:
        bar.close()
    if res["evaluation"]:
        _print_evaluation(ws, res["evaluation"], list(res["evaluation"]))
    return 0


def search(ws, args) -> int:
    from ..captions import CaptionIndex
    from ..models import load_role

    index = CaptionIndex.from_workspace(ws, load_role("sentence_embedder") if args.semantic else None)
    res = index.search(args.query, "meaning" if args.semantic else "words")
    if args.subject:
        res = res[res.subject == args.subject]
    if args.method:
        res = res[res.method == args.method]
    print(f"{len(res):,} voxels match {args.query!r}")
    cols = ["subject", "method", "voxel", "hemi", "vertex", "roi", "score", "caption"]
    print(res[cols].head(args.limit).to_string(index=False))
    return 0
