"""``python -m backend synthesis run|evaluate|list``: BrainDiVE images a target is predicted to prefer."""
from __future__ import annotations

from ._args import DEVICE_HELP, progress_bar


def _guidance_args(p) -> None:
    from ..synthesis import SAMPLERS

    p.add_argument("--seeds", type=int, default=32, help="number of seeds (one image each)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--scale", type=float, default=None, help="guidance scale (0 = unguided; default: the steered "
                                     "generator's braindive_scale, 130 for generator_latent64, else the paper's 130)")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    p.add_argument("--sag-scale", type=float, default=0.0, help="self-attention guidance scale, as the published "
                   "BrainDiVE code on Stable Diffusion (e.g. 0.75; 0 = off; Stable Diffusion generators only)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--keep", type=float, default=0.2, help="share kept after re-ranking")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where seed batches are sampled: this process (default, or $VOXELSCOPE_EXECUTOR; live preview) "
                        "or Ray ($RAY_ADDRESS, else a local Ray cluster; GPU tasks ask for one GPU each)")


def add_parser(sub) -> None:
    p = sub.add_parser("synthesis", help="BrainDiVE: images a target (ROI, contrast, voxel) is predicted to prefer")
    ssub = p.add_subparsers(dest="syn_cmd", required=True)
    r = ssub.add_parser("run", help="synthesize (or re-open a stored run) and save the kept images as a PNG grid")
    r.add_argument("target", help="an ROI (FFA-1), a union (FFA-1,FFA-2), a contrast ('FFA-1 - PPA'), faces, voxel:N, "
                                  "or concept:TEXT (the concept map's top voxels)")
    r.add_argument("--top", type=int, default=20, help="voxels of a concept target")
    r.add_argument("--subject", nargs="*", default=None, help="default: the first subject (several: averaged)")
    r.add_argument("--hemi", choices=["lh", "rh"], default=None)
    r.add_argument("--out", default=None, help="PNG grid of the kept images")
    _guidance_args(r)
    r.set_defaults(func=run)
    e = ssub.add_parser("evaluate", help="every category ROI and the FFA-1/PPA contrasts, held to the simulated "
                                         "subjects (demo worlds)")
    e.add_argument("--subject", nargs="*", default=None)
    e.add_argument("--no-baselines", action="store_true")
    _guidance_args(e)
    e.set_defaults(func=evaluate, seeds=100)
    ls = ssub.add_parser("list", help="the stored synthesis runs")
    ls.set_defaults(func=list_runs)


def _config(args):
    from ..synthesis import GuidanceConfig

    return GuidanceConfig(steps=args.steps, scale=args.scale, sampler=args.sampler, batch=args.batch,
                          sag_scale=args.sag_scale)


def run(ws, args) -> int:
    from ..images import image_grid
    from ..store import default_subject
    from ..errors import InvalidInputError
    from ..synthesis import normalise_spec, parse_target, run_images, synthesis_images, synthesize

    subjects = args.subject or [default_subject(ws)]
    if args.target.startswith("concept:"):  # a concept map's top voxels (one subject)
        from ..explore import concept_scores, top_voxels
        from ..models import load_role

        text = args.target.split(":", 1)[1].strip()
        if len(subjects) != 1:
            raise InvalidInputError("a concept's voxels belong to one subject: give exactly one --subject")
        top = top_voxels(ws, subjects[0], concept_scores(ws, subjects[0], text, load_role("embedder")), args.top)
        spec = normalise_spec({"terms": [{"voxels": top.voxel.tolist(), "concept": text}], "subjects": subjects})
    else:
        spec = parse_target(args.target, subjects, args.hemi)
    bar = progress_bar()
    try:
        res = synthesize(ws, spec, n_seeds=args.seeds, first_seed=args.first_seed, config=_config(args),
                         keep=args.keep, device=args.device, progress=bar, executor=args.executor)
    finally:
        bar.close()
    rows = synthesis_images(ws, res["run_id"])
    kept = rows[rows.kept]
    print(f"{res['label']}: {res['n_images']} images ({'re-opened' if res['reopened'] else 'synthesized'}), "
          f"kept {res['n_kept']}; {res['survivors']} of the guiding encoder's top {res['n_kept']} survive re-ranking")
    print(f"predicted response (re-ranking encoder): kept {res['kept_pred_rerank']:+.3f}, all "
          f"{res['all_pred_rerank']:+.3f}")
    if kept.true_response.notna().any():
        print(f"true response (simulated subject): kept {kept.true_response.mean():+.3f}; judged: "
              + ", ".join(f"{c} {n}" for c, n in kept.judged.str.split(",").str[0].fillna("none")
                          .value_counts().items()))
    if args.out:
        from PIL import Image

        Image.fromarray(image_grid(run_images(ws, kept), columns=8, size=128)).save(args.out)
        print(f"kept images: {args.out}")
    return 0


def evaluate(ws, args) -> int:
    from ..synthesis import evaluate_synthesis

    bar = progress_bar()
    try:
        table = evaluate_synthesis(ws, args.subject, n_seeds=args.seeds, config=_config(args), keep=args.keep,
                                   baselines=not args.no_baselines, device=args.device, progress=bar,
                                   log=bar.write, executor=args.executor)
    finally:
        bar.close()
    cols = ["subject", "target", "category", "method", "n_images", "judged share", "judged main", "categories seen",
            "true percentile", "true gain", "predicted gain", "survivors"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def list_runs(ws, args) -> int:
    from ..synthesis import synthesis_runs

    runs = synthesis_runs(ws)
    if runs.empty:
        print("no synthesis runs")
        return 0
    print(runs[["run_id", "label", "n_seeds", "steps", "scale", "sampler", "state", "n_images", "n_kept"]]
          .to_string(index=False))
    return 0
