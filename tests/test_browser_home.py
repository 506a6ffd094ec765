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
