"""Start the app's server with the pages' imports already done: ``python -m views._serve [streamlit run options]``.

``streamlit run`` imports a page's modules only when the first browser session runs it, so after every server start
the first visit paid ~1.5-2.5 s of imports (pandas, DuckDB, Altair, matplotlib, the backend) on 2 cores. This
launcher imports them before the server answers its health check, then hands over to Streamlit's own command line
(``streamlit run app.py`` with the given options): the first visit of each page costs what its later visits cost,
plus the reads its caches keep. ``./dev.sh app``, the Dockerfile and the browser tests start the app this way.

It also guards exposure: the app listens on localhost (``.streamlit/config.toml``); ``--server.address`` with a
network address starts only with an OIDC sign-in configured (``[auth]`` in ``.streamlit/secrets.toml``: every
session signs in, ``views/_auth.py``) or ``$VOXELSCOPE_PASSWORD`` set (every session asks for it), and the launcher
says on start where the app listens and what guards it.
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


def secrets_files() -> list[Path]:
    """Where Streamlit reads secrets by default: the user's ``~/.streamlit/secrets.toml``, then the working folder's."""
    return [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml"]


def oidc_client(auth) -> tuple[str, dict] | None:
    """The sign-in client an ``[auth]`` secrets section configures for Streamlit's ``st.login``: (provider name, its
    settings), the name '' for a client given directly under ``[auth]``, the first ``[auth.NAME]`` otherwise; None
    without ``redirect_uri``, ``cookie_secret`` and a ``client_id``."""
    if not auth or "redirect_uri" not in auth or "cookie_secret" not in auth:
        return None
    if "client_id" in auth:
        return "", auth
    return next(((name, v) for name, v in auth.items() if hasattr(v, "get") and "client_id" in v), None)


def oidc_configured(files: list[Path] | None = None) -> str | None:
    """The OIDC issuer (its ``server_metadata_url``) when a secrets file configures a sign-in (:func:`oidc_client`),
    else None."""
    import tomllib

    for f in files if files is not None else secrets_files():
        try:
            client = oidc_client(tomllib.loads(f.read_text()).get("auth"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if client:
            return str(client[1].get("server_metadata_url", "an OIDC provider"))
    return None


def email_allowed(email: str, allowed: str) -> bool:
    """Whether ``email`` is in ``allowed`` (comma-separated addresses and ``@domain`` entries; empty: everyone)."""
    entries = [e.strip().lower() for e in allowed.split(",") if e.strip()]
    if not entries:
        return True
    email = email.strip().lower()
    return bool(email) and any(email == e or (e.startswith("@") and email.endswith(e)) for e in entries)


def exposure_check(argv: list[str]) -> str:
    """Refuse a network address without an OIDC sign-in or ``$VOXELSCOPE_PASSWORD``; returns the line to print on
    start."""
    address = listen_address(argv)
    if address in LOOPBACK:
        return f"VoxelScope: listening on {address} only (this machine); no password needed"
    issuer = oidc_configured()
    if issuer:
        who = os.environ.get("VOXELSCOPE_ALLOWED_EMAILS", "")
        return (f"VoxelScope: listening on {address} (reachable from the network); every session signs in through "
                f"OIDC ({issuer})" + (f", accounts allowed: {who}" if who else ", any account of that provider"))
    if not os.environ.get("VOXELSCOPE_PASSWORD"):
        raise SystemExit(f"VoxelScope: refusing to serve on the network address {address!r} without a password or a "
                         "sign-in: set VOXELSCOPE_PASSWORD (every browser session will ask for it), or configure an "
                         "OIDC sign-in ([auth] in .streamlit/secrets.toml, see the README), or serve on 127.0.0.1 and "
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
