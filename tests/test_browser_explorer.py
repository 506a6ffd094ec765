"""The cortex explorer in headless Chromium: the surface paints, overlays recolour it, a click opens the
voxel card of the vertex under the cursor, a concept query draws its map, a permalink restores the view."""
import re

import numpy as np
import pytest

from tests.browser import chromium_page, streamlit_server, wait_for_app

pytestmark = pytest.mark.browser
FACE_ROIS = ("FFA-1", "FFA-2", "OFA")


def wait_painted(page, timeout=60_000):
    page.wait_for_function("() => window.__voxelscope && window.__voxelscope.paints.length > 0", timeout=timeout)


def last_paint(page):
    return page.evaluate("() => { const p = window.__voxelscope.paints; return p[p.length - 1]; }")


def wait_new_paint(page, old_overlay_id, timeout=30_000):
    page.wait_for_function("(id) => { const p = window.__voxelscope.paints; return p.length && "
                           "p[p.length - 1].overlay_id !== id; }", arg=old_overlay_id, timeout=timeout)


def choose(page, label, option):
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click(timeout=10_000)
    page.locator("[role='option']").filter(has_text=re.compile(f"^{re.escape(option)}")).first.click()


def colour(page, hemi, vertex):
    return page.evaluate(f"() => window.__voxelscope.viewers[0].vertexColour('{hemi}', {vertex})")


def project(page, hemi, vertex):
    return page.evaluate(f"() => window.__voxelscope.viewers[0].project('{hemi}', {vertex})")


def face_vertex(ws, subject="subj01"):
    """A well-modelled face voxel that faces the camera in the default (ventral) view."""
    df = ws.query("SELECT v.hemi, v.vertex, v.roi FROM voxels v JOIN voxel_encoding e USING (subject, voxel) "
                  f"WHERE v.subject = '{subject}' AND v.roi IN {FACE_ROIS} ORDER BY e.r2_nc DESC")
    return df


@pytest.fixture(scope="module")
def app(fitted_world):
    ws = fitted_world[0]
    with streamlit_server(ws.path) as url:
        yield ws, url


def test_explorer_paints_switches_overlays_and_opens_the_voxel_card_on_click(app, tmp_path):
    ws, url = app
    with chromium_page(1400, 1100) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/explorer")
        wait_for_app(page, 120_000)
        wait_painted(page)
        n = page.evaluate("() => window.__voxelscope.viewers[0].msg.h.n")
        assert n == {"lh": 10242, "rh": 10242}
        # the canvas is not blank: many distinct colours drawn
        shot = page.locator("canvas").first.screenshot()
        from io import BytesIO

        from PIL import Image

        img = np.asarray(Image.open(BytesIO(shot)).convert("RGB"))
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200

        cands = face_vertex(ws)
        for row in cands.itertuples():
            p = project(page, row.hemi, int(row.vertex))
            if p["visible"] and colour(page, row.hemi, int(row.vertex)) != [20, 20, 20]:  # not on an outline
                break
        else:
            pytest.fail("no face voxel visible in the ventral view")
        rois_colour = colour(page, row.hemi, int(row.vertex))

        # overlay switch: the same vertex changes colour, the colour bar names the overlay
        before = last_paint(page)["overlay_id"]
        choose(page, "Overlay", "Noise ceiling")
        wait_new_paint(page, before)
        assert colour(page, row.hemi, int(row.vertex)) != rois_colour
        assert "Noise ceiling" in page.locator(".vs-colourbar").inner_text()

        # click the vertex: the card of that vertex (or a neighbour under the same pixel) opens
        p = project(page, row.hemi, int(row.vertex))
        page.mouse.click(p["x"], p["y"])
        heading = page.locator("h3").filter(has_text=" vertex ")
        heading.first.wait_for(timeout=60_000)
        wait_for_app(page)
        text = heading.first.inner_text()
        m = re.search(r"(lh|rh) vertex (\d+)", text)
        assert m and m.group(1) == row.hemi
        picked = int(m.group(2))
        hemi = __import__("backend.surface", fromlist=["x"]).workspace_surface(ws)[row.hemi]
        near = np.linalg.norm(hemi.inflated[picked] - hemi.inflated[int(row.vertex)])
        assert near < 8.0, (picked, int(row.vertex), near)  # within a mesh step or two (mm, inflated)
        assert any(r in text for r in FACE_ROIS)
        page.get_by_text("Top images (measured)").first.wait_for()
        assert f"vertex={row.hemi}%3A{picked}" in page.url or f"vertex={row.hemi}:{picked}" in page.url
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        assert not errors, errors


