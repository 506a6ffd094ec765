"""The attention encoder (Adeli et al.): routing, storage, determinism, and attention held to the world's masks."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from backend.attention import (accuracy_vs_ridge, attention_ground_truth, attention_maps, centre_of_mass,
                               dense_maps, expected_quadrant, to_distribution)
from backend.encoders.attention import (AttentionConfig, _build, fit_attention_encoder, load_attention_encoder,
                                        voxel_queries)
from backend.errors import InvalidInputError
from tests.tiny import open_page

FAST = AttentionConfig(d_model=32, heads=2, ffn=64, max_epochs=6, patience=3, seed=0)


def test_queries_follow_rois_hemispheres_streams_and_small_rois():
    vox = pd.DataFrame({"hemi": ["lh", "lh", "rh", "rh", "lh", "lh"],
                        "roi": ["FFA-1", "FFA-1", "FFA-1", "V1v", None, "VWFA-2"]})
    names, idx = voxel_queries(vox, "rois")
    assert [names[i] for i in idx] == ["FFA-1 lh", "FFA-1 lh", "FFA-1 rh", "V1v rh", "outside ROIs lh", "VWFA-2 lh"]
    names, idx = voxel_queries(vox, "streams")
    assert [names[i] for i in idx] == ["ventral lh", "ventral lh", "ventral rh", "early rh", "outside ROIs lh",
                                       "ventral lh"]
    names, idx = voxel_queries(vox, "voxels", voxel_query_max=1)  # ROIs of one voxel get a query per voxel
    assert names[idx[0]] == names[idx[1]] == "FFA-1 lh" and names[idx[5]] == "VWFA-2 lh #5"
    with pytest.raises(InvalidInputError, match="query mode"):
        voxel_queries(vox, "pixels")


def test_a_voxel_reads_only_its_own_rois_token():
    torch.manual_seed(0)
    qidx = np.array([0, 0, 1, 2, 2, 2])
    model = _build(12, 3, qidx, (4, 4), AttentionConfig(d_model=16, heads=2, ffn=32, dropout=0.0)).eval()
    x = torch.randn(5, 16, 12)
    pred, attn = model(x)
    assert pred.shape == (5, 6) and attn[0].shape == (5, 2, 3, 16)
    assert torch.allclose(attn[0].sum(-1), torch.ones(5, 2, 3), atol=1e-5)  # a distribution over the patches
    with torch.no_grad():
        model.query[1] += 1.0  # change what query 1 asks: only its voxel (index 2) may change
    pred2, _ = model(x)
    changed = (pred2 - pred).abs().amax(0) > 1e-6
    assert changed.tolist() == [False, False, True, False, False, False]


def test_bad_configurations_are_refused_with_the_field_named():
    with pytest.raises(InvalidInputError, match="d_model"):
        AttentionConfig(d_model=30, heads=4).check()
    with pytest.raises(InvalidInputError, match="query_mode"):
        AttentionConfig(query_mode="pixels").check()


@pytest.fixture(scope="module")
def attention_world(tiny_ws, tmp_path_factory):
    """The tiny world with the shipped embedder's patch tokens, ridge encoders, and an attention encoder of subj01."""
    from backend.encoders import fit_encoders
    from backend.encoders.features import stimulus_patch_tokens
    from backend.models import load_role, model_config
    from backend.store import Workspace

    ws = Workspace(tmp_path_factory.mktemp("att") / "ws")
    shutil.copytree(tiny_ws.path, ws.path)
    fit_encoders(ws, ["subj01"])
    cfg = model_config()
    emb = load_role("embedder", config=cfg)
    tokens, key = stimulus_patch_tokens(ws, emb, cfg["embedder"]["path"])
    summary = fit_attention_encoder(ws, "subj01", tokens, key, emb.model_id, emb.patch_grid, FAST)
    return ws, emb, tokens, key, summary


