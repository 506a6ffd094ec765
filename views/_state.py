"""Shared page helpers: the workspace, cached reads, the page progress bar. No algorithms here."""
from __future__ import annotations

import streamlit as st

from backend.store import Workspace, WorkspaceBusy


def workspace() -> Workspace:
    return Workspace()


def workspace_busy(ws: Workspace) -> bool:
    try:
        ws.exists
    except WorkspaceBusy:
        return True
    return False


def db_stamp(ws: Workspace) -> float:
    """Changes whenever a writer commits: part of every cache key, so pages never show stale data."""
    return ws.db_path.stat().st_mtime if ws.db_path.exists() else 0.0


@st.cache_data(show_spinner=False)
def workspace_info(path: str, stamp: float) -> dict:
    from backend.store import workspace_info as info

    return info(Workspace(path))


@st.cache_data(show_spinner=False)
def sample_stimuli(path: str, stamp: float, n: int, seed: int):
    from backend.datasets import captions, sample_stimulus_ids, stimulus_images

    ws = Workspace(path)
    ids = sample_stimulus_ids(ws, n, seed)
    return ids, stimulus_images(ws, ids, size=192), captions(ws, ids)


@st.cache_data(show_spinner=False)
def roi_map_png(path: str, stamp: float, subject: str) -> bytes:
    from backend.explore import cached_roi_map

    return cached_roi_map(Workspace(path), subject).read_bytes()


def progress_bar():
    """A page progress bar (counts, rate, time left) and the ``progress(stage, done, total)`` callback the
    backend's long jobs report to."""
    from backend.store import Eta

    bar = st.progress(0.0, text="Starting")
    eta = Eta()

    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=eta.text(stage, done, total))

    return bar, progress


def build_demo_with_progress(ws: Workspace) -> None:
    """Build the demo world from the page, with a progress bar (counts, rate, time left)."""
    from backend.datasets.demo import build_demo_world

    bar, progress = progress_bar()
    try:
        summary = build_demo_world(ws, progress=progress)
    except WorkspaceBusy as exc:
        st.warning(f"{exc}. This page will show the world once it is built; reload in a minute.")
        st.stop()
    bar.progress(1.0, text=f"Built in {summary['seconds']} s")


@st.cache_data(show_spinner=False, ttl=60)
def models_table() -> list[dict]:
    from backend.models import models_summary

    return models_summary()
