"""Cortex explorer: overlays on an interactive surface, click a voxel for its card, concept maps, figures.

Subject, overlay, concept, surface, view, hemisphere and the selected vertex live in the URL, so a link
reopens the same view. All computation is in backend.explore and backend.surface.
"""
from __future__ import annotations

import streamlit as st

from backend.encoders import incontext_model_path
from views import _explore as ex
from views._jobs import job_panel
from views._state import preparation_checklist, require_world, workspace
from views._surface import surface_and_files, surface_viewer

ws = workspace()
st.title("Cortex explorer")
path, stamp = require_world(ws)

subjects = ex.subjects(path, stamp)
try:
    surface, files = surface_and_files(path, stamp)
except (FileNotFoundError, ValueError) as exc:
    st.error(f"The surface of this workspace could not be loaded: {exc}")
    st.stop()
kinds = list(files["positions"])
n_vertices = surface.n_vertices

# ---------------------------------------------------------------- state from the URL (once per session)
errors = ex.init_state_from_url(subjects, kinds, n_vertices)
for msg in errors:
    st.error(msg)

encoders = {s: ex.has_encoder(path, stamp, s) for s in subjects}
overlay_names = {k: v[0] for k, v in ex.OVERLAYS.items()}
ss = st.session_state

# Layout first, contents later: the viewer is emitted before the controls (it reads their values from the
# session state, which Streamlit fills before each rerun), so the browser starts loading the surface first.
controls = st.container()
notes = st.container()
left, right = st.columns([3, 2], gap="medium")

subject, overlay_name, kind = ss.cx_subject, ss.cx_overlay, ss.cx_surface
view, show = ss.cx_view, ss.cx_show
definition = ss.get("cx_def", ex.DEFAULT_DEFINITION)
choices = ex.encoder_choices(path, stamp, subject) if encoders[subject] else []
methods = [e["method"] for e in choices]
if ss.pop("cx_ic_done", None) and "in-context" in methods:  # in-context encoders just written: show them
    ss.cx_enc = "in-context"
if ss.get("cx_enc") not in methods:  # none chosen, or this subject lacks the chosen kind: its default
    ss.cx_enc = methods[0] if methods else None
encoder = ss.cx_enc if methods and ss.cx_enc != methods[0] else None  # None = the default (shares the caches)
needs_encoder = ex.OVERLAYS[overlay_name][1]
no_encoder = needs_encoder and not encoders[subject]
concept = {"concept": (ss.get("cx_concept") or "").strip(), "synthesis": ss.get("cx_image") or ""}.get(overlay_name, "")
shown_name = "rois" if no_encoder or (overlay_name in ("concept", "synthesis") and not concept) else overlay_name
try:
    ov = ex.overlay(path, stamp, subject, shown_name, concept, n_vertices, definition, encoder)
except (LookupError, ValueError) as exc:
    notes.error(str(exc))
    ov = ex.overlay(path, stamp, subject, "rois", "", n_vertices)
rois = ex.overlay(path, stamp, subject, "rois", "", n_vertices)
range_key, thr_key = f"cx_range_{ov.name}_{concept}", f"cx_thr_{ov.name}"
lo, hi = ov.default_range()
vmin, vmax = ss.get(range_key, (None, None)) if not ov.categorical else (None, None)
threshold = ss.get(thr_key) if not ov.categorical else None
outlines, labels = ss.get("cx_outlines", True), ss.get("cx_labels", True)
sel = ss.get("cx_sel")

with left:
    from backend.surface import viewer_message

    msg = viewer_message(surface, files, "/app/static/cache/", ov, rois, surface_kind=kind,
                         view=view if kind != "flat" else "lateral", show=show, vmin=vmin, vmax=vmax,
                         threshold=threshold, outlines=outlines, labels=labels,
                         selected={"hemi": sel[0], "vertex": sel[1]} if sel else None)
    surface_viewer(msg, key="cx_viewer", on_pick=ex.on_pick)

