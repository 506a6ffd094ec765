"""The Algonauts 2023 challenge layout (an NSD derivative): import.

    subjXX/training_split/training_fmri/{lh,rh}_training_fmri.npy   (n_images, n_challenge_vertices)
    subjXX/training_split/training_images/train-NNNN_nsd-IIIII.png
    subjXX/roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy        challenge vertices on fsaverage
    subjXX/roi_masks/{lh,rh}.<roi-file>_challenge_space.npy          label id per challenge vertex
    subjXX/roi_masks/mapping_<roi-file>.npy                          {label id: name}

The challenge responses are already z-scored and repeat-averaged, and the release has no noise
ceiling and no test responses: the import holds out a fixed share of the training images as the
test split (``test_fraction``, seeded) and leaves the noise ceiling empty.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..store import ProgressFn, report
from ..surface.meshes import SPACE_BY_VERTICES
from ..surface.rois import ALL_ROI_FILES, HEMIS
from .subject import roi_label_frame, write_subject

__all__ = ["import_algonauts", "load_algonauts", "challenge_roi_labels", "fsaverage_roi_labels", "AlgonautsFormatError"]


class AlgonautsFormatError(InvalidInputError):
    """A file of the Algonauts layout is missing or does not match the others."""


def _load(path: Path, what: str, allow_pickle: bool = False):
    if not path.exists():
        raise AlgonautsFormatError(f"{path} is missing ({what})")
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except Exception as exc:  # noqa: BLE001
        raise AlgonautsFormatError(f"{path} is truncated or not a .npy file ({exc})") from exc


def load_algonauts(root: Path, subject: str, test_fraction: float = 0.1, seed: int = 0,
                   progress: ProgressFn = None) -> dict:
    """Read one subject of the Algonauts 2023 layout.

    Returns
    -------
    dict
        ``betas`` (n_images, n_vertices) float32 (lh then rh), ``nsd_ids``, image ``files``, ``test`` (held-out
        mask, ``test_fraction`` of the images, seeded), ``vertices``/``hemi``/``vertex`` (challenge vertices on
        fsaverage), ``labels`` {roi file: label name per vertex}, ``n_vertices``.
    """
    root = Path(root)
    sd = root / subject
    masks = sd / "roi_masks"
    fmri = {h: _load(sd / "training_split/training_fmri" / f"{h}_training_fmri.npy", f"{h} responses")
            for h in HEMIS}
    allv = {h: _load(masks / f"{h}.all-vertices_fsaverage_space.npy", "challenge vertices on fsaverage")
            for h in HEMIS}
    vertices = {h: np.flatnonzero(allv[h]) for h in HEMIS}
    for h in HEMIS:
        if fmri[h].ndim != 2 or fmri[h].shape[1] != vertices[h].size:
            raise AlgonautsFormatError(f"{h}_training_fmri.npy has {fmri[h].shape[-1]} vertices, expected "
                                       f"{vertices[h].size} (from {h}.all-vertices_fsaverage_space.npy)")
    imgs = sorted((sd / "training_split/training_images").glob("train-*_nsd-*.png"))
    if len(imgs) != fmri["lh"].shape[0] or fmri["lh"].shape[0] != fmri["rh"].shape[0]:
        raise AlgonautsFormatError(f"{sd / 'training_split'}: {len(imgs)} training images but lh/rh responses have "
                                   f"{fmri['lh'].shape[0]}/{fmri['rh'].shape[0]} rows")
    nsd_ids = np.array([int(re.search(r"_nsd-(\d+)", p.name).group(1)) for p in imgs])
    ids, counts = np.unique(nsd_ids, return_counts=True)
    if (counts > 1).any():
        dup = ids[counts > 1]
        many = dup.size > 1
        raise AlgonautsFormatError(f"{sd / 'training_split/training_images'}: {dup.size} NSD image"
                                   f"{'s appear' if many else ' appears'} under two file names (e.g. nsd-{dup[0]:05d}); "
                                   "each image's row of the responses must be unique: are images of two subjects "
                                   "mixed in this folder?")
    labels = challenge_roi_labels(masks, vertices)
    report(progress, f"Reading {subject}", 1, 1)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(imgs), bool)
    test[rng.choice(len(imgs), int(round(test_fraction * len(imgs))), replace=False)] = True
    return dict(betas=np.concatenate([fmri["lh"], fmri["rh"]], axis=1).astype(np.float32), nsd_ids=nsd_ids,
                files=[str(p.resolve()) for p in imgs], test=test, vertices=vertices, labels=labels,
                hemi=np.concatenate([np.full(vertices[h].size, h) for h in HEMIS]),
                vertex=np.concatenate([vertices[h] for h in HEMIS]).astype(np.int32),
                n_vertices={h: int(allv[h].size) for h in HEMIS})


def challenge_roi_labels(masks: Path, vertices: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """{roi file: label name per challenge vertex (lh then rh)} from an Algonauts ``roi_masks`` folder
    (``{lh,rh}.<roi-file>_challenge_space.npy`` + ``mapping_<roi-file>.npy``); ROI files without masks are
    left out. ``vertices``: the challenge vertices on fsaverage (read from the folder when omitted)."""
    masks = Path(masks)
    if vertices is None:
        vertices = {h: np.flatnonzero(_load(masks / f"{h}.all-vertices_fsaverage_space.npy",
                                            "challenge vertices on fsaverage")) for h in HEMIS}
    labels = {}
    for roi in ALL_ROI_FILES:
        if not (masks / f"lh.{roi}_challenge_space.npy").exists():
            continue
        mapping = _load(masks / f"mapping_{roi}.npy", f"names of {roi} labels", allow_pickle=True).item()
        per_h = []
        for h in HEMIS:
            ids = _load(masks / f"{h}.{roi}_challenge_space.npy", f"{roi} labels").astype(np.int64)
            if ids.size != vertices[h].size:
                raise AlgonautsFormatError(f"{h}.{roi}_challenge_space.npy has {ids.size} vertices, expected "
                                           f"{vertices[h].size}")
            per_h.append(np.array([mapping.get(int(i), "") if i > 0 else "" for i in ids], dtype=object))
        labels[roi] = np.concatenate(per_h)
    return labels


def fsaverage_roi_labels(masks: Path, vertices: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The Algonauts masks of ``masks`` at fsaverage ``vertices`` ({hemi: vertex indices}, e.g. an NSD import's
    nsdgeneral selection): {roi file: label name per selected vertex, '' where the masks have none}."""
    masks = Path(masks)
    chal = {h: np.flatnonzero(_load(masks / f"{h}.all-vertices_fsaverage_space.npy",
                                    "challenge vertices on fsaverage")) for h in HEMIS}
    out = {}
    for roi, names in challenge_roi_labels(masks, chal).items():
        per_h, a = [], 0
        for h in HEMIS:
            lookup = dict(zip(chal[h].tolist(), names[a:a + chal[h].size]))
            a += chal[h].size
            per_h.append(np.array([lookup.get(int(v), "") for v in vertices[h]], dtype=object))
        out[roi] = np.concatenate(per_h)
    return out


