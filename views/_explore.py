"""Cortex explorer helpers: cached backend calls, URL state, the voxel card. No algorithms here."""
from __future__ import annotations

import streamlit as st

from backend.explore import DEFAULT_DEFINITION, DEFINITIONS, ENCODERS, OVERLAYS  # noqa: F401  (for the page)
from backend.store import Workspace
from backend.surface import EARLY_ROIS, SHOW, VIEWS  # noqa: F401

DEFAULT_VIEW = "ventral"  # shows most category ROIs (FFA, PPA, VWFA, food) and ventral V1-V3 at once


# ---------------------------------------------------------------- cached reads
@st.cache_data(show_spinner=False)
def subjects(path: str, stamp: float) -> list[str]:
    from backend.explore import subjects as subs

    return subs(Workspace(path))


@st.cache_resource(show_spinner="Loading the embedder…")
def embedder():
    from backend.models import load_role

    return load_role("embedder")


@st.cache_data(show_spinner=False)
def encoder_choices(path: str, stamp: float, subject: str) -> list[dict]:
    """The subject's encoders (method, n_train, default), the default first."""
    from backend.explore import subject_encoders

    return subject_encoders(Workspace(path), subject).to_dict("records")


def has_encoder(path: str, stamp: float, subject: str) -> bool:
    return bool(encoder_choices(path, stamp, subject))


@st.cache_resource(show_spinner="Preparing concept maps for this subject…", max_entries=8)
def concept_context(path: str, stamp: float, subject: str, encoder: str | None = None):
    from backend.explore import concept_context as context

    return context(Workspace(path), subject, embedder(), encoder)


@st.cache_data(show_spinner=False, max_entries=64)
def overlay(path: str, stamp: float, subject: str, name: str, concept: str, n_vertices: dict,
            definition: str = DEFAULT_DEFINITION, encoder: str | None = None):
    from backend.explore import overlay as make

    if name not in ("concept", "synthesis"):
        return make(Workspace(path), subject, name, n_vertices, encoder=encoder)
    if name == "synthesis":
        return make(Workspace(path), subject, name, n_vertices, concept=concept, embedder=embedder(), encoder=encoder)
    return make(Workspace(path), subject, name, n_vertices, concept=concept, embedder=embedder(),
                context=concept_context(path, stamp, subject, encoder), definition=definition, encoder=encoder)


@st.cache_data(show_spinner=False, max_entries=32)
def top_voxels(path: str, stamp: float, subject: str, concept: str, n: int = 15,
               definition: str = DEFAULT_DEFINITION, encoder: str | None = None):
    """The top voxels of a concept box (a concept, a contrast, or a list: then with the winning concept)."""
    from backend.explore import concept_map, top_voxels as top

    ws = Workspace(path)
    m = concept_map(ws, subject, concept, embedder(), definition=definition,
                    context=concept_context(path, stamp, subject, encoder), encoder=encoder)
    df = top(ws, subject, m["scores"], n, encoder=encoder)
    if m["kind"] == "winner":
        df.insert(4, "wins", [m["concepts"][m["winner"][v]] if m["winner"][v] >= 0 else "" for v in df.voxel])
    return df.reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=256)
def find_voxel(path: str, stamp: float, subject: str, hemi: str, vertex: int):
    from backend.explore import find_voxel as find

    return find(Workspace(path), subject, hemi, vertex)


@st.cache_data(show_spinner=False, max_entries=64)
def card_data(path: str, stamp: float, subject: str, voxel: int, encoder: str | None = None) -> dict:
    from backend.explore import voxel_card

    return voxel_card(Workspace(path), subject, voxel, image_size=128, encoder=encoder)


@st.cache_resource(show_spinner=False, max_entries=4)
def contrast_energy(path: str, stamp: float, subject: str):
    from backend.explore import training_contrast_energy

    return training_contrast_energy(Workspace(path), subject)


@st.cache_data(show_spinner=False, max_entries=64)
def receptive_field(path: str, stamp: float, subject: str, voxel: int) -> dict:
    from backend.explore import voxel_receptive_field

    return voxel_receptive_field(Workspace(path), subject, voxel, contrast_energy(path, stamp, subject))


@st.cache_data(show_spinner=False, max_entries=16)
def figure_png(path, stamp, subject, name, concept, vmin, vmax, threshold, outlines, mesh, definition=None,
               encoder=None) -> bytes:
    import tempfile
    from pathlib import Path

    from backend.explore import overlay_png_subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figure.png"
        overlay_png_subprocess(Workspace(path), subject, name, out, concept=concept, vmin=vmin, vmax=vmax,
                               threshold=threshold, outlines=outlines, mesh=mesh, definition=definition,
                               encoder=encoder)
        return out.read_bytes()


