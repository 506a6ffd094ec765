"""The demo world written in the layouts real data comes in: the NSD release and Algonauts 2023.

Both exports are read back by the real importers (:mod:`backend.datasets.nsd`,
:mod:`backend.datasets.algonauts`), which is how the tests hold the importers to the demo world's
ground truth. Single-trial betas are regenerated from the world's seed (the workspace keeps only
the preprocessed ones).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InvalidInputError
from ...store import ProgressFn, report, subjects
from ...surface.rois import ALL_ROI_FILES, HEMIS
from ..nsd import ANNOTATIONS, BETAS, EXPDESIGN, FSAVERAGE, LABELS, STIM_HDF5, STIM_INFO

__all__ = ["export_demo_nsd", "export_demo_algonauts"]


def export_demo_nsd(ws, out: Path, progress: ProgressFn = None, sessions=None) -> Path:
    """Write the workspace's synthetic world in the NSD release layout (fsaverage5 surfaces).

    Single-trial betas are regenerated from the world's seed (they are not stored), with pure noise
    outside each subject's visual mask, so the NSD loader sees complete hemispheres."""
    import h5py
    import nibabel as nib
    from scipy.io import savemat

    from ...surface.meshes import load_fsaverage5
    from .world import WorldConfig, subject_signal, subject_truths

    out = Path(out)
    meta = ws.meta()
    if meta.get("dataset") != "demo":
        raise InvalidInputError(f"workspace {ws.path} does not hold the demo world")
    run = ws.query("SELECT parameters FROM runs WHERE run_id = ?", [meta["world_run"]]).iloc[0, 0]
    cfg = WorldConfig(**json.loads(run))
    design = cfg.design()
    surface = load_fsaverage5()
    n_vert = surface.n_vertices
    # design and stimulus information
    (out / "nsddata/experiments/nsd").mkdir(parents=True, exist_ok=True)
    savemat(str(out / EXPDESIGN), {"masterordering": (design.masterordering + 1)[None].astype(np.float64),
                                   "subjectim": (design.subjectim + 1).astype(np.float64),
                                   "sharedix": (design.subjectim[0, :cfg.n_shared] + 1)[None].astype(np.float64)})
    stim = ws.query("SELECT stim_id, shared FROM stimuli ORDER BY stim_id")
    info = pd.DataFrame({"nsdId": stim["stim_id"], "cocoId": stim["stim_id"] + 100000, "cocoSplit": "train2017",
                         "cropBox": "(0, 0, 0, 0)", "loss": 0.0, "shared1000": stim["shared"].astype(bool)})
    tps = cfg.trials_per_session
    for k in range(cfg.n_subjects):
        info[f"subject{k + 1}"] = np.isin(stim["stim_id"], design.subjectim[k]).astype(int)
        trial_no = np.zeros((cfg.n_images, 3), np.int64)
        n_done = cfg.sessions[k] * tps
        seen_count = np.zeros(cfg.n_images, np.int64)
        for t in range(n_done):
            sid = design.subjectim[k, design.masterordering[t]]
            if seen_count[sid] < 3:
                trial_no[sid, seen_count[sid]] = t + 1
            seen_count[sid] += 1
        for r in range(3):
            info[f"subject{k + 1}_rep{r}"] = trial_no[:, r]
    info.to_csv(out / STIM_INFO)
    # stimuli and captions
    (out / ANNOTATIONS).mkdir(parents=True, exist_ok=True)
    images = ws.array("stimuli_images")
    with h5py.File(out / STIM_HDF5, "w") as f:
        f.create_dataset("imgBrick", data=np.asarray(images), chunks=(1,) + images.shape[1:])
    caps = ws.query("SELECT stim_id, k, caption FROM captions ORDER BY stim_id, k")
    coco = {"images": [{"id": int(i) + 100000} for i in stim["stim_id"]],
            "annotations": [{"id": n, "image_id": int(r.stim_id) + 100000, "caption": r.caption}
                            for n, r in enumerate(caps.itertuples())]}
    (out / ANNOTATIONS / "captions_train2017.json").write_text(json.dumps(coco))
    # fsaverage surfaces and shared labels
    surf_dir = out / FSAVERAGE / "surf"
    surf_dir.mkdir(parents=True, exist_ok=True)
    for h in HEMIS:
        hm = surface[h]
        for kind in ("pial", "white", "inflated", "sphere"):
            nib.freesurfer.write_geometry(str(surf_dir / f"{h}.{kind}"), getattr(hm, kind).astype(np.float64),
                                          hm.faces)
        nib.freesurfer.write_morph_data(str(surf_dir / f"{h}.sulc"), hm.sulc)
    truths = subject_truths(cfg, surface)
    lab_dir = out / FSAVERAGE / "label"
    lab_dir.mkdir(parents=True, exist_ok=True)
    union = {h: np.zeros(n_vert[h], bool) for h in HEMIS}
    for t in truths:
        for h in HEMIS:
            union[h] |= t.nsdgeneral[h]
    for h in HEMIS:
        _save_mgz(lab_dir / f"{h}.nsdgeneral.mgz", union[h].astype(np.int32))
    # per subject: labels, betas per session, ncsnr
    objects = ws.query("SELECT stim_id, category, area FROM stimulus_objects")
    backgrounds = ws.query("SELECT background FROM stimuli ORDER BY stim_id")["background"].to_numpy()
    contrast = np.asarray(ws.array("stimuli_contrast"), np.float32)
    voxels = ws.query("SELECT subject, hemi, vertex, ncsnr FROM voxels ORDER BY subject, voxel")
    for k, truth in enumerate(truths):
        subject = truth.name
        ldir = out / LABELS.format(subject=subject)
        ldir.mkdir(parents=True, exist_ok=True)
        for roi, names in ALL_ROI_FILES.items():
            (ldir / f"{roi}.mgz.ctab").write_text("0 Unknown\n" + "".join(f"{i} {n}\n" for i, n in names.items()))
            for h in HEMIS:
                _save_mgz(ldir / f"{h}.{roi}.mgz", truth.roi[roi][h].astype(np.int32))
        signal = subject_signal(truth, objects, backgrounds, contrast)
        bdir = out / BETAS.format(subject=subject)
        bdir.mkdir(parents=True, exist_ok=True)
        sess = [s for s in range(cfg.sessions[k]) if sessions is None or (s + 1) in sessions]
        rng = np.random.default_rng([cfg.seed, 99, k])
        for i, s in enumerate(sess):
            rows = design.masterordering[s * tps: (s + 1) * tps]
            b = simulate_trials_full(truth, signal, design.subjectim[k, rows], cfg.seed * 100 + k + 1, s, n_vert, rng)
            for h in HEMIS:
                _save_mgh(bdir / f"{h}.betas_session{s + 1:02d}.mgh", b[h].T[:, None, None, :])
            report(progress, f"Exporting {subject} sessions", i + 1, len(sess))
        v = voxels[voxels.subject == subject]
        if sessions is None:
            for h in HEMIS:
                full = np.zeros(n_vert[h], np.float32)
                vh = v[v.hemi == h]
                full[vh.vertex.to_numpy()] = vh.ncsnr.to_numpy()
                _save_mgh(bdir / f"{h}.ncsnr.mgh", full[:, None, None])
    return out


