"""The cortical surface viewer component (components v2) and its cached inputs.

The JavaScript bundle (three.js, built from ``frontend/viewer``) and the geometry files are served by
Streamlit's static file serving from ``static/`` (see ``.streamlit/config.toml``): the browser caches them,
so each rerun sends only the overlay message (``backend.surface.viewer_message``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
BUNDLE = STATIC / "viewer" / "viewer.js"
CACHE = STATIC / "cache"
STATIC_URL = "/app/static/cache/"


@st.cache_resource(show_spinner=False)
def _component():
    if not BUNDLE.exists():
        raise FileNotFoundError(f"{BUNDLE} is missing: build it with `npm ci && npm run build` in frontend/viewer")
    version = hashlib.sha1(BUNDLE.read_bytes()).hexdigest()[:10]
    # The inline loader starts fetching the geometry named in the message while the bundle loads.
    loader = (
        "const G = (window.__voxelscope ||= {});\n"
        "G.raw ||= new Map(); G.paints ||= []; G.viewers ||= [];\n"
        "function prefetch(data) {\n"
        "  try {\n"
        "    const u8 = data instanceof Uint8Array ? data : new Uint8Array(data);\n"
        "    const n = new DataView(u8.buffer, u8.byteOffset, u8.byteLength).getUint32(0, true);\n"
        "    const h = JSON.parse(new TextDecoder().decode(u8.subarray(4, 4 + n)));\n"
        "    for (const url of [h.mesh.topo, h.mesh.positions]) {\n"
        "      if (!G.raw.has(url)) G.raw.set(url, fetch(url).then((r) => {\n"
        "        if (!r.ok) throw new Error(url + ': HTTP ' + r.status);\n"
        "        return r.arrayBuffer(); }));\n"
        "    }\n"
        "  } catch (e) { /* the viewer reports bad messages */ }\n"
        "}\n"
        "let mod;\n"
        "export default async function (args) {\n"
        "  prefetch(args.data);\n"
        f"  mod ||= await import(new URL('/app/static/viewer/viewer.js?v={version}', window.location.origin).href);\n"
        "  return mod.default(args);\n"
        "}\n")
    return st.components.v2.component("voxelscope_surface", js=loader, html="")


@st.cache_resource(show_spinner=False)
def surface_and_files(ws_path: str, stamp: float):
    """(Surface, mesh file names) of a workspace's surface space; files written once into static/cache."""
    from backend.store import Workspace
    from backend.surface import workspace_surface, write_mesh_files

    surface = workspace_surface(Workspace(ws_path))
    return surface, write_mesh_files(surface, CACHE)


def surface_viewer(message: bytes, key: str, on_pick):
    """Mount the viewer; ``on_pick`` runs when the user clicks a vertex (``st.session_state[key].pick``)."""
    return _component()(data=message, key=key, on_pick_change=on_pick, height="content")
