"""Background jobs: queued by the app or the CLI, run by the worker, with state, progress, errors, cancel, resume."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.jobs import cancel, get_job, list_jobs, submit
from backend.store import Workspace

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _worker(ws: Workspace):
    return subprocess.Popen([sys.executable, "-m", "backend", "--workspace", str(ws.path), "jobs", "worker"], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(ws: Workspace, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 180) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = get_job(ws, job_id)
        if job["state"] in states:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {get_job(ws, job_id)['state']} after {timeout} s")


def _kill_9_then_finish(ws: Workspace, job_id: str, ready) -> dict:
    """Start a worker, ``kill -9`` its process group once ``ready()`` (the job must still be running then), start
    another worker and wait for the job to end; returns the job."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "backend", "--workspace", str(ws.path), "jobs", "worker"], cwd=ROOT,
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t0 = time.time()
        while not ready() and get_job(ws, job_id)["state"] in ("queued", "running") and time.time() - t0 < 300:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert get_job(ws, job_id)["state"] == "running", "the job ended before the kill: nothing was tested"
    proc = _worker(ws)
    try:
        return _wait(ws, job_id, timeout=300)
    finally:
        proc.terminate()
        proc.wait(20)


def _no_orphan_arrays(ws: Workspace) -> bool:
    referenced = set(ws.query("SELECT path FROM arrays").path.map(lambda p: (ws.path / p).name))
    return {p.name for p in (ws.path / "arrays").iterdir() if p.is_file()} <= referenced | {".gitkeep"}


@pytest.fixture(scope="module")
def worked(tmp_path_factory):
    """A workspace whose tiny world was built by a job in the worker; the worker keeps running for the module."""
    ws = Workspace(tmp_path_factory.mktemp("jobs") / "ws")
    queued_before_worker = submit(ws, "world", {"tiny": True})
    doomed = submit(ws, "world", {"tiny": True})
    assert cancel(ws, doomed) == "cancelled"  # cancelled while queued: the worker must never run it
    proc = _worker(ws)
    try:
        job = _wait(ws, queued_before_worker)
        yield ws, proc, job, doomed
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_queued_job_runs_in_the_worker_and_records_what_it_wrote(worked):
    ws, _, job, _ = worked
    assert job["state"] == "done", job["error"]
    runs = json.loads(job["runs"])
    assert ws.exists and ws.query("SELECT method FROM runs WHERE run_id = ?", [runs[0]]).method.tolist() == ["demo-world"]
    assert job["stage"] == "Drawing the ROI maps" and job["done"] == job["total"] == 2  # its last step, as shown
    # the home page's ROI maps were drawn by the job: the page's first visit renders nothing
    assert len(list((ws.path / "figures").glob("rois_subj0*.png"))) == 2
    assert job["started"] >= job["created"] and job["finished"] >= job["started"]


def test_a_job_cancelled_while_queued_never_runs(worked):
    ws, _, _, doomed = worked
    job = get_job(ws, doomed)
    assert job["state"] == "cancelled" and pd.isna(job["started"])
    assert len(ws.query("SELECT run_id FROM runs WHERE method = 'demo-world'")) == 1


def test_a_failing_job_records_its_error_and_the_worker_goes_on(worked):
    ws, proc, _, _ = worked
    bad = submit(ws, "encoders", {"subjects": ["nobody"]})
    job = _wait(ws, bad)
    assert job["state"] == "failed" and job["error"].startswith("subject 'nobody' is not in workspace")
    assert proc.poll() is None  # the worker is still there for the next job
    out = subprocess.run([sys.executable, "-m", "backend", "--workspace", str(ws.path), "jobs", "list"], cwd=ROOT,
                         env=ENV, capture_output=True, text=True, check=True).stdout
    assert f"{bad}  failed" in out and "subject 'nobody'" in out


def test_a_job_left_running_by_a_killed_worker_is_resumed_by_the_next_worker(tmp_path):
    ws = Workspace(tmp_path / "ws")
    job_id = submit(ws, "world", {"tiny": True})
    # what kill -9 leaves: the job marked running, huey's copy of it gone with the dead process
    with sqlite3.connect(ws.path / "jobs.sqlite3") as con:
        con.execute("UPDATE jobs SET state = 'running', pid = 999999 WHERE job_id = ?", [job_id])
        con.execute("DELETE FROM task")
    proc = _worker(ws)
    try:
        job = _wait(ws, job_id)
    finally:
        proc.terminate()
        proc.wait(20)
    assert job["state"] == "done", job["error"]
    assert list_jobs(ws).job_id.tolist() == [job_id] and ws.exists


def test_page_buttons_queue_background_jobs_and_show_them(tiny_ws, tmp_path, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_ws.path, ws.path)
    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(ws.path))
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.query_params["overlay"] = "r2_nc"
        at.switch_page("views/explorer.py").run()
        [b for b in at.button if b.label.startswith("Fit encoders now")][0].click().run()
        assert not at.exception, at.exception
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("views/captions.py").run()
        at.button(key="cap_compute").click().run()
        assert not at.exception, at.exception
        jobs = list_jobs(ws)
        assert sorted(jobs.kind) == ["captions", "encoders"]  # queued once each, run by one worker in order
        assert any("Preparing the demo world" in m.value for m in at.markdown)
        at.button(key="cap_compute").click().run()
        assert len(list_jobs(ws)) == 2  # a second click queues nothing more
        workers = subprocess.run(["pgrep", "-f", "--", f"--workspace {ws.path} jobs worker"], capture_output=True,
                                 text=True)
        assert len(workers.stdout.split()) == 1  # one worker, however many clicks
    finally:
        subprocess.run(["pkill", "-9", "-f", "--", f"--workspace {ws.path} jobs worker"])


