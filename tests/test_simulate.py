"""The judge (the simulated subject's eyes) and the synthetic subjects' responses to any image."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.errors import InvalidInputError, NotFoundError
from tests.tiny import open_page


@pytest.fixture(scope="module")
def nsd_ws(nsd_root, tmp_path_factory):
    """The tiny world imported through the NSD importer: real-data layout, no ground truth."""
    from backend.datasets import import_nsd
    from backend.store import Workspace

    ws = Workspace(tmp_path_factory.mktemp("nsdsim") / "ws")
    import_nsd(ws, nsd_root, "subj01")
    return ws


@pytest.fixture(scope="module")
def judge_data():
    from backend.models.demo.train import HELDOUT_SEED_OFFSET, render_judge_set

    return render_judge_set(HELDOUT_SEED_OFFSET + 7, 120, workers=1)


def test_judge_labels_follow_the_worlds_masks(judge_data):
    from backend.models.judge import BACKGROUND_TYPES, JUDGE_CLASSES

    labels, bg = judge_data["labels"], judge_data["background"]
    assert labels.shape == (120, 64, 64) and labels.max() < len(JUDGE_CLASSES)
    assert set(np.unique(bg)) == set(range(len(BACKGROUND_TYPES)))
    assert 0.6 < (labels == 0).mean() < 0.95  # mostly background, every category present somewhere
    assert set(np.unique(labels)) == set(range(len(JUDGE_CLASSES)))


def test_the_shipped_judge_sees_the_worlds_categories_on_held_out_images(judge_data):
    """A floor on a small held-out set (the full held-out figures are in assets/models/training.json)."""
    from backend.models.demo.evaluate import judge_accuracy
    from backend.models.judge import load_judge

    rep = judge_accuracy(load_judge(), judge_data)
    assert rep["pixel_accuracy"] >= 0.9, rep
    assert rep["background_accuracy"] >= 0.85, rep
    assert min(rep["area_r"].values()) >= 0.75, rep


def test_the_letters_of_a_word_are_one_object_and_specks_are_none():
    from backend.models.judge import JUDGE_CLASSES, objects_in

    lab = np.zeros((1, 64, 64), np.uint8)
    word, face = JUDGE_CLASSES.index("word"), JUDGE_CLASSES.index("face")
    for k in range(4):  # four 3x5 letters, a pixel apart
        lab[0, 20:25, 10 + 4 * k:13 + 4 * k] = word
    lab[0, 40:50, 5:15] = face
    lab[0, 40:50, 40:50] = face  # a second face, far from the first
    lab[0, 2:4, 60:62] = word  # a 4-pixel speck
    objs = objects_in(lab)[0]
    assert sorted((o["category"], round(o["area"] * 4096)) for o in objs) == [("face", 100), ("face", 100),
                                                                              ("word", 60)]


def test_objects_from_the_worlds_own_masks_give_its_semantic_features(tmp_path):
    """The grouping, fed the world's true segmentation at the judge's size, recovers the annotation-based semantic
    features the true signal is made of (counting each letter as an object, as the first grouping did, gave words r 0.95
    on these images)."""
    from backend.datasets.demo.subjects import SEMANTIC_FEATURES, semantic_features
    from backend.datasets.demo.world import WorldConfig, render_stimuli
    from backend.models.judge import JUDGE_CLASSES, objects_in

    n = 300
    cfg = WorldConfig(seed=1234, n_images=n, n_shared=0, n_unique=0, sessions=[], roi_scale=[])
    stim, objects, _ = render_stimuli(cfg, tmp_path, workers=1)
    masks = np.load(tmp_path / "masks.npy")[:, 1::2, 1::2]
    lut = np.zeros((n, 8), np.uint8)
    lut[objects.stim_id.to_numpy(), objects.obj.to_numpy()] = objects.category.map(
        {c: i for i, c in enumerate(JUDGE_CLASSES)}).to_numpy()
    labels = np.take_along_axis(lut, masks.reshape(n, -1), 1).reshape(masks.shape)
    seen = pd.DataFrame([{"stim_id": i, **o} for i, objs in enumerate(objects_in(labels)) for o in objs])
    bg = stim.background.to_numpy()
    got, true = semantic_features(seen, bg), semantic_features(objects, bg)
    for j, name in enumerate(SEMANTIC_FEATURES[:6]):
        assert np.corrcoef(got[:, j], true[:, j])[0, 1] >= 0.98, name


def test_a_killed_judge_training_resumes_to_the_same_weights(judge_data, tmp_path):
    import torch

    from backend.models.demo.train import train_judge
    from backend.models.judge import load_judge

    data = {k: v[:40] for k, v in judge_data.items()}
    train_judge(tmp_path / "a", data, steps=6, batch=8, width=8, checkpoint_every=2, log=lambda m: None)

    def killer(stage, done, total):
        if done == 5:
            raise KeyboardInterrupt  # as if killed after step 5 (last checkpoint: step 4)

    with pytest.raises(KeyboardInterrupt):
        train_judge(tmp_path / "b", data, steps=6, batch=8, width=8, checkpoint_every=2, progress=killer,
                    log=lambda m: None)
    assert (tmp_path / "b" / "train_state.pt").exists()
    train_judge(tmp_path / "b", data, steps=6, batch=8, width=8, checkpoint_every=2, log=lambda m: None)
    assert not (tmp_path / "b" / "train_state.pt").exists()
    a, b = load_judge(tmp_path / "a").net.state_dict(), load_judge(tmp_path / "b").net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_the_one_pass_normalisation_reproduces_the_worlds_true_signal_exactly(tiny_ws):
    """respond() with the stored-statistics normalisation equals the world builder's true signal (z-scored over
    every image of the world) on the world's own annotations."""
    from backend.datasets.demo.subjects import combine, drive
    from backend.simulate import simulated_subject, world_semantic_features

    sim = simulated_subject(tiny_ws, "subj02")
    sem = world_semantic_features(tiny_ws)
    contrast = np.asarray(tiny_ws.array("stimuli_contrast"), np.float32)
    low, high = drive(sim.weights, sim.prf_x, sim.prf_y, sim.prf_sigma, sem, contrast)
    np.testing.assert_allclose(sim.respond(sem, contrast), combine(low, high, sim.prf_share), atol=2e-3)
    # the builder stored the statistics; computing them again (worlds built before) gives the same
    from backend.datasets.demo.subjects import STAT_NAMES, normalisation

    again = normalisation(sim.weights, sim.prf_x, sim.prf_y, sim.prf_sigma, sim.prf_share, sem, contrast)
    stored = np.asarray(tiny_ws.array("simulation_stats_subj02"))
    for k, name in enumerate(STAT_NAMES):
        np.testing.assert_allclose(stored[k], again[name], rtol=1e-4, atol=1e-5)


