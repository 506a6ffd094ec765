"""Exposure: the app listens on localhost unless told otherwise; a network address needs an OIDC sign-in (only allowed
accounts get in) or a password, which every session must type; uploads have a size limit."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def test_the_served_app_listens_on_localhost_with_an_upload_limit_by_default():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert cfg["address"] == "127.0.0.1" and cfg["maxUploadSize"] <= 25
    from views._serve import exposure_check

    assert "127.0.0.1 only" in exposure_check(["--server.port", "8501"])


def test_a_network_address_without_a_password_is_refused_before_the_server_starts(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "VOXELSCOPE_PASSWORD"}
    out = subprocess.run([sys.executable, "-m", "views._serve", "--server.headless", "true", "--server.port", "1",
                          "--server.address", "0.0.0.0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "refusing to serve on the network address '0.0.0.0' without a password" in out.stderr
    assert "VOXELSCOPE_PASSWORD" in out.stderr


def test_with_a_password_every_session_must_type_it_first(monkeypatch, fitted_world):
    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(fitted_world[0].path))
    monkeypatch.setenv("VOXELSCOPE_PASSWORD", "s3cret pass")
    from views._serve import exposure_check

    assert "every session needs the password" in exposure_check(["--server.address=0.0.0.0"])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Password"] and not at.selectbox  # nothing of the app yet
    assert [t.value for t in at.title] == ["VoxelScope · sign in"]
    at.text_input(key="vs_password").input("guess")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error) and not at.selectbox
    at.text_input(key="vs_password").input("s3cret pass")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert "Password" not in [t.label for t in at.text_input]
    assert [t.value for t in at.title] == ["VoxelScope"]  # the home page


OIDC = {"redirect_uri": "https://voxelscope.lab.org/oauth2callback", "cookie_secret": "a long random string",
        "client_id": "voxelscope", "client_secret": "not a real secret",
        "server_metadata_url": "https://login.lab.org/.well-known/openid-configuration"}


def test_an_oidc_sign_in_in_the_secrets_file_allows_a_network_address(tmp_path, monkeypatch):
    from views._serve import email_allowed, exposure_check, oidc_configured

    monkeypatch.delenv("VOXELSCOPE_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)
    assert oidc_configured([tmp_path / ".streamlit" / "secrets.toml"]) is None
    (tmp_path / ".streamlit").mkdir()
    lines = "\n".join(f'{k} = "{v}"' for k, v in OIDC.items() if k != "client_id")
    (tmp_path / ".streamlit" / "secrets.toml").write_text("[auth]\n" + lines + "\n")  # no client: not a sign-in
    assert oidc_configured([tmp_path / ".streamlit" / "secrets.toml"]) is None
    (tmp_path / ".streamlit" / "secrets.toml").write_text("[auth]\n" + lines + '\nclient_id = "voxelscope"\n')
    monkeypatch.setenv("VOXELSCOPE_ALLOWED_EMAILS", "@lab.org, guest@uni.edu")
    line = exposure_check(["--server.address", "0.0.0.0"])
    assert "signs in through OIDC (https://login.lab.org/" in line and "@lab.org, guest@uni.edu" in line
    assert email_allowed("Ana@Lab.org", "@lab.org, guest@uni.edu") and email_allowed("guest@uni.edu", "@lab.org") is False
    assert not email_allowed("mallory@evil.org", "@lab.org, guest@uni.edu") and not email_allowed("", "@lab.org")
    assert not email_allowed("x@notlab.org.evil", "@lab.org") and email_allowed("anyone@x.y", "")


def test_with_oidc_every_session_signs_in_and_only_allowed_accounts_get_in(monkeypatch, fitted_world):
    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(fitted_world[0].path))
    monkeypatch.setenv("VOXELSCOPE_ALLOWED_EMAILS", "@lab.org")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.secrets["auth"] = OIDC
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception and not at.selectbox  # nothing of the app before signing in
    assert [t.value for t in at.title] == ["VoxelScope · sign in"] and [b.label for b in at.button] == ["Sign in"]
    at.user = {"is_logged_in": True, "email": "mallory@evil.org"}
    at.run()
    assert [t.value for t in at.title] == ["VoxelScope · no access"] and not at.selectbox
    assert any("mallory@evil.org may not open" in e.value for e in at.error)
    at.user = {"is_logged_in": True, "email": "ana@lab.org", "name": "Ana"}
    at.run()
    assert not at.exception and not at.error
    assert [t.value for t in at.title] == ["VoxelScope"]  # the home page
    assert any("Signed in as ana@lab.org" in c.value for c in at.sidebar.caption)
