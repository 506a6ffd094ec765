"""NSD and Algonauts layouts: the demo world round-trips through the loaders; bad files get clear errors."""
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat, savemat

from backend.datasets import nsd
from backend.datasets.algonauts import AlgonautsFormatError, import_algonauts
from backend.datasets.demo import export_demo_algonauts
from backend.datasets.nsd import NSDFormatError, import_nsd
from backend.datasets.reading import stimulus_images
from backend.store import Workspace

BETAS = "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR"


@pytest.fixture(scope="module")
def imported(nsd_root, tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("imp") / "ws")
    report = import_nsd(ws, nsd_root, "subj01")
    return ws, report


def _joined(a: Workspace, b: Workspace, subject: str):
    va = a.query("SELECT voxel, hemi, vertex FROM voxels WHERE subject = ?", [subject])
    vb = b.query("SELECT voxel, hemi, vertex FROM voxels WHERE subject = ?", [subject])
    return va.merge(vb, on=["hemi", "vertex"], suffixes=("_a", "_b"))


def test_nsd_round_trip_gives_the_same_betas_ncsnr_rois_images_and_captions(tiny_ws, imported):
    ws, report = imported
    j = _joined(tiny_ws, ws, "subj01")
    n_demo = tiny_ws.query("SELECT count(*) AS n FROM voxels WHERE subject = 'subj01'").n[0]
    assert len(j) == n_demo  # every demo voxel is in the import (nsdgeneral is the union over subjects)
    ra = tiny_ws.query("SELECT stim_id, n_reps, split FROM subject_stimuli WHERE subject = 'subj01' ORDER BY row")
    rb = ws.query("SELECT stim_id, n_reps, split FROM subject_stimuli WHERE subject = 'subj01' ORDER BY row")
    assert ra.equals(rb)
    ba = np.asarray(tiny_ws.array("betas_subj01"))[:, j.voxel_a]
    bb = np.asarray(ws.array("betas_subj01"))[:, j.voxel_b]
    assert np.allclose(ba, bb, atol=1e-5)
    cols = 'ncsnr, noise_ceiling, noise_ceiling_test, roi, "prf-visualrois", "floc-faces", "floc-words", streams'
    va = tiny_ws.query(f"SELECT voxel, {cols} FROM voxels WHERE subject = 'subj01'").set_index("voxel").loc[j.voxel_a]
    vb = ws.query(f"SELECT voxel, {cols} FROM voxels WHERE subject = 'subj01'").set_index("voxel").loc[j.voxel_b]
    assert np.allclose(va.ncsnr, vb.ncsnr, atol=1e-4)
    assert np.allclose(va.noise_ceiling, vb.noise_ceiling, atol=1e-2)
    for c in ("roi", "prf-visualrois", "floc-faces", "floc-words", "streams"):
        assert list(va[c].fillna("")) == list(vb[c].fillna("")), c
    assert report.ncsnr_file_r > 0.9999
    ids = rb.stim_id.to_numpy()[[0, 5, 77]]
    for x, y in zip(stimulus_images(tiny_ws, ids), stimulus_images(ws, ids)):
        assert np.array_equal(x, y)
    q = "SELECT stim_id, k, caption FROM captions WHERE stim_id IN (SELECT stim_id FROM subject_stimuli " \
        "WHERE subject = 'subj01') ORDER BY stim_id, k"
    assert tiny_ws.query(q).equals(ws.query(q))
    run = ws.query("SELECT method, parameters, code_version FROM runs").iloc[0]
    assert run.method == "import-nsd" and json.loads(run.parameters)["subject"] == "subj01" and run.code_version


def test_reading_a_subset_of_sessions_reads_only_those(nsd_root):
    d = nsd.load_nsd_betas(nsd_root, "subj01", sessions=[1, 2, 3])
    assert d["sessions"] == [1, 2, 3] and d["n_trials"] == 3 * 60
    assert d["reps"].sum() == 180
    if d["reps"].max() < 2:  # no repeats yet: no noise ceiling, and the report says so
        assert np.isnan(d["ncsnr"]).all() and any("shown twice" in n for n in d["notes"])


def _copy(nsd_root, tmp_path):
    dst = tmp_path / "NSD"
    shutil.copytree(nsd_root, dst)
    return dst


def _write_session(path, data):
    nib.save(nib.MGHImage(data.astype(np.float32), np.eye(4)), str(path))


