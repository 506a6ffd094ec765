"""``python -m backend simulate check|respond``: the demo world's subjects looking at any image."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help="the demo world's synthetic subjects respond to any image (the judge)")
    ssub = p.add_subparsers(dest="sim_cmd", required=True)
    c = ssub.add_parser("check", help="from pixels alone vs the world's true signal, per ROI, on its own stimuli")
    c.add_argument("--subject", nargs="*", default=None)
    c.add_argument("--images", type=int, default=1000)
    c.add_argument("--judge", default=None, help="a judge's folder (default: the shipped one), e.g. a retrained one")
    c.set_defaults(func=check)
    r = ssub.add_parser("respond", help="a subject's true response to image files: mean per ROI")
    r.add_argument("images", nargs="+", help="PNG or JPEG files")
    r.add_argument("--subject", default=None)
    r.add_argument("--repeats", type=int, default=0, help="also simulate this many noisy trials per image")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=respond)


def check(ws, args) -> int:
    from ..models.judge import load_judge
    from ..simulate import check_against_truth
    from ..store import subjects

    judge = load_judge(args.judge)
    for s in args.subject or subjects(ws):
        t = check_against_truth(ws, s, args.images, judge)
        print(f"{s}: median over each ROI's voxels of r(simulated from pixels, true signal) over {args.images} "
              "of the world's images")
        print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def respond(ws, args) -> int:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from ..attention import load_image_file
    from ..simulate import simulate_response, simulate_trials
    from ..store import default_subject

    subject = args.subject or default_subject(ws)
    images = [load_image_file(Path(f).read_bytes(), f) for f in args.images]
    resp, (objects, backgrounds, _) = simulate_response(ws, subject, images, return_seen=True)
    roi = ws.query("SELECT roi FROM voxels WHERE subject = ? ORDER BY voxel", [subject]).roi.fillna("(none)")
    table = pd.DataFrame(resp.T, columns=[Path(f).name for f in args.images]).groupby(roi.to_numpy()).mean()
    for f, objs, bg in zip(args.images, objects, backgrounds):
        seen = ", ".join(f"{o['category']} {o['area']:.0%}" for o in objs) or "no object"
        print(f"{f}: the subject sees {seen}; a {bg} background")
    print(f"{subject}: mean true response per ROI (z over the world's images)")
    print(table.to_string(float_format=lambda v: f"{v:+.2f}"))
    if args.repeats:
        trials = simulate_trials(ws, subject, images, args.repeats, args.seed)
        print(f"{args.repeats} noisy trials per image: trial-to-trial sd per voxel (median) "
              f"{np.median(trials.reshape(len(images), args.repeats, -1).std(1)):.2f}")
    return 0
