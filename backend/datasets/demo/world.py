"""The embedded synthetic world: build it, store it in a workspace, regenerate its trials.

``build_demo_world`` renders the stimuli (in parallel, resumable chunk by chunk), places the
synthetic subjects on fsaverage5, simulates every session of the NSD-like design, preprocesses
the betas exactly as for NSD data (:mod:`backend.betas`) and writes everything to the workspace
in one transaction.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InvalidInputError
from ...store import ProgressFn, Workspace, report
from ...surface.meshes import load_fsaverage5
from ...surface.rois import ALL_ROI_FILES, HEMIS
from ..betas import RepeatAverager, zscore_session
from ..image_features import CONTRAST_GRID, contrast_energy
from ..subject import roi_label_frame, write_subject
from .stimuli import render_stimulus
from .subjects import (SEMANTIC_FEATURES, STAT_NAMES, Design, SubjectTruth, make_design, make_subject,
                       normalisation, semantic_features, simulate_session, true_signal)

CHUNK = 500


@dataclass
class WorldConfig:
    """Size and seed of a synthetic world. The defaults give the demo world (NSD-like scale)."""
    seed: int = 0
    n_images: int = 20000
    image_size: int = 128
    n_shared: int = 1000
    n_unique: int = 9000
    trials_per_session: int = 750
    sessions: list[int] = field(default_factory=lambda: [40, 30])  # sessions completed per subject
    roi_scale: list[float] = field(default_factory=lambda: [1.0, 0.85])  # ROI size per subject
    roi_jitter_mm: float = 4.0

    @property
    def n_subjects(self) -> int:
        return len(self.sessions)

    @property
    def subjects(self) -> list[str]:
        return [f"subj{k + 1:02d}" for k in range(self.n_subjects)]

    def validate(self) -> None:
        need = self.n_shared + self.n_subjects * self.n_unique
        if self.n_images < need:
            raise InvalidInputError(f"n_images={self.n_images} is too small: {self.n_subjects} subjects x "
                                    f"{self.n_unique} own images + {self.n_shared} shared need {need}")
        if len(self.roi_scale) != self.n_subjects:
            raise InvalidInputError(f"roi_scale has {len(self.roi_scale)} entries for {self.n_subjects} subjects")

    def design(self) -> Design:
        return make_design(self.seed, self.n_subjects, self.n_shared, self.n_unique, self.trials_per_session,
                           self.sessions)


def tiny_config(seed: int = 0) -> WorldConfig:
    """A small world for tests and quick looks (seconds to build)."""
    return WorldConfig(seed=seed, n_images=560, n_shared=60, n_unique=240, trials_per_session=60,
                       sessions=[15, 12], roi_scale=[1.0, 0.85])


def default_config(seed: int = 0) -> WorldConfig:
    """The demo world: full size, or the tiny one when ``$VOXELSCOPE_DEMO=tiny`` (tests, quick looks)."""
    size = os.environ.get("VOXELSCOPE_DEMO", "full")
    if size not in ("full", "tiny"):
        raise InvalidInputError(f"VOXELSCOPE_DEMO must be 'full' or 'tiny', got {size!r}")
    return tiny_config(seed) if size == "tiny" else WorldConfig(seed=seed)


# ----------------------------------------------------------------------------- stimuli
def _render_chunk(seed: int, start: int, stop: int, size: int, staging: str) -> str:
    st = Path(staging)
    images = np.load(st / "images.npy", mmap_mode="r+")
    masks = np.load(st / "masks.npy", mmap_mode="r+")
    contrast = np.load(st / "contrast.npy", mmap_mode="r+")
    rows = []
    for i in range(start, stop):
        img, mask, s = render_stimulus(seed, i, size)
        images[i] = img
        masks[i] = mask
        contrast[i] = contrast_energy(img, CONTRAST_GRID)
        d = s.attributes()
        d["captions"] = s.captions
        rows.append(d)
    images.flush()
    masks.flush()
    contrast.flush()
    out = st / f"chunk_{start:07d}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows))
    os.replace(tmp, out)  # a chunk counts as done only once its metadata is complete
    return str(out)


def render_stimuli(cfg: WorldConfig, staging: Path, progress: ProgressFn = None, workers: int | None = None):
    """Render all stimuli into ``staging`` (resuming finished chunks). Returns (stimuli, objects, captions)."""
    staging.mkdir(parents=True, exist_ok=True)
    n, s = cfg.n_images, cfg.image_size
    specs = {"images.npy": ((n, s, s, 3), np.uint8), "masks.npy": ((n, s, s), np.uint8),
             "contrast.npy": ((n, CONTRAST_GRID, CONTRAST_GRID), np.float16)}
    for name, (shape, dtype) in specs.items():
        p = staging / name
        if not p.exists():
            np.lib.format.open_memmap(p, mode="w+", dtype=dtype, shape=shape).flush()
    chunks = [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
    todo = [c for c in chunks if not (staging / f"chunk_{c[0]:07d}.json").exists()]
    done = len(chunks) - len(todo)
    report(progress, "Rendering stimuli", done * CHUNK if done < len(chunks) else n, n)
    workers = workers or min(len(todo), os.cpu_count() or 1) or 1
    if todo:
        if workers == 1:
            for a, b in todo:
                _render_chunk(cfg.seed, a, b, s, str(staging))
                done += 1
                report(progress, "Rendering stimuli", min(done * CHUNK, n), n)
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
                futs = [ex.submit(_render_chunk, cfg.seed, a, b, s, str(staging)) for a, b in todo]
                for f in futs:
                    f.result()
                    done += 1
                    report(progress, "Rendering stimuli", min(done * CHUNK, n), n)
    rows = []
    for a, _ in chunks:
        rows.extend(json.loads((staging / f"chunk_{a:07d}.json").read_text()))
    stim = pd.DataFrame({
        "stim_id": [r["index"] for r in rows], "background": [r["background"] for r in rows],
        "bg_colour": [r["bg_colour"] for r in rows], "texture": [r["texture"] for r in rows],
        "setting": [r["setting"] for r in rows],
        "categories": [sorted({o["category"] for o in r["objects"]}) for r in rows]})
    objects = pd.DataFrame([dict(stim_id=r["index"], obj=k + 1, **o) for r in rows
                            for k, o in enumerate(r["objects"])])
    captions = pd.DataFrame([dict(stim_id=r["index"], k=k, caption=c) for r in rows
                             for k, c in enumerate(r["captions"])])
    return stim, objects, captions


# ----------------------------------------------------------------------------- subjects
def subject_truths(cfg: WorldConfig, surface=None) -> list[SubjectTruth]:
    """The world's synthetic subjects (ROIs, response models), placed on ``surface`` (fsaverage5)."""
    surface = surface or load_fsaverage5()
    return [make_subject(surface, name, seed=cfg.seed * 100 + k + 1, scale=cfg.roi_scale[k],
                         jitter_mm=cfg.roi_jitter_mm) for k, name in enumerate(cfg.subjects)]


