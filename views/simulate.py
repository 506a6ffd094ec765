"""Virtual experiment: show any image to a synthetic subject of the demo world and compare its true response with
what the encoder predicts. All computation is in backend.simulate and backend.encoders."""
from __future__ import annotations

import numpy as np
import streamlit as st

from backend.encoders import predict_images
from backend.explore import predicted_overlay
from backend.simulate import has_ground_truth, roi_agreement, segmentation_png, simulate_response
from backend.surface import viewer_message
from views import _explore as ex
from views._images import image_picker
from views._state import require_world, workspace
from views._surface import STATIC_URL, surface_and_files, surface_viewer

ws = workspace()
st.title("Virtual experiment")
st.caption("A brain you can ask: the demo world's synthetic subjects respond to any image. Their eyes (a "
           "segmentation network trained on the world, independent of the embedder) find the objects and the "
           "background, contrast energy is computed from the pixels, and the subject's own tuning gives the true "
           "response of every voxel, next to what the subject's encoder predicts.")
path, stamp = require_world(ws)


@st.cache_data(show_spinner=False)
def simulable(path: str, stamp: float) -> bool:
    return has_ground_truth(ws)


if not simulable(path, stamp):
    st.info("This workspace holds real data: its subjects have no ground truth, so they cannot be simulated. "
            "The virtual experiment works on the demo world (`VOXELSCOPE_WORKSPACE` unset, or a workspace "
            "built with `python -m backend world build`).")
    st.stop()


@st.cache_resource(show_spinner="Loading the judge…")
def judge():
    from backend.models import load_judge

    return load_judge()


@st.cache_data(show_spinner="Showing the image to the subject…", max_entries=32)
def simulated(path: str, stamp: float, subject: str, image: np.ndarray):
    resp, (objects, backgrounds, labels) = simulate_response(ws, subject, [image], judge(), return_seen=True)
    return resp[0], objects[0], backgrounds[0], labels[0]


@st.cache_data(show_spinner=False, max_entries=32)
def segmentation_figure(image: np.ndarray, labels: np.ndarray) -> bytes:
    return segmentation_png(image, labels)


@st.cache_data(show_spinner=False, max_entries=32)
def predicted(path: str, stamp: float, subject: str, image: np.ndarray):
    try:
        return predict_images(ws, subject, [image], ex.embedder())[0]
    except LookupError:  # NotFoundError: no encoder yet
        return None


subjects = ex.subjects(path, stamp)
c = st.columns([1, 5])
subject = c[0].selectbox("Subject", subjects, key="sim_subject")
with c[1]:
    picked = image_picker(ws, path, stamp, subject, key="sim", default_words="face",
                          default_objects=(("face", "face", "centre"), (None, None, "left"), (None, None, "right")))
if picked is None:
    st.stop()

st.subheader(f"{subject} looks at {picked.label}")
truth, objects, background, labels = simulated(path, stamp, subject, picked.image)
pred = predicted(path, stamp, subject, picked.image)

left, right = st.columns([2, 3], gap="medium")
with left:
    st.image(segmentation_figure(picked.image, labels), width="stretch")
    seen = ", ".join(f"{o['category']} ({o['area']:.0%} of the image)" if o["area"] >= 0.005 else
                     f"{o['category']} (<1% of the image)" for o in objects) or "no object"
    st.markdown(f"**The subject sees:** {seen}; {'an' if background[0] in 'aeiou' else 'a'} {background} background.")
    if picked.source == "upload":
        st.warning("Photographs and drawings unlike the world's stimuli are outside what the judge was trained "
                   "on: the segmentation on the left is what the simulated subject “saw”, and its response follows "
                   "from that, right or wrong.")
with right:
    if pred is None:
        st.info("No encoder is fitted for this subject yet, so only the true response is shown.")
        table = None
    else:
        table = roi_agreement(ws, subject, truth, pred)
        st.markdown("**Per ROI: true (simulated) against predicted response**")
        st.table(table.set_index("ROI").style.format({"simulated": "{:+.2f}", "predicted": "{:+.2f}",
                                                      "r over voxels": "{:.2f}"})
                 .background_gradient(subset=["simulated", "predicted"], cmap="RdBu_r", vmin=-2, vmax=2))

surface, files = surface_and_files(path, stamp)
rois_ov = ex.overlay(path, stamp, subject, "rois", "", surface.n_vertices)
views = st.columns(2 if pred is not None else 1, gap="medium")
with views[0]:
    st.markdown(f"**True response** of {subject} (simulated, z over the world's images)")
    ov = predicted_overlay(ws, subject, truth, surface.n_vertices, label="True response")
    surface_viewer(viewer_message(surface, files, STATIC_URL, ov, rois_ov, view="ventral", height=400),
                   key="sim_truth", on_pick=lambda: None)
if pred is not None:
    with views[1]:
        st.markdown("**Predicted response** (the ridge encoder on the embedder's features; z over images)")
        ovp = predicted_overlay(ws, subject, pred, surface.n_vertices)
        surface_viewer(viewer_message(surface, files, STATIC_URL, ovp, rois_ov, view="ventral", height=400),
                       key="sim_pred", on_pick=lambda: None)