@st.cache_data(show_spinner=False, max_entries=16)
def _synthesized(path: str, stamp: float, image_ref: str):
    from backend.synthesis import require_run, run_images, synthesis_images

    ws = Workspace(path)
    run_id, _, seed = image_ref.rpartition(":")
    rows = synthesis_images(ws, run_id)
    rows = rows[rows.seed == int(seed)] if seed.isdigit() else rows.iloc[:0]
    if rows.empty:
        return None, ""
    return run_images(ws, rows)[0], require_run(ws, run_id)["label"]


def synthesized_image(path: str, stamp: float, image_ref: str) -> None:
    """The synthesized image an explorer overlay shows the predicted response to, with a link back to its run."""
    image, label = _synthesized(path, stamp, image_ref)
    if image is None:
        return
    c = st.columns([1, 5])
    c[0].image(image, width=96)
    run_id, _, seed = image_ref.rpartition(":")
    c[1].markdown(f"Predicted response to the synthesized image **seed {seed}** of **{label}**.")
    c[1].page_link("views/synthesis.py", label="Back to this run on the Synthesis page", icon="🎨",
                   query_params={"run": run_id})


# ---------------------------------------------------------------- URL state
def init_state_from_url(subject_list: list[str], kinds: list[str], n_vertices: dict) -> list[str]:
    """Fill the page's widget state from the URL once per session; return messages about bad parameters."""
    ss = st.session_state
    qp = st.query_params
    if "cx_errors" in ss:
        if qp.get("image") and qp.get("image") != ss.get("cx_image"):  # arrived from the Synthesis page's link
            ss.cx_image, ss.cx_overlay = qp.get("image"), "synthesis"
            if qp.get("subject") in subject_list:
                ss.cx_subject = qp.get("subject")
        return ss.cx_errors
    errors: list[str] = []

    def choose(param, allowed, default, what):
        v = qp.get(param)
        if v is None or v in allowed:
            return v if v is not None else default
        errors.append(f"Unknown {what} `{v}` in the link (choose one of: {', '.join(map(str, allowed))}); "
                      f"showing `{default}` instead.")
        return default

    ss.cx_subject = choose("subject", subject_list, subject_list[0], "subject")
    ss.cx_overlay = choose("overlay", list(OVERLAYS), "rois", "overlay")
    ss.cx_surface = choose("surface", kinds, "inflated", "surface")
    ss.cx_view = choose("view", list(VIEWS), DEFAULT_VIEW, "view")
    ss.cx_show = choose("hemi", list(SHOW), "both", "hemisphere")
    if qp.get("q"):
        ss.cx_concept = qp.get("q")
    ss.cx_def = choose("def", list(DEFINITIONS), DEFAULT_DEFINITION, "concept-map definition")
    if qp.get("enc"):
        ss.cx_enc = choose("enc", list(ENCODERS), None, "encoder")
    if qp.get("image"):
        ss.cx_image = qp.get("image")
    ss.cx_sel = None
    raw = qp.get("vertex")
    if raw:
        hemi, _, num = raw.partition(":")
        if hemi not in ("lh", "rh") or not num.isdigit():
            errors.append(f"Bad vertex `{raw}` in the link: expected `lh:<number>` or `rh:<number>`.")
        elif int(num) >= n_vertices[hemi]:
            errors.append(f"Vertex {num} does not exist: the {hemi} surface has {n_vertices[hemi]:,} vertices "
                          f"(0 to {n_vertices[hemi] - 1:,}).")
        else:
            ss.cx_sel = (hemi, int(num))
    ss.cx_errors = errors
    return errors


def write_url(overlay_name: str, concept: str, encoder: str | None = None) -> None:
    ss = st.session_state
    params = {"subject": ss.cx_subject, "overlay": overlay_name, "surface": ss.cx_surface, "view": ss.cx_view,
              "hemi": ss.cx_show}
    if overlay_name == "concept" and concept:
        params["q"] = concept
        if ss.get("cx_def", DEFAULT_DEFINITION) != DEFAULT_DEFINITION:
            params["def"] = ss.cx_def
    if overlay_name == "synthesis" and concept:
        params["image"] = concept
    if encoder:
        params["enc"] = encoder
    if ss.get("cx_sel"):
        params["vertex"] = f"{ss.cx_sel[0]}:{ss.cx_sel[1]}"
    if {k: st.query_params.get(k) for k in st.query_params} != params:
        st.query_params.from_dict(params)


def clear_selection() -> None:
    st.session_state.cx_sel = None
    st.session_state.cx_errors = []


def on_pick() -> None:
    res = st.session_state.get("cx_viewer")
    pick = getattr(res, "pick", None)
    if pick is None and isinstance(res, dict):
        pick = res.get("pick")
    if pick and pick.get("hemi") in ("lh", "rh"):
        st.session_state.cx_sel = (pick["hemi"], int(pick["vertex"]))
        st.session_state.cx_errors = []


