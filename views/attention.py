"""Attention: where each ROI looks in an image (the attention-routing encoder), dense selectivity maps, and the
image's predicted response on the cortex. All computation is in backend.attention and backend.encoders."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.attention import (accuracy_vs_ridge, attention_grid_png, attention_on_objects, image_attention,
                               map_overlay_png, roi_average_attention, roi_dense_map)
from backend.encoders import attention_encoders, encoder_weights, load_attention_encoder
from backend.explore import predicted_overlay
from backend.jobs import ensure_job
from backend.surface import ROI_ORDER, viewer_message
from views import _explore as ex
from views._images import dataset_image, image_picker
from views._state import preparation_checklist, require_world, workspace
from views._surface import STATIC_URL, surface_and_files, surface_viewer

ws = workspace()
st.title("Attention maps")
st.caption("Where does each region look? A transformer encoder with attention routing (Adeli et al.) gives every "
           "ROI of each hemisphere a learned query that attends over the image's patches; each voxel reads its "
           "ROI's token. The maps show that attention, next to each ROI's predicted response.")
path, stamp = require_world(ws)


@st.cache_data(show_spinner=False)
def fitted(path: str, stamp: float) -> list[str]:
    return sorted(set(attention_encoders(ws).subject))


@st.cache_resource(show_spinner="Loading the attention encoder…", max_entries=4)
def encoder(path: str, stamp: float, subject: str):
    return load_attention_encoder(ws, subject)


@st.cache_resource(show_spinner=False, max_entries=2)
def patch_tokens(path: str, stamp: float):
    from backend.encoders import stimulus_patch_tokens
    from backend.models import model_config

    return stimulus_patch_tokens(ws, ex.embedder(), model_config()["embedder"]["path"])[0]


@st.cache_data(show_spinner=False, max_entries=8)
def comparison(path: str, stamp: float, subject: str) -> pd.DataFrame:
    return accuracy_vs_ridge(ws, subject)


@st.cache_data(show_spinner=False, max_entries=32)
def average_attention(path: str, stamp: float, subject: str, query: str):
    """(map, stim ids): reads the subject's betas, so once per query, not on every rerun."""
    return roi_average_attention(ws, subject, query, encoder(path, stamp, subject), patch_tokens(path, stamp), 30)


subjects = ex.subjects(path, stamp)
have = fitted(path, stamp)
if not have:
    st.info("No attention encoder is fitted yet. It trains on the patch tokens of the stimuli, for each subject "
            "(about 10 minutes per demo subject on 2 CPU cores): `python -m backend attention fit`, or the button.")
    if st.button("Fit attention encoders (a background job)", key="att_fit"):
        ensure_job(ws, "attention")
    preparation_checklist(ws)
    st.stop()

# ---------------------------------------------------------------- choose subject and image
c = st.columns([1, 5])
subject = c[0].selectbox("Subject", [s for s in subjects if s in have], key="att_subject")
with c[1]:
    picked = image_picker(ws, path, stamp, subject, key="att")
if picked is None:
    st.stop()
image, label, objects = picked.image, picked.label, picked.objects

enc = encoder(path, stamp, subject)
o = st.columns([1, 1, 1, 3])
head_names = ["mean of heads"] + [f"head {h + 1}" for h in range(enc.cfg.heads)]
head_label = o[0].selectbox("Heads", head_names, key="att_head")
head = None if head_label == head_names[0] else head_names.index(head_label) - 1
alpha = o[1].slider("Opacity", 0.1, 1.0, 0.6, 0.05, key="att_alpha")
cmap = o[2].selectbox("Colour map", ["inferno", "viridis", "magma", "jet"], key="att_cmap")

att = image_attention(ws, subject, image, enc, ex.embedder())
rank = {r: k for k, r in enumerate(ROI_ORDER)}  # the atlas order: early visual first, then faces, places, ...
rois = sorted((n for n in att.names if not n.startswith("outside")),
              key=lambda n: (rank.get(n.split(" ")[0], len(rank)), n))
