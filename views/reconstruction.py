"""Reconstruction: seen images rebuilt from a subject's betas (Brain-IT). The page picks subject, model and
parameters, queues a background job (backend.reconstruction through backend.jobs), follows it, and shows stored
runs: seen | low-level | final, sortable by any metric, the metrics table, and one image's path step by step."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.datasets import stimulus_images
from backend.jobs import ensure_job
from backend.reconstruction import (METRIC_COLUMNS, PAPER_ROWS, higher_is_better, metrics_table, per_image_metrics,
                                    reconstruction_runs, reconstruction_steps, run_metrics, run_reconstructions)
from backend.simulate import has_ground_truth
from views import _explore as ex
from views._jobs import job_panel, show_finished_run
from views._state import db_stamp, require_world, workspace

ws = workspace()
st.title("Reconstruction")
st.caption("Seen images rebuilt from fMRI (Brain-IT, 2025). A decoder reads the subject's betas of a test image: the "
           "brain interaction transformer (BIT) groups voxels into clusters shared across subjects and predicts the "
           "image's embedding and a coarse low-level image; the image generator then starts from the low-level image "
           "part-way through denoising, conditioned on the predicted embedding. Several samples per image; the one "
           "whose embedding agrees best with the prediction is kept. The ridge baseline predicts the same two things "
           "by linear regression.")
path, stamp = require_world(ws)
ss = st.session_state
subjects = [s for s in ex.subjects(path, stamp) if ex.has_encoder(path, stamp, s)]
if not subjects:
    st.info("No subject has a voxel encoder yet: the decoders describe each voxel by its encoder. Fit them on the "
            "Cortex explorer page or with `python -m backend encoder fit`.")
    st.stop()


@st.cache_data(show_spinner=False)
def demo_world(path: str, stamp: float) -> bool:
    return has_ground_truth(ws)


@st.cache_data(show_spinner=False, max_entries=16)
def runs(path: str, stamp: float) -> pd.DataFrame:
    return reconstruction_runs(ws)


@st.cache_data(show_spinner=False, max_entries=8)
def run_data(path: str, stamp: float, run_id: str):
    _, images, low, stim = run_reconstructions(ws, run_id)
    return images, low, stim, stimulus_images(ws, stim)


@st.cache_data(show_spinner="Scoring every image…", max_entries=8)
def per_image(path: str, stamp: float, run_id: str) -> pd.DataFrame:
    return per_image_metrics(ws, run_id)


@st.cache_data(show_spinner="Recomputing this image's path…", max_entries=16)
def steps_of(path: str, stamp: float, run_id: str, stim_id: int):
    return reconstruction_steps(ws, run_id, stim_id)


is_demo = demo_world(path, stamp)

# ---------------------------------------------------------------- parameters and the job
c = st.columns([1, 1, 1, 1, 1, 1])
subject = c[0].selectbox("Subject", subjects, key="rec_subject")
model = c[1].selectbox("Model", ["bit", "ridge"], key="rec_model",
                       format_func={"bit": "BIT (Brain-IT)", "ridge": "Ridge baseline"}.get)
n_images = c[2].number_input("Test images", 2, 10_000, 24, 2, key="rec_n", help="The subject's first N test images")
samples = c[3].number_input("Samples", 1, 16, 3, 1, key="rec_samples", help="Generator samples per image; the "
                            "best by agreement with the predicted embedding is kept")
strength = c[4].slider("Strength", 0.0, 1.0, 0.7, 0.05, key="rec_strength",
                       help="How far back the generator starts: 0 keeps the low-level image, 1 ignores it")
steps = c[5].number_input("Steps", 5, 200, 30, 5, key="rec_steps")
params = {"subject": subject, "decoder": model,
          "config": {"n_images": int(n_images), "samples": int(samples), "strength": float(strength),
                     "steps": int(steps)}}
if st.button("Reconstruct", type="primary", key="rec_go",
             help="Fits the chosen decoder first if the workspace has none (a few minutes for the ridge baseline, "
                  "longer for BIT), then reconstructs; a background job"):
    ss.rec_job = ensure_job(ws, "reconstruction", params, same_params=True)


job_panel(ws, "rec_job", "rec_show", "reconstruction", "the images it finished are kept, and pressing Reconstruct "
          "again continues from there.")

# ---------------------------------------------------------------- results
past = runs(path, db_stamp(ws))
past = past[(past.state == "done") & (past.subject == subject)]
if past.empty:
    st.info(f"No reconstructions of {subject} yet: press Reconstruct (or `python -m backend reconstruction "
            "evaluate` for the full table).")
    st.stop()
st.divider()
ids = past.run_id.tolist()
labels = {r.run_id: f"{'BIT' if r.kind == 'bit' else 'ridge'} ({r.regime}) · {r.n_images} images · {r.samples} samples "
                    f"· strength {r.strength:g} · {r.steps} steps · {pd.Timestamp(r.created_at):%Y-%m-%d %H:%M}"
          for r in past.itertuples()}
show_finished_run("rec_show", "rec_pick", ids)
run_id = st.selectbox("Run", ids, format_func=labels.get, key="rec_pick")
images, low, stim, seen = run_data(path, db_stamp(ws), run_id)
per = per_image(path, db_stamp(ws), run_id)
metric_cols = [c for c in per.columns if c not in ("stim_id", "score")]

st.subheader("Metrics")
table = metrics_table(ws, subject)
shown = table[["model", "regime", "decoder", "images", "samples"] + [c for c in metric_cols if c in table]].copy()
if not is_demo:  # the papers' NSD figures, as reference rows (real data only: the demo's columns differ)
    ref = pd.DataFrame([{"model": k, "regime": "paper", **v} for k, v in PAPER_ROWS.items()])
    shown = pd.concat([shown, ref[[c for c in ref.columns if c in shown.columns or c in METRIC_COLUMNS]]])
fmt = {c: ("{:.3f}" if c in ("PixCorr", "SSIM") or not higher_is_better(c) else "{:.1%}") for c in metric_cols}
fmt["samples"] = "{:.0f}"
st.dataframe(shown.style.format(fmt, na_rep="–"), hide_index=True, width="stretch")
st.caption("PixCorr and SSIM at 425 px (MindEye2's recipe); 2-way identification (chance 50%) with the judge's early "
           "and late layers (the demo's AlexNet(2) / AlexNet(5) analogues), the embedder's patch tokens and its "
           "global embedding (the CLIP column); correlation distances (lower is better) of the judge's pooled "
           "features and the embedder's embedding (the EfficientNet / SwAV columns).")

m = run_metrics(ws, run_id)
if is_demo and m.get("truth"):
    st.markdown("**The simulated subject shown both** (demo world): per ROI, the correlation over its voxels between "
                "the true response to the seen image and to its reconstruction, mean over images; shuffled pairs as "
                "the chance level.")
    truth = pd.DataFrame([{"ROI": k, "r": v["r"], "shuffled pairs": v["shuffled"]} for k, v in m["truth"].items()])
    st.dataframe(truth.style.format({"r": "{:.2f}", "shuffled pairs": "{:.2f}"}), hide_index=True)

st.subheader("Seen | low-level | reconstruction")
s = st.columns([2, 1, 1])
sort_by = s[0].selectbox("Sort by", ["test order", "score"] + metric_cols, key="rec_sort")
best_first = s[1].toggle("Best first", True, key="rec_best")
per_page = s[2].number_input("Images shown", 4, 200, 12, 4, key="rec_per_page")
order = per.index.to_numpy()
if sort_by != "test order":
    asc = not (higher_is_better(sort_by) if sort_by != "score" else True)
    order = per.sort_values(sort_by, ascending=asc if best_first else not asc).index.to_numpy()
for i in order[:int(per_page)]:
    r = per.loc[i]
    cols = st.columns([1, 1, 1, 3])
    cols[0].image(seen[i], caption=f"seen · stim {int(r.stim_id)}", width="stretch")
    cols[1].image(low[i], caption="low-level", width="stretch")
    cols[2].image(images[i], caption=f"final · score {r.score:.2f}", width="stretch")
    cols[3].markdown(" · ".join(f"{c} **{r[c]:.0%}**" if c not in ("PixCorr", "SSIM") and higher_is_better(c)
                                else f"{c} **{r[c]:.3f}**" for c in metric_cols))

st.subheader("One image's path")
pick = st.selectbox("Image", [int(x) for x in stim], key="rec_path_img", format_func=lambda x: f"stim {x}")
if st.button("Show its path step by step", key="rec_path_go"):
    ss.rec_path = (run_id, pick)
if ss.get("rec_path") == (run_id, pick):
    path_imgs = steps_of(path, db_stamp(ws), run_id, pick)
    st.image([im for _, im in path_imgs], caption=[lab for lab, _ in path_imgs], width=120)
