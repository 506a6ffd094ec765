"""The DuckDB workspace: one writer, read-only readers, all-or-nothing writes, provenance for every run."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from backend.store import Workspace, WorkspaceBusy
from backend.surface.rois import ROI_COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _small_workspace(path) -> Workspace:
    ws = Workspace(path)
    with ws.writer() as tx:
        run = tx.new_run("test-setup", {"n": 3}, seed=7, model_ids={"embedder": "none"})
        tx.put_array("betas_s1", np.arange(12, dtype=np.float32).reshape(3, 4), run, "test array")
        tx.insert_df("voxels", pd.DataFrame({"subject": "s1", "voxel": [0, 1, 2], "hemi": "lh", "vertex": [5, 6, 7],
                                             "ncsnr": [0.1, 0.2, 0.3]}))
        tx.set_meta(complete="true", dataset="test")
    return ws


def _start_writer(path, hold: str):
    code = textwrap.dedent(f"""
        import sys, time, numpy as np, pandas as pd
        sys.path.insert(0, {ROOT!r})
        from backend.store import Workspace
        ws = Workspace({str(path)!r})
        with ws.writer() as tx:
            run = tx.new_run("test-killed", {{"step": 1}}, seed=1)
            tx.put_array("betas_s1", np.zeros((100, 100), np.float32), run)
            tx.sql("DELETE FROM voxels")
            tx.insert_df("voxels", pd.DataFrame({{"subject": "s2", "voxel": [0], "hemi": "rh", "vertex": [1]}}))
            print("{hold}", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == hold
    return proc


def test_a_writer_killed_mid_write_leaves_the_workspace_as_it_was(tmp_path):
    ws = _small_workspace(tmp_path / "ws")
    before = {t: ws.query(f"SELECT * FROM {t} ORDER BY ALL") for t in ("voxels", "runs", "arrays")}
    files_before = sorted(p.name for p in ws.arrays_dir.iterdir())
    proc = _start_writer(ws.path, "holding")
    # while it writes: a second writer is refused, readers are told the workspace is busy
    with pytest.raises(WorkspaceBusy, match="being written by another process"):
        with ws.writer():
            pass
    with pytest.raises(WorkspaceBusy):
        ws.query("SELECT 1")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for t, df in before.items():
        assert ws.query(f"SELECT * FROM {t} ORDER BY ALL").equals(df), t
    assert np.array_equal(ws.array("betas_s1"), np.arange(12, dtype=np.float32).reshape(3, 4))
    # the killed writer's array file is an orphan; the next writer removes it
    assert len(list(ws.arrays_dir.iterdir())) == len(files_before) + 1
    with ws.writer():
        pass
    assert sorted(p.name for p in ws.arrays_dir.iterdir()) == files_before


def test_an_exception_inside_a_write_rolls_everything_back(tmp_path):
    ws = _small_workspace(tmp_path / "ws")
    with pytest.raises(RuntimeError, match="boom"):
        with ws.writer() as tx:
            tx.put_array("betas_s1", np.zeros(3, np.float32), tx.new_run("x", {}))
            tx.sql("DELETE FROM voxels")
            raise RuntimeError("boom")
    assert len(ws.query("SELECT * FROM voxels")) == 3
    assert ws.array("betas_s1").shape == (3, 4)
    assert len(list(ws.arrays_dir.iterdir())) == 1


def test_readers_are_read_only(tmp_path):
    ws = _small_workspace(tmp_path / "ws")
    with ws.read() as con:
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM voxels").fetchall()
    assert len(ws.query("SELECT * FROM voxels")) == 3


def test_reads_inside_a_reading_block_share_one_connection_and_release_it(tmp_path, monkeypatch):
    ws = _small_workspace(tmp_path / "ws")
    opened = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or real(*a, **k))
    with ws.reading():
        with ws.reading():  # nested blocks reuse the outer connection
            assert len(ws.query("SELECT * FROM voxels")) == 3
        assert ws.array("betas_s1").shape == (3, 4) and ws.meta()["dataset"] == "test"
    assert len(opened) == 1
    ws.query("SELECT 1")
    assert len(opened) == 2  # outside the block: a connection per read again
    with ws.writer() as tx:  # the shared connection was closed: a writer gets in at once
        tx.set_meta(dataset="changed")
    assert ws.meta()["dataset"] == "changed"


def test_every_run_records_method_parameters_models_seed_and_code_version(tmp_path):
    ws = _small_workspace(tmp_path / "ws")
    r = ws.query("SELECT * FROM runs").iloc[0]
    assert r.method == "test-setup" and json.loads(r.parameters) == {"n": 3} and r.seed == 7
    assert json.loads(r.model_ids) == {"embedder": "none"}
    assert r.code_version.startswith("0.") and r.created_at is not None
    a = ws.query("SELECT * FROM arrays").iloc[0]
    assert a.run_id == r.run_id and json.loads(a["shape"]) == [3, 4] and a["dtype"] == "float32"


def test_the_demo_world_records_its_build(tiny_ws):
    run = tiny_ws.query("SELECT r.* FROM runs r JOIN meta m ON m.key = 'world_run' AND m.value = r.run_id").iloc[0]
    params = json.loads(run.parameters)
    assert run.method == "demo-world" and params["n_images"] == 560 and run.seed == 0
    arrays = set(tiny_ws.query("SELECT name FROM arrays").name)
    assert {"stimuli_images", "stimuli_masks", "betas_subj01", "betas_subj02"} <= arrays
    cols = set(tiny_ws.query("SELECT * FROM voxels LIMIT 1").columns)
    assert set(ROI_COLUMNS) | {"subject", "hemi", "vertex", "noise_ceiling", "ncsnr"} <= cols


def test_an_older_schema_is_refused_with_a_clear_message(tmp_path):
    ws = _small_workspace(tmp_path / "ws")
    with ws.writer() as tx:
        tx.set_meta(schema_version=0)
    assert not ws.exists
    with pytest.raises(RuntimeError, match="schema version 0"):
        with ws.writer():
            pass


def test_runs_record_the_commit_of_the_code_and_the_default_workspace_is_at_the_repository_root(monkeypatch):
    from backend import __version__
    from backend.store import code_version, default_workspace

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert code_version() == f"{__version__}+{head[:10]}"
    monkeypatch.delenv("VOXELSCOPE_WORKSPACE", raising=False)
    assert default_workspace() == root / "workspace"