def simulate_trials_full(truth, signal, stim_ids, seed, session, n_vert, rng) -> dict[str, np.ndarray]:
    """Betas of one session on whole hemispheres: {hemi: (n_trials, n_vertices)}; noise outside the mask."""
    from .subjects import simulate_session

    inside = simulate_session(truth, signal, stim_ids, seed=seed, session=session)
    out = {}
    for h in HEMIS:
        full = rng.normal(0.5, 1.5, (stim_ids.size, n_vert[h])).astype(np.float32)
        sel = truth.hemi == h
        full[:, truth.vertex[sel]] = inside[:, sel]
        out[h] = full
    return out


def _save_mgh(path: Path, data: np.ndarray) -> None:
    import nibabel as nib

    nib.save(nib.MGHImage(np.ascontiguousarray(data, np.float32), np.eye(4)), str(path))


def _save_mgz(path: Path, labels: np.ndarray) -> None:
    import nibabel as nib

    nib.save(nib.MGHImage(labels.astype(np.int32)[:, None, None], np.eye(4)), str(path))


def export_demo_algonauts(ws, out: Path) -> Path:
    """Write each demo subject's training images (its non-shared images) in the Algonauts layout."""
    from PIL import Image

    out = Path(out)
    images = ws.array("stimuli_images")
    for subject in subjects(ws):
        sd = out / subject
        ss = ws.query("SELECT row, stim_id FROM subject_stimuli WHERE subject = ? AND split = 'train' ORDER BY row",
                      [subject])
        vox = ws.query(f"SELECT voxel, hemi, vertex, {', '.join(f'{chr(34)}{r}{chr(34)}' for r in ALL_ROI_FILES)} "
                       "FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
        betas = np.asarray(ws.array(f"betas_{subject}"))[ss["row"].to_numpy()]
        (sd / "training_split/training_fmri").mkdir(parents=True, exist_ok=True)
        (sd / "training_split/training_images").mkdir(parents=True, exist_ok=True)
        (sd / "roi_masks").mkdir(parents=True, exist_ok=True)
        for h in HEMIS:
            sel = (vox.hemi == h).to_numpy()
            np.save(sd / "training_split/training_fmri" / f"{h}_training_fmri.npy", betas[:, sel])
            allv = np.zeros(10242, np.float32)
            allv[vox.vertex[sel].to_numpy()] = 1
            np.save(sd / "roi_masks" / f"{h}.all-vertices_fsaverage_space.npy", allv)
            for roi, names in ALL_ROI_FILES.items():
                inv = {v: k for k, v in names.items()}
                np.save(sd / "roi_masks" / f"{h}.{roi}_challenge_space.npy",
                        np.array([inv.get(x, 0) for x in vox[roi][sel].fillna("")], np.int64))
        for roi, names in ALL_ROI_FILES.items():
            np.save(sd / "roi_masks" / f"mapping_{roi}.npy", {0: "Unknown", **names}, allow_pickle=True)
        for n, sid in enumerate(ss["stim_id"], start=1):
            Image.fromarray(np.asarray(images[sid])).save(sd / "training_split/training_images" /
                                                          f"train-{n:04d}_nsd-{sid:05d}.png")
    return out
