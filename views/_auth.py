"""Who may open the app when it is served on a network address (see views/_serve.py): an OIDC sign-in (Streamlit's
``st.login``, configured in ``.streamlit/secrets.toml`` under ``[auth]``), else the ``$VOXELSCOPE_PASSWORD`` gate.
``$VOXELSCOPE_ALLOWED_EMAILS`` (addresses and ``@domain`` entries, comma-separated) narrows an OIDC sign-in to those
accounts."""
from __future__ import annotations

import hmac
import os

import streamlit as st

from views._serve import email_allowed, oidc_client


def oidc_provider() -> str | None:
    """The provider name to sign in with ('' for a client given directly under ``[auth]``), or None when the
    secrets configure no sign-in (the same rule as the launcher's, :func:`views._serve.oidc_client`)."""
    try:
        client = oidc_client(st.secrets.get("auth"))
    except Exception:  # noqa: BLE001 - no secrets file, or an unreadable one: no sign-in configured
        return None
    return None if client is None else client[0]


def require_access() -> None:
    """Stop the page (no page, no workspace read) until this session may see the app: signed in through OIDC (and
    allowed) when that is configured, else past the password when ``$VOXELSCOPE_PASSWORD`` is set; else nothing."""
    provider = oidc_provider()
    if provider is None:
        require_password()
        return
    if not st.user.is_logged_in:
        st.title("VoxelScope · sign in")
        st.write("This VoxelScope is shared on a network: sign in with your account to open it.")
        st.button("Sign in" + (f" with {provider}" if provider else ""), type="primary",
                  on_click=st.login, args=(provider,) if provider else ())
        st.stop()
    email = str(st.user.get("email") or "")
    if not email_allowed(email, os.environ.get("VOXELSCOPE_ALLOWED_EMAILS", "")):
        st.title("VoxelScope · no access")
        st.error(f"{email or 'This account'} may not open this VoxelScope: ask whoever runs it to add the address "
                 "(or its @domain) to VOXELSCOPE_ALLOWED_EMAILS.")
        st.button("Sign out", on_click=st.logout)
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {email}")
        st.button("Sign out", on_click=st.logout, key="vs_sign_out")


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