def test_the_encoder_is_stored_with_its_run_and_reloads_to_the_same_predictions(attention_world):
    ws, emb, tokens, key, summary = attention_world
    run = ws.query("SELECT method, parameters, seed FROM runs WHERE run_id = ?", [summary["run"]]).iloc[0]
    assert run.method == "encoder-attention" and run.seed == 0 and '"query_mode": "rois"' in run.parameters
    enc = load_attention_encoder(ws, "subj01")
    assert enc.info["run"] == summary["run"] and enc.grid == emb.patch_grid
    vox = ws.query("SELECT count(*) AS n FROM voxels WHERE subject = 'subj01'").n.iloc[0]
    stored = ws.query("SELECT r_test FROM voxel_encoding WHERE subject = 'subj01' AND feature_key = ? ORDER BY voxel",
                      [f"attention:{key}"])
    assert len(stored) == vox
    # the reloaded encoder reproduces the stored test accuracy
    from backend.encoders import design_matrices, pearson_columns

    _, _, Xte, Yte, _ = design_matrices(ws, "subj01", tokens)
    r = pearson_columns(Yte, enc.predict(np.asarray(Xte, np.float32)))
    assert np.allclose(r, stored.r_test.to_numpy(), atol=1e-4, equal_nan=True)
    table = accuracy_vs_ridge(ws, "subj01")
    assert {"FFA-1", "V1v"} <= set(table.ROI) and table[["ridge", "attention"]].notna().all().all()


