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


def require_world(ws: Workspace) -> tuple[str, float]:
    """Stop the page with a clear message while another process writes the workspace or before a world exists;
    otherwise (workspace path, db stamp) for the cached reads."""
    if workspace_busy(ws):
        st.warning(f"The workspace `{ws.path}` is being written by another process. Reload this page in a minute.")
        st.stop()
    if not ws.exists:
        st.info("No world loaded yet: open the Home page to build the demo world, or import NSD data "
                "(`python -m backend import nsd ...`).")
        st.stop()
    return str(ws.path), db_stamp(ws)


def db_stamp(ws: Workspace) -> float:
    """Changes whenever a writer commits: part of every cache key, so pages never show stale data."""
    files = (ws.db_path, ws.db_path.with_name(ws.db_path.name + ".wal"))  # (a commit may sit in the WAL file)
    return max((f.stat().st_mtime_ns for f in files if f.exists()), default=0) / 1e9


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


ICONS = {"queued": "⏳", "running": "🔄", "done": "✅", "failed": "❌", "cancelled": "⏹️"}


def preparation_checklist(ws: Workspace, rerun_when_world_ready: bool = False) -> None:
    """The demo world's preparation jobs as a checklist with live progress (updates every 2 s by itself, shown
    while a step is queued or running); reruns the whole page once the world exists if asked to."""
    from backend.jobs import preparation

    prep = preparation(ws)
    if not rerun_when_world_ready and not prep.state.isin(["queued", "running"]).any():
        return  # nothing being prepared: no timer on the page

    @st.fragment(run_every=2)
    def checklist():
        from backend.jobs import cancel, preparation, worker_running

        prep = preparation(ws)
        active = prep[prep.state.isin(["queued", "running"])]
        if rerun_when_world_ready and not workspace_busy(ws) and ws.exists:
            st.rerun()
        if active.empty:
            return
        with st.container(border=True):
            st.markdown("**Preparing the demo world** (background jobs; the pages fill in as each step finishes)")
            for r in prep.itertuples():
                line = f"{ICONS.get(r.state, '')} {r.label} — {r.state}"
                if r.state == "running" and isinstance(r.stage, str) and r.total == r.total and r.total:
                    eta = f", {r.eta_s:.0f} s left" if r.eta_s == r.eta_s and r.eta_s is not None else ""
                    st.progress(min(r.done / r.total, 1.0),
                                text=f"{line}: {r.stage} {r.done:,.0f} / {r.total:,.0f}{eta}")
                else:
                    st.markdown(line + (f": {str(r.error).splitlines()[0]}" if r.state == "failed" else ""))
                if r.state in ("queued", "running"):
                    st.button("Cancel", key=f"cancel_{r.job_id}", on_click=cancel, args=(ws, r.job_id))
            if not worker_running(ws):
                st.warning("No worker is running: start one with `python -m backend jobs worker` (or `./dev.sh app`).")

    checklist()


@st.cache_data(show_spinner=False, ttl=60)
def models_table() -> list[dict]:
    from backend.models import models_summary

    return models_summary()
