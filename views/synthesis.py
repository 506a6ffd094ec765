"""Synthesis: images a brain region is predicted to prefer (BrainDiVE). The page picks a target and parameters,
queues a background job (backend.synthesis through backend.jobs), follows it, and shows stored runs."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import streamlit as st

from backend.datasets import stimulus_images
from backend.jobs import ensure_job
from backend.simulate import has_ground_truth
from backend.synthesis import (SAMPLERS, configured_scale, gallery_files, natural_top, normalise_spec, require_run, run_images,
                               stored_evaluation, synthesis_images, synthesis_runs, target_choices)
from views import _explore as ex
from views._jobs import job_panel, show_finished_run
from views._state import db_stamp, require_world, workspace

ws = workspace()
st.title("Synthesis")
st.caption("Images a brain region is predicted to prefer (BrainDiVE, Luo et al. 2023): the image generator starts "
           "from noise, and at every denoising step the gradient of the target's predicted response (the subject's "
           "voxel encoders on the image's embedding) steers it. Images are guided by the encoder fitted on one half of "
           "the training images and re-ranked by the encoder fitted on the other half, so images that only fool the "
           "guiding encoder fall out.")
path, stamp = require_world(ws)
ss = st.session_state
subjects = [s for s in ex.subjects(path, stamp) if ex.has_encoder(path, stamp, s)]
if not subjects:
    st.info("No subject has a voxel encoder yet: BrainDiVE steers images with the encoders' predictions. Fit them on "
            "the Cortex explorer page or with `python -m backend encoder fit`.")
    st.stop()


@st.cache_data(show_spinner=False)
def choices(path: str, stamp: float, subjects: tuple[str, ...]) -> list[str]:
    return target_choices(ws, list(subjects))


@st.cache_data(show_spinner=False)
def demo_world(path: str, stamp: float) -> bool:
    return has_ground_truth(ws)


@st.cache_data(show_spinner=False, max_entries=16)
def runs(path: str, stamp: float) -> pd.DataFrame:
    return synthesis_runs(ws)


@st.cache_data(show_spinner=False, max_entries=16)
def run_rows(path: str, stamp: float, run_id: str):
    rows = synthesis_images(ws, run_id)
    return rows, run_images(ws, rows)


@st.cache_data(show_spinner=False, max_entries=8)
def gallery(path: str, stamp: float, run_id: str) -> tuple[bytes, bytes]:
    return gallery_files(ws, run_id)


@st.cache_data(show_spinner=False, max_entries=16)
def natural(path: str, stamp: float, spec_json: str):
    spec = json.loads(spec_json)
    tops = natural_top(ws, spec, 8)
    subject = spec["subjects"][0]
    df = tops[subject]
    return subject, df, stimulus_images(ws, df.stim_id.tolist())


@st.cache_data(show_spinner=False, max_entries=16)
def world_reference(path: str, stamp: float, spec_json: str) -> np.ndarray:
    from backend.simulate import world_target_responses
    from backend.synthesis import voxel_weights

    return world_target_responses(ws, voxel_weights(ws, json.loads(spec_json)))


def _init_from_url() -> None:
    """A link from the voxel card (?subject=subj01&voxel=123) or a shared link (?target=FFA-1%20-%20PPA)."""
    qp = st.query_params
    seen = {k: qp.get(k) for k in ("subject", "voxel", "run")}
    if ss.get("syn_url_seen") == seen:  # applied already (the page writes ?run= itself)
        return
    ss.syn_url_seen = seen
    if qp.get("subject") in subjects:
        ss.syn_subjects = [qp.get("subject")]
    if qp.get("voxel", "").isdigit():
        ss.syn_mode = "Voxel"
        ss.syn_voxel = int(qp.get("voxel"))
    if qp.get("run"):
        ss.syn_run = qp.get("run")


_init_from_url()
is_demo = demo_world(path, stamp)

# ---------------------------------------------------------------- the target
st.subheader("Target")
c = st.columns([2, 3])
ss.setdefault("syn_subjects", subjects[:1])
ss.setdefault("syn_voxel", 0)
chosen = c[0].multiselect("Subjects", subjects, key="syn_subjects",
                          help="Several subjects: the target's predicted response is averaged over them.")
mode = c[1].radio("Kind", ["ROI", "Contrast", "Voxel", "Concept"], horizontal=True, key="syn_mode",
                  help="ROI: the mean over its voxels (a category's name = every ROI of that category). Contrast: "
                       "preferred by the first, not by the second. Voxel: one voxel (open the page from a voxel card). "
                       "Concept: the voxels whose concept map peaks for a text (the Cortex explorer's concept map).")
if not chosen:
    st.info("Choose at least one subject.")
    st.stop()
names = choices(path, stamp, tuple(chosen))
spec = None
t = st.columns([2, 2, 1])
if mode == "ROI":
    roi = t[0].selectbox("ROI", names, index=names.index("FFA-1") if "FFA-1" in names else 0, key="syn_roi")
    spec = {"terms": [{"rois": [roi], "weight": 1.0}], "subjects": chosen}
elif mode == "Contrast":
    plus = t[0].selectbox("Prefers", names, index=names.index("FFA-1") if "FFA-1" in names else 0, key="syn_plus")
    minus = t[1].selectbox("…but not", names, index=names.index("PPA") if "PPA" in names else 1, key="syn_minus")
    weight = t[2].number_input("weight of the second", 0.1, 5.0, 1.0, 0.1, key="syn_w")
    if plus == minus:
        st.warning("Choose two different ROIs for a contrast.")
        st.stop()
    spec = {"terms": [{"rois": [plus], "weight": 1.0}, {"rois": [minus], "weight": -float(weight)}],
            "subjects": chosen}
elif mode == "Concept":
    if len(chosen) != 1:
        st.info("A concept's voxels belong to one subject: choose exactly one subject.")
        st.stop()
    concept = t[0].text_input("Concept", "a face", key="syn_concept", help="Any text the embedder knows")
    n_top = t[1].number_input("Its top voxels", 5, 500, 20, 5, key="syn_ntop")
    if not concept.strip():
        st.info("Type a concept, e.g. *a face* or *some food*.")
        st.stop()
    top = ex.top_voxels(path, stamp, chosen[0], concept.strip(), int(n_top))
    spec = {"terms": [{"voxels": top.voxel.astype(int).tolist(), "weight": 1.0, "concept": concept.strip()}],
            "subjects": chosen}
    st.caption(f"{len(top)} voxels: " + ", ".join(f"{r or 'no ROI'} {n}" for r, n in
                                                   top.roi.fillna("").value_counts().items()))
else:
    if len(chosen) != 1:
        st.info("A voxel belongs to one subject: choose exactly one subject.")
        st.stop()
    voxel = t[0].number_input("Voxel", min_value=0, step=1, key="syn_voxel",
                              help="A voxel number (the voxel card's 'Synthesize for this voxel' link fills it in).")
    spec = {"terms": [{"voxels": [int(voxel)], "weight": 1.0}], "subjects": chosen}
hemi = t[-1].selectbox("Hemisphere", ["both", "lh", "rh"], key="syn_hemi") if mode in ("ROI", "Contrast") else "both"
spec["hemi"] = None if hemi == "both" else hemi
try:
    spec = normalise_spec(spec)
except Exception as exc:  # noqa: BLE001 - an InvalidInputError names the field at fault
    st.error(str(exc))
    st.stop()

# ---------------------------------------------------------------- parameters and the job
p = st.columns(5)
n_seeds = p[0].number_input("Seeds", 4, 1000, 16, 4, key="syn_seeds", help="One image per seed; 20% are kept.")
steps = p[1].number_input("Steps", 10, 200, 50, 5, key="syn_steps")
default_scale = configured_scale()
scale = p[2].number_input("Guidance scale", 0.0, 100000.0, default_scale, 10.0, key="syn_scale",
                          help="0 = plain unconditional samples. The paper uses 100-150 with CLIP; "
                               f"{default_scale:g} for the configured generator.")
sampler = p[3].selectbox("Sampler", SAMPLERS, key="syn_sampler", format_func={"ddim": "DDIM",
                                                                               "dpm": "DPM-Solver++"}.get)
first_seed = p[4].number_input("First seed", 0, 10**6, 0, 1, key="syn_first")
params = {"target": spec, "n_seeds": int(n_seeds), "first_seed": int(first_seed), "keep": 0.2,
          "guidance": {"steps": int(steps), "scale": float(scale), "sampler": sampler}}
params["preview"] = "synthesis-" + hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16] + ".png"
if st.button("Synthesize", type="primary", key="syn_go"):
    ss.syn_job = ensure_job(ws, "synthesis", params, same_params=True)
    ss.pop("syn_run", None)


def _preview(prm: dict) -> None:
    prev = ws.path / "previews" / prm.get("preview", "")
    if prm.get("preview") and prev.exists():
        meta = prev.with_suffix(".json")
        step = json.loads(meta.read_text()) if meta.exists() else {}
        st.image(prev.read_bytes(), caption="Live preview: what the brain objective sees in the current "
                 f"batch (step {step.get('step', '?')} of {step.get('steps', '?')})", width=720)


job_panel(ws, "syn_job", "syn_run", "synthesis", "the seeds it finished are kept, and pressing Synthesize again "
          "continues from there.", label=lambda prm: prm["target"].get("label", "") if "target" in prm else "Evaluation",
          units="seed-steps", show_kinds=("synthesis",), preview=_preview)

# ---------------------------------------------------------------- results
past = runs(path, db_stamp(ws))
past = past[past.state == "done"]
if past.empty:
    st.stop()
st.divider()
ids = past.run_id.tolist()
show_finished_run("syn_run", "syn_pick", ids)  # a run just finished, or named by the URL
labels = {r.run_id: f"{r.label} · {r.n_images} images · {r.steps} steps · scale {r.scale:g} · "
                    f"{pd.Timestamp(r.created_at):%Y-%m-%d %H:%M}" for r in past.itertuples()}
run_id = st.selectbox("Run", ids, format_func=labels.get, key="syn_pick")
if st.query_params.get("run") != run_id:
    st.query_params["run"] = run_id
    ss.syn_url_seen = {k: st.query_params.get(k) for k in ("subject", "voxel", "run")}
run = require_run(ws, run_id)
rows, images = run_rows(path, db_stamp(ws), run_id)
spec_r = json.loads(run["target"])
kept = rows.kept.to_numpy()
n_keep = int(kept.sum())
top_guide = set(rows.nlargest(n_keep, "pred_guide").seed)
survivors = len(top_guide & set(rows[rows.kept].seed))
st.subheader(run["label"])
m = st.columns(4)
m[0].metric("Images", f"{len(rows)}", help="One per seed")
m[1].metric("Kept", f"{n_keep}", help="Top 20% by the re-ranking encoder (fitted on the other half of the images)")
m[2].metric("Survive re-ranking", f"{survivors} / {n_keep}",
            help="Of the guiding encoder's top 20%, how many the held-out encoder also ranks in its top 20%")
m[3].metric("Predicted response, kept", f"{rows[rows.kept].pred_rerank.mean():+.2f}",
            delta=f"{rows[rows.kept].pred_rerank.mean() - rows.pred_rerank.mean():+.2f} vs all",
            help="The re-ranking encoder's prediction (z units of the betas)")


def _caption(r: dict) -> str:
    cap = f"#{r['rank'] + 1} · seed {r['seed']} · pred {r['pred_rerank']:+.2f}"
    if r.get("true_response") is not None and r["true_response"] == r["true_response"]:
        cap += f" · true {r['true_response']:+.2f} · sees {(r['judged'] or 'nothing').replace(',', ', ')}"
    return cap


records = {r["seed"]: r for r in rows.to_dict("records")}
left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown("**Kept images** (best first by the re-ranking encoder)")
    kr = rows[rows.kept]
    st.image(list(images[kept]), caption=[_caption(records[sd]) for sd in kr.seed], width=150)
    if is_demo and kr.true_response.notna().any():
        ref = world_reference(path, stamp, json.dumps(spec_r, sort_keys=True))
        pct = 100 * (ref < kr.true_response.mean()).mean()
        shown = kr.judged.fillna("").str.split(",").str[0].replace("", "nothing").value_counts()
        st.markdown(f"**Simulated subject (ground truth):** the kept images' mean true response is above "
                    f"**{pct:.0f}%** of the world's natural images; the judge sees "
                    + ", ".join(f"{c} in {n}" for c, n in shown.items()) + " (largest object).")
    with st.expander(f"All {len(rows)} images, ranked"):
        st.image(list(images), caption=[_caption(records[sd]) for sd in rows.seed], width=110)
with right:
    subject0, nat, nat_images = natural(path, stamp, json.dumps(spec_r, sort_keys=True))
    st.markdown(f"**Natural images {subject0} prefers for this target**")
    tabs = st.tabs(["Measured", "Predicted"])
    for tab, by in zip(tabs, ("measured", "predicted")):
        with tab:
            sel = (nat.by == by).to_numpy()
            st.image([im for im, s in zip(nat_images, sel) if s],
                     caption=[f"stim {r.stim_id} · {by} {getattr(r, by):+.2f}" for r in nat[sel].itertuples()],
                     width=110)

# per image: its predicted response on the cortex, and downloads
st.markdown("**One image's predicted response on the cortex**")
pick = st.selectbox("Image", rows.seed.tolist(), format_func=lambda sd: _caption(records[sd]),
                    key="syn_img")
st.page_link("views/explorer.py", label="Open its predicted response in the Cortex explorer", icon="🧠",
             query_params={"subject": spec_r["subjects"][0], "overlay": "synthesis", "image": f"{run_id}:{pick}"})

grid, bundle = gallery(path, db_stamp(ws), run_id)
d = st.columns(2)
d[0].download_button("Download the kept images (PNG grid)", grid, f"{run_id}_kept.png", "image/png")
d[1].download_button("Download every image + parameters (zip)", bundle, f"{run_id}.zip", "application/zip")

# ---------------------------------------------------------------- evaluation against ground truth
if is_demo:
    st.divider()
    st.subheader("How well does it work? (against the simulated subjects)")
    ev_run, table = stored_evaluation(ws)
    if table.empty:
        st.info("No evaluation yet: for every category ROI of every subject, 100 seeds, scored by the judge and the "
                "simulated subjects against unguided and text-conditioned samples (`python -m backend synthesis "
                "evaluate`, about an hour on 2 CPU cores).")
        if st.button("Run the evaluation (a background job)", key="syn_eval"):
            ss.syn_job = ensure_job(ws, "synthesis_evaluation", {})
            st.rerun()
    else:
        cols = ["subject", "target", "category", "method", "n_images", "judged share", "judged main",
                "categories seen", "true percentile", "true gain", "predicted gain"]
        show = table[[c for c in cols if c in table]]  # evaluations stored before 2026-12-04 lack judged main
        st.dataframe(show.style.format({"judged share": "{:.0%}", "judged main": "{:.0%}", "categories seen": "{:.1f}",
                                        "true percentile": "{:.1f}", "true gain": "{:+.2f}",
                                        "predicted gain": "{:+.2f}"}), hide_index=True, width="stretch")
        st.caption("judged share: images in which the judge sees the ROI's category (at least 2% of the image); "
                   "judged main: images whose largest category is the ROI's; categories seen: per image (the world's "
                   "own images: about 1.4); true percentile: where their "
                   "mean true response falls among the world's natural images; gains in natural standard deviations. "
                   "Methods: braindive = kept images, unguided = plain samples of the same seeds (top: re-ranked "
                   "the same way), text = samples conditioned on the category's name.")