def test_simulated_responses_to_the_worlds_own_images_match_the_true_signal(tiny_ws):
    """From pixels alone (the judge + contrast energy), the tiny world's subject responds as its ground truth
    says: per ROI, the median over voxels of the correlation over images with the annotation-based signal."""
    from backend.datasets import stimulus_images
    from backend.simulate import simulate_response, simulated_subject, world_semantic_features
    from backend.store import stimulus_ids

    ids = stimulus_ids(tiny_ws)[:150]
    sim = simulated_subject(tiny_ws, "subj01")
    true = sim.respond(world_semantic_features(tiny_ws)[:150],
                       np.asarray(tiny_ws.array("stimuli_contrast")[:150], np.float32))
    pred = simulate_response(tiny_ws, "subj01", stimulus_images(tiny_ws, ids))
    assert pred.shape == true.shape
    a, b = true - true.mean(0), pred - pred.mean(0)
    r = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-12)
    roi = tiny_ws.query("SELECT roi FROM voxels WHERE subject = 'subj01' ORDER BY voxel").roi.fillna("").to_numpy()
    med = pd.Series(r).groupby(roi).median()
    for name in ("V1v", "V2d", "FFA-1", "PPA", "EBA", "VWFA-1", "ventral-food"):
        assert med[name] >= 0.85, med


