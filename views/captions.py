"""Voxel captions: search every voxel's caption, see the matching voxels on the cortex, per-ROI summaries,
export. All computation is in backend.captions."""
from __future__ import annotations

import io
from urllib.parse import quote_plus

import streamlit as st

from backend.captions import CAPTION_METHODS, caption_match_overlay, filter_results, matches_per_roi
from backend.jobs import ensure_job
from backend.surface import viewer_message
from views import _explore as ex
from views._state import preparation_checklist, require_world, workspace
from views._surface import STATIC_URL, surface_and_files, surface_viewer

ws = workspace()
st.title("Voxel captions")
st.caption("What does each voxel prefer, in words? **BrainSCUBA** decodes a sentence from the voxel's encoder weights "
           "projected onto natural-image embeddings; **LaVCa** summarises the captions of the images the voxel is "
           "predicted to prefer.")
path, stamp = require_world(ws)


@st.cache_data(show_spinner=False)
def caption_status(path: str, stamp: float):
    from backend.captions import caption_status as status
    from backend.store import Workspace

    return status(Workspace(path))


@st.cache_resource(show_spinner="Loading the caption index…", max_entries=2)
def caption_index(path: str, stamp: float):
    from backend.captions import CaptionIndex
    from backend.models import load_role
    from backend.store import Workspace

    # the sentence embeddings come stored by the caption job; the model loads at the first search by meaning
    return CaptionIndex.from_workspace(Workspace(path), load_embedder=lambda: load_role("sentence_embedder"))


@st.cache_data(show_spinner=False)
def roi_summaries(path: str, stamp: float):
    from backend.captions import roi_summaries as summaries
    from backend.store import Workspace

    return summaries(Workspace(path))


@st.cache_data(show_spinner=False)
def evaluation(path: str, stamp: float):
    from backend.captions import evaluation_summary, ground_truth_table
    from backend.store import Workspace

    w = Workspace(path)
    return evaluation_summary(w), ground_truth_table(w)

status = caption_status(path, stamp)
methods_all = list(CAPTION_METHODS)
missing = status[(status[methods_all].lt(status.n_voxels, axis=0)).any(axis=1)]
if len(missing):
    st.warning("Captions are missing for " + ", ".join(
        f"{r['subject']} (" + ", ".join(f"{CAPTION_METHODS[m].label} {r[m]:,}/{r['n_voxels']:,}" for m in methods_all)
        + ")" for _, r in missing.iterrows()) + ". `python -m backend captions all` computes them (resuming where it "
        "stopped); so does the button below.")
    if st.button("Compute captions now (a background job, about 7 minutes for the demo world on 2 cores)",
                 key="cap_compute"):
        ensure_job(ws, "captions")
    preparation_checklist(ws)
    if status[methods_all].to_numpy().sum() == 0:
        st.stop()

index = caption_index(path, stamp)
table = index.table
subjects = sorted(table.subject.unique())

# ---------------------------------------------------------------- search and filters
with st.form("caption_search", border=False):
    c = st.columns([4, 2, 1])
    query = c[0].text_input("Search captions", key="cap_q", placeholder="food, a smiling face, buildings …")
    mode = c[1].radio("Match", ["words", "meaning"], horizontal=True, key="cap_mode",
                      help="words: captions that contain every word; meaning: ranked by sentence-embedding "
                           "similarity (all-MiniLM-L6-v2)")
    c[2].form_submit_button("Search", width="stretch", key="cap_search_btn")
f = st.columns([1, 2, 2, 2])
subject = f[0].selectbox("Subject", subjects, key="cap_subject")
rois = f[1].multiselect("ROIs", sorted(table.roi.dropna().unique()), key="cap_rois", placeholder="all ROIs")
methods = f[2].multiselect("Methods", methods_all, default=methods_all, key="cap_methods",
                           format_func=lambda m: CAPTION_METHODS[m].label)
min_acc = f[3].slider("Minimum encoding accuracy (R² / NC)", 0.0, 1.0, 0.0, 0.05, key="cap_min_acc")

query = (query or "").strip()
try:
    res = index.search(query, mode)
