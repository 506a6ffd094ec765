"""Voxel captions: BrainSCUBA and LaVCa against ground truth, resumable precompute, search, bad input."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import captions as C

ROOT = Path(__file__).resolve().parent.parent
CATEGORY_ROIS = {"face": ["OFA", "FFA-1", "FFA-2", "aTL-faces"], "place": ["OPA", "PPA", "RSC"],
                 "body": ["EBA", "FBA-1", "FBA-2"], "food": ["ventral-food"], "word": ["OWFA", "VWFA-1", "VWFA-2"]}


@pytest.fixture(scope="module")
def captioned(fitted_world):
    """The fitted world with a 4,000-image demo bank and both methods run on its category voxels."""
    ws, emb, *_ = fitted_world
    if "demo" not in set(C.bank_table(ws).bank):
        C.build_demo_bank(ws, emb, n=4000, chunk=1000)
    vox = ws.query("SELECT v.voxel FROM voxels v JOIN voxel_truth t USING (subject, voxel) WHERE v.subject = 'subj01' "
                   "AND t.category IS NOT NULL AND t.category <> '' AND v.roi IS NOT NULL").voxel.tolist()
    C.precompute(ws, "subj01", models={"embedder": emb}, voxels=vox)
    ev = C.evaluate(ws, "subj01", embedder=emb)
    return ws, emb, vox, ev


def test_brainscuba_projection_is_a_softmax_mixture_of_the_bank():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(500, 16)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    w = bank[[7, 42]] * 3 + 0.01 * rng.normal(size=(2, 16))
    # a very high temperature picks the nearest bank item; the full bank, one subset
    p = C.brainscuba_project(w, bank, temperature=1e4, n_subsets=1, subset_fraction=1.0)
    assert np.allclose(p, bank[[7, 42]], atol=1e-3)
    # temperature 0 gives the bank mean; outputs are unit vectors; the same seed gives the same result
    p0 = C.brainscuba_project(w, bank, temperature=0.0, n_subsets=1, subset_fraction=1.0)
    m = bank.mean(0) / np.linalg.norm(bank.mean(0))
    assert np.allclose(p0, m, atol=1e-5)
    a = C.brainscuba_project(w, bank, n_subsets=3, seed=5)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(a, C.brainscuba_project(w, bank, n_subsets=3, seed=5))


def test_lavca_keyword_rule_prefers_words_typical_of_the_top_images():
    pool = ["a red apple on a table"] * 5 + ["a face with black hair"] * 5 + ["a table in a room"] * 90
    km = C.KeywordModel(pool, n_keywords=3, min_share=0.2)
    top = np.arange(10)  # apples and faces
    kws = [w for w, _ in km.keywords(top)]
    assert set(kws) <= {"red", "apple", "face", "black", "hair"} and len(kws) == 3
    assert "table" not in kws  # as common in the pool as among the top images
    assert km.sentence(["apple", "red", "face"]) == "images of apple, red and face"
    assert km.sentence([]) == "images with no distinctive content"


def test_both_methods_name_the_true_category_of_category_voxels(captioned):
    ws, emb, vox, ev = captioned
    gt = C.ground_truth_table(ws, ["subj01"])
    for cat, rois in CATEGORY_ROIS.items():
        assert gt.roi.isin(rois).any(), f"no {cat} ROI voxel was evaluated against ground truth"
        for method in C.CAPTION_METHODS:
            share = ws.query(
                "SELECT avg(CAST(e.names_truth AS DOUBLE)) AS s FROM caption_eval e JOIN voxels v USING (subject, voxel)"
                " WHERE e.subject = 'subj01' AND e.method = ? AND v.roi IN (SELECT unnest(?::VARCHAR[]))",
                [method, rois]).s.iloc[0]
            assert share >= 0.8, (cat, method, share)
    # a face-selective voxel's captions name a face
    ffa = ws.query("SELECT c.method, c.caption FROM voxel_captions c JOIN voxels v USING (subject, voxel) "
                   "WHERE c.subject = 'subj01' AND v.roi = 'FFA-1'")
    assert ffa.caption.str.contains("face").mean() > 0.8
    # every row records its run: method, parameters, model ids, code version
    runs = ws.query("SELECT DISTINCT r.method, r.parameters, r.model_ids, r.code_version FROM voxel_captions c "
                    "JOIN runs r USING (run_id)")
    assert set(runs.method) == {"captions-brainscuba", "captions-lavca"}
    assert all('"bank": "demo"' in p for p in runs.parameters) and all("embedder" in m for m in runs.model_ids)


def test_sentence_level_prediction_beats_chance(captioned):
    _, _, _, ev = captioned
    for method, g in ev.groupby("method"):
        assert g.sentence_r.median() > 0.1, method


def test_search_by_words_and_by_meaning(captioned):
    from backend.models import load_role

    ws, *_ = captioned
    index = C.CaptionIndex.from_workspace(ws, load_role("sentence_embedder"))
    hits = index.keyword("food")
    assert len(hits) and hits.caption.str.contains(r"\bfood\b").all()
    sem = index.semantic("something to eat")
    top = sem.head(20)
    assert (top.roi == "ventral-food").mean() >= 0.5, top[["roi", "caption"]]
    # quotes and SQL in a query are words like any other: no caption has all of them, nothing is executed
    n_voxels, n_food = ws.query("SELECT count(*) AS n FROM voxels").n.iloc[0], len(hits)
    for q in ["food'; DROP TABLE voxels; --", "face' OR '1'='1", "100% (face) --"]:
        assert index.keyword(q).empty, q
        assert len(index.semantic(q)) > 0  # ranked like any phrase
    assert ws.query("SELECT count(*) AS n FROM voxels").n.iloc[0] == n_voxels and len(index.keyword("food")) == n_food
    for bad in ["", "   ", "!!!"]:
        with pytest.raises(ValueError, match="search"):
            index.keyword(bad)


def test_a_bank_with_the_wrong_dimension_is_refused(captioned, tmp_path):
    ws, emb, *_ = captioned
    bad = tmp_path / "bank.npy"
    np.save(bad, np.zeros((10, emb.dim + 1), np.float32))
    before = C.bank_table(ws)
    with pytest.raises(ValueError, match=rf"bank.npy has embeddings of dimension {emb.dim + 1}.*{emb.dim}"):
        C.import_bank(ws, "mine", bad, emb)
    caps = tmp_path / "caps.txt"
    good = tmp_path / "good.npy"
    np.save(good, np.ones((10, emb.dim), np.float32))
    caps.write_text("a\nb\n")
    with pytest.raises(ValueError, match="caps.txt has 2 captions"):
        C.import_bank(ws, "mine", good, emb, captions_path=caps)
    pd.testing.assert_frame_equal(C.bank_table(ws), before)  # nothing stored


def test_a_killed_precompute_resumes_with_no_duplicate_rows(captioned, tmp_path):
    ws, *_ = captioned
    copy = tmp_path / "ws"
    shutil.copytree(ws.path, copy)
    from backend.store import Workspace, WorkspaceBusy

    w2 = Workspace(copy)
    with w2.writer() as tx:
        tx.sql("DELETE FROM voxel_captions WHERE method = 'brainscuba'")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "backend", "--workspace", str(copy), "captions", "run", "--subject", "subj01",
           "--method", "brainscuba", "--batch", "16", "--voxels", "0-399"]
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    n = 0
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        try:
            n = w2.query("SELECT count(*) AS n FROM voxel_captions WHERE method = 'brainscuba'").n.iloc[0]
        except (WorkspaceBusy, Exception):  # noqa: BLE001 - the writer holds the file for a moment
            n = n
        if n >= 48:
            break
        time.sleep(0.2)
    assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = w2.query("SELECT count(*) AS n FROM voxel_captions WHERE method = 'brainscuba'").n.iloc[0]
    assert 0 < partial < 400 and partial % 16 == 0  # whole batches only
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    df = w2.query("SELECT voxel, run_id FROM voxel_captions WHERE subject = 'subj01' AND method = 'brainscuba'")
    assert len(df) == 400 and df.voxel.is_unique and set(df.voxel) == set(range(400))
    assert df.run_id.nunique() == 1  # the rerun continued the same run
    assert "(" in res.stdout and f"{400 - partial:,} new" in res.stdout


def test_a_worker_killed_during_the_caption_job_resumes_it_on_the_next_start(captioned, tmp_path):
    """kill -9 of the worker mid-job, then what ``./dev.sh app`` runs again (``jobs prepare``, ``jobs worker``):
    the same job resumes and finishes, each voxel captioned once per method, in one run per method."""
    from backend.jobs import get_job, list_jobs, submit
    from backend.store import Workspace, WorkspaceBusy

    ws, *_ = captioned
    copy = tmp_path / "ws"
    shutil.copytree(ws.path, copy)
    w2 = Workspace(copy)
    with w2.writer() as tx:
        tx.sql("DELETE FROM voxel_captions WHERE subject = 'subj01'")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    backend = [sys.executable, "-m", "backend", "--workspace", str(copy)]
    job_id = submit(w2, "captions", {"subjects": ["subj01"], "voxels": list(range(300)), "batch": 16})
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(backend + ["jobs", "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    n, t0 = 0, time.time()
    while time.time() - t0 < 180 and worker.poll() is None and n < 48:
        try:
            n = w2.query("SELECT count(*) AS n FROM voxel_captions WHERE subject = 'subj01'").n.iloc[0]
        except (WorkspaceBusy, Exception):  # noqa: BLE001 - the writer holds the file for a moment
            pass
        time.sleep(0.2)
    assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    job = get_job(w2, job_id)
    assert job["state"] == "running" and job["stage"]  # what the dead worker left: the page shows it as running
    partial = w2.query("SELECT count(*) AS n FROM voxel_captions WHERE subject = 'subj01'").n.iloc[0]
    assert 0 < partial < 600 and partial % 16 == 0  # whole batches only, nothing half-written

    prep = subprocess.run(backend + ["jobs", "prepare"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert prep.returncode == 0, prep.stderr[-2000:]
    assert len(list_jobs(w2)) == 1  # the interrupted job is not queued twice
    worker = subprocess.Popen(backend + ["jobs", "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.time()
        while time.time() - t0 < 300 and get_job(w2, job_id)["state"] in ("queued", "running"):
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(20)
    job = get_job(w2, job_id)
    assert job["state"] == "done", job["error"]
    df = w2.query("SELECT voxel, method, run_id FROM voxel_captions WHERE subject = 'subj01'")
    assert len(df) == 600 and not df.duplicated(["voxel", "method"]).any()
    assert set(df.voxel) == set(range(300)) and sorted(df.method.unique()) == sorted(C.CAPTION_METHODS)
    assert (df.groupby("method").run_id.nunique() == 1).all()  # the resumed job continued the same runs
    assert set(df.run_id) <= set(json.loads(job["runs"]))


def test_captions_page_searches_and_shows_matches(captioned, monkeypatch):
    from streamlit.testing.v1 import AppTest

    ws, *_ = captioned
    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(ws.path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.switch_page("views/captions.py").run()
    assert not at.exception, at.exception
    at.text_input(key="cap_q").set_value("food")
    at.button(key="cap_search_btn").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) and table.caption.str.contains("food").all()
    assert any("match “food”" in m.value for m in at.markdown)
    at.text_input(key="cap_q").set_value("'; DROP TABLE voxels; --")
    at.button(key="cap_search_btn").click().run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**0 voxel captions**") for m in at.markdown)  # matched as words: none has them
    assert len(at.dataframe[0].value) == 0


def test_lavca_with_a_configured_language_model_records_it(captioned, tmp_path):
    from backend.models.language_model import LanguageModel
    from tests.tiny import tiny_language_model

    ws, emb, *_ = captioned
    vocab = ["face", "food", "building", ",", "images", "of"]
    lm = LanguageModel.from_pretrained(tiny_language_model(tmp_path / "lm", vocab))
    try:
        C.precompute(ws, "subj02", ["lavca"], models={"embedder": emb, "language_model": lm}, voxels=[0, 1, 2])
        rows = ws.query("SELECT c.caption, c.keywords, r.model_ids FROM voxel_captions c JOIN runs r USING (run_id) "
                        "WHERE c.subject = 'subj02' AND c.method = 'lavca'")
        # the sentences are the language model's (its vocabulary only), not the keyword rule's "images of a, b and c"
        assert len(rows) == 3 and all(set(c.split()) <= set(vocab) for c in rows.caption), rows.caption.tolist()
        assert all(lm.model_id in m for m in rows.model_ids)
    finally:
        with ws.writer() as tx:
            tx.sql("DELETE FROM voxel_captions WHERE subject = 'subj02'")


def test_the_caption_job_stores_the_search_index_so_search_embeds_nothing(captioned):
    from backend.models import load_role

    ws, *_ = captioned
    sent = load_role("sentence_embedder")
    fresh = C.CaptionIndex.from_workspace(ws, sent)  # nothing stored yet: every distinct caption is embedded here
    assert fresh.n_encoded == len(fresh.uniq) > 10
    info = C.store_caption_embeddings(ws, sent)
    assert info["n"] == len(fresh.uniq) and info["new"] == info["n"]
    assert C.store_caption_embeddings(ws, sent)["new"] == 0  # stored once, reused
    stored = C.CaptionIndex.from_workspace(ws, sent)
    assert stored.n_encoded == 0
    a, b = fresh.semantic("something to eat").head(50), stored.semantic("something to eat").head(50)
    assert a.caption.tolist() == b.caption.tolist() and np.allclose(a.score, b.score, atol=1e-5)
    run = ws.query("SELECT r.model_ids FROM caption_index c JOIN runs r USING (run_id) LIMIT 1").model_ids.iloc[0]
    assert sent.model_id in run


def test_the_page_index_loads_the_sentence_model_only_for_a_search_by_meaning(captioned):
    from backend.models import load_role

    ws, *_ = captioned
    sent = load_role("sentence_embedder")
    C.store_caption_embeddings(ws, sent)
    loads = []
    index = C.CaptionIndex.from_workspace(ws, load_embedder=lambda: loads.append(1) or sent)
    assert len(index.keyword("food")) and loads == []  # words need no model
    hits = index.semantic("something to eat")
    assert loads == [1] and index.n_encoded == 0  # loaded once; the stored embeddings were the same model's
    assert (hits.head(20).roi == "ventral-food").mean() >= 0.5
