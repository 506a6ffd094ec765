"""Home: what is loaded, sample stimuli with captions, and the ROI map."""
import pandas as pd
import streamlit as st

from views._state import (build_demo_with_progress, db_stamp, models_table, roi_map_png, sample_stimuli,
                          workspace, workspace_busy, workspace_info)

ws = workspace()
st.title("VoxelScope")
st.caption("What does each voxel of visual cortex prefer? Explore voxel selectivity with generative models.")

if workspace_busy(ws):
    st.warning(f"The workspace `{ws.path}` is being written by another process (a build or an import). "
               "Reload this page when it has finished.")
    st.stop()
if not ws.exists:
    st.info(f"No world in `{ws.path}` yet: building the synthetic demo world (about two minutes, once).")
    build_demo_with_progress(ws)

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
