"""The live panel of a page's background job: progress with ETA, Cancel, an optional preview, and what happened."""
from __future__ import annotations

import json
from typing import Callable

import streamlit as st

from backend.jobs import cancel, get_job, worker_running


def job_panel(ws, job_key: str, show_key: str, noun: str, cancelled: str, label: Callable[[dict], str] | None = None,
              units: str = "", show_kinds: tuple[str, ...] = (), preview: Callable[[dict], None] | None = None) -> None:
    """Follow the job whose id is in ``st.session_state[job_key]`` (refreshed every 1.5 s, the page never waits).
    When it is done, its first run goes to ``st.session_state[show_key]`` (for jobs of ``show_kinds``, or all when
    empty) and the page reruns to show it; a failure or a cancellation is said in words."""
    ss = st.session_state
    job_id = ss.get(job_key)
    if not job_id:
        return

    @st.fragment(run_every=1.5)
    def panel():
        job = get_job(ws, job_id)
        prm = json.loads(job["params"])
        with st.container(border=True):
            if job["state"] in ("queued", "running"):
                head = f"**{label(prm)}**: " if label else ""
                if job["state"] == "queued" or not job.get("total"):
                    st.markdown(f"⏳ {head}{job.get('stage') or 'queued'}…")
                else:
                    eta = job.get("eta_s")
                    eta = f", about {eta:.0f} s left" if eta is not None else ""
                    st.progress(min(job["done"] / job["total"], 1.0),
                                text=f"{job['stage']}: {job['done']:,.0f} / {job['total']:,.0f}"
                                     f"{' ' + units if units else ''}{eta}")
                st.button("Cancel", key=f"{job_key}_cancel_{job_id}", on_click=cancel, args=(ws, job_id))
                if preview:
                    preview(prm)
                if not worker_running(ws):
                    st.warning("No worker is running: start one with `python -m backend jobs worker` (or `./dev.sh app`).")
            elif job["state"] == "done":
                if not show_kinds or job["kind"] in show_kinds:
                    ss[show_key] = json.loads(job["runs"])[0]
                ss[job_key] = None
                st.rerun()
            elif job["state"] == "failed":
                st.error(f"The {noun} failed: {str(job['error']).splitlines()[0]}")
            else:
                st.info(f"The {noun} was cancelled; {cancelled}")

    panel()


def show_finished_run(show_key: str, pick_key: str, ids: list[str]) -> None:
    """Point the run picker (``st.session_state[pick_key]``) at the run a finished job (or a link) put in
    ``show_key``, once the page's run list ``ids`` holds it (the list is cached: it may not yet); drop a pick that
    is no longer in the list."""
    ss = st.session_state
    if ss.get(show_key) in ids:
        ss[pick_key] = ss.pop(show_key)
    if ss.get(pick_key) not in ids:
        ss.pop(pick_key, None)
