"""A full-size NSD subject through import -> features -> encoder -> captions -> explorer: time and peak memory.

Writes a synthetic subject in the NSD release layout at full size (default: fsaverage's 327,684 vertices, made by
subdividing fsaverage5's icosahedral mesh twice, as fsaverage itself is an order-7 icosphere; 10,000 images; 40
sessions of 750 trials, each image shown three times; 39 GB of float32 ``.mgh`` betas, as NSD ships them), then
runs each step of the real pipeline on it in its own process and prints the step's wall time, the peak of its own
memory (``RssAnon``, sampled) and its peak resident memory (``VmHWM``, which also counts the pages of memory-mapped
files it read, which the kernel can drop at any time). Betas are a rank-8 image signal plus noise; images are smooth random colour fields (the
figures are about size, not what the encoder learns).

    .venv/bin/python bench/scale_subject.py --root /tmp/bignsd --workspace /tmp/bigws            # full size
    .venv/bin/python bench/scale_subject.py --root /tmp/smallnsd --workspace /tmp/smallws --level 0 \\
        --images 1200 --sessions 4 --trials 900                                                    # a quick check

Captions are timed on a sample of voxels (``--caption-voxels``) and the time for all voxels is extrapolated:
every voxel is captioned independently, so the cost is linear in their number.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = ("make", "import", "features", "encoder", "captions", "explorer")


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    """Peak resident memory (VmHWM): the process's own memory plus the pages of memory-mapped files it touched."""
    return _status("VmHWM")


class AnonPeak:
    """Peak of the process's own (anonymous) memory, sampled every 0.2 s: what the step holds, without the
    memory-mapped file pages that the kernel can drop at any time."""

    def __init__(self):
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _status("RssAnon"))
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return max(self.peak, _status("RssAnon"))


