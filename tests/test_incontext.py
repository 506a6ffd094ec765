"""In-context encoders (BraInCoRL-style): the shipped network writes a new subject's encoders from a few of its images,
better than ridge on the same images; stored next to the ridge encoder; bring-your-own-subject end to end; training
resumes after a kill; old workspaces migrate."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.encoders import (design_matrices, encoder_weights, fit_incontext_encoder, fit_ridge_cv, incontext_weights,
                              load_incontext_model, r2_columns, train_incontext)
from backend.errors import InvalidInputError
from backend.store import Workspace, current_encoder, subject_encoders, voxel_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(fitted_world, tmp_path_factory):
    """A copy of the fitted small world (this module writes in-context encoders into it)."""
    ws, emb, feats, key, _ = fitted_world
    dst = tmp_path_factory.mktemp("ic") / "ws"
    shutil.copytree(ws.path, dst, ignore=shutil.ignore_patterns("write.lock"))
    return Workspace(dst), emb, feats, key


@pytest.fixture(scope="module")
def model():
    return load_incontext_model()


def test_in_context_encoders_from_50_images_beat_ridge_on_the_same_images(world, model):
    # the shipped network was trained on the demo world's subj01; this world was built separately and its subj02 has
    # other voxels, other images, rescaled ROIs
    ws, _, feats, _ = world
    Xtr, Ytr, Xte, Yte, _ = design_matrices(ws, "subj02", feats)
    gains = []
    for draw in range(3):
        idx = np.sort(np.random.default_rng(draw).permutation(len(Xtr))[:50])
        W, b = incontext_weights(model, Xtr[idx], Ytr[idx])
        ic = np.nanmean(r2_columns(Yte, Xte @ W.T + b))
        ridge = np.nanmean(r2_columns(Yte, fit_ridge_cv(Xtr[idx], Ytr[idx], cv="loo").predict(Xte)))
        gains.append(ic - ridge)
        assert ic > 0, f"draw {draw}: in-context encoders from 50 images explain nothing (mean R^2 {ic:.3f})"
    assert min(gains) > 0, f"in-context minus ridge mean test R^2 per draw: {np.round(gains, 4)}"


def test_in_context_encoder_is_stored_next_to_ridge_and_chosen_explicitly(world, model):
    ws, emb, _, _ = world
    res = fit_incontext_encoder(ws, "subj01", 100, model=model, embedder=emb)
    assert res["n_train"] == 100 and res["method"] == "in-context"
    assert current_encoder(ws, "subj01")["method"] == "ridge", "the encoder fitted on the most images stays default"
    enc = current_encoder(ws, "subj01", method="in-context")
    assert enc["n_train"] == 100 and enc["encoding_key"].startswith("in-context:")
    table = subject_encoders(ws, "subj01")
    assert table.method.tolist() == ["ridge", "in-context"] and table["default"].tolist() == [True, False]
    W_ic, _, _ = encoder_weights(ws, "subj01", method="in-context")
    W_r, _, _ = encoder_weights(ws, "subj01")
    assert W_ic.shape == W_r.shape and not np.allclose(W_ic, W_r)
    acc_ic, acc_r = voxel_table(ws, "subj01", method="in-context"), voxel_table(ws, "subj01")
    assert acc_ic.r2_test.notna().all() and not np.allclose(acc_ic.r2_test, acc_r.r2_test)
    prov = ws.query("SELECT method, parameters, model_ids FROM runs WHERE run_id = ?", [enc["run_id"]]).iloc[0]
    assert prov.method == "encoder-in-context" and '"n_images": 100' in prov.parameters
    assert model.model_id in prov.model_ids


def test_bring_your_own_subject_concept_map_and_card_from_its_first_images(world, model):
    """A subject with no fitted encoder gets one from its first 300 images; its concept map for faces lands in face
    ROIs and its voxel card says which encoder and how many images."""
    from backend.explore import concept_map, voxel_card
    from backend.surface.rois import ROI_FILES

    ws, emb, _, key = world
    with ws.writer() as tx:  # subj02 as a newly imported subject: no encoder yet
        tx.sql("DELETE FROM encoders WHERE subject = 'subj02'")
    assert current_encoder(ws, "subj02") is None
    fit_incontext_encoder(ws, "subj02", 300, model=model, embedder=emb)
    enc = current_encoder(ws, "subj02")
    assert enc["method"] == "in-context" and enc["n_train"] == 300
    vox = voxel_table(ws, "subj02")
    faces = set(ROI_FILES["floc-faces"].values())
    top = np.argsort(-concept_map(ws, "subj02", "a face", emb)["scores"])[:20]
    share = vox.roi.iloc[top].isin(faces).mean()
    assert share >= 0.8, f"only {share:.0%} of the top 20 'a face' voxels are in face ROIs: {vox.roi.iloc[top].tolist()}"
    card = voxel_card(ws, "subj02", int(top[0]))
    assert card["encoder"]["method"] == "in-context" and card["encoder"]["n_train"] == 300
    assert card["top_predicted"] is not None
    # BrainDiVE's re-ranking: the in-context encoder made again from each half of the same 300 images
    from backend.encoders import encoder_half, fit_encoder_halves

    runs = fit_encoder_halves(ws, "subj02")
    made = ws.query("SELECT method, parameters FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [runs])
    assert (made.method == "encoder-in-context-half").all() and made.parameters.str.contains('"n_train": 150').all()
    (W0, _, _), (W1, _, _) = encoder_half(ws, "subj02", 0), encoder_half(ws, "subj02", 1)
    assert W0.shape == W1.shape == encoder_weights(ws, "subj02")[0].shape and not np.allclose(W0, W1)


def test_captions_of_a_subject_encoded_from_300_images_name_its_face_voxels_faces(world):
    """BrainSCUBA on the in-context encoder of subj02 (the previous test left it as subj02's only encoder)."""
    import backend.captions as C

    ws, emb, _, _ = world
    assert current_encoder(ws, "subj02")["method"] == "in-context"
    if "demo" not in set(C.bank_table(ws).bank):
        C.build_demo_bank(ws, emb, n=2000, chunk=1000)
    face = ws.query("SELECT v.voxel FROM voxels v JOIN voxel_truth t USING (subject, voxel) WHERE v.subject = 'subj02' "
                    "AND t.category = 'face' AND v.roi IN ('FFA-1', 'FFA-2', 'OFA') ORDER BY v.voxel").voxel.tolist()
    C.precompute(ws, "subj02", ["brainscuba"], models={"embedder": emb}, voxels=face)
    caps = ws.query("SELECT c.caption, r.parameters FROM voxel_captions c JOIN runs r USING (run_id) "
                    "WHERE c.subject = 'subj02' AND c.method = 'brainscuba'")
    assert len(caps) == len(face) and caps.parameters.str.contains('"encoder": "in-context"').all()
    share = caps.caption.str.contains("face").mean()
    assert share >= 0.8, f"{share:.0%} of {len(face)} face voxels' captions name a face: {caps.caption.head(5).tolist()}"


def test_bad_context_sizes_and_foreign_features_are_refused_by_name(world, model):
    ws, emb, feats, _ = world
    n_train = int((ws.query("SELECT count(*) n FROM subject_stimuli WHERE subject = 'subj01' AND split = 'train'")
                   .n.iloc[0]))
    with pytest.raises(InvalidInputError, match=f"between 2 and the subject's {n_train:,} training images"):
        fit_incontext_encoder(ws, "subj01", n_train + 1, model=model, embedder=emb)
    with pytest.raises(InvalidInputError, match="context images"):
        fit_incontext_encoder(ws, "subj01", 1, model=model, embedder=emb)
    with pytest.raises(InvalidInputError, match="512-d"):
        incontext_weights(model, np.zeros((10, 512), np.float32), np.zeros((10, 3), np.float32))
    before = current_encoder(ws, "subj01", method="in-context")
    other = load_incontext_model()
    other.config["feature_key"] = "another-embedder-0123456789ab"
    other.config.pop("equivalent_feature_keys", None)  # nor vouched for as giving this embedder's features
    with pytest.raises(InvalidInputError, match="another-embedder-0123456789ab"):
        fit_incontext_encoder(ws, "subj01", 50, model=other, embedder=emb)
    after = current_encoder(ws, "subj01", method="in-context")
    assert (before is None and after is None) or before["run_id"] == after["run_id"], "a refused run changed the store"


def test_killed_training_resumes_to_the_same_weights(world, tmp_path):
    import torch

    ws = world[0]
    kw = dict(steps=6, voxels=32, queries=64, n_range=(8, 40), checkpoint_every=2, width=32, latents=4, layers=1,
              log=lambda m: None)
    a = train_incontext(ws, ["subj01"], tmp_path / "a", **kw)

    class Kill(Exception):
        pass

    def die(label, done, total):
        if done == 5:
            raise Kill

    with pytest.raises(Kill):
        train_incontext(ws, ["subj01"], tmp_path / "b", progress=die, **kw)
    assert (tmp_path / "b" / "train_state.pt").exists() and not (tmp_path / "b" / "model.safetensors").exists()
    b = train_incontext(ws, ["subj01"], tmp_path / "b", **kw)
    assert a["training"]["history"][-1] == b["training"]["history"][-1]
    wa = load_incontext_model(tmp_path / "a").net.state_dict()
    wb = load_incontext_model(tmp_path / "b").net.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not (tmp_path / "b" / "train_state.pt").exists()


def test_a_workspace_written_before_in_context_encoders_migrates(world, tmp_path):
    ws = world[0]
    old = tmp_path / "old"
    shutil.copytree(ws.path, old, ignore=shutil.ignore_patterns("write.lock"))
    import duckdb

    con = duckdb.connect(str(old / "voxelscope.duckdb"))
    con.execute("CREATE TABLE e2 AS SELECT subject, feature_key, model_id, run_id, weights_array, cv, n_train, n_test "
                "FROM encoders WHERE method = 'ridge'")
    con.execute("DROP TABLE encoders")
    con.execute("CREATE TABLE encoders (subject VARCHAR, feature_key VARCHAR, model_id VARCHAR, run_id VARCHAR, "
                "weights_array VARCHAR, cv VARCHAR, n_train INTEGER, n_test INTEGER, PRIMARY KEY (subject, feature_key))")
    con.execute("INSERT INTO encoders SELECT * FROM e2")
    con.execute("DROP TABLE e2")
    con.close()
    ws_old = Workspace(old)
    assert current_encoder(ws_old, "subj01")["method"] == "ridge"  # read before any migration
    with ws_old.writer():
        pass
    cols = ws_old.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'encoders'")
    assert "method" in cols.column_name.tolist()
    assert current_encoder(ws_old, "subj01")["method"] == "ridge"


def test_explorer_offers_the_in_context_encoder_and_its_card_says_so(world, monkeypatch):
    from streamlit.testing.v1 import AppTest

    ws = world[0]
    assert current_encoder(ws, "subj01", method="in-context")["n_train"] == 100
    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(ws.path))
    v = ws.query("SELECT hemi, vertex FROM voxels WHERE subject = 'subj01' AND roi = 'FFA-1' LIMIT 1").iloc[0]

    def open_(**params):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        for k, val in params.items():
            at.query_params[k] = val
        at.switch_page("views/explorer.py")
        return at.run()

    at = open_(subject="subj01", overlay="r2_nc", vertex=f"{v.hemi}:{v.vertex}", enc="in-context")
    assert not at.exception, at.exception
    assert at.selectbox(key="cx_enc").value == "in-context"
    captions = " ".join(c.value for c in at.caption)
    assert "Encoder: **in-context · 100 images**" in captions
    r2_ic = float({m.label: m.value for m in at.metric}["R² / noise ceiling"])
    at = open_(subject="subj01", overlay="r2_nc", vertex=f"{v.hemi}:{v.vertex}")
    assert at.selectbox(key="cx_enc").value == "ridge"
    assert "Encoder: **ridge · 1,000 images**" in " ".join(c.value for c in at.caption)
    assert float({m.label: m.value for m in at.metric}["R² / noise ceiling"]) != r2_ic


