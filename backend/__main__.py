"""Command line: ``python -m backend <command>``.

    python -m backend info                      what the workspace holds
    python -m backend demo build [--tiny]       build the synthetic world (resumable)
    python -m backend demo export-nsd DIR       write the world in the NSD release layout
    python -m backend demo export-algonauts DIR write the world in the Algonauts 2023 layout
    python -m backend import nsd DIR --subject subj01 [--sessions 1-40]
    python -m backend import algonauts DIR --subject subj01
    python -m backend models train [all|embedder|captioner|generator] [--seed 0]
    python -m backend encoder fit [--subject subj01] [--cv gcv|loo] [--device cpu]
    python -m backend captions all              demo bank, BrainSCUBA + LaVCa captions, evaluation
    python -m backend captions search "food" [--semantic]
    python -m backend figure rois OUT.png       render the ROI map (PyVista, off-screen)
    python -m backend figure overlay OUT.png --overlay concept --concept "a smiling face"

``--workspace PATH`` (or $VOXELSCOPE_WORKSPACE) selects the workspace folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .workspace import Workspace


def _sessions(text: str | None):
    if not text:
        return None
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def cmd_info(ws: Workspace, args) -> int:
    from .info import workspace_info

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
        print(f"{s['subject']}:    {s['n_voxels']:,} voxels, {s['n_images']:,} images seen "
              f"({s['n_train']:,} train / {s['n_test']:,} test), {s['n_sessions']} sessions, "
              f"median noise ceiling " + (f"{s['median_nc']:.1f}%" if s['median_nc'] is not None else "n/a"))
        rois = ", ".join(f"{r} {n}" for r, n in s["voxels_per_roi"].items())
        print(f"           voxels per ROI: {rois}")
    print(f"runs:      {info['n_runs']} recorded")
    return 0


def cmd_demo_build(ws: Workspace, args) -> int:
    from .progress import TerminalProgress
    from .world import build_demo_world, default_config, tiny_config

    if args.if_missing and ws.exists:
        print(f"demo world already in {ws.path}")
        return 0
    cfg = tiny_config(args.seed) if args.tiny else default_config(args.seed)
    bar = TerminalProgress()
    try:
        summary = build_demo_world(ws, cfg, progress=bar, workers=args.workers)
    finally:
        bar.close()
    print(f"built the demo world in {summary['seconds']} s: {summary['images']:,} images, voxels {summary['voxels']}"
          f" -> {ws.path}")
    return 0


def cmd_export(ws: Workspace, args, layout: str) -> int:
    from .progress import TerminalProgress
    from . import nsd

    bar = TerminalProgress()
    try:
        if layout == "nsd":
            nsd.export_demo_nsd(ws, Path(args.out), progress=bar, sessions=_sessions(args.sessions))
        else:
            from . import algonauts
            algonauts.export_demo_algonauts(ws, Path(args.out))
    finally:
        bar.close()
    print(f"wrote {layout} layout to {args.out}")
    return 0


def cmd_import(ws: Workspace, args) -> int:
    from .progress import TerminalProgress

    bar = TerminalProgress()
    try:
        if args.layout == "nsd":
            from . import nsd
            rep = nsd.import_nsd(ws, Path(args.root), args.subject, sessions=_sessions(args.sessions),
                                 progress=bar, coco_captions=args.coco_captions)
        else:
            from . import algonauts
            rep = algonauts.import_algonauts(ws, Path(args.root), args.subject, progress=bar)
    finally:
        bar.close()
    print(rep.text() if hasattr(rep, "text") else rep)
    return 0


def cmd_models_train(args) -> int:
    from .models.train import train_all
    from .progress import TerminalProgress

    root = Path(__file__).resolve().parent.parent
    which = ["embedder", "captioner", "generator"] if "all" in args.which else args.which
    bar = TerminalProgress()
    try:
        res = train_all(Path(args.out) if args.out else root / "assets" / "models", which, seed=args.seed,
                        cache=Path(args.cache), progress=bar, log=lambda m: (bar.close(), print(m, flush=True)),
                        resume=args.resume)
    finally:
        bar.close()
    print(json.dumps(res, indent=1, default=float))
    return 0


def cmd_encoder_fit(ws: Workspace, args) -> int:
    from .encoder import fit_encoders
    from .progress import TerminalProgress

    bar = TerminalProgress()
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


def cmd_captions(ws: Workspace, args) -> int:
    from . import captions as C
    from .models import load_role
    from .progress import TerminalProgress

    if args.cap_cmd == "search":
        index = C.CaptionIndex.from_workspace(ws, load_role("sentence_embedder") if args.semantic else None)
        res = index.semantic(args.query) if args.semantic else index.keyword(args.query)
        if args.subject:
            res = res[res.subject == args.subject]
        if args.method:
            res = res[res.method == args.method]
        print(f"{len(res):,} voxels match {args.query!r}")
        cols = ["subject", "method", "voxel", "hemi", "vertex", "roi", "score", "caption"]
        print(res[cols].head(args.limit).to_string(index=False))
        return 0
    bar = TerminalProgress()
    try:
        info = None
        if args.cap_cmd == "bank-demo" or (args.cap_cmd == "all" and "demo" not in set(C.bank_table(ws).bank)):
            info = C.build_demo_bank(ws, load_role("embedder", args.device), n=args.n, progress=bar)
            bar.close()
        elif args.cap_cmd == "bank-import":
            info = C.import_bank(ws, args.name, args.embeddings, load_role("embedder", args.device),
                                 args.captions, args.images)
        if info:
            print(f"bank {info['bank']!r}: {info['n']:,} embeddings ({info['dim']}-d), run {info['run']}")
        subjects = getattr(args, "subject", None) or ws.query("SELECT subject FROM subjects ORDER BY subject").subject.tolist()
        if args.cap_cmd == "all":  # later starts: nothing to do for subjects already captioned and evaluated
            st = ws.query("SELECT s.subject, s.n_voxels, (SELECT count(*) FROM voxel_captions c WHERE c.subject = "
                          "s.subject) AS n_cap, (SELECT count(*) FROM caption_eval e WHERE e.subject = s.subject) "
                          "AS n_eval FROM subjects s")
            complete = set(st[(st.n_cap == 2 * st.n_voxels) & (st.n_eval == 2 * st.n_voxels)].subject)
            if complete >= set(subjects):
                print("captions: every subject is captioned and evaluated")
                return 0
            subjects = [s for s in subjects if s not in complete]
        if args.cap_cmd in ("run", "all"):
            for s in subjects:
                res = C.precompute(ws, s, args.method or C.METHODS, bank=args.bank, device=args.device,
                                   batch=args.batch, overwrite=args.overwrite, voxels=_sessions(args.voxels),
                                   progress=bar)
                bar.close()
                for m, r in res.items():
                    print(f"{s} {m}: {r['n']:,} voxels captioned ({r['new']:,} new), run {r['run']}")
        if args.cap_cmd in ("evaluate", "all"):
            for s in subjects:
                ev = C.evaluate(ws, s, device=args.device)
                if ev.empty:
                    print(f"{s}: no captions yet")
                    continue
                print(f"{s}: median sentence-level prediction r: " + ", ".join(
                    f"{m} {g.sentence_r.median():.3f}" for m, g in ev.groupby("method")))
            if args.cap_cmd == "evaluate":
                sent = load_role("sentence_embedder")
                for s in subjects:
                    dv = C.diversity(ws, s, sent)
                    if dv.empty:
                        continue
                    print(f"{s}: caption diversity (lexical = distinct words / words; semantic = mean pairwise "
                          "cosine distance of sentence embeddings)")
                    wide = dv.pivot(index="roi", columns="method", values=["distinct_captions", "lexical", "semantic"])
                    print(wide.round(3).to_string())
            gt = C.ground_truth_table(ws, subjects)
            if not gt.empty:
                print("share of category-selective voxels whose caption names their true category:")
                print(gt.to_string(index=False, float_format=lambda x: f"{x:.1%}"))
    finally:
        bar.close()
    return 0


def cmd_figure(ws: Workspace, args) -> int:
    from .figures import render_overlay, render_roi_map

    if args.fig_cmd == "overlay":
        subject = args.subject or ws.query("SELECT min(subject) AS s FROM subjects").s.iloc[0]
        path = render_overlay(ws, subject, args.overlay, Path(args.out), concept=args.concept, vmin=args.vmin,
                              vmax=args.vmax, threshold=args.threshold, outlines=not args.no_outlines,
                              mesh=args.surface, device=args.device)
    else:
        path = render_roi_map(ws, args.subject, Path(args.out))
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m backend", description="VoxelScope backend")
    p.add_argument("--workspace", help="workspace folder (default $VOXELSCOPE_WORKSPACE or ./workspace)")
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("info", help="what the workspace holds")
    pi.add_argument("--json", action="store_true")
    pd_ = sub.add_parser("demo", help="the synthetic demo world")
    dsub = pd_.add_subparsers(dest="demo_cmd", required=True)
    b = dsub.add_parser("build", help="build the demo world (resumes an interrupted build)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--tiny", action="store_true", help="a small world (for tests and quick looks; also $VOXELSCOPE_DEMO=tiny)")
    b.add_argument("--workers", type=int, default=None)
    b.add_argument("--if-missing", action="store_true", help="do nothing when the workspace already has a world")
    e = dsub.add_parser("export-nsd", help="write the world in the NSD release layout")
    e.add_argument("out")
    e.add_argument("--sessions", help="e.g. 1-3 (default: all)")
    a = dsub.add_parser("export-algonauts", help="write the world in the Algonauts 2023 layout")
    a.add_argument("out")
    pim = sub.add_parser("import", help="import a dataset from disk")
    pim.add_argument("layout", choices=["nsd", "algonauts"])
    pim.add_argument("root", help="NSD root (holding nsddata/, nsddata_betas/, nsddata_stimuli/) or Algonauts root")
    pim.add_argument("--subject", required=True, help="e.g. subj01")
    pim.add_argument("--sessions", help="NSD sessions to read, e.g. 1-10 (default: all present)")
    pim.add_argument("--coco-captions", nargs="*", default=None, help="COCO captions_*.json files")
    pm = sub.add_parser("models", help="the demo models")
    msub = pm.add_subparsers(dest="models_cmd", required=True)
    mt = msub.add_parser("train", help="retrain demo models reproducibly from a seed (CPU; see README)")
    mt.add_argument("which", nargs="*", default=["all"], help="embedder, captioner, generator or all")
    mt.add_argument("--seed", type=int, default=0)
    mt.add_argument("--out", default=None, help="folder (default assets/models)")
    mt.add_argument("--cache", default=".cache/train_sets", help="where rendered training images are kept")
    mt.add_argument("--resume", action="store_true", help="generator: continue after the last finished cycle")
    mv = msub.add_parser("evaluate", help="measure the demo models on held-out images (updates training.json)")
    mv.add_argument("--seed", type=int, default=0)
    mv.add_argument("--out", default=None)
    mv.add_argument("--cache", default=".cache/train_sets")
    pe = sub.add_parser("encoder", help="voxel-wise encoders")
    esub = pe.add_subparsers(dest="enc_cmd", required=True)
    ef = esub.add_parser("fit", help="embed the stimuli (cached) and fit ridge encoders per subject")
    ef.add_argument("--subject", nargs="*", default=None, help="default: every subject")
    ef.add_argument("--cv", choices=["gcv", "loo"], default="gcv")
    ef.add_argument("--if-missing", action="store_true", help="only subjects without an encoder")
    ef.add_argument("--device", default="cpu")
    pc = sub.add_parser("captions", help="voxel captions: BrainSCUBA and LaVCa")
    csub = pc.add_subparsers(dest="cap_cmd", required=True)
    cb = csub.add_parser("bank-demo", help="render and embed the demo image bank (50,000 unseen images)")
    cb.add_argument("--n", type=int, default=50_000)
    cb.add_argument("--device", default="cpu")
    ci = csub.add_parser("bank-import", help="register a bank of image embeddings (.npy, n x dim)")
    ci.add_argument("name")
    ci.add_argument("embeddings")
    ci.add_argument("--captions", help="text file, one caption per line, same order")
    ci.add_argument("--images", help="text file, one image path per line, same order")
    ci.add_argument("--device", default="cpu")
    for name, hlp in (("run", "caption every voxel (resumes an interrupted run)"),
                      ("evaluate", "sentence-level prediction and the ground-truth check"),
                      ("all", "bank (if missing), captions (resuming), evaluation")):
        cr = csub.add_parser(name, help=hlp)
        cr.add_argument("--subject", nargs="*", default=None)
        cr.add_argument("--method", nargs="*", default=None, choices=["brainscuba", "lavca"])
        cr.add_argument("--bank", default="demo")
        cr.add_argument("--batch", type=int, default=256)
        cr.add_argument("--device", default="cpu")
        cr.add_argument("--overwrite", action="store_true", help="replace captions made with other parameters")
        cr.add_argument("--n", type=int, default=50_000, help="size of the demo bank if it is built")
        cr.add_argument("--voxels", default=None, help="only these voxels, e.g. 0-499 (default: all)")
    cs = csub.add_parser("search", help="search voxel captions")
    cs.add_argument("query")
    cs.add_argument("--semantic", action="store_true", help="rank by sentence-embedding similarity")
    cs.add_argument("--subject", default=None)
    cs.add_argument("--method", default=None, choices=["brainscuba", "lavca"])
    cs.add_argument("--limit", type=int, default=20)
    pf = sub.add_parser("figure", help="render figures off-screen")
    fsub = pf.add_subparsers(dest="fig_cmd", required=True)
    fr = fsub.add_parser("rois", help="ROI map, both hemispheres, several views")
    fr.add_argument("out")
    fr.add_argument("--subject", default=None)
    fo = fsub.add_parser("overlay", help="an overlay (ROIs, noise ceiling, encoding accuracy, concept map) as a "
                                         "multi-view PNG panel with colour bar and ROI outlines")
    fo.add_argument("out")
    fo.add_argument("--subject", default=None)
    fo.add_argument("--overlay", default="rois", choices=["rois", "noise_ceiling", "r2_nc", "r_test", "concept"])
    fo.add_argument("--concept", default="", help="text of the concept map (with --overlay concept)")
    fo.add_argument("--vmin", type=float, default=None)
    fo.add_argument("--vmax", type=float, default=None)
    fo.add_argument("--threshold", type=float, default=None)
    fo.add_argument("--surface", default="inflated", choices=["inflated", "pial", "white"])
    fo.add_argument("--no-outlines", action="store_true")
    fo.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    ws = Workspace(args.workspace)
    try:
        if args.cmd == "info":
            return cmd_info(ws, args)
        if args.cmd == "demo":
            if args.demo_cmd == "build":
                return cmd_demo_build(ws, args)
            return cmd_export(ws, args, "nsd" if args.demo_cmd == "export-nsd" else "algonauts")
        if args.cmd == "import":
            return cmd_import(ws, args)
        if args.cmd == "figure":
            return cmd_figure(ws, args)
        if args.cmd == "models" and args.models_cmd == "evaluate":
            from .models.train import evaluate_all

            root = Path(__file__).resolve().parent.parent
            evaluate_all(Path(args.out) if args.out else root / "assets" / "models", args.seed, Path(args.cache))
            return 0
        if args.cmd == "models":
            return cmd_models_train(args)
        if args.cmd == "encoder":
            return cmd_encoder_fit(ws, args)
        if args.cmd == "captions":
            return cmd_captions(ws, args)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