def test_a_composed_face_drives_face_rois_more_than_a_composed_house(tiny_ws):
    from backend.datasets.demo import compose_stimulus
    from backend.simulate import simulate_response

    face = compose_stimulus([{"category": "face", "place": "centre"}])[0]
    house = compose_stimulus([{"category": "place", "kind": "house", "place": "centre"}])[0]
    resp = simulate_response(tiny_ws, "subj01", [face, house])
    roi = tiny_ws.query("SELECT roi FROM voxels WHERE subject = 'subj01' ORDER BY voxel").roi.to_numpy()
    ffa, ppa = np.isin(roi, ["FFA-1", "FFA-2"]), roi == "PPA"
    assert resp[0, ffa].mean() > resp[1, ffa].mean() + 0.5
    assert resp[1, ppa].mean() > resp[0, ppa].mean() + 0.5


def test_virtual_trials_carry_the_subjects_noise_around_the_response(tiny_ws):
    from backend.datasets import stimulus_images
    from backend.simulate import simulate_response, simulate_trials, simulated_subject

    imgs = stimulus_images(tiny_ws, [0, 1])
    clean = simulate_response(tiny_ws, "subj01", imgs)
    trials = simulate_trials(tiny_ws, "subj01", imgs, repeats=40, seed=3)
    assert trials.shape == (80, clean.shape[1])
    sd = trials[:40].std(0)
    ncsnr = simulated_subject(tiny_ws, "subj01").ncsnr
    assert np.median(np.abs(sd * ncsnr - 1)) < 0.2  # trial noise = 1 / ncsnr in signal units
    np.testing.assert_allclose(trials[:40].mean(0), clean[0], atol=6 / np.sqrt(40) / ncsnr.min())
    np.testing.assert_array_equal(trials, simulate_trials(tiny_ws, "subj01", imgs, repeats=40, seed=3))
    with pytest.raises(InvalidInputError, match="repeats"):
        simulate_trials(tiny_ws, "subj01", imgs, repeats=0)
    with pytest.raises(InvalidInputError, match="image 1"):
        simulate_response(tiny_ws, "subj01", [imgs[0], np.zeros((8, 8), np.uint8)])
    with pytest.raises(NotFoundError, match="subj09"):
        simulate_response(tiny_ws, "subj09", imgs)