def test_a_full_disk_fails_the_job_with_a_clear_message_and_stores_nothing(world, monkeypatch):
    import errno

    from backend.jobs import get_job, submit
    from backend.jobs.queue import _run_job

    ws = world[0]
    before = current_encoder(ws, "subj01", method="in-context")["run_id"]
    files = set((ws.path / "arrays").iterdir())
    job = submit(ws, "incontext", {"subjects": ["subj01"], "n_images": 80})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    _run_job(str(ws.path), job)
    monkeypatch.undo()
    done = get_job(ws, job)
    assert done["state"] == "failed"
    assert done["error"].startswith(f"the disk holding workspace {ws.path} is full: nothing of this write was stored")
    assert current_encoder(ws, "subj01", method="in-context")["run_id"] == before
    assert set((ws.path / "arrays").iterdir()) == files  # no half-written array left behind
    assert voxel_table(ws, "subj01", method="in-context").r2_test.notna().all()  # still readable


def test_cli_in_context_builds_a_subjects_encoders(world):
    ws = world[0]
    out = subprocess.run([sys.executable, "-m", "backend", "--workspace", str(ws.path), "encoder", "in-context",
                          "--subject", "subj01", "--images", "60", "--order", "random", "--seed", "3"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "subj01: in-context encoders from 60 images" in out.stdout and "mean R^2" in out.stdout
    assert current_encoder(ws, "subj01", method="in-context")["n_train"] == 60