except ValueError as exc:
    st.error(str(exc))
    res = index.search("", mode).iloc[[]]
res = filter_results(res, subject, methods, rois, min_acc, by_score=bool(query) and mode == "meaning")
res = res.assign(card="/explorer?subject=" + res.subject.astype(str).map(quote_plus) + "&vertex="
                 + res.hemi.astype(str) + "%3A" + res.vertex.astype(str))
if query:
    st.markdown(f"**{len(res):,} voxel captions** of {subject} match “{query}”"
                + (" (ranked by meaning; the 200 most similar distinct captions)" if mode == "meaning" else ""))
else:
    st.markdown(f"**All {len(res):,} voxel captions** of {subject} — type a search above")

left, right = st.columns([3, 2], gap="medium")
with left:
    surface, files = surface_and_files(path, stamp)
    ov = caption_match_overlay(res, surface.n_vertices, query)
    rois_ov = ex.overlay(path, stamp, subject, "rois", "", surface.n_vertices)
    msg = viewer_message(surface, files, STATIC_URL, ov, rois_ov, view="ventral", height=420,
                         status="" if query else "Search to see matching voxels")
    surface_viewer(msg, key="cap_viewer", on_pick=lambda: None)
    st.caption("Matching voxels on the surface (ventral view; drag to rotate). Open a voxel's card from the table.")
with right:
    if query and len(res):
        st.markdown("**Matches per ROI** (share of the ROI's voxels whose caption matches)")
        st.bar_chart(matches_per_roi(res, table, subject, methods), horizontal=True, stack=False, height=380,
                     y_label="share of the ROI's voxels", x_label="", sort=False)
    else:
        st.info("Search for a word (e.g. *food*, *face*, *building*) or, with *meaning*, any phrase.")

st.dataframe(res[["method", "roi", "caption", "score", "r_test", "r2_nc", "sentence_r", "voxel", "hemi", "vertex",
                  "card"]]
             .head(2000), hide_index=True, width="stretch", height=420, column_config={
                 "caption": st.column_config.TextColumn("caption", width="large"),
                 "card": st.column_config.LinkColumn("voxel card", display_text="open"),
                 "score": st.column_config.NumberColumn("match", format="%.2f"),
                 "r_test": st.column_config.NumberColumn("test r", format="%.2f"),
                 "r2_nc": st.column_config.NumberColumn("R²/NC", format="%.2f"),
                 "sentence_r": st.column_config.NumberColumn("caption r", format="%.2f",
                                                            help="sentence-level prediction: the caption's "
                                                                 "text embedding predicting the test responses"),
             })
export = res.drop(columns=["card"])


def parquet_bytes() -> bytes:
    buf = io.BytesIO()
    export.to_parquet(buf, index=False)
    return buf.getvalue()


d = st.columns([1, 1, 3])  # the files are written when a button is clicked, not on every rerun
d[0].download_button("Download CSV", lambda: export.to_csv(index=False).encode(), "voxel_captions.csv", "text/csv",
                     width="stretch")
d[1].download_button("Download Parquet", parquet_bytes, "voxel_captions.parquet",
                     "application/vnd.apache.parquet", width="stretch")
d[2].caption(f"{len(export):,} rows with the filters above; the table shows the first 2,000.")

st.subheader("Per ROI")
summ = roi_summaries(path, stamp)
if rois:
    summ = summ[summ.ROI.isin(rois)]
st.dataframe(summ[summ.method.isin(methods)], hide_index=True, width="stretch")

with st.expander("How good are the captions? (evaluation)"):
    r, gt = evaluation(path, stamp)
    st.markdown("**Sentence-level prediction** — each caption's text embedding used as the voxel's encoding "
                "weights, correlated with the measured responses to the shared test images:")
    st.dataframe(r, hide_index=True)
    if not gt.empty:
        st.markdown("**Ground truth (demo world)** — share of category-selective voxels whose caption names "
                    "their true category:")
        st.dataframe(gt, hide_index=True, column_config={m: st.column_config.NumberColumn(m, format="percent")
                                                        for m in methods_all})
