"""In-context encoders (BraInCoRL-style) against ridge: the curve the paper reports, explained variance on a subject's
test images vs the number of context images, next to ridge fitted on the same images (per-voxel alpha by
leave-one-out) and the subject's full encoder (ridge on all its training images). Prints a table; not a test.

    .venv/bin/python bench/incontext.py --workspace /tmp/full --subjects subj01 subj02 \\
        --workspace /tmp/cm/seed41 --subjects subj01 --model assets/models/incontext --csv /tmp/ic_curve.csv

``--workspace`` / ``--subjects`` pairs may repeat. Each size is drawn ``--draws`` times (random training images, the
same draw for both methods); the table gives the mean over draws of the mean test R^2 over every voxel, and over
the voxels of the category ROIs.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from backend.encoders import (design_matrices, fit_ridge_cv, incontext_weights, load_incontext_model,  # noqa: E402
                              r2_columns, stored_features)
from backend.store import Workspace, current_encoder, voxel_table  # noqa: E402
from backend.surface.rois import FILE_CATEGORY  # noqa: E402

SIZES = (25, 50, 100, 300, 1000)


def curve(ws: Workspace, subject: str, model, sizes, draws: int) -> list[dict]:
    enc = current_encoder(ws, subject, method="ridge")
    Xtr, Ytr, Xte, Yte, _ = design_matrices(ws, subject, stored_features(ws, enc["feature_key"]))
    vox = voxel_table(ws, subject)
    cat = vox.roi.isin([r for r in vox.roi.dropna().unique() if _category_roi(r)]).to_numpy()
    rows = []

    def score(name, n, draw, pred, secs):
        r2 = r2_columns(Yte, pred)
        rows.append({"world": ws.path.name, "subject": subject, "n_images": n, "draw": draw, "encoder": name,
                     "mean_r2": float(np.nanmean(r2)), "mean_r2_category_rois": float(np.nanmean(r2[cat])),
                     "seconds": round(secs, 2)})

    t = time.perf_counter()
    full = fit_ridge_cv(Xtr, Ytr)
    score("full ridge", len(Xtr), 0, full.predict(Xte), time.perf_counter() - t)
    for n in sizes:
        if n > len(Xtr):
            continue
        for draw in range(draws):
            idx = np.sort(np.random.default_rng(1000 + draw).permutation(len(Xtr))[:n])
            t = time.perf_counter()
            W, b = incontext_weights(model, Xtr[idx], Ytr[idx])
            score("in-context", n, draw, Xte @ W.T + b, time.perf_counter() - t)
            t = time.perf_counter()
            fit = fit_ridge_cv(Xtr[idx], Ytr[idx], cv="loo")
            score("ridge", n, draw, fit.predict(Xte), time.perf_counter() - t)
    return rows


def _category_roi(roi: str) -> bool:
    from backend.surface.rois import ROI_FILES

    return any(roi in names.values() and f in FILE_CATEGORY for f, names in ROI_FILES.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", action="append", required=True)
    p.add_argument("--subjects", nargs="+", action="append", required=True)
    p.add_argument("--model", default=None, help="in-context encoder folder (default: models.toml)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--csv", default=None)
    p.add_argument("--report", default=None, help="write the first subject's curve into this training.json (under "
                                                  "the model folder's name; the Models table shows it)")
    p.add_argument("--report-label", default=None, help="how the report names that subject (e.g. 'subj02 of the demo "
                                                        "world')")
    a = p.parse_args()
    if len(a.workspace) != len(a.subjects):
        p.error("give --subjects after each --workspace")
    model = load_incontext_model(a.model)
    print(f"in-context encoder {model.model_id} (trained on {model.config['training']['subjects']})")
    rows = []
    for path, subs in zip(a.workspace, a.subjects):
        for s in subs:
            rows += curve(Workspace(path), s, model, a.sizes, a.draws)
            print(f"{path} {s} done", flush=True)
    df = pd.DataFrame(rows)
    if a.csv:
        df.to_csv(a.csv, index=False)
    g = df.groupby(["world", "subject", "encoder", "n_images"])[["mean_r2", "mean_r2_category_rois", "seconds"]].mean()
    full = g.xs("full ridge", level="encoder").reset_index()
    for col in ("mean_r2", "mean_r2_category_rois"):
        t = g[col].unstack("n_images").drop("full ridge", level="encoder")
        t = t[[c for c in t.columns if c in a.sizes]]
        t["full encoder"] = [float(full[(full.world == w) & (full.subject == s)][col].iloc[0]) for w, s, _ in t.index]
        print(f"\n{col} on the test images (mean over {a.draws} draws of the context images)")
        print(_markdown(t.round(4)))
    if a.report:
        import json

        first = df[(df.world == df.world.iloc[0]) & (df.subject == df.subject.iloc[0])]
        mean = first.groupby(["encoder", "n_images"]).mean_r2.mean()
        entry = {"curve_subject": a.report_label or f"{first.subject.iloc[0]} of {first.world.iloc[0]}",
                 "curve": {str(n): round(float(v), 4) for n, v in mean["in-context"].items()},
                 "ridge_same_images": {str(n): round(float(v), 4) for n, v in mean["ridge"].items()},
                 "full_encoder": round(float(mean["full ridge"].iloc[0]), 4), "draws": a.draws,
                 "training": {k: v for k, v in model.config["training"].items() if k != "history"}}
        path = Path(a.report)
        report = json.loads(path.read_text()) if path.exists() else {}
        report[Path(a.model or "incontext").name] = entry
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote the curve of {entry['curve_subject']} to {path}")
    print("\nseconds per subject (all voxels):")
    print(_markdown(g.seconds.unstack("n_images").round(2)))


def _markdown(t: pd.DataFrame) -> str:
    t = t.reset_index()
    lines = ["| " + " | ".join(map(str, t.columns)) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join("" if isinstance(v, float) and np.isnan(v) else str(v) for v in row) + " |"
              for row in t.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
