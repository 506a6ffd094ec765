"""The cortex explorer page (Streamlit AppTest): URL state, bad links, the voxel card, concept maps."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@pytest.fixture
def explorer(fitted_world, monkeypatch):
    ws = fitted_world[0]
    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(ws.path))

    def open_(**params):
        at = AppTest.from_file(APP, default_timeout=120)
        for k, v in params.items():
            at.query_params[k] = v
        at.switch_page("views/explorer.py")
        return at.run()
    return ws, open_


def _texts(at):
    return " ".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader])


def test_a_permalink_restores_subject_overlay_view_and_selected_voxel(explorer):
    ws, open_ = explorer
    v = ws.query("SELECT hemi, vertex FROM voxels WHERE subject = 'subj02' AND roi = 'FFA-1' LIMIT 1").iloc[0]
    at = open_(subject="subj02", overlay="r2_nc", view="lateral", hemi="rh", surface="pial",
               vertex=f"{v.hemi}:{v.vertex}")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="cx_subject").value == "subj02"
    assert at.selectbox(key="cx_overlay").value == "r2_nc"
    assert at.selectbox(key="cx_view").value == "lateral"
    assert at.selectbox(key="cx_show").value == "rh"
    assert at.selectbox(key="cx_surface").value == "pial"
    assert f"FFA-1 · {v.hemi} vertex {v.vertex}" in _texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Noise ceiling"].endswith("%") and float(metrics["R² / noise ceiling"]) > 0
    # the URL keeps the state
    assert at.query_params["vertex"] == [f"{v.hemi}:{v.vertex}"] or at.query_params["vertex"] == f"{v.hemi}:{v.vertex}"


@pytest.mark.parametrize("params,message", [
    ({"subject": "subj99"}, "Unknown subject `subj99`"),
    ({"overlay": "sparkle"}, "Unknown overlay `sparkle`"),
    ({"view": "sideways"}, "Unknown view `sideways`"),
    ({"vertex": "lh:99999999"}, "Vertex 99999999 does not exist"),
    ({"vertex": "left-123"}, "Bad vertex `left-123`"),
])
def test_bad_links_show_a_clear_message_not_a_traceback(explorer, params, message):
    _, open_ = explorer
    at = open_(**params)
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert message in errors
    assert at.selectbox(key="cx_subject").value == "subj01"  # and the page still works


def test_a_vertex_outside_the_voxels_says_so(explorer):
    ws, open_ = explorer
    used = set(ws.query("SELECT vertex FROM voxels WHERE subject = 'subj01' AND hemi = 'lh'").vertex)
    outside = next(i for i in range(10242) if i not in used)
    at = open_(vertex=f"lh:{outside}")
    assert not at.exception
    assert any("not one of subj01's voxels" in w.value for w in at.warning)


def test_concept_query_maps_and_lists_face_voxels(explorer):
    _, open_ = explorer
    at = open_(overlay="concept", q="a smiling face")
    assert not at.exception, at.exception
    top = at.dataframe[0].value
    assert top.roi.isin(["OFA", "FFA-1", "FFA-2", "aTL-faces", "mTL-faces"]).mean() >= 0.6
    assert at.query_params["q"] in ("a smiling face", ["a smiling face"])