def test_a_worker_killed_9_during_the_encoder_job_leaves_clean_rows_and_the_next_worker_finishes_it(tiny_ws, tmp_path):
    import shutil

    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_ws.path, ws.path, ignore=shutil.ignore_patterns("write.lock", "jobs.sqlite3*"))
    job_id = submit(ws, "encoders", {})
    # inside the job's work, not just picked up
    job = _kill_9_then_finish(ws, job_id, lambda: bool(get_job(ws, job_id).get("stage") or ""))
    assert job["state"] == "done", job["error"]
    enc = ws.query("SELECT subject, count(*) n FROM encoders GROUP BY subject ORDER BY subject")
    assert enc.n.tolist() == [1, 1]  # one encoder per subject, none twice
    rows = ws.query("SELECT e.subject, count(*) n, any_value(s.n_voxels) want FROM voxel_encoding e "
                    "JOIN subjects s USING (subject) GROUP BY e.subject")
    assert (rows.n == rows.want).all()  # every voxel's accuracy once, no partial subject
    assert _no_orphan_arrays(ws)


KILLED_KINDS = {  # kind -> (params, SQL that counts stored results, SQL that finds duplicated results)
    "synthesis": ({"target": {"terms": [{"rois": ["PPA"], "weight": 1.0}], "subjects": ["subj01"]}, "n_seeds": 6,
                   "guidance": {"steps": 6, "batch": 2}},
                  "SELECT count(*) FROM synthesis_images",
                  "SELECT run_id, seed FROM synthesis_images GROUP BY ALL HAVING count(*) > 1"),
    "reconstruction": ({"subject": "subj01", "decoder": "ridge",
                        "config": {"n_images": 8, "samples": 1, "steps": 4, "batch": 2}},
                       "SELECT count(*) FROM reconstructions",
                       "SELECT run_id, stim_id, sample FROM reconstructions GROUP BY ALL HAVING count(*) > 1"),
    "attention": ({"subjects": ["subj01", "subj02"],
                   "config": {"d_model": 32, "heads": 2, "ffn": 64, "max_epochs": 2, "batch_size": 32}},
                  "SELECT count(DISTINCT subject) FROM attention_encoders",
                  "SELECT subject, feature_key FROM attention_encoders GROUP BY ALL HAVING count(*) > 1"),
}


def test_a_worker_killed_9_during_the_world_build_resumes_to_the_same_world(tiny_ws, tmp_path):
    """kill -9 of the job worker once the world build has finished a render chunk: the next worker resumes the build
    (finished chunks are kept) and the world is the one an uninterrupted build makes."""
    ws = Workspace(tmp_path / "ws")
    job_id = submit(ws, "world", {"tiny": True})
    job = _kill_9_then_finish(ws, job_id, lambda: (ws.path / ".build" / "chunk_0000000.json").exists())
    assert job["state"] == "done", job["error"]
    assert ws.exists and not (ws.path / ".build").exists() and _no_orphan_arrays(ws)
    assert np.array_equal(np.asarray(ws.array("stimuli_images")), np.asarray(tiny_ws.array("stimuli_images")))
    for table, key in (("stimuli", "stim_id"), ("voxels", "subject, voxel"), ("subject_stimuli", "subject, row")):
        a, b = (w.query(f"SELECT * FROM {table} ORDER BY {key}") for w in (ws, tiny_ws))
        assert a.equals(b), table
    for s in ("subj01", "subj02"):
        assert np.allclose(ws.array(f"betas_{s}"), tiny_ws.array(f"betas_{s}"), equal_nan=True)


@pytest.mark.parametrize("kind", list(KILLED_KINDS))
def test_a_worker_killed_9_mid_job_leaves_no_partial_rows_and_the_next_worker_finishes_it(kind, fitted_world,
                                                                                       tmp_path):
    """kill -9 of the job worker once the job has stored part of its results (a synthesis batch, a reconstruction
    batch, one subject's attention encoder): the next worker resumes it; no result twice, no orphan array."""
    import shutil

    params, count_sql, dup_sql = KILLED_KINDS[kind]
    src = fitted_world[0]
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(src.path, ws.path, ignore=shutil.ignore_patterns("write.lock", "jobs.sqlite3*"))
    job_id = submit(ws, kind, params)

    def stored() -> int:
        try:
            return int(ws.query(count_sql).iloc[0, 0])
        except Exception:  # the table is created by the job itself
            return 0

    before = stored()  # (the shared world may hold results of other tests' runs)
    job = _kill_9_then_finish(ws, job_id, lambda: stored() > before)
    assert job["state"] == "done", job["error"]
    assert ws.query(dup_sql).empty and _no_orphan_arrays(ws)
