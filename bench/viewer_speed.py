"""Cortex viewer speed in headless Chromium: first paint, overlay change, bytes sent to the browser.

Two mesh sizes: fsaverage5 (20,484 vertices) and an ico7 mesh made by subdividing fsaverage5's icosahedral
sphere twice (327,684 vertices: the size of full fsaverage, the space NSD betas come in). Each runs in a small
Streamlit harness that mounts the same viewer component as the Cortex explorer, with overlays that have a
value at every vertex (the worst case for transfer). ``--app`` also times the real explorer page on the
workspace (fsaverage5 demo world).

    .venv/bin/python bench/viewer_speed.py [--app] [--repeats 3]

Prints, per mesh: time from navigation to the first painted surface (cold browser cache, fresh profile),
the same with a warm HTTP cache, the time from choosing another overlay to its paint, and the bytes received:
HTTP bodies by kind (Streamlit's own frontend, the viewer bundle, geometry files) and WebSocket messages.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import chromium_page, streamlit_server, wait_for_app  # noqa: E402

HARNESS = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {root!r})
    import numpy as np
    import streamlit as st

    from backend.surface import HEMIS, load_fsaverage5
    from backend.surface import Overlay
    from backend.surface.wire import subdivide, write_mesh_files
    from backend.surface.viewer import viewer_message
    from views._surface import CACHE, STATIC_URL, surface_viewer

    st.set_page_config(layout="wide")
    level = int(os.environ["VS_BENCH_LEVEL"])

    @st.cache_resource
    def mesh(level):
        s = load_fsaverage5()
        s = subdivide(s, level) if level else s
        return s, write_mesh_files(s, CACHE)

    surface, files = mesh(level)

    @st.cache_data
    def values(name, level):
        out = {{}}
        for h in HEMIS:
            xyz = surface[h].sphere
            if name == "smooth":
                out[h] = np.sin(xyz[:, 0] / 15) * np.cos(xyz[:, 1] / 20) + xyz[:, 2] / 100
            else:
                out[h] = np.random.default_rng(1).normal(size=xyz.shape[0])
        return out

    name = st.selectbox("Overlay", ["smooth", "random"])
    ov = Overlay(name, name, values(name, level), cmap="viridis")
    rois = Overlay("rois", "ROIs", {{h: np.zeros(surface.n_vertices[h]) for h in HEMIS}})
    st.write(f"{{sum(surface.n_vertices.values()):,}} vertices")
    msg = viewer_message(surface, files, STATIC_URL, ov, rois, view="lateral", labels=False)
    surface_viewer(msg, key="bench_viewer", on_pick=lambda: None)
''')


class Traffic:
    """Bytes received, from Chrome's network events (encoded sizes, as sent on the wire)."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.urls, self.http, self.ws = {}, {}, 0
        self.cdp.on("Network.responseReceived", lambda e: self.urls.__setitem__(e["requestId"], e["response"]["url"]))
        self.cdp.on("Network.loadingFinished", self._done)
        self.cdp.on("Network.webSocketFrameReceived", self._frame)

    def _done(self, e):
        self.http[e["requestId"]] = e["encodedDataLength"]

    def _frame(self, e):
        p = e["response"]
        data = p.get("payloadData", "")
        self.ws += len(data) * 3 // 4 if p.get("opcode") == 2 else len(data.encode())

    def summary(self) -> dict:
        kinds = {"streamlit frontend": 0, "viewer bundle": 0, "geometry files": 0, "other": 0}
        for rid, n in self.http.items():
            url = self.urls.get(rid, "")
            if "/app/static/viewer/" in url:
                kinds["viewer bundle"] += n
            elif "/app/static/cache/" in url:
                kinds["geometry files"] += n
            elif "/static/" in url or url.endswith("/") or "_stcore" in url or "explorer" in url:
                kinds["streamlit frontend"] += n
            else:
                kinds["other"] += n
        kinds["websocket messages"] = self.ws
        return kinds


def first_paint(page, url: str) -> float:
    page.goto(url)
    page.wait_for_function("() => window.__voxelscope && window.__voxelscope.paints.length > 0", timeout=120_000)
    return page.evaluate("() => window.__voxelscope.paints[0].t") / 1000  # since navigation start


def overlay_change(page, option: str) -> float:
    old = page.evaluate("() => { const p = window.__voxelscope.paints; return p[p.length - 1].overlay_id; }")
    page.locator("[data-testid='stSelectbox']").filter(has_text="Overlay").first.click()
    page.evaluate("() => { window.__bench_t0 = performance.now(); }")
    page.locator("[role='option']").filter(has_text=option).first.click()
    page.wait_for_function("(id) => { const p = window.__voxelscope.paints; return p[p.length - 1].overlay_id !== id; }",
                           arg=old, timeout=60_000)
    return page.evaluate("() => { const p = window.__voxelscope.paints; return p[p.length - 1].t - window.__bench_t0; }") / 1000


def measure(url: str, options: tuple[str, str], repeats: int) -> dict:
    cold, warm, change, traffic = [], [], [], None
    for i in range(repeats):
        with chromium_page(1400, 1000) as page:
            t = Traffic(page)
            cold.append(first_paint(page, url))
            wait_for_app(page)
            if i == 0:
                traffic = t.summary()
            for k in range(2):
                change.append(overlay_change(page, options[k % 2]))
                wait_for_app(page)
            warm.append(first_paint(page, url))  # same profile: geometry and bundle from the HTTP cache
    return {"cold": cold, "warm": warm, "change": change, "traffic": traffic}


def report(title: str, res: dict) -> None:
    med = statistics.median
    print(f"\n{title}")
    print(f"  first paint, cold cache: median {med(res['cold']):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in res['cold'])})")
    print(f"  first paint, warm cache: median {med(res['warm']):.2f} s")
    print(f"  overlay change -> paint: median {med(res['change']):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in res['change'])})")
    tr = res["traffic"]
    viewer = tr["viewer bundle"] + tr["geometry files"] + tr["websocket messages"]
    print("  bytes received for the first view (cold): " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in tr.items()))
    print(f"  viewer total (bundle + geometry + websocket messages): {viewer / 1e6:.2f} MB; "
          f"with Streamlit's own frontend: {(viewer + tr['streamlit frontend'] + tr['other']) / 1e6:.2f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--app", action="store_true", help="also time the real Cortex explorer on the workspace")
    ap.add_argument("--no-harness", action="store_true", help="only the explorer page (with --app)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        harness = Path(tmp) / "harness.py"
        harness.write_text(HARNESS.format(root=str(ROOT)))
        (Path(tmp) / "static").symlink_to(ROOT / "static")
        (Path(tmp) / ".streamlit").symlink_to(ROOT / ".streamlit")
        for level, name in () if args.no_harness else ((0, "fsaverage5 (20,484 vertices)"),
                                                       (2, "ico7 = fsaverage size (327,684 vertices)")):
            os.environ["VS_BENCH_LEVEL"] = str(level)
            with streamlit_server(ROOT / "workspace", script=harness) as url:
                with chromium_page() as page:  # warm the server: mesh files written, caches filled
                    first_paint(page, url)
                report(f"{name}, harness", measure(url, ("random", "smooth"), args.repeats))
    if args.app:
        from backend.store import default_workspace

        with streamlit_server(default_workspace()) as url:
            with chromium_page() as page:
                first_paint(page, f"{url}/explorer")
            report("fsaverage5, Cortex explorer page (demo world)",
                   measure(f"{url}/explorer", ("Noise ceiling", "ROIs"), args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
