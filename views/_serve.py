"""Start the app's server with the pages' imports already done: ``python -m views._serve [streamlit run options]``.

``streamlit run`` imports a page's modules only when the first browser session runs it, so after every server start
the first visit paid ~1.5-2.5 s of imports (pandas, DuckDB, Altair, matplotlib, the backend) on 2 cores. This
launcher imports them before the server answers its health check, then hands over to Streamlit's own command line
(``streamlit run app.py`` with the given options): the first visit of each page costs what its later visits cost,
plus the reads its caches keep. ``./dev.sh app``, the Dockerfile and the browser tests start the app this way.

It also guards exposure: the app listens on localhost (``.streamlit/config.toml``); ``--server.address`` with a
network address starts only when ``$VOXELSCOPE_PASSWORD`` is set (every session then asks for it, ``app.py``), and
the launcher says on start where the app listens and whether a password guards it.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"


def warm_imports() -> float:
    """Import what the pages import; returns the seconds it took."""
    t0 = time.perf_counter()
    import altair  # noqa: F401 - st.bar_chart
    import duckdb  # noqa: F401
    import matplotlib.cm  # noqa: F401 - colour maps of the surface viewer
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401 - st.dataframe

    import backend.captions  # noqa: F401
    import backend.datasets  # noqa: F401
    import backend.explore  # noqa: F401
    import backend.jobs  # noqa: F401
    import backend.models  # noqa: F401
    import backend.store  # noqa: F401
    import backend.surface  # noqa: F401

    # not the views' own modules: their st.cache_data functions must be created inside the running server
    return time.perf_counter() - t0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listen_address(argv: list[str]) -> str:
    """The address the server will listen on: ``--server.address`` (``X`` or ``=X``), else the config's localhost."""
    for i, a in enumerate(argv):
        if a == "--server.address" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--server.address="):
            return a.split("=", 1)[1]
    return "127.0.0.1"


def exposure_check(argv: list[str]) -> str:
    """Refuse a network address without ``$VOXELSCOPE_PASSWORD``; returns the line to print on start."""
    address = listen_address(argv)
    if address in LOOPBACK:
        return f"VoxelScope: listening on {address} only (this machine); no password needed"
    if not os.environ.get("VOXELSCOPE_PASSWORD"):
        raise SystemExit(f"VoxelScope: refusing to serve on the network address {address!r} without a password: set "
                         "VOXELSCOPE_PASSWORD (every browser session will ask for it), or serve on 127.0.0.1 and "
                         "reach it through an SSH tunnel")
    return (f"VoxelScope: listening on {address} (reachable from the network); every session needs the password "
            "in $VOXELSCOPE_PASSWORD")


def main(argv: list[str]) -> int:
    from streamlit.web import cli

    print(exposure_check(argv), flush=True)
    print(f"VoxelScope: pages' modules imported in {warm_imports():.1f} s", flush=True)
    sys.argv = ["streamlit", "run", str(APP), *argv]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