with controls:
    c = st.columns([1, 2, 1, 1, 1] + ([1.6] if len(choices) > 1 else []))
    c[0].selectbox("Subject", subjects, key="cx_subject", on_change=ex.clear_selection)
    c[1].selectbox("Overlay", list(overlay_names), format_func=overlay_names.get, key="cx_overlay")
    c[2].selectbox("Surface", kinds, key="cx_surface")
    c[3].selectbox("View", ex.VIEWS, key="cx_view", disabled=kind == "flat",
                   help="The flat map is always seen from above.")
    c[4].selectbox("Hemispheres", ex.SHOW, key="cx_show",
                   format_func={"both": "both", "lh": "left", "rh": "right"}.get)
    if len(choices) > 1:
        labels = {e["method"]: ex.encoder_label(e) for e in choices}
        c[5].selectbox("Encoder", methods, key="cx_enc", format_func=labels.get,
                       help="Which of this subject's voxel encoders the accuracy, concept and predicted overlays and "
                            "the voxel card use: ridge fitted on its training images, or the in-context (BraInCoRL) "
                            "encoder written from a few of them (`python -m backend encoder in-context`). The default "
                            "(listed first) is the one made from the most images.")
    if no_encoder:
        st.warning(f"{subject} has no encoder yet, so encoding accuracy and concept maps are not available.")
        if st.button("Fit encoders now (a background job, about a minute per subject on 2 cores)"):
            from backend.jobs import ensure_job

            ensure_job(ws, "encoders")
        preparation_checklist(ws)
    if incontext_model_path() is not None:
        with st.expander("Encoders from a few images (in-context, BraInCoRL)", expanded=bool(ss.get("cx_ic_job"))):
            st.caption(f"The in-context encoder reads {subject}'s responses to N of its training images and writes "
                       "every voxel's encoder in one pass, with no fitting: what a lab gets from a short scan of a "
                       "new subject. It is stored next to the ridge encoder and chosen in *Encoder* above.")
            with st.form("ic_form", border=False):
                f = st.columns([2, 2, 1], vertical_alignment="bottom")
                f[0].number_input("Images", min_value=2, max_value=100_000, value=100, step=25, key="cx_ic_n")
                f[1].selectbox("Which images", ["first", "random"], key="cx_ic_order",
                               format_func={"first": "its first ones (first sessions)", "random": "a random draw"}.get)
                if f[2].form_submit_button("Write encoders", width="stretch"):
                    from backend.jobs import ensure_job

                    ss.cx_ic_job = ensure_job(ws, "incontext", {"subjects": [subject], "n_images": int(ss.cx_ic_n),
                                                                "order": ss.cx_ic_order}, same_params=True)
            job_panel(ws, "cx_ic_job", "cx_ic_done", "in-context encoding", "nothing was stored.",
                      label=lambda p: f"{p['subjects'][0]}, {p['n_images']:,} images")
    if overlay_name == "concept" and not no_encoder:
        with st.form("concept_form", border=False):
            fc = st.columns([5, 2, 1], vertical_alignment="bottom")
            fc[0].text_input("Concept", key="cx_concept", placeholder="a smiling face · a face - a house · "
                             "a face, a house, a person, some food, a word",
                             help="One concept (any text); two with ' - ' between them for a contrast (the first "
                                  "minus the second); several separated by commas for a map of which one each "
                                  "voxel prefers.")
            fc[1].selectbox("Definition", list(ex.DEFINITIONS), key="cx_def", help="How a voxel's preference is "
                            "scored: " + "; ".join(f"**{k}**: {v}" for k, v in ex.DEFINITIONS.items()) + ".")
            fc[2].form_submit_button("Map it", width="stretch")
        unknown = ex.embedder().unknown_words(concept) if concept else []
        if unknown:
            st.warning(f"The embedder does not know {', '.join(repr(w) for w in unknown)}: those words are ignored, "
                       "so the map reflects only the rest of the text. The demo embedder knows the words of the demo "
                       "world's captions (faces, people, buildings, food, text, objects and their details).")
        if not concept:
            st.info("Type a concept to map it, e.g. *a smiling face* or *some food*.")
    if overlay_name == "synthesis" and not no_encoder:
        if not concept:
            st.info("No synthesized image chosen: open one from the Synthesis page (*Open its predicted response in "
                    "the Cortex explorer*).")
        else:
            ex.synthesized_image(path, stamp, concept)
    with st.expander("Display: colour range, threshold, outlines", expanded=False):
        d = st.columns([3, 2, 1, 1])
        if not ov.categorical:
            span = max(abs(lo), abs(hi)) if ov.symmetric else hi - lo
            bounds = (-2 * span, 2 * span) if ov.symmetric else (min(lo, 0.0), hi + span)
            if range_key not in ss:
                ss[range_key] = (float(lo), float(hi))
            d[0].slider("Colour range", float(bounds[0]), float(bounds[1]), key=range_key, format="%.3g")
            d[1].number_input("Threshold" + (" on |value|" if ov.symmetric else ""), value=None, key=thr_key,
                              format="%.3g", placeholder="none", help="Vertices below it show the sulcal background.")
        d[2].checkbox("ROI outlines", value=True, key="cx_outlines")
        d[3].checkbox("ROI labels", value=True, key="cx_labels")