def test_concept_query_draws_its_map_and_a_permalink_restores_the_view(app):
    ws, url = app
    cands = face_vertex(ws)
    with chromium_page(1400, 1100) as page:
        page.goto(f"{url}/explorer?overlay=concept")
        wait_for_app(page, 120_000)
        wait_painted(page)
        before = last_paint(page)["overlay_id"]
        box = page.get_by_label("Concept", exact=True).and_(page.locator("input"))
        box.fill("a smiling face")
        box.press("Enter")
        wait_new_paint(page, before, 60_000)
        wait_for_app(page)
        assert "a smiling face" in page.locator(".vs-colourbar").inner_text()
        # face voxels are drawn red (positive) far more often than blue
        drawn = [colour(page, row.hemi, int(row.vertex)) for row in cands.head(30).itertuples()]
        drawn = [c for c in drawn if c != [20, 20, 20]]  # skip vertices on ROI outlines
        assert len(drawn) >= 5
        assert np.mean([r > b for r, g, b in drawn]) >= 0.7, drawn
        link = page.url
        assert "q=a+smiling+face" in link or "q=a%20smiling%20face" in link

    v = cands.iloc[0]
    with chromium_page(1400, 1100) as page:
        page.goto(f"{url}/explorer?subject=subj01&overlay=r2_nc&view=lateral&hemi=rh&vertex={v.hemi}:{v.vertex}")
        wait_for_app(page, 120_000)
        wait_painted(page)
        h = page.evaluate("() => window.__voxelscope.viewers[0].msg.h")
        assert h["view"] == "lateral" and h["hemi"] == "rh"
        assert h["selected"] == {"hemi": v.hemi, "vertex": int(v.vertex)}
        assert "R² / noise ceiling" in h["overlay"]["label"]
        page.locator("h3").filter(has_text=f"{v.hemi} vertex {v.vertex}").first.wait_for(timeout=60_000)
        # the viewer shows only the right hemisphere
        assert page.evaluate("() => [window.__voxelscope.viewers[0].groups.lh.visible, "
                             "window.__voxelscope.viewers[0].groups.rh.visible]") == [False, True]


def test_words_and_food_light_up_their_rois_and_a_list_draws_which_concept_wins(app):
    """Issue 15: "a word" and "some food" (the demo world's own words) paint the word and food ROIs of the two
    subjects red (a positive predicted response), from a permalink; a list of concepts draws a winner-take-all
    map with a legend that names them."""
    ws, url = app
    cases = [("subj01", "a word", "floc-words"), ("subj02", "some food", "food"), ("subj01", "some food", "food"),
             ("subj02", "a word", "floc-words")]
    with chromium_page(1400, 1100) as page:
        for subject, query, file in cases:
            page.goto(f"{url}/explorer?subject={subject}&overlay=concept&q={query.replace(' ', '+')}")
            wait_for_app(page, 120_000)
            wait_painted(page)
            page.locator(".vs-colourbar").filter(has_text=query).wait_for(timeout=60_000)
            roi = ws.query(f"SELECT v.hemi, v.vertex FROM voxels v JOIN voxel_encoding e USING (subject, voxel) "
                           f"WHERE v.subject = '{subject}' AND v.\"{file}\" IS NOT NULL ORDER BY e.r2_nc DESC")
            drawn = [colour(page, r.hemi, int(r.vertex)) for r in roi.head(30).itertuples()]
            drawn = [c for c in drawn if c != [20, 20, 20]]  # (vertices on ROI outlines)
            assert len(drawn) >= 5, (subject, query)
            assert np.mean([r > b + 20 for r, g, b in drawn]) >= 0.7, (subject, query, drawn)
        page.goto(f"{url}/explorer?subject=subj01&overlay=concept&q=a+face,+a+house,+a+word")
        wait_for_app(page, 120_000)
        wait_painted(page)
        page.locator(".vs-colourbar").filter(has_text="a house").wait_for(timeout=60_000)
        legend = page.locator(".vs-colourbar").inner_text()
        assert all(name in legend for name in ("a face", "a house", "a word")), legend
        assert page.locator("[data-testid='stException']").count() == 0
