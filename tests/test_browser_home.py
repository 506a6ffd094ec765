"""The home page in headless Chromium: what a newcomer sees after the run command."""
import pytest

from tests.browser import chromium_page, streamlit_server, wait_for_app

pytestmark = pytest.mark.browser


def test_home_page_renders_in_chromium_with_images_and_roi_map(tiny_ws, tmp_path):
    with streamlit_server(tiny_ws.path) as url, chromium_page(1400, 2200) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        wait_for_app(page, 120_000)
        page.wait_for_selector("text=Loaded: synthetic demo world", timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length >= 13", timeout=60_000)
        assert page.locator("[data-testid='stMetricValue']").first.inner_text() == "2"
        assert page.locator("text=Traceback").count() == 0
        assert page.locator("[data-testid='stException']").count() == 0
        # the ROI map is the widest image on the page and it is not blank
        widths = page.eval_on_selector_all("[data-testid='stImage'] img", "els => els.map(e => e.naturalWidth)")
        assert max(widths) >= 1000
        page.screenshot(path=str(tmp_path / "home.png"), full_page=True)
        assert not errors, errors


def test_first_start_shows_the_home_page_with_moving_progress_while_the_world_builds(tmp_path):
    """A fresh workspace: the app answers at once, the home page shows the preparation checklist with progress that
    moves by itself, and fills in with the world once the world job is done (the page was never reloaded)."""
    import re
    import subprocess
    import sys
    import time

    from tests.browser import ROOT

    ws = tmp_path / "ws"
    env_cmd = [sys.executable, "-m", "backend", "--workspace", str(ws)]
    # the tiny world instead of the full one (same jobs, same page); the page starts the worker itself
    subprocess.run(env_cmd + ["jobs", "prepare", "--tiny"], cwd=ROOT, check=True, capture_output=True)
    try:
        with streamlit_server(ws) as url, chromium_page(1400, 1400) as page:
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            t0 = time.time()
            page.goto(url)
            page.wait_for_selector("text=Preparing the demo world", timeout=60_000)
            assert time.time() - t0 < 30
            bar = page.locator("[data-testid='stProgress']").first
            bar.wait_for(timeout=60_000)
            seen = set()
            for _ in range(40):  # progress texts read every 0.5 s for up to 20 s
                if bar.count():
                    try:
                        seen.add(bar.inner_text(timeout=2000))
                    except Exception:  # noqa: BLE001 - the fragment re-rendered under us
                        pass
                if len(seen) >= 3:
                    break
                page.wait_for_timeout(500)
            assert len(seen) >= 3, seen  # the numbers move without a reload
            assert any(re.search(r"Build the demo world — running: .+ [\d,]+ / [\d,]+", s) for s in seen), seen
            page.screenshot(path=str(tmp_path / "first_start.png"), full_page=True)
            # the same page, never reloaded, shows the world once its job is done
            page.wait_for_selector("text=Loaded: synthetic demo world", timeout=240_000)
            assert page.locator("[data-testid='stException']").count() == 0
            assert not errors, errors
    finally:
        subprocess.run(["pkill", "-9", "-f", "--", f"--workspace {ws} jobs worker"])