def import_algonauts(ws, root: Path, subject: str, test_fraction: float = 0.1, seed: int = 0,
                     progress: ProgressFn = None) -> str:
    """Import one Algonauts subject into ``ws`` (empty or holding Algonauts data); returns a one-line report."""
    if ws.exists and ws.meta().get("dataset") not in ("algonauts", None):
        raise AlgonautsFormatError(f"workspace {ws.path} holds the {ws.meta().get('dataset')} world; import into "
                                   "another folder (--workspace)")
    d = load_algonauts(root, subject, test_fraction, seed, progress)
    space = SPACE_BY_VERTICES.get(d["n_vertices"]["lh"], "fsaverage")
    n = d["betas"].shape[0]
    with ws.writer() as tx:
        run = tx.new_run("import-algonauts", {"root": str(Path(root).resolve()), "subject": subject,
                                              "test_fraction": test_fraction}, seed=seed)
        tx.set_meta(dataset="algonauts", space=space)
        have = {r[0] for r in tx.sql("SELECT stim_id FROM stimuli")}
        new = [(int(i), f) for i, f in zip(d["nsd_ids"], d["files"]) if int(i) not in have]
        if new:
            tx.insert_df("stimuli", pd.DataFrame({"stim_id": [i for i, _ in new], "source": "files",
                                                  "image_index": -1, "file": [f for _, f in new]}))
        tx.sql("INSERT OR REPLACE INTO stimulus_sources VALUES ('files', 'files', '', '', NULL, NULL, NULL)")
        if not tx.sql("SELECT count(*) FROM roi_labels")[0][0]:
            tx.insert_df("roi_labels", roi_label_frame())
        write_subject(tx, run, subject, space, "algonauts", 0, 0, d["nsd_ids"], np.ones(n, np.int64), d["betas"],
                      np.full(d["vertex"].size, np.nan, np.float32), d["hemi"], d["vertex"], d["labels"],
                      shared_mask=d["test"])
        tx.set_meta(complete="true")
    return f"imported {subject} ({space}): {n:,} images ({int(d['test'].sum())} held out as test), " \
           f"{d['vertex'].size:,} vertices; no noise ceiling in this layout"