def test_the_virtual_experiment_page_shows_a_composed_face_to_the_subject(fitted_world, monkeypatch):
    import io

    from PIL import Image

    ws, *_ = fitted_world
    at = open_page(ws, monkeypatch, "simulate")
    assert not at.exception, at.exception
    at.radio(key="sim_source").set_value("compose").run()  # default: one face in the centre
    assert not at.exception, at.exception
    assert any("The subject sees:** face" in m.value for m in at.markdown), [m.value for m in at.markdown]
    table = at.table[0].value
    faces = table.loc[["FFA-1", "FFA-2", "OFA"]]
    places = table.loc[["PPA", "OPA", "RSC"]]
    assert faces.simulated.mean() > places.simulated.mean() + 0.5  # the true response lights up face ROIs
    assert faces.predicted.mean() > places.predicted.mean()  # and so does the encoder's prediction
    # a face from the generator lights up the face ROIs too (true and predicted)
    at.radio(key="sim_source").set_value("generate").run()
    assert not at.exception, at.exception
    table = at.table[0].value
    faces, places = table.loc[["FFA-1", "FFA-2", "OFA"]], table.loc[["PPA", "OPA", "RSC"]]
    assert any("The subject sees:** face" in m.value for m in at.markdown), [m.value for m in at.markdown]
    assert faces.simulated.mean() > places.simulated.mean() + 0.5
    assert faces.predicted.mean() > places.predicted.mean()
    # bad uploads get a message naming the file; a photograph-like upload gets the warning
    at.radio(key="sim_source").set_value("upload").run()
    at.file_uploader(key="sim_upload").set_value(("scan.jpg", b"\x00" * 100, "image/jpeg")).run()
    assert not at.exception and any("scan.jpg is not a readable PNG or JPEG" in e.value for e in at.error)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(buf, "PNG")
    at.file_uploader(key="sim_upload").set_value(("noise.png", buf.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    assert any("outside what the judge was trained on" in w.value for w in at.warning)
    big = io.BytesIO()
    Image.new("RGB", (6000, 5000), (200, 200, 200)).save(big, "PNG")
    at.file_uploader(key="sim_upload").set_value(("poster.png", big.getvalue(), "image/png")).run()
    assert not at.exception and any("poster.png is 6000x5000 pixels" in e.value for e in at.error)


def test_the_virtual_experiment_page_says_real_data_cannot_be_simulated(nsd_ws, monkeypatch):
    at = open_page(nsd_ws, monkeypatch, "simulate")
    assert not at.exception, at.exception
    assert any("cannot be simulated" in i.value for i in at.info)
    with pytest.raises(NotFoundError, match="no ground truth"):
        from backend.simulate import simulated_subject

        simulated_subject(nsd_ws, "subj01")


@pytest.mark.browser
def test_a_composed_and_a_generated_face_light_up_face_rois_on_the_virtual_experiment_page(fitted_world, tmp_path):
    import re

    from tests.browser import chromium_page, streamlit_server, wait_for_app

    def show(page, source: str, heading: str):
        page.get_by_text(source, exact=True).click()
        page.wait_for_selector(f"h3:has-text('{heading}')", timeout=180_000)
        page.wait_for_selector("text=Showing the image to the subject", state="detached", timeout=180_000)
        wait_for_app(page, 180_000)
        page.wait_for_selector("[data-testid='stTable'] table", timeout=60_000)
        page.screenshot(path=str(tmp_path / f"simulate_{source}.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0
        rows = page.eval_on_selector(
            "[data-testid='stTable'] table",
            "t => Object.fromEntries([...t.querySelectorAll('tbody tr')].map(r => [r.querySelector('th').innerText,"
            " [...r.querySelectorAll('td')].map(c => parseFloat(c.innerText))]))")
        head = page.eval_on_selector("[data-testid='stTable'] table",
                                     "t => [...t.querySelectorAll('thead th')].map(c => c.innerText).slice(1)")
        for col in (head.index("simulated"), head.index("predicted")):  # true and predicted
            assert rows["FFA-1"][col] > rows["PPA"][col] and rows["OFA"][col] > rows["RSC"][col], (source, head, rows)
        return page.locator("[data-testid='stMarkdownContainer']", has_text="The subject sees").inner_text()

    ws, *_ = fitted_world
    with streamlit_server(ws.path) as url, chromium_page(1400, 1300) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/simulate")
        wait_for_app(page, 180_000)
        seen = show(page, "compose", "(composed)")  # the default composition: one face in the centre
        m = re.match(r"The subject sees: face \((\d+)% of the image\)", seen)
        assert m and abs(int(m.group(1)) - 16) <= 3 and seen.endswith("a plain background."), seen  # truth: 16%
        # the segmentation figure and the two surface viewers (true, predicted) are drawn
        sizes = page.eval_on_selector_all("[data-testid='stImage'] img",
                                          "els => els.filter(i => i.complete).map(i => i.naturalWidth)")
        assert sizes and max(sizes) >= 600, sizes
        page.wait_for_function("() => window.__voxelscope && window.__voxelscope.viewers.length >= 2 && "
                               "window.__voxelscope.paints.length >= 2", timeout=60_000)
        seen = show(page, "generate", "(generated")  # the configured generator: "a face", seed 0
        assert seen.startswith("The subject sees: face"), seen
        assert not errors, errors