# ----------------------------------------------------------------------------- steps (each in its own process)
def make_tree(a) -> dict:
    """The NSD layout at ``a.root``: surfaces, nsdgeneral (every vertex), design, stimulus info and images, betas."""
    import h5py
    import nibabel as nib
    import numpy as np
    import pandas as pd
    from scipy.io import savemat

    from backend.datasets.nsd import BETAS, EXPDESIGN, FSAVERAGE, STIM_HDF5, STIM_INFO
    from backend.surface import HEMIS, load_fsaverage5
    from backend.surface.wire import subdivide

    root = Path(a.root)
    rng = np.random.default_rng(a.seed)
    surf = load_fsaverage5()
    surf = subdivide(surf, a.level) if a.level else surf
    sdir, ldir = root / FSAVERAGE / "surf", root / FSAVERAGE / "label"
    sdir.mkdir(parents=True, exist_ok=True)
    ldir.mkdir(parents=True, exist_ok=True)
    for h in HEMIS:
        for kind in ("pial", "white", "inflated", "sphere"):
            nib.freesurfer.write_geometry(str(sdir / f"{h}.{kind}"), getattr(surf[h], kind).astype(np.float64),
                                          surf[h].faces)
        nib.freesurfer.write_morph_data(str(sdir / f"{h}.sulc"), surf[h].sulc)
        nib.save(nib.MGHImage(np.ones((surf.n_vertices[h], 1, 1), np.int32), np.eye(4)),
                 str(ldir / f"{h}.nsdgeneral.mgz"))
    n_img, n_trials = a.images, a.sessions * a.trials
    order = rng.permutation(np.repeat(np.arange(n_img), 3))[:n_trials]
    (root / EXPDESIGN).parent.mkdir(parents=True, exist_ok=True)
    shared = np.arange(min(1000, n_img // 10))
    savemat(str(root / EXPDESIGN), {"masterordering": (order + 1)[None].astype(np.float64),
                                    "subjectim": (np.arange(n_img) + 1)[None].astype(np.float64),
                                    "sharedix": (shared + 1)[None].astype(np.float64)})
    pd.DataFrame({"nsdId": np.arange(n_img), "cocoId": np.arange(n_img) + 100000, "cropBox": "(0, 0, 0, 0)",
                  "shared1000": np.isin(np.arange(n_img), shared), "subject1": 1}).to_csv(root / STIM_INFO)
    # images: smooth colour fields from 8 latent numbers per image; the betas' signal is those numbers
    latent = rng.normal(size=(n_img, 8)).astype(np.float32)
    s = a.image_size
    yy, xx = np.mgrid[0:s, 0:s] / s
    basis = np.stack([np.sin(np.pi * (i + 1) * xx) * np.cos(np.pi * (j + 1) * yy) for i in range(2) for j in range(4)])
    (root / STIM_HDF5).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / STIM_HDF5, "w") as f:
        d = f.create_dataset("imgBrick", (n_img, s, s, 3), np.uint8, chunks=(1, s, s, 3))
        for i0 in range(0, n_img, 500):
            lat = latent[i0:i0 + 500]
            field = np.einsum("nk,kyx->nyx", lat, basis)
            rgb = np.stack([field, np.roll(field, s // 3, 1), -field], -1)
            d[i0:i0 + 500] = np.clip(128 + 40 * rgb, 0, 255).astype(np.uint8)
    bdir = root / BETAS.format(subject="subj01")
    bdir.mkdir(parents=True, exist_ok=True)
    loadings = {h: rng.normal(size=(8, surf.n_vertices[h])).astype(np.float32) * 0.4 for h in HEMIS}
    t0 = time.time()
    for sess in range(a.sessions):
        rows = order[sess * a.trials:(sess + 1) * a.trials]
        for h in HEMIS:
            b = rng.standard_normal((surf.n_vertices[h], a.trials), dtype=np.float32)
            b += (latent[rows] @ loadings[h]).T
            nib.save(nib.MGHImage(b[:, None, None, :], np.eye(4)), str(bdir / f"{h}.betas_session{sess + 1:02d}.mgh"))
            del b
        done = sess + 1
        print(f"  session {done}/{a.sessions} written ({(time.time() - t0) / done * (a.sessions - done):.0f} s left)",
              file=sys.stderr, flush=True)
    size = sum(p.stat().st_size for p in bdir.glob("*.mgh")) / 1e9
    return {"vertices": sum(surf.n_vertices.values()), "images": n_img, "sessions": a.sessions,
            "trials": n_trials, "betas_GB": round(size, 1)}


def import_step(a) -> dict:
    from backend.datasets.nsd import import_nsd
    from backend.store import Workspace

    ws = Workspace(a.workspace)
    rep = import_nsd(ws, Path(a.root), "subj01", vertices="all", coco_captions=[])
    arr = ws.array("betas_subj01")
    return {"voxels": rep.n_voxels, "images": rep.n_images, "stored_betas_GB": round(arr.nbytes / 1e9, 1)}


def features_step(a) -> dict:
    from backend.encoders.features import stimulus_features
    from backend.models import load_role, model_config
    from backend.store import Workspace

    ws = Workspace(a.workspace)
    cfg = model_config()
    emb = load_role("embedder", "cpu", cfg)
    feats, key = stimulus_features(ws, emb, cfg["embedder"]["path"], device="cpu")
    return {"images": int(feats.shape[0]), "dim": int(feats.shape[1])}


def encoder_step(a) -> dict:
    import numpy as np

    from backend.encoders import fit_encoders
    from backend.store import Workspace

    ws = Workspace(a.workspace)
    s = fit_encoders(ws, ["subj01"])[0]
    return {"voxels": int(len(ws.query("SELECT voxel FROM voxels"))), "median_test_r": round(s["median_r"], 3),
            "finite": bool(np.isfinite(s["median_r"]))}


def captions_step(a) -> dict:
    import numpy as np

    from backend.captions.banks import bank_table, build_demo_bank
    from backend.captions.runner import precompute
    from backend.models import load_role
    from backend.store import Workspace

    ws = Workspace(a.workspace)
    emb = load_role("embedder", "cpu")
    if "demo" not in set(bank_table(ws).bank):
        build_demo_bank(ws, emb, n=a.bank)
    n_vox = int(ws.query("SELECT count(*) AS n FROM voxels").n.iloc[0])
    sample = np.linspace(0, n_vox - 1, a.caption_voxels).astype(int)
    t0 = time.time()
    precompute(ws, "subj01", ["brainscuba"], voxels=sample, models={"embedder": emb})
    dt = time.time() - t0
    return {"voxels_captioned": len(sample), "captions_per_s": round(len(sample) / dt, 1),
            "all_voxels_h_extrapolated": round(n_vox / (len(sample) / dt) / 3600, 1)}


def explorer_step(a) -> dict:
    import tempfile

    from backend.explore.overlays import overlay, roi_overlay
    from backend.store import Workspace
    from backend.surface.meshes import workspace_surface
    from backend.surface.viewer import viewer_message
    from backend.surface.wire import write_mesh_files

    ws = Workspace(a.workspace)
    times = {}
    t = time.time()
    surf = workspace_surface(ws)
    times["surface_s"] = round(time.time() - t, 1)
    t = time.time()
    files = write_mesh_files(surf, tempfile.mkdtemp())
    times["mesh_files_s"] = round(time.time() - t, 1)
    t = time.time()
    ov = overlay(ws, "subj01", "r2_nc", surf.n_vertices)
    rois = roi_overlay(ws, "subj01", surf.n_vertices)
    times["overlay_s"] = round(time.time() - t, 2)
    from backend.models import load_role

    emb = load_role("embedder", "cpu")
    t = time.time()
    overlay(ws, "subj01", "concept", surf.n_vertices, concept="a face", embedder=emb)
    times["concept_map_s"] = round(time.time() - t, 2)
    t = time.time()
    msg = viewer_message(surf, files, "/static", ov, rois, view="lateral", labels=False)
    times["message_s"] = round(time.time() - t, 2)
    times["message_MB"] = round(len(msg) / 1e6, 1)
    return times


def run_step(a) -> None:
    t0 = time.time()
    anon = AnonPeak()
    out = globals()[f"{a.step}_step" if a.step != "make" else "make_tree"](a)
    print("RESULT " + json.dumps({"step": a.step, "seconds": round(time.time() - t0, 1), "peak_MB": round(peak_mb()),
                                  "peak_anon_MB": round(anon.stop()), **out}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="where the synthetic NSD tree is written (reused if complete)")
    p.add_argument("--workspace", required=True, help="the workspace the subject is imported into (replaced)")
    p.add_argument("--level", type=int, default=2, help="subdivisions of fsaverage5: 2 = 327,684 vertices")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--sessions", type=int, default=40)
    p.add_argument("--trials", type=int, default=750, help="trials per session")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--caption-voxels", type=int, default=2_000)
    p.add_argument("--bank", type=int, default=5_000, help="size of the demo caption bank built for the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    p.add_argument("--step", help=argparse.SUPPRESS)
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.step:
        return run_step(a)
    rows = []
    for step in a.steps.split(","):
        if step == "make" and (Path(a.root) / "complete").exists():
            print("make: the tree exists (delete it to rebuild)")
            continue
        if step == "make" and Path(a.root).exists():
            shutil.rmtree(a.root)
        if step == "import" and Path(a.workspace).exists():
            shutil.rmtree(a.workspace)
        cmd = [sys.executable, __file__, *sys.argv[1:], "--step", step]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            sys.exit(f"{step} failed (exit {proc.returncode})")
        res = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
        if step == "make":
            (Path(a.root) / "complete").write_text(json.dumps(res))
        print(json.dumps(res), flush=True)
        rows.append(res)
    print("\n| step | wall time | peak memory (own) | peak resident (with mapped files) | details |\n|---|---|---|---|---|")
    for r in rows:
        extra = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("step", "seconds", "peak_MB", "peak_anon_MB"))
        print(f"| {r['step']} | {r['seconds']:,.0f} s | {r['peak_anon_MB']:,} MB | {r['peak_MB']:,} MB | {extra} |")


if __name__ == "__main__":
    main()