def subject_signal(truth: SubjectTruth, objects: pd.DataFrame, backgrounds, contrast: np.ndarray) -> np.ndarray:
    """True noiseless responses (n_images, n_voxels) of ``truth`` to the stimuli described by
    ``objects``, ``backgrounds`` and their contrast energy maps."""
    return true_signal(truth, semantic_features(objects, backgrounds), contrast)


def simulate_subject(cfg: WorldConfig, design: Design, k: int, truth: SubjectTruth, signal: np.ndarray,
                     progress: ProgressFn = None):
    """Simulate and preprocess all sessions of subject ``k``: returns (betas, reps, ncsnr) over its image list."""
    n_rows = design.subjectim.shape[1]
    acc = RepeatAverager(n_rows, truth.vertex.size)
    n_sess = cfg.sessions[k]
    for s in range(n_sess):
        t0 = s * design.trials_per_session
        rows = design.masterordering[t0: t0 + design.trials_per_session]
        betas = simulate_session(truth, signal, design.subjectim[k, rows], seed=cfg.seed * 100 + k + 1, session=s)
        acc.add_session(zscore_session(betas), rows)
        report(progress, f"Simulating {truth.name} sessions", s + 1, n_sess)
    return acc.result()


def label_tables(truth: SubjectTruth) -> dict[str, np.ndarray]:
    """Per-voxel ROI label names for each ROI file (empty string outside)."""
    out = {}
    for file, names in ALL_ROI_FILES.items():
        ids = np.concatenate([truth.roi[file][h][truth.nsdgeneral[h]] for h in HEMIS])
        lut = np.array([""] + [names.get(i, "") for i in range(1, max(names) + 1)], dtype=object)
        out[file] = lut[ids]
    return out


