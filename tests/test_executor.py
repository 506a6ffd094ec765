"""The Ray executor: a local Ray cluster of 2 CPUs captions voxels exactly as the local executor does, embeds
stimuli, fits encoders by blocks of voxels, attention encoders by subject and the BIT decoder as one task with the same
results, and samples BrainDiVE seed batches as it does, stored by the one writer, and a run stopped part-way resumes under Ray with no
duplicate rows."""
from __future__ import annotations

import shutil

import pytest

from backend.errors import InvalidInputError
from backend.executor import LocalExecutor, get_executor
from backend.store import Workspace

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def two_worlds(fitted_world, tmp_path_factory):
    """Two copies of the fitted world with a small demo bank: one captioned locally, one by Ray."""
    import backend.captions as C

    ws, emb, *_ = fitted_world
    root = tmp_path_factory.mktemp("exec")
    out = []
    for name in ("local", "ray"):
        shutil.copytree(ws.path, root / name, ignore=shutil.ignore_patterns("write.lock"))
        w = Workspace(root / name)
        with w.writer() as tx:  # start both from no captions
            tx.sql("DELETE FROM voxel_captions")
        out.append(w)
    if "demo" not in set(C.bank_table(out[0]).bank):
        for w in out:
            C.build_demo_bank(w, emb, n=1500, chunk=500)
    return out[0], out[1], emb


@pytest.fixture(scope="module")
def ray_executor():
    ex = get_executor("ray", num_cpus=2)
    yield ex
    ex.shutdown()


def _captions(ws):
    return ws.query("SELECT method, voxel, caption, keywords FROM voxel_captions WHERE subject = 'subj01' "
                    "ORDER BY method, voxel")


def test_ray_captions_equal_the_local_executors(two_worlds, ray_executor):
    import backend.captions as C

    local, remote, emb = two_worlds
    voxels = list(range(0, 600, 5))  # 120 voxels in 4 batches of 32
    C.precompute(local, "subj01", models={"embedder": emb}, voxels=voxels, batch=32, executor=LocalExecutor())
    res = C.precompute(remote, "subj01", models={"embedder": emb}, voxels=voxels, batch=32, executor=ray_executor)
    assert {m: r["new"] for m, r in res.items()} == {"brainscuba": 120, "lavca": 120}
    a, b = _captions(local), _captions(remote)
    assert len(a) == 240 and a.equals(b)
    # the work ran in Ray worker processes, not here
    assert int(ray.cluster_resources()["CPU"]) == 2


def test_a_run_stopped_part_way_resumes_under_ray_without_duplicates(two_worlds, ray_executor):
    import backend.captions as C

    _, remote, emb = two_worlds
    voxels = list(range(1000, 1160))

    class Stop(Exception):
        pass

    def stop_after_two_batches(stage, done, total):
        if done >= 64 and "BrainSCUBA" in stage:
            raise Stop

    with pytest.raises(Stop):
        C.precompute(remote, "subj01", ["brainscuba"], models={"embedder": emb}, voxels=voxels, batch=32,
                     executor=ray_executor, progress=stop_after_two_batches)
    kept = remote.query("SELECT count(*) n FROM voxel_captions WHERE subject = 'subj01' AND voxel >= 1000").n.iloc[0]
    assert kept == 64
    res = C.precompute(remote, "subj01", ["brainscuba"], models={"embedder": emb}, voxels=voxels, batch=32,
                       executor=ray_executor)
    assert res["brainscuba"]["new"] == len(voxels) - 64
    dup = remote.query("SELECT voxel, count(*) n FROM voxel_captions WHERE subject = 'subj01' AND method = 'brainscuba' "
                       "GROUP BY voxel HAVING count(*) > 1")
    assert dup.empty and remote.query("SELECT count(*) n FROM voxel_captions WHERE subject = 'subj01' AND "
                                      "method = 'brainscuba' AND voxel >= 1000").n.iloc[0] == len(voxels)