ex.write_url(overlay_name, concept, encoder)

with left:
    st.caption("Drag to rotate, scroll to zoom, right-drag to pan; **click a point to open its voxel card**.")
    if ov.name == "concept":
        st.markdown(f"**Voxels that prefer “{concept}”** (select a row to open its card)")
        top = ex.top_voxels(path, stamp, subject, concept, 15, definition, encoder)
        event = st.dataframe(top, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                             key=f"cx_top_{concept}", column_config={
                                 "score": st.column_config.NumberColumn("score", format="%.3f"),
                                 "noise_ceiling": st.column_config.NumberColumn("NC %", format="%.1f"),
                                 "r2_nc": st.column_config.NumberColumn("R²/NC", format="%.2f")})
        rows = event.selection.rows if event is not None else []
        if rows:
            r = top.iloc[rows[0]]
            if st.session_state.get("cx_sel") != (r.hemi, int(r.vertex)):
                st.session_state.cx_sel = (r.hemi, int(r.vertex))
                st.rerun()
    with st.expander("Publication figure (PyVista, off-screen)"):
        st.caption("Both hemispheres, lateral / medial / ventral, with colour bar and ROI outlines. The same "
                   "figure from the command line: `python -m backend figure overlay out.png --subject "
                   f"{subject} --overlay {ov.name}" + (f' --concept "{concept}"' if concept else "")
                   + (f" --definition {definition}" if ov.name == "concept" and definition != ex.DEFAULT_DEFINITION
                      else "") + (f" --encoder {encoder}" if encoder else "") + "`")
        if st.button("Render figure"):
            with st.spinner("Rendering (a few seconds)…"):
                try:
                    png = ex.figure_png(path, stamp, subject, ov.name, concept, vmin, vmax, threshold, outlines,
                                        kind if kind != "flat" else "inflated", definition, encoder)
                    st.session_state.cx_figure = (png, f"voxelscope_{subject}_{ov.name}.png")
                except RuntimeError as exc:
                    st.error(str(exc))
        if st.session_state.get("cx_figure"):
            png, name = st.session_state.cx_figure
            st.image(png, width="stretch")
            st.download_button("Download PNG", png, file_name=name, mime="image/png")

with right:
    ex.vertex_entry(subject, n_vertices)
    sel = st.session_state.get("cx_sel")
    if sel is None:
        st.info("Click a point on the surface (or enter a vertex above) to see that voxel's card: its ROI, noise "
                "ceiling, encoding accuracy, top images and category profile.")
    else:
        ex.voxel_card(path, stamp, subject, sel[0], sel[1], encoder)