# ----------------------------------------------------------------------------- build
def build_demo_world(ws: Workspace, cfg: WorldConfig | None = None, progress: ProgressFn = None,
                     workers: int | None = None) -> dict:
    """Build the synthetic world into ``ws`` (replacing what it held). Returns a summary dict."""
    cfg = cfg or default_config()
    cfg.validate()
    t_start = time.time()
    staging = ws.path / ".build"
    conf_file = staging / "config.json"
    if conf_file.exists() and json.loads(conf_file.read_text()) != asdict(cfg):
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    conf_file.write_text(json.dumps(asdict(cfg)))
    stim, objects, captions = render_stimuli(cfg, staging, progress, workers)
    contrast = np.load(staging / "contrast.npy", mmap_mode="r")
    surface = load_fsaverage5()
    design = cfg.design()
    shared = np.zeros(cfg.n_images, bool)
    shared[design.subjectim[0, :cfg.n_shared]] = True
    stim["shared"] = shared
    stim["source"] = "demo"
    stim["image_index"] = stim["stim_id"]
    report(progress, "Placing subjects on fsaverage5", 0, cfg.n_subjects)
    truths = subject_truths(cfg, surface)
    report(progress, "Placing subjects on fsaverage5", cfg.n_subjects, cfg.n_subjects)
    subject_rows = []
    for k, truth in enumerate(truths):
        signal = subject_signal(truth, objects, stim["background"].to_numpy(), np.asarray(contrast, np.float32))
        betas, reps, ncsnr = simulate_subject(cfg, design, k, truth, signal, progress)
        del signal
        # the normalisation of the true signal, so that any image can be shown to the subject later (simulate)
        stats = normalisation(truth.weights, truth.prf_x, truth.prf_y, truth.prf_sigma, truth.prf_share,
                              semantic_features(objects, stim["background"].to_numpy()), contrast)
        subject_rows.append((truth, betas, reps, ncsnr, np.stack([stats[n] for n in STAT_NAMES])))

    report(progress, "Writing workspace", 0, 1)
    with ws.writer(reset=True) as tx:
        run = tx.new_run("demo-world", asdict(cfg), seed=cfg.seed)
        for name in ("images", "masks", "contrast"):
            dst = tx.new_array_path(f"stimuli_{name}")
            os.replace(staging / f"{name}.npy", dst)
            tx.put_array(f"stimuli_{name}", dst, run, {"images": "(n, H, W, 3) uint8 RGB",
                                                         "masks": "(n, H, W) uint8 object index, 0 = background",
                                                         "contrast": "(n, 32, 32) contrast energy"}[name])
        tx.insert_df("stimulus_sources", pd.DataFrame([dict(
            source="demo", kind="array", path="stimuli_images", dataset="", n_images=cfg.n_images,
            height=cfg.image_size, width=cfg.image_size)]))
        tx.insert_df("stimuli", stim)
        tx.insert_df("captions", captions)
        tx.insert_df("stimulus_objects", objects)
        tx.insert_df("roi_labels", roi_label_frame())
        for k, (truth, betas, reps, ncsnr, stats) in enumerate(subject_rows):
            tx.put_array(f"simulation_stats_{truth.name}", stats, run,
                         "(6, n_voxels) " + ", ".join(STAT_NAMES) + " of the true signal over the world's images")
            write_subject(tx, run, truth.name, "fsaverage5", "demo", cfg.sessions[k],
                          cfg.sessions[k] * cfg.trials_per_session, design.subjectim[k], reps, betas, ncsnr,
                          truth.hemi, truth.vertex, label_tables(truth), cfg.n_shared)
            tx.insert_df("voxel_truth", pd.DataFrame({
                "subject": truth.name, "voxel": np.arange(truth.vertex.size), "category": truth.category,
                "prf_x": truth.prf_x, "prf_y": truth.prf_y, "prf_sigma": truth.prf_sigma,
                "prf_share": truth.prf_share, "ncsnr_true": truth.ncsnr,
                "weights": list(truth.weights.astype(float))}))
        tx.set_meta(dataset="demo", space="fsaverage5", world_run=run,
                    semantic_features=json.dumps(SEMANTIC_FEATURES), complete="true")
    shutil.rmtree(staging, ignore_errors=True)
    report(progress, "Writing workspace", 1, 1)
    return {"run": run, "seconds": round(time.time() - t_start, 1), "images": cfg.n_images,
            "voxels": {t.name: int(t.vertex.size) for t in truths}}