def test_training_is_deterministic_with_a_seed(attention_world, tmp_path):
    ws, emb, tokens, key, summary = attention_world
    from backend.store import Workspace

    copy = Workspace(tmp_path / "ws")
    shutil.copytree(ws.path, copy.path)
    again = fit_attention_encoder(copy, "subj01", tokens, key, emb.model_id, emb.patch_grid, FAST)
    a, b = load_attention_encoder(ws, "subj01"), load_attention_encoder(copy, "subj01")
    assert again["epochs"] == summary["epochs"]
    for (n, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(p, q), n


def test_a_fit_killed_mid_epoch_resumes_from_its_last_epoch_to_the_same_weights(attention_world, tmp_path):
    ws, emb, tokens, key, summary = attention_world
    from backend.store import Workspace

    copy = Workspace(tmp_path / "ws")
    shutil.copytree(ws.path, copy.path)

    class Stop(Exception):
        pass

    def stop_in_epoch_2(stage, done, total):
        if stage == "subj01: attention encoder" and done > total / FAST.max_epochs + 3:
            raise Stop

    with pytest.raises(Stop):
        fit_attention_encoder(copy, "subj01", tokens, key, emb.model_id, emb.patch_grid, FAST,
                              progress=stop_in_epoch_2)
    assert (copy.path / "staging" / "attention_subj01.ckpt").exists()
    seen = []
    again = fit_attention_encoder(copy, "subj01", tokens, key, emb.model_id, emb.patch_grid, FAST,
                                  progress=lambda stage, done, total: seen.append((stage, done, total)))
    train = [(d, t) for stage, d, t in seen if stage == "subj01: attention encoder"]
    assert min(d for d, _ in train) > train[0][1] / FAST.max_epochs  # it started in epoch 2, not from scratch
    assert again["epochs"] == summary["epochs"] and not (copy.path / "staging" / "attention_subj01.ckpt").exists()
    a, b = load_attention_encoder(ws, "subj01"), load_attention_encoder(copy, "subj01")
    for (n, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(p, q), n


def test_face_attention_lands_on_faces_more_than_chance(attention_world):
    ws, emb, tokens, _, _ = attention_world
    enc = load_attention_encoder(ws, "subj01")
    table = attention_ground_truth(ws, "subj01", enc, tokens)
    faces = table[(table.category == "face") & (table.method == "attention")]
    assert len(faces) and faces.images.min() >= 3
    assert (faces.score > faces.chance).mean() >= 0.5, faces  # most face ROIs look at faces more than chance
    assert faces.score.mean() > faces.chance.mean()


def test_maps_are_distributions_on_the_patch_grid_and_dense_maps_follow_a_shift(attention_world):
    ws, emb, tokens, _, _ = attention_world
    enc = load_attention_encoder(ws, "subj01")
    maps, pred = attention_maps(enc, np.asarray(tokens[:2], np.float32))
    assert maps.shape == (2, len(enc.names), *emb.patch_grid) and np.allclose(maps.sum((2, 3)), 1, atol=1e-5)
    assert pred.shape[0] == 2
    # dense maps with an embedder whose patch "embedding" is the patch's brightness: the averaged views (shifted
    # and mirrored, each taken back to the image frame) must put the map on the bright square, wherever it is
    class Brightness:
        patch_grid = (8, 8)

        def patch_embeddings(self, images):
            x = np.asarray(images, np.float32).mean(-1) / 255  # (n, 64, 64)
            return x.reshape(len(x), 8, 8, 8, 8).mean((2, 4)).reshape(len(x), 64, 1)

    img = np.zeros((2, 64, 64, 3), np.uint8)
    img[0, 8:24, 8:24] = 255  # top left
    img[1, 36:60, 40:56] = 255  # bottom right
    d = dense_maps(Brightness(), np.ones(1), img)
    assert d.shape == (2, 1, 64, 64)
    for i, (ys, xs) in enumerate([(slice(8, 24), slice(8, 24)), (slice(36, 60), slice(40, 56))]):
        inside = np.zeros((64, 64), bool)
        inside[ys, xs] = True
        assert to_distribution(d[i, 0])[inside].sum() > 0.7  # the rest: bilinear blur of an 8-pixel grid
        x, y = centre_of_mass(to_distribution(d[i, 0]))  # image units: x to the right, y up
        cx, cy = (xs.start + xs.stop) / 64 - 1, 1 - (ys.start + ys.stop) / 64
        assert abs(x - cx) < 0.08 and abs(y - cy) < 0.08, (x, y, cx, cy)


def test_quadrant_conventions_match_the_worlds_receptive_fields(tiny_ws):
    df = tiny_ws.query("SELECT v.roi, v.hemi, median(t.prf_x) AS x, median(t.prf_y) AS y FROM voxels v "
                       "JOIN voxel_truth t USING (subject, voxel) WHERE v.roi IN ('V1d', 'V1v', 'V2d', 'V3v', 'hV4') "
                       "GROUP BY ALL")
    for r in df.itertuples():
        ex, ey = expected_quadrant(r.roi, r.hemi)
        assert np.sign(r.x) == ex and (ey == 0 or np.sign(r.y) == ey), r


def test_attention_page_shows_the_grid_for_a_dataset_image_and_refuses_a_bad_upload(attention_world, monkeypatch):
    import io

    from PIL import Image

    ws, *_ = attention_world
    at = open_page(ws, monkeypatch, "attention")
    assert not at.exception, at.exception
    at.text_input(key="att_q").set_value("face").run()
    assert not at.exception, at.exception
    assert any("Every ROI's attention over stimulus #" in h.value for h in at.subheader)
    assert at.selectbox(key="att_roi").value.startswith("FFA-1")
    # an upload that is not an image gets a message naming the file; a real one is drawn
    at.radio(key="att_source").set_value("upload").run()
    at.file_uploader(key="att_upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert not at.exception and any("notes.png is not a readable PNG or JPEG" in e.value for e in at.error)
    buf = io.BytesIO()
    Image.fromarray(np.full((80, 100, 3), 200, np.uint8)).save(buf, format="PNG")
    at.file_uploader(key="att_upload").set_value(("grey.png", buf.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    assert any("Every ROI's attention over grey.png" in h.value for h in at.subheader)
    # compose from the world's grammar: the object table appears; an impossible composition is refused clearly
    at.radio(key="att_source").set_value("compose").run()
    assert not at.exception, at.exception
    shares = at.table[0].value
    assert list(shares.columns) == ["face", "house", "background"], shares.columns
    assert shares.index[0] == "share of the image" and "FFA-1 lh" in shares.index


def test_composed_images_follow_the_grammar_and_bad_compositions_name_the_field():
    from backend.datasets.demo.stimuli import compose_stimulus
    from backend.errors import InvalidInputError

    image, mask, stim = compose_stimulus([{"category": "face", "place": "left"},
                                          {"category": "place", "kind": "house", "place": "right"}])
    assert image.shape == (128, 128, 3) and set(np.unique(mask)) == {0, 1, 2}
    cols = np.nonzero(mask == 1)[1].mean(), np.nonzero(mask == 2)[1].mean()
    assert cols[0] < 64 < cols[1]  # the face is left of the house
    assert any("face" in c for c in stim.captions) and all(isinstance(c, str) for c in stim.captions)
    for bad, field in (([{"category": "dog"}], "category"), ([{"category": "face", "kind": "house"}], "kind"),
                       ([{"category": "face", "place": "behind"}], "place"),
                       ([{"category": "face", "size": 2.0}], "size")):
        with pytest.raises(InvalidInputError, match=field):
            compose_stimulus(bad)


def test_object_shares_are_each_querys_attention_split_over_the_objects(attention_world):
    from backend.attention import attention_on_objects, image_attention
    from backend.datasets.demo.stimuli import compose_stimulus

    ws, emb, *_ = attention_world
    enc = load_attention_encoder(ws, "subj01")
    image, mask, _ = compose_stimulus([{"category": "face", "place": "left"}, {"category": "food", "place": "right"}])
    att = image_attention(ws, "subj01", image, enc, emb)
    t = attention_on_objects(att, mask, ["face", "food"])
    assert list(t.columns) == ["face", "food", "background"] and list(t.index[1:]) == att.names
    np.testing.assert_allclose(t.sum(1), 1, atol=1e-4)
    np.testing.assert_allclose(t.iloc[0], [(mask == 1).mean(), (mask == 2).mean(), (mask == 0).mean()], atol=1e-6)


def test_attention_page_without_an_encoder_offers_the_job(tiny_ws, monkeypatch):
    at = open_page(tiny_ws, monkeypatch, "attention")
    assert not at.exception, at.exception
    assert any("No attention encoder is fitted yet" in i.value for i in at.info)
    assert at.button(key="att_fit")


@pytest.mark.browser
def test_attention_page_in_chromium_draws_the_grid_and_the_rois_maps(attention_world, tmp_path):
    from tests.browser import chromium_page, streamlit_server, wait_for_app

    ws, *_ = attention_world
    with streamlit_server(ws.path) as url, chromium_page(1400, 1400) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/attention")
        page.wait_for_selector("text=Accuracy against ridge", timeout=180_000)
        wait_for_app(page, 180_000)
        assert page.locator("[data-testid='stException']").count() == 0
        # the grid and the three maps of the chosen ROI are real, drawn images
        sizes = page.eval_on_selector_all("[data-testid='stImage'] img",
                                          "els => els.filter(i => i.complete).map(i => i.naturalWidth)")
        assert len(sizes) >= 4 and max(sizes) >= 1000, sizes
        assert page.get_by_text("Every ROI's attention over stimulus #").count() == 1
        page.screenshot(path=str(tmp_path / "attention_dataset.png"), full_page=True)
        # the newcomer's check: compose a face (left) and a house (right) from the world's grammar (the page's
        # default composition); the face ROI's query puts more of its attention on the face than on the house,
        # the place ROI's query the other way round
        page.get_by_text("compose", exact=True).click()
        page.wait_for_selector("[data-testid='stTable'] thead th:has-text('house')", timeout=120_000)
        wait_for_app(page, 120_000)
        table = page.eval_on_selector(
            "[data-testid='stTable'] table",
            "t => Object.fromEntries([...t.querySelectorAll('tbody tr')].map(r => [r.querySelector('th').innerText,"
            " [...r.querySelectorAll('td')].map(c => parseFloat(c.innerText))]))")
        head = page.eval_on_selector("[data-testid='stTable'] table",
                                     "t => [...t.querySelectorAll('thead th')].map(c => c.innerText).slice(1)")
        assert head[:2] == ["face", "house"], head
        # (the tiny world's 240 training images teach the queries to prefer their category's object relative to
        # each other; on the full demo world the PPA query also puts more attention on the house than on the face)
        for hemi in ("lh", "rh"):
            ffa, ppa = table[f"FFA-1 {hemi}"][:2], table[f"PPA {hemi}"][:2]
            assert ffa[0] > ffa[1], (hemi, ffa)  # FFA: more on the face than on the house
            assert ffa[0] - ffa[1] > ppa[0] - ppa[1], (hemi, ffa, ppa)  # PPA leans to the house more than FFA
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(tmp_path / "attention.png"), full_page=True)
        assert not errors, errors
