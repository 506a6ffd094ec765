"""The password gate of an app served on a network address (``$VOXELSCOPE_PASSWORD``; see views/_serve.py)."""
from __future__ import annotations

import hmac
import os

import streamlit as st


def require_password() -> None:
    """Without ``$VOXELSCOPE_PASSWORD``: nothing. With it: until this session has typed it, show a password box and
    stop the page (no page, no workspace read)."""
    secret = os.environ.get("VOXELSCOPE_PASSWORD")
    if not secret or st.session_state.get("vs_authed"):
        return
    st.title("VoxelScope · sign in")
    with st.form("login"):
        typed = st.text_input("Password", type="password", key="vs_password")
        sent = st.form_submit_button("Open")
    if sent:
        if hmac.compare_digest(typed.encode(), secret.encode()):
            st.session_state.vs_authed = True
            st.session_state.pop("vs_password", None)
            st.rerun()
        st.error("Wrong password.")
    st.stop()
