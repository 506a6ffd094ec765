"""Synthetic subjects: ROIs on the intended anatomy, NSD noise ceilings, responses that follow ground truth."""
from pathlib import Path

import numpy as np
import pytest

from backend.datasets.betas import RepeatAverager, ncsnr_from_trials, noise_ceiling, zscore_session
from backend.datasets.demo.world import build_demo_world, tiny_config
from backend.datasets.reading import subject_betas
from backend.store import Workspace
from backend.surface.meshes import load_fsaverage5, vertex_normals

# Literature centroids the synthetic ROIs are held to (group averages, MNI305 mm, per hemisphere)
LITERATURE_MM = {"FFA": {"rh": (40, -52, -18), "lh": (-40, -52, -18)},
                 "PPA": {"rh": (26, -44, -9), "lh": (-26, -44, -9)},
                 "EBA": {"rh": (48, -70, 3), "lh": (-48, -70, 3)},
                 "VWFA": {"lh": (-45, -57, -13)},
                 "V1": {"rh": (10, -85, 5), "lh": (-10, -85, 5)}}


@pytest.fixture(scope="module")
def surface():
    return load_fsaverage5()


def test_the_cached_fsaverage5_is_nilearns_and_loads_without_nilearn_datasets(tmp_path):
    """The page-side copy of fsaverage5 (a first visit must not spend 3-4 s importing scikit-learn) holds exactly
    nilearn's arrays, and a second process reads it without importing nilearn.datasets."""
    import subprocess
    import sys

    from backend.surface.meshes import _FIELDS

    ref = load_fsaverage5(cache=None)
    first = load_fsaverage5(cache=tmp_path)  # writes the cache
    assert len(list(tmp_path.glob("*.npz"))) == 1 and not list(tmp_path.glob("*.tmp*"))
    code = ("import sys; from pathlib import Path; from backend.surface.meshes import load_fsaverage5; "
            f"load_fsaverage5(cache=Path({str(tmp_path)!r})); print('nilearn.datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    cached = load_fsaverage5(cache=tmp_path)
    for s in (first, cached):
        for h in ("lh", "rh"):
            for f in _FIELDS:
                a, b = getattr(ref[h], f), getattr(s[h], f)
                assert a.dtype == b.dtype and np.array_equal(a, b), (h, f)


def _roi_vertices(ws, subject, column, names, hemi):
    df = ws.query(f'SELECT vertex FROM voxels WHERE subject = ? AND hemi = ? AND "{column}" IN '
                  f'(SELECT unnest(?::VARCHAR[]))', [subject, hemi, list(names)])
    return df.vertex.to_numpy()


@pytest.mark.parametrize("subject", ["subj01", "subj02"])
@pytest.mark.parametrize("hemi", ["lh", "rh"])
def test_ffa_lies_within_15mm_of_its_literature_coordinate_on_the_ventral_surface(tiny_ws, surface, subject, hemi):
    v = _roi_vertices(tiny_ws, subject, "floc-faces", ["FFA-1", "FFA-2"], hemi)
    assert v.size >= 10
    mid = surface[hemi].midthickness
    centroid = mid[v].mean(0)
    assert np.linalg.norm(centroid - np.array(LITERATURE_MM["FFA"][hemi])) < 15
    # on the inflated surface (the gross shape, without folds) the patch faces downward: the ventral surface
    normals = vertex_normals(surface[hemi].inflated, surface[hemi].faces)[v]
    assert normals[:, 2].mean() < -0.5
    assert centroid[2] < -8


@pytest.mark.parametrize("subject", ["subj01", "subj02"])
def test_category_and_early_rois_land_on_their_anatomy(tiny_ws, surface, subject):
    for hemi in ("lh", "rh"):
        mid = surface[hemi].midthickness
        sign = -1 if hemi == "lh" else 1
        for name, column, names in [("PPA", "floc-places", ["PPA"]), ("EBA", "floc-bodies", ["EBA"])]:
            c = mid[_roi_vertices(tiny_ws, subject, column, names, hemi)].mean(0)
            assert np.linalg.norm(c - np.array(LITERATURE_MM[name][hemi])) < 15, (name, hemi, c)
        eba = mid[_roi_vertices(tiny_ws, subject, "floc-bodies", ["EBA"], hemi)].mean(0)
        ppa = mid[_roi_vertices(tiny_ws, subject, "floc-places", ["PPA"], hemi)].mean(0)
        assert sign * eba[0] > sign * ppa[0] + 10  # EBA lateral, PPA medial
        v1 = mid[_roi_vertices(tiny_ws, subject, "prf-visualrois", ["V1v", "V1d"], hemi)]
        assert abs(v1[:, 0].mean()) < 20 and v1[:, 1].mean() < -70  # medial occipital, around the calcarine
        v1d = mid[_roi_vertices(tiny_ws, subject, "prf-visualrois", ["V1d"], hemi)].mean(0)
        v1v = mid[_roi_vertices(tiny_ws, subject, "prf-visualrois", ["V1v"], hemi)].mean(0)
        assert v1d[2] > v1v[2]  # dorsal V1 (lower field) above ventral V1 (upper field)
    vwfa_rh = _roi_vertices(tiny_ws, subject, "floc-words", ["VWFA-1", "VWFA-2"], "rh")
    vwfa_lh = tiny_ws.query('SELECT vertex FROM voxels WHERE subject = ? AND hemi = \'lh\' AND "floc-words" LIKE '
                            "'VWFA%'", [subject]).vertex.to_numpy()
    assert vwfa_rh.size == 0 and vwfa_lh.size > 0
    c = surface["lh"].midthickness[vwfa_lh].mean(0)
    assert np.linalg.norm(c - np.array(LITERATURE_MM["VWFA"]["lh"])) < 15


def test_the_two_subjects_rois_differ_in_size_and_position(tiny_ws):
    sizes = tiny_ws.query("SELECT subject, count(*) AS n FROM voxels WHERE roi IS NOT NULL AND roi NOT LIKE 'V%' "
                          "AND roi <> 'hV4' GROUP BY subject ORDER BY subject").n.to_numpy()
    assert sizes[1] < 0.95 * sizes[0]
    a = set(_roi_vertices(tiny_ws, "subj01", "floc-faces", ["FFA-1"], "rh"))
    b = set(_roi_vertices(tiny_ws, "subj02", "floc-faces", ["FFA-1"], "rh"))
    assert len(a & b) / len(a | b) < 0.9


def test_noise_ceiling_formula_matches_a_hand_computed_case():
    # ncsnr 0.5; A=2 images with 3 repeats, B=1 with 2, C=1 with 1:
    # noise term = (2/3 + 1/2 + 1/1) / 4 = 0.5416667; NC = 100 * 0.25 / (0.25 + 0.5416667) = 31.5789 %
    assert noise_ceiling(np.array([0.5]), {3: 2, 2: 1, 1: 1})[0] == pytest.approx(31.5789, abs=1e-3)
    # all images averaged over 3 trials, ncsnr 1: 100 * 1 / (1 + 1/3) = 75 %
    assert noise_ceiling(np.array([1.0]), {3: 1000})[0] == pytest.approx(75.0)
    assert noise_ceiling(np.array([0.0]), {3: 10})[0] == 0


def test_ncsnr_from_trials_matches_a_hand_computed_case():
    # two images, 3 z-scored trials each; unbiased variances 1/3 and 1/3 -> noise var 1/3
    trials = [np.array([[0.0], [1.0], [0.0]]) - 1 / 3, np.array([[1.0], [0.0], [1.0]])]
    var = np.var(trials[0], ddof=1)
    assert var == pytest.approx(1 / 3)
    expected = np.sqrt(1 - 1 / 3) / np.sqrt(1 / 3)
    assert ncsnr_from_trials(trials)[0] == pytest.approx(expected)


def test_streaming_averager_equals_the_direct_computation():
    rng = np.random.default_rng(0)
    n_img, n_vox = 40, 7
    sessions = [rng.integers(0, n_img - 5, 30) for _ in range(4)]  # the last 5 images are never shown
    data = [rng.normal(size=(30, n_vox)) for _ in range(4)]
    acc = RepeatAverager(n_img, n_vox)
    z_all, rows_all = [], []
    for rows, b in zip(sessions, data):
        z = zscore_session(b)
        acc.add_session(z, rows)
        z_all.append(z)
        rows_all.append(rows)
    z_all = np.concatenate(z_all)
    rows_all = np.concatenate(rows_all)
    mean, reps, ncsnr = acc.result()
    seen = np.unique(rows_all)
    assert set(range(n_img)) - set(seen) >= set(range(n_img - 5, n_img))
    assert np.array_equal(reps, np.bincount(rows_all, minlength=n_img))
    for i in seen:
        assert np.allclose(mean[i], z_all[rows_all == i].mean(0), atol=1e-5)
    assert np.isnan(mean[reps == 0]).all()  # an image never shown has no response, not a zero
    full = min(reps.max(), 3)
    groups = [z_all[rows_all == i] for i in range(n_img) if reps[i] == full]
    assert np.allclose(ncsnr, ncsnr_from_trials(groups), atol=1e-4)


def test_estimated_ncsnr_tracks_the_true_noise_level(tiny_ws):
    df = tiny_ws.query("SELECT v.ncsnr, t.ncsnr_true FROM voxels v JOIN voxel_truth t USING (subject, voxel)")
    assert np.corrcoef(df.ncsnr, df.ncsnr_true)[0, 1] > 0.85
    nc = tiny_ws.query("SELECT noise_ceiling FROM voxels").noise_ceiling
    assert 5 < nc.median() < 60 and nc.max() < 100 and nc.min() >= 0


def test_face_rois_respond_to_faces_anywhere_and_place_rois_to_places(tiny_ws):
    betas, rows = subject_betas(tiny_ws, "subj01")
    stim = tiny_ws.query("SELECT stim_id, categories FROM stimuli")
    cats = dict(zip(stim.stim_id, stim.categories))
    has = lambda c: np.array([c in cats[s] for s in rows.stim_id])  # noqa: E731
    vox = tiny_ws.query("SELECT voxel, roi FROM voxels WHERE subject = 'subj01'")
    b = np.asarray(betas)
    for roi, cat in [("FFA-1", "face"), ("PPA", "place"), ("EBA", "body"), ("VWFA-1", "word")]:
        r = b[:, vox.voxel[vox.roi == roi].to_numpy()].mean(1)
        assert r[has(cat)].mean() - r[~has(cat)].mean() > 0.4, roi


def test_early_visual_voxels_respond_to_contrast_inside_their_receptive_field(tiny_ws):
    betas, rows = subject_betas(tiny_ws, "subj01")
    contrast = np.asarray(tiny_ws.array("stimuli_contrast"), np.float32)[rows.stim_id.to_numpy()]
    truth = tiny_ws.query("SELECT t.voxel, t.prf_x, t.prf_y, t.ncsnr_true FROM voxel_truth t JOIN voxels v "
                          "USING (subject, voxel) WHERE subject = 'subj01' AND v.roi IN ('V1v', 'V1d') "
                          "AND abs(t.prf_x) < 3 AND abs(t.prf_y) < 3 AND t.ncsnr_true > 0.6")
    assert len(truth) > 20
    b = np.asarray(betas)
    own, other = [], []
    for v, x, y in zip(truth.voxel, truth.prf_x, truth.prf_y):
        col = int((x + 4.2) / 8.4 * 32)
        row = int((4.2 - y) / 8.4 * 32)
        local = contrast[:, max(row - 2, 0):row + 3, max(col - 2, 0):col + 3].mean(axis=(1, 2))
        mirror = contrast[:, max(31 - row - 2, 0):31 - row + 3, max(31 - col - 2, 0):31 - col + 3].mean(axis=(1, 2))
        own.append(np.corrcoef(local, b[:, v])[0, 1])
        other.append(np.corrcoef(mirror, b[:, v])[0, 1])
    assert np.median(own) > 0.2 and np.median(own) > np.median(other) + 0.15


def test_building_the_same_world_twice_gives_identical_data(tiny_ws, tmp_path):
    ws2 = Workspace(tmp_path / "again")
    build_demo_world(ws2, tiny_config(), workers=2)
    for name in ("stimuli_images", "stimuli_masks", "betas_subj01", "betas_subj02"):
        assert np.array_equal(np.asarray(tiny_ws.array(name)), np.asarray(ws2.array(name))), name
    q = "SELECT stim_id, k, caption FROM captions ORDER BY stim_id, k"
    assert tiny_ws.query(q).equals(ws2.query(q))
    q = "SELECT * FROM voxels ORDER BY subject, voxel"
    assert tiny_ws.query(q).equals(ws2.query(q))


def test_an_interrupted_stimulus_render_resumes_and_gives_the_same_images(tmp_path):
    from backend.datasets.demo.world import CHUNK, WorldConfig, render_stimuli

    cfg = WorldConfig(n_images=3 * CHUNK, n_shared=0, n_unique=0, sessions=[], roi_scale=[])
    ref = tmp_path / "ref"
    render_stimuli(cfg, ref, workers=1)
    part = tmp_path / "part"
    render_stimuli(cfg, part, workers=1)
    # simulate a kill during chunk 2: its metadata never landed and its pixels are half written
    (part / f"chunk_{CHUNK:07d}.json").unlink()
    imgs = np.load(part / "images.npy", mmap_mode="r+")
    imgs[CHUNK: CHUNK + 10] = 0
    imgs.flush()
    done = []
    stim, objects, captions = render_stimuli(cfg, part, progress=lambda s, d, t: done.append(d), workers=1)
    assert done[0] == 2 * CHUNK  # resumed with two chunks already done
    assert np.array_equal(np.load(ref / "images.npy"), np.load(part / "images.npy"))
    assert len(stim) == 3 * CHUNK and captions.stim_id.nunique() == 3 * CHUNK