def test_a_session_file_with_the_wrong_vertex_count_is_named_in_the_error(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    p = root / BETAS / "lh.betas_session03.mgh"
    data = np.asarray(nib.load(str(p)).dataobj)
    _write_session(p, data[:10000])
    with pytest.raises(NSDFormatError, match=r"lh\.betas_session03\.mgh has 10000 vertices, expected 10242"):
        nsd.load_nsd_betas(root, "subj01")


def test_a_truncated_session_file_is_named_in_the_error(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    p = root / BETAS / "rh.betas_session02.mgh"
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(NSDFormatError, match=r"rh\.betas_session02\.mgh is truncated or unreadable"):
        nsd.load_nsd_betas(root, "subj01")


def test_a_session_with_the_wrong_number_of_trials_is_named_in_the_error(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    for h in ("lh", "rh"):
        p = root / BETAS / f"{h}.betas_session04.mgh"
        _write_session(p, np.asarray(nib.load(str(p)).dataobj)[..., :50])
    with pytest.raises(NSDFormatError, match=r"betas_session04\.mgh has 50 trials, expected 60"):
        nsd.load_nsd_betas(root, "subj01")


def test_missing_files_and_fields_are_named(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    (root / BETAS / "rh.betas_session05.mgh").unlink()
    with pytest.raises(NSDFormatError, match=r"rh\.betas_session05\.mgh is missing"):
        nsd.load_nsd_betas(root, "subj01")
    with pytest.raises(NSDFormatError, match=r"betas_session99\.mgh is missing"):
        nsd.load_nsd_betas(root, "subj01", sessions=[1, 99])
    (root / nsd.STIM_HDF5).unlink()
    with pytest.raises(NSDFormatError, match=r"nsd_stimuli\.hdf5 is missing"):
        import_nsd(Workspace(tmp_path / "ws"), root, "subj01")
    mat = loadmat(str(root / nsd.EXPDESIGN))
    savemat(str(root / nsd.EXPDESIGN), {"masterordering": mat["masterordering"], "subjectim": mat["subjectim"]})
    with pytest.raises(NSDFormatError, match=r"nsd_expdesign\.mat has no field 'sharedix'"):
        nsd.read_expdesign(root)


def test_a_stim_info_that_disagrees_with_the_design_is_refused(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    info = pd.read_csv(root / nsd.STIM_INFO, index_col=0)
    info.loc[info.index[-1], "shared1000"] = True
    info.to_csv(root / nsd.STIM_INFO)
    with pytest.raises(NSDFormatError, match="shared1000"):
        import_nsd(Workspace(tmp_path / "ws"), root, "subj01")


def test_roi_labels_with_ids_their_ctab_does_not_name_are_refused(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    lab = root / "nsddata/freesurfer/subj01/label"
    (lab / "floc-faces.mgz.ctab").write_text("0 Unknown\n1 OFA\n")
    with pytest.raises(NSDFormatError, match=r"lh\.floc-faces\.mgz uses label ids \[2, 3\] that floc-faces\.mgz\.ctab"):
        import_nsd(Workspace(tmp_path / "ws"), root, "subj01")


def test_roi_labels_on_the_native_surface_are_left_out_with_a_note_saying_how_to_add_them(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    lab = root / "nsddata/freesurfer/subj01/label"
    for h in ("lh", "rh"):  # as NSD ships them: on the subject's own surface (here 140,000 vertices)
        nib.save(nib.MGHImage(np.zeros((140000, 1, 1), np.int32), np.eye(4)), str(lab / f"{h}.floc-faces.mgz"))
    ws = Workspace(tmp_path / "ws")
    rep = import_nsd(ws, root, "subj01")
    assert any("lh.floc-faces.mgz" in n and "native surface" in n and "nsdcode" in n for n in rep.notes), rep.notes
    vox = ws.query('SELECT "floc-faces", "floc-places", roi FROM voxels WHERE subject = \'subj01\'')
    assert len(vox) == rep.n_voxels and vox["floc-faces"].isna().all()  # left empty, not guessed
    assert vox["floc-places"].notna().any() and not vox.roi.isin(["OFA", "FFA-1", "FFA-2"]).any()


def test_native_surface_roi_labels_are_mapped_to_fsaverage_with_nsd_transform_files(nsd_root, imported, tmp_path):
    """NSD's layout: labels on the subject's native surface + {lh,rh}.white-to-fsaverage.mgz (1-based nearest native
    vertex per fsaverage vertex). Here the native surface is a shuffled, enlarged copy of fsaverage5, so the mapped
    labels must equal the fsaverage ones exactly."""
    root = _copy(nsd_root, tmp_path)
    lab = root / "nsddata/freesurfer/subj01/label"
    tdir = root / "nsddata/ppdata/subj01/transforms"
    tdir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for h in ("lh", "rh"):
        n_native = 12_000
        perm = rng.permutation(n_native)[:10242]  # native vertex of each fsaverage vertex
        nib.save(nib.MGHImage((perm + 1).astype(np.float32)[:, None, None], np.eye(4)),
                 str(tdir / f"{h}.white-to-fsaverage.mgz"))
        for f in lab.glob(f"{h}.*.mgz"):
            fs = np.asarray(nib.load(str(f)).dataobj).reshape(-1)
            native = rng.integers(0, fs.max() + 1, n_native).astype(np.int32)  # vertices fsaverage never samples
            native[perm] = fs
            nib.save(nib.MGHImage(native[:, None, None], np.eye(4)), str(f))
    ws = Workspace(tmp_path / "ws")
    rep = import_nsd(ws, root, "subj01")
    assert any(n.startswith("mapped floc-bodies, floc-faces") and "white-to-fsaverage" in n for n in rep.notes), \
        rep.notes
    cols = 'hemi, vertex, roi, "prf-visualrois", "floc-faces", "floc-places", "floc-words", food'
    got = ws.query(f"SELECT {cols} FROM voxels WHERE subject = 'subj01' ORDER BY hemi, vertex")
    want = imported[0].query(f"SELECT {cols} FROM voxels WHERE subject = 'subj01' ORDER BY hemi, vertex")
    pd.testing.assert_frame_equal(got, want)
    assert got["floc-faces"].notna().sum() > 20
    # a transform that points outside the native surface is refused, naming the file
    nib.save(nib.MGHImage(np.full((10242, 1, 1), 99_999, np.float32), np.eye(4)), str(tdir / "lh.white-to-fsaverage.mgz"))
    with pytest.raises(NSDFormatError, match=r"lh\.white-to-fsaverage\.mgz points to native vertices"):
        import_nsd(Workspace(tmp_path / "ws2"), root, "subj01")


def test_nsd_as_it_comes_without_subject_roi_files_imports_from_the_nsdgeneral_mask(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    shutil.rmtree(root / "nsddata/freesurfer/subj01/label")
    for p in (root / "nsddata/freesurfer/fsaverage/label").glob("*.streams.mgz"):
        p.unlink()
    ws = Workspace(tmp_path / "ws")
    rep = import_nsd(ws, root, "subj01")
    assert any("no ROI label files" in n for n in rep.notes), rep.notes
    mask = sum(int((np.asarray(nib.load(str(root / f"nsddata/freesurfer/fsaverage/label/{h}.nsdgeneral.mgz"))
                                .get_fdata()) > 0).sum()) for h in ("lh", "rh"))
    vox = ws.query("SELECT roi, noise_ceiling FROM voxels WHERE subject = 'subj01'")
    assert len(vox) == rep.n_voxels and rep.n_voxels + rep.dropped_voxels == mask
    assert vox.roi.isna().all() and vox.noise_ceiling.notna().all()
    # a second subject joins the first; nothing of the first is lost
    before = ws.query("SELECT * FROM voxels WHERE subject = 'subj01' ORDER BY voxel")
    import_nsd(ws, root, "subj02")
    assert ws.query("SELECT subject FROM subjects ORDER BY subject").subject.tolist() == ["subj01", "subj02"]
    pd.testing.assert_frame_equal(ws.query("SELECT * FROM voxels WHERE subject = 'subj01' ORDER BY voxel"), before)
    assert ws.array("betas_subj01").shape[1] == len(before)


def test_the_explorer_shows_an_nsd_import_without_rois(nsd_root, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = _copy(nsd_root, tmp_path)
    shutil.rmtree(root / "nsddata/freesurfer/subj01/label")
    ws = Workspace(tmp_path / "ws")
    import_nsd(ws, root, "subj01")
    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(ws.path))
    v = ws.query("SELECT hemi, vertex FROM voxels WHERE subject = 'subj01' LIMIT 1").iloc[0]
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.query_params.update(subject="subj01", overlay="noise_ceiling", vertex=f"{v.hemi}:{v.vertex}")
    at.switch_page("views/explorer.py").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert at.selectbox(key="cx_overlay").value == "noise_ceiling"
    assert any(s.value.startswith(f"no ROI · {v.hemi} vertex {v.vertex}") for s in at.subheader)


def test_nan_betas_are_reported_and_left_out_of_the_averages(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    p = root / BETAS / "lh.betas_session02.mgh"
    data = np.asarray(nib.load(str(p)).dataobj).copy()
    mask = np.asarray(nib.load(str(root / nsd.FSAVERAGE / "label/lh.nsdgeneral.mgz")).dataobj).ravel() > 0
    v = np.flatnonzero(mask)[:3]
    data[v, 0, 0, 10:13] = np.nan
    _write_session(p, data)
    clean = nsd.load_nsd_betas(nsd_root, "subj01")
    dirty = nsd.load_nsd_betas(root, "subj01")
    assert any("session 02: 3 voxels have NaN betas in 3 of 60 trials" in n for n in dirty["notes"])
    assert np.isfinite(dirty["betas"]).all()
    # images of the NaN trials are averaged over their remaining repeats
    assert dirty["short"][:3].tolist() == [3, 3, 3] and dirty["short"][3:].sum() == 0 == clean["short"].sum()
    assert not np.allclose(dirty["betas"][:, :3], clean["betas"][:, :3])
    assert np.allclose(dirty["betas"][:, 3:], clean["betas"][:, 3:], atol=1e-5)


def test_a_subject_is_read_in_voxel_chunks_with_the_same_result(nsd_root):
    # a small memory budget forces many chunks: the averages, ncsnr and kept voxels do not depend on it
    whole = nsd.load_nsd_betas(nsd_root, "subj01")
    parts = nsd.load_nsd_betas(nsd_root, "subj01", memory_mb=0.05)
    assert whole["chunk"] >= whole["vertex"].size and parts["chunk"] < whole["vertex"].size // 10
    assert np.allclose(parts["betas"], whole["betas"], atol=1e-6)
    assert np.allclose(parts["ncsnr"], whole["ncsnr"], rtol=1e-4, atol=1e-4, equal_nan=True)  # float32, other order
    assert (parts["keep"] == whole["keep"]).all() and (parts["reps"] == whole["reps"]).all()


def test_a_failed_import_leaves_the_workspace_as_it_was(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    ws = Workspace(tmp_path / "ws")
    import_nsd(ws, root, "subj01")
    before = ws.query("SELECT * FROM voxels ORDER BY subject, voxel")
    files = sorted(p.name for p in ws.arrays_dir.iterdir())
    p = root / "nsddata_betas/ppdata/subj02/fsaverage/betas_fithrf_GLMdenoise_RR/lh.betas_session07.mgh"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(NSDFormatError, match="lh.betas_session07.mgh"):
        import_nsd(ws, root, "subj02")
    assert ws.query("SELECT * FROM voxels ORDER BY subject, voxel").equals(before)
    assert ws.query("SELECT subject FROM subjects").subject.tolist() == ["subj01"]
    assert not any((ws.path / "staging").iterdir())  # the half-read betas file is gone
    assert sorted(p.name for p in ws.arrays_dir.iterdir()) == files


def test_importing_nsd_into_the_demo_workspace_is_refused(tiny_ws, nsd_root):
    with pytest.raises(NSDFormatError, match="holds the demo world"):
        import_nsd(tiny_ws, nsd_root, "subj01")


def test_algonauts_round_trip_gives_the_same_training_betas(tiny_ws, tmp_path):
    root = export_demo_algonauts(tiny_ws, tmp_path / "algonauts")
    ws = Workspace(tmp_path / "ws")
    import_algonauts(ws, root, "subj02")
    a = tiny_ws.query("SELECT row, stim_id FROM subject_stimuli WHERE subject = 'subj02' AND split = 'train' "
                      "ORDER BY row")
    b = ws.query("SELECT row, stim_id FROM subject_stimuli WHERE subject = 'subj02' ORDER BY row")
    assert a.stim_id.tolist() == b.stim_id.tolist()
    j = _joined(tiny_ws, ws, "subj02")
    assert len(j) == tiny_ws.query("SELECT count(*) AS n FROM voxels WHERE subject = 'subj02'").n[0]
    ba = np.asarray(tiny_ws.array("betas_subj02"))[a.row.to_numpy()][:, j.voxel_a]
    bb = np.asarray(ws.array("betas_subj02"))[:, j.voxel_b]
    assert np.allclose(ba, bb)
    ra = tiny_ws.query("SELECT voxel, roi FROM voxels WHERE subject = 'subj02'").set_index("voxel").loc[j.voxel_a]
    rb = ws.query("SELECT voxel, roi FROM voxels WHERE subject = 'subj02'").set_index("voxel").loc[j.voxel_b]
    assert list(ra.roi.fillna("")) == list(rb.roi.fillna(""))
    img_a = stimulus_images(tiny_ws, a.stim_id[:3])
    img_b = stimulus_images(ws, a.stim_id[:3])
    assert all(np.array_equal(x, y) for x, y in zip(img_a, img_b))
    np.save(root / "subj02/training_split/training_fmri/rh_training_fmri.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(AlgonautsFormatError, match=r"rh_training_fmri\.npy has 5 vertices, expected"):
        import_algonauts(Workspace(tmp_path / "ws3"), root, "subj02")


def test_a_subject_image_list_that_disagrees_with_the_design_is_refused_naming_both_files(nsd_root, tmp_path):
    root = _copy(nsd_root, tmp_path)
    info = pd.read_csv(root / nsd.STIM_INFO, index_col=0)
    seen = info.index[info["subject1"] == 1][:4]
    info.loc[seen, "subject1"] = 0  # the CSV of another release: four of subj01's images are not listed
    info.to_csv(root / nsd.STIM_INFO)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(NSDFormatError, match=r"nsd_stim_info_merged\.csv: column 'subject1' lists .* but subjectim "
                                             r"in .*nsd_expdesign\.mat .* 4 \(nsdId [\d, ]+ \.\.\.\) only in the design"):
        import_nsd(ws, root, "subj01")
    assert not ws.exists and not (ws.path / "arrays").exists()  # nothing written, not even the betas read


def test_algonauts_images_listed_twice_are_refused(tiny_ws, tmp_path):
    root = export_demo_algonauts(tiny_ws, tmp_path / "algonauts")
    imgs = sorted((root / "subj02/training_split/training_images").glob("train-*_nsd-*.png"))
    nsd_id = imgs[0].name.split("_nsd-")[1]
    imgs[1].rename(imgs[1].with_name(imgs[1].name.split("_nsd-")[0] + "_nsd-" + nsd_id))
    with pytest.raises(AlgonautsFormatError, match=r"1 NSD image appears under two file names \(e\.g\. nsd-"):
        import_algonauts(Workspace(tmp_path / "ws"), root, "subj02")


def test_the_import_reports_progress_per_session_in_megabytes(nsd_root, tmp_path):
    calls = []
    import_nsd(Workspace(tmp_path / "ws"), nsd_root, "subj01", sessions=[1, 2],
               progress=lambda stage, done, total: calls.append((stage, done, total)))
    read = [c for c in calls if "sessions of betas (MB)" in c[0]]
    files = nsd_root / "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR"
    size = sum((files / f"{h}.betas_session{s:02d}.mgh").stat().st_size for h in ("lh", "rh") for s in (1, 2)) / 1e6
    assert [c[1] for c in read] == sorted(c[1] for c in read) and len(read) == 3  # start + one step per session
    assert read[-1][1] == read[-1][2] == pytest.approx(size, abs=0.1)


def test_an_nsd_subject_takes_its_rois_from_algonauts_masks_when_the_nsd_tree_has_none(nsd_root, imported, tiny_ws,
                                                                                        tmp_path):
    root = _copy(nsd_root, tmp_path)
    shutil.rmtree(root / "nsddata/freesurfer/subj01/label")
    alg = export_demo_algonauts(tiny_ws, tmp_path / "algonauts")
    ws = Workspace(tmp_path / "ws")
    rep = import_nsd(ws, root, "subj01", algonauts_rois=alg / "subj01" / "roi_masks")
    assert any("from the Algonauts masks" in n for n in rep.notes) and not any("no ROI label" in n for n in rep.notes)
    cols = 'hemi, vertex, roi, "prf-visualrois", "floc-faces", "floc-places", "floc-bodies", "floc-words", food'
    got = ws.query(f"SELECT {cols} FROM voxels WHERE subject = 'subj01' ORDER BY hemi, vertex")
    want = imported[0].query(f"SELECT {cols} FROM voxels WHERE subject = 'subj01' ORDER BY hemi, vertex")
    pd.testing.assert_frame_equal(got, want)
    assert got["floc-faces"].notna().sum() > 20

