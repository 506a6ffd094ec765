"""Encoder quality on the demo world (prints figures; not a test).

    .venv/bin/python bench/encoder_demo.py [--workspace WS]

Needs `python -m backend encoder fit` to have run on the workspace. Prints, per subject: median
noise-ceiling-normalised R^2 on the test images per ROI group, and the share of category-selective
voxels whose encoder weights, dotted with the category prompts' text features, peak at the voxel's
true category.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.datasets.demo.stimuli import CATEGORIES  # noqa: E402
from backend.encoders import encoder_weights  # noqa: E402
from backend.models import load_role  # noqa: E402
from backend.models.demo.evaluate import category_text_features  # noqa: E402
from backend.store import Workspace  # noqa: E402

GROUPS = {"V1-V3": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d"], "hV4": ["hV4"],
          "faces": ["OFA", "FFA-1", "FFA-2", "aTL-faces"], "places": ["OPA", "PPA", "RSC"],
          "bodies": ["EBA", "FBA-1"], "words": ["OWFA", "VWFA-1", "VWFA-2"], "food": ["ventral-food"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", default=None)
    ws = Workspace(ap.parse_args().workspace)
    text = category_text_features(load_role("embedder"))
    for subject in ws.query("SELECT subject FROM encoders ORDER BY subject").subject:
        W, _, key = encoder_weights(ws, subject)
        df = ws.query("SELECT v.voxel, v.roi, e.r_test, e.r2_nc FROM voxels v JOIN voxel_encoding e USING "
                      "(subject, voxel) WHERE subject = ? AND e.feature_key = ?", [subject, key])
        parts = []
        for g, rois in GROUPS.items():
            sel = df[df.roi.isin(rois)]
            parts.append(f"{g} {sel.r2_nc.median():.2f} (n={len(sel)})")
        rest = df[df.roi.isna()]
        parts.append(f"rest of mask {rest.r2_nc.median():.2f}")
        print(f"{subject}: median R^2 / noise ceiling: " + ", ".join(parts))
        truth = ws.query("SELECT voxel, category FROM voxel_truth WHERE subject = ? AND category <> ''", [subject])
        pred = np.array(CATEGORIES)[(W[truth.voxel.to_numpy()] @ text.T).argmax(1)]
        ok = pred == truth.category.to_numpy()
        per = ", ".join(f"{c} {ok[truth.category == c].mean():.0%}" for c in ("face", "place", "body", "word", "food"))
        print(f"{subject}: true preferred category recovered for {ok.mean():.1%} of {len(ok)} category voxels ({per})")


if __name__ == "__main__":
    main()
