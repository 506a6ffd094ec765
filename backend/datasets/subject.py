"""Writing one subject's preprocessed data into a workspace: the step every dataset shares.

The NSD and Algonauts importers and the demo world builder all end here: betas of the images the
subject saw (z-scored per session, repeats averaged), the split (shared images = test), the voxel
table with NSD-style ROI labels and noise ceilings, and the ROI label names.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..surface.rois import ALL_ROI_FILES, FILE_CATEGORY, ROI_COLUMNS
from .betas import noise_ceiling

__all__ = ["write_subject", "roi_label_frame", "primary_roi", "reps_summary"]


def primary_roi(labels: dict[str, np.ndarray], n_voxels: int) -> np.ndarray:
    """One ROI name per voxel: the category ROI if any, else the visual area, else '' (also for ROI files
    that ``labels`` lacks)."""
    roi = np.array(labels.get("prf-visualrois", np.full(n_voxels, "", dtype=object)), dtype=object)
    for file in ("floc-words", "floc-bodies", "floc-places", "food", "floc-faces"):
        if file in labels:
            roi = np.where(labels[file] != "", labels[file], roi)
    return roi


def reps_summary(reps: np.ndarray) -> dict[int, int]:
    """{repeats: number of images} for 3, 2 and 1 repeats (the A, B, C of the NSD noise ceiling)."""
    return {r: int((reps == r).sum()) for r in (3, 2, 1) if (reps == r).any()}


def roi_label_frame() -> pd.DataFrame:
    """The ``roi_labels`` table: one row per (ROI file, label id) with its name and category."""
    return pd.DataFrame([dict(roi_file=f, label=i, name=n, category=FILE_CATEGORY.get(f, ""))
                         for f, names in ALL_ROI_FILES.items() for i, n in names.items()])


def write_subject(tx, run: str, subject: str, space: str, source: str, n_sessions: int, n_trials: int,
                  image_ids: np.ndarray, reps: np.ndarray, betas: np.ndarray | Path, ncsnr: np.ndarray, hemi: np.ndarray,
                  vertex: np.ndarray, labels: dict[str, np.ndarray], n_shared: int | None = None,
                  shared_mask: np.ndarray | None = None) -> None:
    """Store one subject's preprocessed betas (only images actually seen) and its voxel table.

    image_ids: (n_rows,) stimulus id of each row of ``betas``; reps: (n_rows,) presentations; ``betas`` may
    also be the path of an ``.npy`` holding only the seen rows (adopted into the workspace, never read whole);
    the test split is the shared images (the first ``n_shared`` rows, or ``shared_mask``)."""
    seen = reps > 0
    is_test = shared_mask if shared_mask is not None else (np.arange(reps.size) < (n_shared or 0))
    what = f"{subject}: z-scored per session, repeats averaged (n_images_seen, n_voxels)"
    if isinstance(betas, Path):  # an .npy of the seen rows only, written outside the writer: adopted, not copied
        tx.adopt_array(f"betas_{subject}", betas, run, what)
    else:
        tx.put_array(f"betas_{subject}", np.ascontiguousarray(betas[seen], np.float32), run, what)
    ss = pd.DataFrame({"subject": subject, "row": np.arange(int(seen.sum())), "stim_id": image_ids[seen],
                       "n_reps": reps[seen], "split": np.where(is_test[seen], "test", "train")})
    tx.sql("DELETE FROM subject_stimuli WHERE subject = ?", [subject])
    tx.insert_df("subject_stimuli", ss)
    nc = noise_ceiling(ncsnr, reps_summary(reps[seen]))
    nc_test = noise_ceiling(ncsnr, reps_summary(reps[seen & is_test])) if (seen & is_test).any() else nc * np.nan
    vox = pd.DataFrame({"subject": subject, "voxel": np.arange(vertex.size), "hemi": hemi, "vertex": vertex})
    for col in ROI_COLUMNS:
        vox[col] = labels.get(col, np.full(vertex.size, "", dtype=object))
        vox[col] = vox[col].replace("", None)
    vox["roi"] = pd.Series(primary_roi(labels, vertex.size)).replace("", None)
    vox["ncsnr"] = ncsnr
    vox["noise_ceiling"] = nc
    vox["noise_ceiling_test"] = nc_test
    tx.sql("DELETE FROM voxels WHERE subject = ?", [subject])
    tx.insert_df("voxels", vox)
    tx.sql("DELETE FROM subjects WHERE subject = ?", [subject])
    tx.insert_df("subjects", pd.DataFrame([dict(
        subject=subject, space=space, source=source, n_sessions=n_sessions, n_trials=n_trials,
        n_images=int(seen.sum()), n_voxels=int(vertex.size), betas_array=f"betas_{subject}", run_id=run)]))