def vertex_entry(subject: str, n_vertices: dict) -> None:
    def go():
        h, v = st.session_state.cx_go_hemi, st.session_state.cx_go_vertex
        if v is not None:
            st.session_state.cx_sel = (h, int(v))
            st.session_state.cx_errors = []

    with st.form("vertex_form", border=False):
        c = st.columns([1, 2, 1], vertical_alignment="bottom")
        c[0].selectbox("Hemisphere", ["lh", "rh"], key="cx_go_hemi")
        c[1].number_input("Vertex", min_value=0, max_value=max(n_vertices.values()) - 1, step=1, value=None,
                          key="cx_go_vertex", placeholder="type a vertex number")
        c[2].form_submit_button("Show", on_click=go, width="stretch")


# ---------------------------------------------------------------- the voxel card
def encoder_label(e: dict) -> str:
    return f"{ENCODERS.get(e['method'], e['method'])} · {int(e['n_train']):,} images"


def voxel_card(path: str, stamp: float, subject: str, hemi: str, vertex: int, encoder: str | None = None) -> None:
    from backend.explore import plot_category_profile, plot_receptive_field

    side = {"lh": "left", "rh": "right"}[hemi]
    voxel = find_voxel(path, stamp, subject, hemi, int(vertex))
    if voxel is None:
        st.subheader(f"{hemi} vertex {vertex}")
        st.warning(f"Vertex {vertex} of the {side} hemisphere is not one of {subject}'s voxels (it lies outside "
                   "the visual-cortex mask the data cover). Click inside the coloured region.")
        return
    card = card_data(path, stamp, subject, voxel, encoder)
    roi = card["roi"] or "no ROI"
    st.subheader(f"{roi} · {hemi} vertex {vertex}")
    st.caption(f"{subject} · voxel {voxel} · {side} hemisphere")
    m = st.columns(3)
    m[0].metric("Noise ceiling", f"{card['noise_ceiling']:.1f} %", help="NSD's noise ceiling: % of the variance of "
                "the repeat-averaged betas that is not noise")
    m[1].metric("Test r", "—" if card["r_test"] is None else f"{card['r_test']:.2f}",
                help="Encoder prediction vs measured response on the shared test images")
    m[2].metric("R² / noise ceiling", "—" if card["r2_nc"] is None else f"{card['r2_nc']:.2f}")
    if card["encoder"]:
        st.caption(f"Encoder: **{encoder_label(card['encoder'])}** (its predictions, accuracy and top predicted "
                   "images below)")
    st.page_link("views/synthesis.py", label="Synthesize images this voxel is predicted to prefer", icon="🎨",
                 query_params={"subject": subject, "voxel": str(voxel)})
    truth = card.get("truth")
    if truth:
        cat = truth["category"] or "no category"
        st.caption(f"Ground truth (synthetic world): **{cat}**-selective; true pRF at "
                   f"({truth['prf_x']:.1f}°, {truth['prf_y']:.1f}°), σ {truth['prf_sigma']:.1f}°.")
    caps = card.get("captions")
    if caps is not None and len(caps):
        for r in caps.itertuples():
            rr = "" if r.sentence_r is None or r.sentence_r != r.sentence_r else f" · caption r {r.sentence_r:.2f}"
            st.markdown(f"**{r.label}:** “{r.caption}”  \n"
                        f"<span style='color:#777;font-size:0.85em'>{r.how}{rr}</span>", unsafe_allow_html=True)
    tabs = ["Top images (measured)", "Top images (predicted)", "Categories"]
    early = card["roi"] in EARLY_ROIS
    if early:
        tabs.append("Receptive field")
    t = st.tabs(tabs)
    with t[0]:
        st.caption("The images this voxel responded to most (z-scored betas, repeats averaged).")
        _grid(card["top_measured"], card["top_measured_images"],
              lambda r: f"{r.response:+.2f} z · {_short(r.caption)}")
    with t[1]:
        if card["top_predicted"] is None:
            st.info("No encoder for this subject yet.")
        else:
            _grid(card["top_predicted"], card["top_predicted_images"],
                  lambda r: f"{r.predicted:+.2f} z{'' if r.seen else ' · unseen'} · {_short(r.caption)}")
            st.caption("Predicted by the encoder over the whole stimulus pool, including images the subject never saw.")
    with t[2]:
        st.pyplot(plot_category_profile(card["category_means"]), width="stretch")
        st.caption("Mean response (z) to the images containing each category, ± s.e.m.")
    if early:
        with t[3]:
            with st.spinner("Estimating the receptive field (contrast energy of the training images, once)…"):
                rf = receptive_field(path, stamp, subject, voxel)
            st.pyplot(plot_receptive_field(rf, truth), width="stretch")
            st.caption("Correlation of the voxel's response with local contrast energy over the visual field "
                       "(training images); circle: Gaussian fitted to the peak (1σ)"
                       + ("; dashed: true pRF" if truth else "") + ".")


def _short(text: str, n: int = 38) -> str:
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + "…"


def _grid(df, images, caption) -> None:
    cols = st.columns(4)
    for k, (row, img) in enumerate(zip(df.itertuples(), images)):
        with cols[k % 4]:
            st.image(img, caption=caption(row), width="stretch")