def test_ray_braindive_batches_equal_the_local_executors_and_a_stopped_run_resumes(two_worlds, ray_executor):
    import numpy as np

    from backend.synthesis import GuidanceConfig, parse_target, run_images, synthesis_images, synthesize

    local, remote, _ = two_worlds
    spec = parse_target("PPA", ["subj01"])
    cfg = GuidanceConfig(steps=4, batch=2)
    a = synthesize(local, spec, n_seeds=6, config=cfg, executor=LocalExecutor())

    class Stop(Exception):
        pass

    def stop_after_first_batch(stage, done, total):
        if done >= 2 * cfg.steps:
            raise Stop

    with pytest.raises(Stop):
        synthesize(remote, spec, n_seeds=6, config=cfg, executor=ray_executor, progress=stop_after_first_batch)
    assert len(remote.query("SELECT seed FROM synthesis_images")) == 2  # the first batch, stored by this process
    b = synthesize(remote, spec, n_seeds=6, config=cfg, executor=ray_executor)
    ra, rb = (synthesis_images(w, r["run_id"]).sort_values("seed") for w, r in ((local, a), (remote, b)))
    assert sorted(rb.seed) == list(range(6)) and not rb.seed.duplicated().any()
    # the same images (a Ray worker runs torch on one thread: sums in another order, so up to rounding)
    diff = np.abs(run_images(local, ra).astype(int) - run_images(remote, rb).astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 4, (diff.mean(), diff.max())
    assert list(ra.kept) == list(rb.kept)


def test_ray_encoder_fits_equal_the_local_executors(fitted_world, ray_executor):
    import numpy as np

    from backend.datasets.reading import subject_betas
    from backend.encoders import fit_ridge_cv

    ws, _, feats, *_ = fitted_world
    betas, rows = subject_betas(ws, "subj01")
    train = np.flatnonzero((rows.split == "train").to_numpy())
    X = np.asarray(feats, np.float32)[:len(train)]
    # blocks of 500 voxels: several Ray tasks, read from the memory-mapped betas one block at a time
    local = fit_ridge_cv(X, betas, rows=train, chunk=500, executor=LocalExecutor())
    remote = fit_ridge_cv(X, betas, rows=train, chunk=500, executor=ray_executor)
    assert betas.shape[1] > 1000
    assert np.allclose(remote.coef, local.coef, atol=1e-5) and np.array_equal(remote.alpha, local.alpha)
    assert np.allclose(remote.intercept, local.intercept, atol=1e-5)


def test_ray_stimulus_features_equal_the_stored_local_ones(fitted_world, ray_executor, tmp_path):
    import numpy as np

    from backend.encoders.features import stimulus_features, stored_features
    from backend.models import model_config

    ws, emb, feats, key, _ = fitted_world
    copy = Workspace(tmp_path / "ws")
    shutil.copytree(ws.path, copy.path, ignore=shutil.ignore_patterns("write.lock"))
    with copy.writer() as tx:
        tx.sql("DELETE FROM feature_sets WHERE key = ?", [key])
    # 2,300 stimuli: three chunks, each embedded by a Ray worker that loads the embedder from its folder
    got, got_key = stimulus_features(copy, emb, model_config()["embedder"]["path"], executor=ray_executor)
    assert got_key == key and np.allclose(got, feats, atol=1e-5)
    assert np.allclose(stored_features(copy, key), feats, atol=1e-5)


def test_ray_trains_an_attention_encoder_per_subject_like_the_local_executor(fitted_world, ray_executor, tmp_path):
    import numpy as np

    from backend.encoders.attention import AttentionConfig, fit_attention_encoders, load_attention_encoder

    ws = fitted_world[0]
    cfg = AttentionConfig(d_model=32, heads=2, ffn=64, max_epochs=2, patience=3, seed=0)
    out = {}
    for name, ex in (("local", LocalExecutor()), ("ray", ray_executor)):
        copy = Workspace(tmp_path / name)
        shutil.copytree(ws.path, copy.path, ignore=shutil.ignore_patterns("write.lock"))
        res = fit_attention_encoders(copy, ["subj01", "subj02"], cfg, executor=ex)
        assert [r["subject"] for r in res] == ["subj01", "subj02"] and all(r["epochs"] == 2 for r in res)
        out[name] = copy
    for s in ("subj01", "subj02"):
        a, b = (load_attention_encoder(out[n], s) for n in ("local", "ray"))
        # a Ray task trains with one torch thread, the local executor with the machine's: the same up to float
        # rounding in two epochs of summed gradients
        for (k, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
            assert np.allclose(p.numpy(), q.numpy(), atol=1e-3), k
        ra, rb = (out[n].query("SELECT r_test FROM voxel_encoding WHERE subject = ? AND feature_key LIKE 'attention:%' "
                               "ORDER BY voxel", [s]).r_test.to_numpy() for n in ("local", "ray"))
        assert np.allclose(ra, rb, atol=1e-3, equal_nan=True)


def test_ray_trains_the_bit_decoder_like_the_local_executor(fitted_world, ray_executor, tmp_path):
    import numpy as np

    from backend.reconstruction import BITConfig, fit_bit, fit_clusters, load_decoder

    cfg = BITConfig(dim=32, k=8, epochs=2, batch=64, patience=4, min_steps=0)
    got = {}
    for name, ex in (("local", LocalExecutor()), ("ray", ray_executor)):
        copy = Workspace(tmp_path / name)
        shutil.copytree(fitted_world[0].path, copy.path, ignore=shutil.ignore_patterns("write.lock"))
        fit_clusters(copy, 8)
        got[name] = load_decoder(copy, fit_bit(copy, cfg=cfg, executor=ex))
    betas = np.asarray(fitted_world[0].array("betas_subj01")[:64])
    (ea, la), (eb, lb) = (got[n].predict("subj01", betas) for n in ("local", "ray"))
    # one Ray task with one torch thread vs the local process: the same decoder up to float rounding
    assert np.allclose(ea, eb, atol=1e-3) and np.abs(la.astype(int) - lb.astype(int)).max() <= 2
    assert got["ray"].kind == "bit" and got["ray"].subjects == ["subj01", "subj02"]


def test_an_unknown_executor_is_refused_by_name():
    with pytest.raises(InvalidInputError, match="unknown executor 'dask'"):
        get_executor("dask")