grid = attention_grid_png(att, rois, head=head, alpha=alpha, cmap=cmap, columns=8, cell=1.8)
st.subheader(f"Every ROI's attention over {label}")
st.caption("Each panel: one ROI query of one hemisphere; the number is the ROI's mean predicted response (z). "
           "Brighter = more attention; each panel is scaled from its own least to its most attended patch (the maps sum "
           "to 1 over the image; the ROI's map below has its colour bar).")
st.image(grid, width="stretch")
o[3].download_button("Export the grid (PNG)", grid, f"attention_{subject}_{label.replace(' ', '_')}.png",
                     "image/png")

if objects is not None:
    with st.expander("Where the attention goes, object by object", expanded=True):
        st.caption("Each query's share of attention on each object of this image (its object masks are known). "
                   "The first row is each object's share of the image: what attention spread evenly would give. "
                   "Darker = more attention than that share.")
        shares = attention_on_objects(att, objects[0], objects[1], rois, head)
        st.table(shares.style.format("{:.1%}").background_gradient(
            axis=None, cmap="Blues", gmap=(shares / shares.iloc[0]).to_numpy(), vmin=0, vmax=3))

# ---------------------------------------------------------------- one ROI in detail
st.subheader("One ROI")
roi_q = st.selectbox("ROI", rois, key="att_roi",
                     index=next((i for i, n in enumerate(rois) if n.startswith("FFA-1")), 0))
roi, hemi = roi_q.split(" ")[:2]  # "FFA-1 lh", or "VWFA-2 lh #5" for a voxel's own query
d = st.columns(3)
d[0].image(map_overlay_png(image, att.map_of(roi_q, head), f"{roi_q}: attention", alpha, cmap), width="stretch")
try:
    W = encoder_weights(ws, subject)[0]
    dense = roi_dense_map(ws, subject, roi, hemi, image, ex.embedder(), W)
    d[1].image(map_overlay_png(image, dense, f"{roi_q}: dense selectivity (ridge per patch)", alpha,
                               diverging=True), width="stretch")
except (ValueError, LookupError) as exc:  # the backend's InvalidInputError, NotFoundError
    d[1].info(f"No dense map: {exc}")
avg, top_ids = average_attention(path, stamp, subject, roi_q)
d[2].image(map_overlay_png(dataset_image(path, stamp, top_ids[0]), avg,
                           f"{roi_q}: mean attention over its 30 top images", alpha, cmap), width="stretch")
st.caption("Left: the query's attention over this image. Middle: the ROI's ridge encoder applied to every patch "
           "embedding, averaged over shifted and mirrored views (BrainSAIL-style); red = predicted to drive the "
           "ROI. Right: the query's attention averaged over the 30 training images its voxels respond to most "
           "(shown over the first of them) — for early visual ROIs, the part of the visual field they represent.")

# ---------------------------------------------------------------- the image's predicted response on the cortex
left, right = st.columns([3, 2], gap="medium")
with left:
    st.markdown(f"**Predicted response to {label}** (every voxel of {subject})")
    surface, files = surface_and_files(path, stamp)
    ov = predicted_overlay(ws, subject, att.predicted, surface.n_vertices)
    rois_ov = ex.overlay(path, stamp, subject, "rois", "", surface.n_vertices)
    surface_viewer(viewer_message(surface, files, STATIC_URL, ov, rois_ov, view="ventral", height=420),
                   key="att_viewer", on_pick=lambda: None)
with right:
    st.markdown("**Accuracy against ridge** (median R² / noise ceiling per ROI, shared test images)")
    try:
        comp = comparison(path, stamp, subject)
    except (ValueError, LookupError) as exc:  # e.g. no ridge encoder yet
        st.info(str(exc))
    else:
        st.bar_chart(comp.set_index("ROI")[["ridge", "attention"]], stack=False, height=380, sort=False)
        st.dataframe(comp, hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(k, format="%.3f")
                                    for k in ("ridge", "attention", "attention - ridge")})
