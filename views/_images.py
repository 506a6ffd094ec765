"""The image picker the Attention and Virtual experiment pages share: an image from the dataset (by caption
words), one composed from the demo world's grammar, or an upload. No algorithms here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from backend.attention import load_image_file
from backend.datasets import find_stimuli, stimulus_images, stimulus_masks
from backend.datasets.demo import CATEGORIES, KINDS, PLACES, compose_stimulus
from backend.store import Workspace

SOURCES = ("from the dataset", "compose", "generate", "upload")


@dataclass
class Picked:
    image: np.ndarray
    label: str
    source: str
    objects: tuple[np.ndarray, list[str]] | None = None  # (object mask, labels) where the objects are known


@st.cache_data(show_spinner=False, max_entries=32)
def dataset_image(path: str, stamp: float, stim_id: int):
    return stimulus_images(Workspace(path), [stim_id])[0]


@st.cache_data(show_spinner=False, max_entries=32)
def dataset_objects(path: str, stamp: float, stim_id: int):
    """(mask, object labels) of a dataset image, or None for worlds without masks."""
    try:
        masks, objects = stimulus_masks(Workspace(path), [stim_id])
    except LookupError:  # NotFoundError: no masks in this workspace
        return None
    return masks[0], objects.category.tolist()


@st.cache_resource(show_spinner="Loading the generator…")
def generator():
    from backend.models import load_role

    return load_role("generator")


@st.cache_data(show_spinner="Generating…", max_entries=16)
def generated(prompt: str, seed: int, steps: int, guidance: float):
    return generator().sample([prompt], steps=steps, guidance=guidance, seed=seed)[0]


@st.cache_data(show_spinner=False, max_entries=16)
def composed(spec: tuple, background: str, seed: int):
    image, mask, stim = compose_stimulus([dict(s) for s in spec], background, seed)
    return image, mask, [o.kind for o in stim.objects]


def image_picker(ws: Workspace, path: str, stamp: float, subject: str, key: str,
                 default_words: str = "face house",
                 default_objects=(("face", "face", "left"), ("place", "house", "right"), (None, None, "top"))
                 ) -> Picked | None:
    """Source radio + the source's widgets (in two columns); the chosen image, or None (with a message)."""
    c = st.columns([2, 3])
    source = c[0].radio("Image", SOURCES, horizontal=True, key=f"{key}_source",
                        help="compose: draw a new image from the demo world's grammar with the objects you choose; "
                      "generate: an image from the configured generator for a prompt")
    with c[1]:
        if source == "from the dataset":
            q = st.text_input("Find images by caption words", default_words, key=f"{key}_q",
                              help="images the subject saw whose captions contain every word")
            try:
                found = find_stimuli(ws, q, subject=subject)
            except (ValueError, LookupError) as exc:  # the backend's InvalidInputError, NotFoundError
                st.error(str(exc))
                return None
            if found.empty:
                st.warning(f"No image of {subject} has a caption with every word of “{q}”.")
                return None
            pick = st.selectbox("Image", found.stim_id.tolist(), key=f"{key}_stim",
                                format_func=lambda i: f"#{i}: {found.set_index('stim_id').caption[i]}")
            return Picked(dataset_image(path, stamp, int(pick)), f"stimulus #{pick}", source,
                          dataset_objects(path, stamp, int(pick)))
        if source == "compose":
            spec = []
            k = st.columns(3)
            for j, (cat0, kind0, place0) in enumerate(default_objects):
                cats = ["(none)"] + list(CATEGORIES)
                cat = k[j].selectbox(f"Object {j + 1}", cats, index=cats.index(cat0 or "(none)"), key=f"{key}_c{j}")
                if cat == "(none)":
                    continue
                kinds = list(KINDS[cat])
                kind = k[j].selectbox("kind", kinds, index=kinds.index(kind0) if kind0 in kinds else 0,
                                      key=f"{key}_k{j}_{cat}", label_visibility="collapsed")
                place = k[j].selectbox("where", list(PLACES), index=list(PLACES).index(place0), key=f"{key}_p{j}",
                                       label_visibility="collapsed")
                spec.append((("category", cat), ("kind", kind), ("place", place)))
            b = st.columns(2)
            background = b[0].selectbox("Background", ["plain", "indoor", "outdoor"], key=f"{key}_bg")
            seed = b[1].number_input("Seed (colours, texture)", 0, 10_000, 0, key=f"{key}_seed")
            if not spec:
                st.warning("Choose at least one object.")
                return None
            try:
                image, mask, kinds_ = composed(tuple(spec), background, int(seed))
            except (ValueError, LookupError) as exc:
                st.error(str(exc))
                return None
            what = ", ".join(f"{dict(o)['kind']} ({dict(o)['place']})" for o in spec)
            return Picked(image, f"{what} on a {background} background (composed)", source, (mask, kinds_))
        if source == "generate":
            g = st.columns([3, 1, 1])
            prompt = g[0].text_input("Prompt", "a face", key=f"{key}_prompt")
            seed = g[1].number_input("Seed", 0, 1_000_000, 0, key=f"{key}_gseed")
            guidance = g[2].number_input("Guidance", 1.0, 10.0, 3.0, 0.5, key=f"{key}_guidance")
            if not prompt.strip():
                st.warning("Type a prompt.")
                return None
            try:
                image = generated(prompt.strip(), int(seed), 50, float(guidance))
            except (ValueError, LookupError, OSError) as exc:  # bad prompt or a generator folder that is missing
                st.error(str(exc))
                return None
            return Picked(image, f"“{prompt.strip()}” (generated, seed {int(seed)})", source)
        up = st.file_uploader("PNG or JPEG", type=["png", "jpg", "jpeg"], key=f"{key}_upload")
        if up is None:
            return None
        try:
            return Picked(load_image_file(up.getvalue(), up.name), up.name, source)
        except (ValueError, LookupError) as exc:  # the backend's InvalidInputError, NotFoundError
            st.error(str(exc))
            return None


__all__ = ["Picked", "image_picker", "dataset_image", "SOURCES"]
