"""Shared fixtures: a tiny synthetic world built once per test session, and its NSD export."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from backend.datasets.demo.world import build_demo_world, tiny_config  # noqa: E402
from backend.store import Workspace  # noqa: E402


@pytest.fixture(scope="session")
def tiny_ws(tmp_path_factory) -> Workspace:
    """The tiny demo world (560 images, 2 subjects on fsaverage5). Treat as read-only."""
    ws = Workspace(tmp_path_factory.mktemp("tiny") / "workspace")
    build_demo_world(ws, tiny_config(), workers=1)
    return ws


@pytest.fixture(scope="session")
def nsd_root(tiny_ws, tmp_path_factory) -> Path:
    """The tiny world exported in the NSD release layout. Treat as read-only (copy before breaking files)."""
    from backend.datasets.demo import export_demo_nsd

    return export_demo_nsd(tiny_ws, tmp_path_factory.mktemp("nsd") / "NSD")


@pytest.fixture(scope="session")
def fitted_world(tmp_path_factory):
    """A small demo world (2,300 images, 1,100 per subject) with the shipped demo embedder and encoders fitted."""
    from backend.datasets.demo.world import WorldConfig, build_demo_world
    from backend.encoders import fit_encoder
    from backend.encoders.features import stimulus_features
    from backend.models import load_role, model_config
    from backend.store import Workspace

    ws = Workspace(tmp_path_factory.mktemp("enc") / "ws")
    build_demo_world(ws, WorldConfig(n_images=2300, n_shared=100, n_unique=1000, trials_per_session=150,
                                     sessions=[22, 18], roi_scale=[1.0, 0.85]))
    cfg = model_config()
    emb = load_role("embedder", config=cfg)
    feats, key = stimulus_features(ws, emb, cfg["embedder"]["path"])
    summaries = {s: fit_encoder(ws, s, feats, key, emb.model_id) for s in ("subj01", "subj02")}
    return ws, emb, feats, key, summaries
