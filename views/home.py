"""Home: what is loaded, sample stimuli with captions, the ROI map, and where the jobs' heavy work runs."""
import os

import pandas as pd
import streamlit as st

from backend.jobs import job_executor, set_job_executor

from views._state import (db_stamp, models_table, preparation_checklist, roi_map_png, sample_stimuli, workspace,
                          workspace_busy, workspace_info)

ws = workspace()
st.title("VoxelScope")
st.caption("What does each voxel of visual cortex prefer? Explore voxel selectivity with generative models.")

ready = not workspace_busy(ws) and ws.exists
if not ready:
    from backend.jobs import prepare_demo, start_worker, worker_running

    st.info(f"No world in `{ws.path}` yet: the synthetic demo world is being prepared in the background "
            "(about two minutes for the world, then the encoders and captions). This page updates by itself.")
    if not workspace_busy(ws):
        prepare_demo(ws)
    if not worker_running(ws):
        start_worker(ws)
preparation_checklist(ws, rerun_when_world_ready=not ready)
if not ready:
    st.stop()

info = workspace_info(str(ws.path), db_stamp(ws))
subjects = info["subjects"]
dataset = {"demo": "synthetic demo world", "nsd": "Natural Scenes Dataset", "algonauts": "Algonauts 2023"}.get(
    info["dataset"], info["dataset"])

st.subheader(f"Loaded: {dataset}")
cols = st.columns(4)
cols[0].metric("Subjects", len(subjects))
cols[1].metric("Voxels", f"{sum(s['n_voxels'] for s in subjects):,}")
cols[2].metric("Images", f"{info['n_images']:,}")
cols[3].metric("Captions", f"{info['n_captions']:,}")
st.caption(f"Surface space: {info['space']} · workspace `{info['path']}`")

table = pd.DataFrame([{
    "subject": s["subject"], "voxels": s["n_voxels"], "sessions": s["n_sessions"], "images seen": s["n_images"],
    "train": s["n_train"], "test (shared)": s["n_test"],
    "median noise ceiling (%)": None if s["median_nc"] is None else round(s["median_nc"], 1)} for s in subjects])
st.dataframe(table, hide_index=True, width="stretch")

left, right = st.columns([3, 2])
with left:
    subject = st.selectbox("Subject", [s["subject"] for s in subjects], key="home_subject")
    st.markdown("**Regions of interest** (inflated fsaverage surface)")
    try:
        st.image(roi_map_png(str(ws.path), db_stamp(ws), subject), width="stretch")
    except (RuntimeError, FileNotFoundError) as exc:
        st.warning(f"The ROI map could not be drawn: {exc}")
with right:
    counts = next(s for s in subjects if s["subject"] == subject)["voxels_per_roi"]
    st.markdown("**Voxels per ROI**")
    st.bar_chart(pd.DataFrame({"ROI": list(counts), "voxels": list(counts.values())}), x="ROI", y="voxels",
                 sort=False, height=330)

st.subheader("Sample stimuli")
if "sample_seed" not in st.session_state:
    st.session_state.sample_seed = 0
if st.button("Show other images"):
    st.session_state.sample_seed += 1
ids, images, caps = sample_stimuli(str(ws.path), db_stamp(ws), 12, st.session_state.sample_seed)
grid = st.columns(6)
for k, (sid, img) in enumerate(zip(ids, images)):
    with grid[k % 6]:
        first = caps.get(sid) or ["(no caption)"]
        st.image(img, caption=f"#{sid}: {first[0]}", width="stretch")

st.subheader("Models")
st.caption("Configured in `models.toml`; quality measured on held-out demo images "
           "(`python -m backend models evaluate`).")
st.dataframe(pd.DataFrame(models_table()), hide_index=True, width="stretch")

st.subheader("Where heavy work runs")
LABELS = {"local": "This machine (the job worker's process)", "ray": "A Ray cluster"}
chosen = job_executor(ws) or os.environ.get("VOXELSCOPE_EXECUTOR") or "local"
pick = st.radio("Parallel parts of the jobs these pages start (captions, encoders, attention encoders, BrainDiVE)",
                list(LABELS), index=list(LABELS).index(chosen if chosen in LABELS else "local"),
                format_func=LABELS.get, horizontal=True, key="home_executor")
if pick != chosen:
    set_job_executor(ws, pick)
    st.toast(f"Jobs started from now on run on: {LABELS[pick].lower()}")
address = os.environ.get("RAY_ADDRESS")
st.caption(("Ray: the cluster at `" + address + "` ($RAY_ADDRESS)." if address else
            "Ray: no $RAY_ADDRESS, so each job starts a Ray cluster on this machine.") if pick == "ray" else
           "Each job computes in the worker's own process; the results are the same either way (see the README, "
           "*Running on a cluster*).")
