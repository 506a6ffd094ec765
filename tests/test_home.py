"""The home page (Streamlit AppTest) and `python -m backend info`."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@pytest.fixture
def use_workspace(monkeypatch):
    def set_(path):
        monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(path))
    return set_


def _texts(at):
    return [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]


def test_home_page_shows_what_is_loaded_sample_stimuli_and_the_roi_map(tiny_ws, use_workspace):
    use_workspace(tiny_ws.path)
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception, at.exception
    assert "Loaded: synthetic demo world" in [s.value for s in at.subheader]
    metrics = {m.label: m.value for m in at.metric}
    n_vox = tiny_ws.query("SELECT count(*) AS n FROM voxels").n[0]
    assert metrics == {"Subjects": "2", "Voxels": f"{n_vox:,}", "Images": "560",
                       "Captions": f"{tiny_ws.query('SELECT count(*) AS n FROM captions').n[0]:,}"}
    table = at.dataframe[0].value
    assert table.subject.tolist() == ["subj01", "subj02"] and (table["test (shared)"] == 60).all()
    images = at.get("image")
    # 12 sample stimuli with captions, plus the ROI map
    assert len(images) == 13
    assert (tiny_ws.path / "figures").exists() and any((tiny_ws.path / "figures").glob("rois_subj01_*.png"))


def test_show_other_images_draws_a_new_sample(tiny_ws, use_workspace):
    use_workspace(tiny_ws.path)
    at = AppTest.from_file(APP, default_timeout=180).run()

    def sample_captions():
        return [i.caption for el in at.get("image") for i in el.proto.imgs if i.caption.startswith("#")]

    first = sample_captions()
    at.button[0].click().run()
    assert not at.exception
    second = sample_captions()
    assert len(first) == len(second) == 12
    assert first != second


def test_first_start_prepares_the_demo_world_in_background_jobs_with_a_checklist(tmp_path, use_workspace,
                                                                                   monkeypatch):
    import time

    from backend.jobs import list_jobs, preparation
    from backend.store import Workspace

    use_workspace(tmp_path / "fresh")
    monkeypatch.setenv("VOXELSCOPE_DEMO", "tiny")
    ws = Workspace(tmp_path / "fresh")
    t0 = time.time()
    at = AppTest.from_file(APP, default_timeout=60).run()
    try:
        assert time.time() - t0 < 30  # the page answers at once: the work is in the jobs
        assert not at.exception, at.exception
        assert any("being prepared in the background" in i.value for i in at.info)
        assert list(preparation(ws).kind) == ["world", "encoders", "captions"]  # queued in order, once
        assert any("Preparing the demo world" in m.value for m in at.markdown)
        at.run()
        assert len(list_jobs(ws)) == 3  # a second visit queues nothing more
        while preparation(ws).state.iloc[0] not in ("done", "failed") and time.time() - t0 < 240:
            time.sleep(1)
        assert preparation(ws).state.iloc[0] == "done", preparation(ws).error.iloc[0]
        at.run()
        assert not at.exception, at.exception
        assert "Loaded: synthetic demo world" in [s.value for s in at.subheader]
        assert {m.label: m.value for m in at.metric}["Images"] == "560"
    finally:  # stop the worker the page started (it would go on with the encoders and captions)
        subprocess.run(["pkill", "-9", "-f", "--", f"--workspace {ws.path} jobs worker"])


def test_cli_info_prints_subjects_voxels_rois_images_and_the_path(tiny_ws):
    env = {**os.environ, "VOXELSCOPE_WORKSPACE": str(tiny_ws.path)}
    out = subprocess.run([sys.executable, "-m", "backend", "info"], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert f"workspace: {tiny_ws.path}" in out
    assert "images:    560" in out
    n1 = tiny_ws.query("SELECT count(*) AS n FROM voxels WHERE subject = 'subj01'").n[0]
    assert f"subj01:    {n1:,} voxels" in out and "subj02:" in out
    ffa = tiny_ws.query("SELECT count(*) AS n FROM voxels WHERE subject = 'subj01' AND roi = 'FFA-1'").n[0]
    assert f"FFA-1 {ffa}" in out and "V1v" in out


def test_cli_reports_an_empty_workspace(tmp_path):
    env = {**os.environ, "VOXELSCOPE_WORKSPACE": str(tmp_path / "none")}
    res = subprocess.run([sys.executable, "-m", "backend", "info"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 1 and "empty" in res.stdout


def test_cli_prints_a_user_mistake_as_written_with_exit_code_2(tiny_ws, tmp_path):
    env = {**os.environ, "VOXELSCOPE_WORKSPACE": str(tiny_ws.path)}
    cases = [(["figure", "rois", str(tmp_path / "r.png"), "--subject", "nobody"],
              "error: subject 'nobody' is not in workspace"),
             (["captions", "run", "--subject", "subj01", "--voxels", "1-x"],
              "error: '1-x' is not a list of numbers and ranges"),
             (["encoder", "fit", "--subject", "nobody"], "error: subject 'nobody' is not in workspace")]
    for args, message in cases:
        res = subprocess.run([sys.executable, "-m", "backend", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True)
        assert res.returncode == 2 and res.stderr.startswith(message), (args, res.stderr[-1500:])
        assert "Traceback" not in res.stderr


def test_the_executor_chosen_on_the_home_page_goes_with_the_jobs_pages_start(tiny_ws, use_workspace, tmp_path,
                                                                               monkeypatch):
    import json
    import shutil

    from backend.jobs import get_job, job_executor, submit
    from backend.store import Workspace

    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_ws.path, ws.path, ignore=shutil.ignore_patterns("write.lock", "jobs.sqlite3"))
    use_workspace(ws.path)
    monkeypatch.delenv("VOXELSCOPE_EXECUTOR", raising=False)
    at = AppTest.from_file(APP, default_timeout=180).run()
    radio = at.radio(key="home_executor")
    assert radio.value == "local" and job_executor(ws) is None
    radio.set_value("ray").run()
    assert not at.exception and job_executor(ws) == "ray"
    assert any("each job starts a Ray cluster on this machine" in c.value for c in at.caption)
    assert json.loads(get_job(ws, submit(ws, "captions"))["params"]) == {"executor": "ray"}
    assert json.loads(get_job(ws, submit(ws, "world"))["params"]) == {}  # no parallel parts: nothing recorded
    assert json.loads(get_job(ws, submit(ws, "captions", {"executor": "local"}))["params"]) == {"executor": "local"}
    at.run()
    assert at.radio(key="home_executor").value == "ray"  # the setting is the workspace's, kept across visits
