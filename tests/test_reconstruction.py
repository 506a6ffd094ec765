"""Brain-IT reconstruction: the field's metrics on hand-computed cases, shared voxel clusters, the BIT and ridge
decoders, stored and resumable reconstructions, and the Reconstruction page."""
from pathlib import Path

import numpy as np
import pytest

from backend.errors import InvalidInputError
from backend.reconstruction import (FeatureNet, evaluate_pairs, feature_distance, pixcorr, ssim,
                                    two_way_identification)

ROOT = Path(__file__).resolve().parent.parent


def _images(n: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """Smooth random colour images (distinct from each other)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((size, size), Image.BICUBIC)) for s in small])


def test_identical_sets_score_perfectly_and_shuffled_ones_at_chance():
    a = _images(40)
    assert pixcorr(a, a) == pytest.approx(1.0, abs=1e-6)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    feats = a.reshape(len(a), -1).astype(np.float32)
    assert two_way_identification(feats, feats) == 1.0
    assert feature_distance(feats, feats) == pytest.approx(0.0, abs=1e-9)
    # a reconstruction set that is another image set scores near chance on 2-way identification
    rng = np.random.default_rng(1)
    chance = [two_way_identification(rng.normal(size=(60, 50)), rng.normal(size=(60, 50))) for _ in range(20)]
    assert 0.45 < np.mean(chance) < 0.55
    # inverted images: PixCorr -1
    assert pixcorr(a, 255 - a) == pytest.approx(-1.0, abs=1e-3)


def test_two_way_identification_counts_the_other_images_each_reconstruction_beats():
    # R[i, j] = r(seen i, recon j): hand-made so reconstruction 0 beats both others, 1 beats one, 2 beats none
    seen = np.array([[1, 0, 0, 0.0], [0, 1, 0, 0], [0, 0, 1, 0]])
    recon = np.array([[1, 0, 0, 0.0], [0, 0.9, 1, 0], [0.1, 0.8, 0, 0.5]])
    R = np.corrcoef(seen, recon)[:3, 3:]
    per = two_way_identification(seen, recon, per_image=True)
    expect = [np.mean([R[i, j] < R[j, j] for i in range(3) if i != j]) for j in range(3)]
    assert np.allclose(per, expect)
    assert two_way_identification(seen, recon) == pytest.approx(np.mean(expect))


def test_pixcorr_and_ssim_follow_the_recipe_and_refuse_mismatched_sets():
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    a, b = _images(3, 0, 425), _images(3, 5, 425)  # already at 425 px (after the 256 px step)
    noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0.5 < pixcorr(a, noisy) < 1 and abs(pixcorr(a, b)) < 0.5
    s = ssim(a, noisy, per_image=True)
    assert s.shape == (3,) and np.all((s > 0) & (s < 1))
    with pytest.raises(InvalidInputError, match="2 seen images but 3"):
        pixcorr(a[:2], b)
    with pytest.raises(InvalidInputError, match="need RGB"):
        ssim(a[..., 0], b[..., 0])
    # the scikit-image call itself, by hand, on one pair brought to 256 then 425 px
    from PIL import Image
    x = np.asarray(Image.fromarray(a[0]).resize((256, 256), Image.BILINEAR)).astype(np.float32) / 255
    y = np.asarray(Image.fromarray(noisy[0]).resize((256, 256), Image.BILINEAR)).astype(np.float32) / 255
    import torch
    import torch.nn.functional as F

    def up(z):
        return F.interpolate(torch.from_numpy(z).permute(2, 0, 1)[None], size=(425, 425), mode="bilinear",
                             align_corners=False)[0].permute(1, 2, 0).numpy().clip(0, 1)
    ref = structural_similarity(rgb2gray(up(x)), rgb2gray(up(y)), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1.0)
    assert s[0] == pytest.approx(ref, abs=1e-5)


def test_evaluate_pairs_scores_every_feature_net_in_its_kind():
    a, b = _images(10, 0), _images(10, 9)
    nets = [FeatureNet("pixels", lambda im: im.reshape(len(im), -1)),
            FeatureNet("pixels dist", lambda im: im.reshape(len(im), -1), "distance")]
    same = evaluate_pairs(a, a, nets)
    other = evaluate_pairs(a, b, nets)
    assert list(same) == ["PixCorr", "SSIM", "pixels", "pixels dist"]
    assert same["pixels"] == 1.0 and same["pixels dist"] == pytest.approx(0, abs=1e-6)
    assert other["pixels"] < 0.9 and other["pixels dist"] > 0.3
    with pytest.raises(InvalidInputError, match="kind"):
        FeatureNet("x", lambda im: im, "other")


# ------------------------------------------------------------------------------ decoders on the fitted tiny world
@pytest.fixture(scope="module")
def decoders_fitted(fitted_world):
    """Clusters, a small BIT (all subjects) and the ridge baseline on the fitted world (2,300 images)."""
    from backend.reconstruction import BITConfig, fit_bit, fit_clusters, fit_ridge_decoder

    ws = fitted_world[0]
    fit_clusters(ws, k=8)
    bit = fit_bit(ws, cfg=BITConfig(dim=64, k=8, epochs=12, batch=64, patience=12, min_steps=0))
    ridge = fit_ridge_decoder(ws)
    return ws, bit, ridge


def test_voxel_clusters_mean_the_same_function_in_every_subject(decoders_fitted):
    """The face-selective voxels of both subjects fall mostly into the same shared cluster, and so do the
    place-selective ones, in a different cluster."""
    from backend.reconstruction import voxel_clusters

    ws = decoders_fitted[0]
    top = {}
    for s in ("subj01", "subj02"):
        c = voxel_clusters(ws, s)
        vox = ws.query(f"SELECT voxel, \"floc-faces\" f, \"floc-places\" p FROM voxels WHERE subject = '{s}' "
                       "ORDER BY voxel")
        assert len(c) == len(vox) and c.cluster.between(0, 7).all()
        faces = c.cluster[vox.f.notna().to_numpy()].value_counts(normalize=True)
        places = c.cluster[vox.p.notna().to_numpy()].value_counts(normalize=True)
        top[s] = (faces.index[0], places.index[0])
        assert faces.iloc[0] > 0.4 and places.iloc[0] > 0.4, (faces.head(3), places.head(3))
    assert top["subj01"] == top["subj02"] and top["subj01"][0] != top["subj01"][1], top
    prov = ws.query("SELECT method, parameters FROM runs WHERE run_id = ?",
                    [voxel_clusters(ws, "subj01").run_id.iloc[0]]).iloc[0]
    assert prov.method == "brainit-clusters" and '"k": 8' in prov.parameters
    # viewable in the explorer: a categorical overlay, one colour per cluster, the same in both subjects
    from backend.explore import overlay

    ovs = [overlay(ws, s, "clusters", {"lh": 10242, "rh": 10242}) for s in ("subj01", "subj02")]
    assert all(o.categorical and len(o.categories) == 8 for o in ovs)
    assert [c["colour"] for c in ovs[0].categories] == [c["colour"] for c in ovs[1].categories]
    vals = np.concatenate([ovs[0].values["lh"], ovs[0].values["rh"]])
    assert set(np.unique(vals[np.isfinite(vals)])) <= set(range(1, 9))


def test_both_decoders_identify_held_out_images_from_their_betas(decoders_fitted):
    """The predicted embedding of a test image is closer to its own embedding than to others' (2-way
    identification on the subjects' test images), for BIT and the ridge baseline; BIT's is stored with provenance
    and loads back to the same predictions."""
    from backend.encoders import stored_features
    from backend.reconstruction import load_decoder, test_images
    from backend.store import current_encoder, stimulus_ids

    ws, bit, ridge = decoders_fitted
    for s in ("subj01", "subj02"):
        stim, B = test_images(ws, s)
        feats = stored_features(ws, current_encoder(ws, s)["feature_key"])
        true = np.asarray(feats)[np.searchsorted(stimulus_ids(ws), stim)]
        for did, floor in ((bit, 0.8), (ridge, 0.8)):
            emb, low = load_decoder(ws, did).predict(s, B)
            assert emb.shape == true.shape and low.shape == (len(stim), 32, 32, 3) and low.dtype == np.uint8
            assert two_way_identification(true, emb) > floor, (s, did)
    a = load_decoder(ws, bit).predict("subj02", B[:4])[0]  # (B: subj02's test betas, the loop's last)
    assert np.allclose(a, load_decoder(ws, bit).predict("subj02", B[:4])[0], atol=1e-5)
    prov = ws.query("SELECT method, parameters FROM runs WHERE run_id = ?", [bit]).iloc[0]
    assert prov.method == "brainit-bit" and '"regime": "full"' in prov.parameters
    with pytest.raises(InvalidInputError, match="not trained for"):
        load_decoder(ws, bit).predict("subj03", B[:2])


def test_the_one_hour_regime_trains_one_subject_on_two_sessions_with_or_without_the_others(decoders_fitted):
    from backend.reconstruction import BITConfig, decoders, fit_bit, load_decoder, one_hour_images, test_images

    ws = decoders_fitted[0]
    n = one_hour_images(ws, "subj01")
    total = ws.query("SELECT n_trials, n_sessions, n_images FROM subjects WHERE subject = 'subj01'").iloc[0]
    assert n == round(2 * total.n_trials / total.n_sessions / (total.n_trials / total.n_images))
    cfg = BITConfig(dim=32, k=8, epochs=1, batch=64, min_steps=0)
    totals = {}
    shared = fit_bit(ws, cfg=cfg, one_hour="subj01",
                     progress=lambda stage, done, total: totals.update({stage: total}))
    alone = fit_bit(ws, cfg=cfg, one_hour="subj01", alone=True)
    # balanced subjects: the one-hour subject gets as many batches in the epoch as subj02, not a few among many
    n02 = ws.query("SELECT count(*) n FROM subject_stimuli WHERE subject = 'subj02' AND split = 'train'").n.iloc[0]
    per_subject = -(-(n02 - max(2, n02 // 10)) // 64)
    assert [t for st_, t in totals.items() if st_.startswith("Training BIT")] == [2 * per_subject]
    d = decoders(ws).set_index("decoder_id")
    assert d.loc[shared, "regime"] == "1h subj01 + shared" and sorted(d.loc[shared, "subjects"]) == ["subj01", "subj02"]
    assert d.loc[alone, "regime"] == "1h subj01 alone" and list(d.loc[alone, "subjects"]) == ["subj01"]
    prov = ws.query("SELECT parameters FROM runs WHERE run_id = ?", [shared]).parameters.iloc[0]
    assert f'"n_train": {{"subj01": {n}, "subj02": ' in prov  # subj01's two sessions, subj02's every image
    _, B = test_images(ws, "subj01", 4)
    assert load_decoder(ws, alone).predict("subj01", B)[0].shape[0] == 4


def test_bit_options_are_checked_and_a_decoder_stored_before_them_still_loads(decoders_fitted):
    """The default BIT carries the linear readout; a decoder stored before the option existed (no readout, its
    config without the new keys) loads and predicts as it did; an unknown low-level loss is refused by name."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from backend.reconstruction import BITConfig, fit_bit, load_decoder, test_images
    from backend.reconstruction.brainit import load_decoder_row

    ws, bit, _ = decoders_fitted
    assert "lin_global.weight" in load_file(str(ws.path / load_decoder_row(ws, bit).path))
    old = fit_bit(ws, cfg=BITConfig(dim=32, k=8, epochs=1, batch=64, min_steps=0, linear_readout=False,
                                    w_contrastive=1.0, low_loss="l1"),
                  one_hour="subj01", alone=True)  # (a small regime of its own: the full-data decoders stay the newest)
    _, B = test_images(ws, "subj01", 4)
    before = load_decoder(ws, old).predict("subj01", B)
    path = str(ws.path / load_decoder_row(ws, old).path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    cfg = {k: v for k, v in json.loads(meta["config"]).items() if k not in ("linear_readout", "w_contrastive",
                                                                         "low_loss")}
    save_file(load_file(path), path, metadata={**meta, "config": json.dumps(cfg)})
    after = load_decoder(ws, old).predict("subj01", B)
    assert np.allclose(before[0], after[0], atol=1e-6) and np.array_equal(before[1], after[1])
    with pytest.raises(InvalidInputError, match="low_loss='huber'"):
        fit_bit(ws, cfg=BITConfig(dim=32, k=8, epochs=1, low_loss="huber"))


def test_a_reconstruction_is_stored_resumes_after_a_kill_and_reopens(decoders_fitted):
    from backend.reconstruction import ReconConfig, reconstruct, run_reconstructions

    ws, bit, _ = decoders_fitted
    cfg = ReconConfig(n_images=8, samples=2, steps=6, batch=4)

    class Killed(Exception):
        pass

    def kill_after_first_batch(stage, done, total):
        if stage.startswith("Reconstructing") and done == 4:
            raise Killed

    with pytest.raises(Killed):
        reconstruct(ws, bit, "subj01", cfg, progress=kill_after_first_batch)
    res = reconstruct(ws, bit, "subj01", cfg)
    assert not res["reopened"]
    rows = ws.query("SELECT stim_id, sample, rank FROM reconstructions WHERE run_id = ?", [res["run_id"]])
    assert len(rows) == 16 and not rows.duplicated(["stim_id", "sample"]).any()  # no duplicate rows
    assert sorted(rows.groupby("stim_id")["rank"].apply(sorted).iloc[0]) == [0, 1]
    m = res["metrics"]
    assert m["n"] == 8 and set(m["final"]) >= {"PixCorr", "SSIM", "Judge(early)", "Judge(late)", "Emb(patch)", "Emb"}
    assert "truth" in m and all(-1 <= v["r"] <= 1 for v in m["truth"].values())
    best, images, low, stim = run_reconstructions(ws, res["run_id"])
    assert images.shape[0] == 8 and images.dtype == np.uint8 and low.shape == (8, 32, 32, 3)
    again = reconstruct(ws, bit, "subj01", cfg)
    assert again["reopened"] and again["run_id"] == res["run_id"]
    # one image's path: the low-level guess, intermediate estimates, and the very image that was stored (its
    # noise comes from its own seed, whatever batch it was drawn in, so the killed-and-resumed run is reproducible)
    from backend.reconstruction import reconstruction_steps

    path = reconstruction_steps(ws, res["run_id"], int(stim[0]), shown=3)
    assert path[0][0] == "low-level guess" and path[-1][0] == "final" and len(path) == 5
    diff = np.abs(path[-1][1].astype(int) - images[0].astype(int))  # (batched kernels round a little differently)
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 4, (diff.mean(), diff.max())
    prov = ws.query("SELECT parameters, model_ids FROM runs WHERE run_id = ?", [res["run_id"]]).iloc[0]
    assert '"strength": 0.7' in prov.parameters and bit in prov.model_ids


def test_the_reconstruction_page_shows_pairs_metrics_and_an_image_path(decoders_fitted, monkeypatch):
    from backend.reconstruction import ReconConfig, reconstruct
    from tests.tiny import open_page

    ws, _, ridge = decoders_fitted
    reconstruct(ws, ridge, "subj01", ReconConfig(n_images=6, samples=1, steps=6))
    at = open_page(ws, monkeypatch, "reconstruction")
    assert not at.exception, at.exception[0].value if at.exception else ""
    assert [s.value for s in at.subheader] == ["Metrics", "Seen | low-level | reconstruction", "One image's path"]
    table = at.dataframe[0].value
    assert {"ridge"} <= set(table.model) and {"PixCorr", "SSIM", "Emb"} <= set(table.columns)
    assert ridge in set(table.decoder)  # which fit each row's run used: two fits of one kind are told apart
    at.selectbox(key="rec_sort").set_value("PixCorr").run()
    lines = [m.value for m in at.markdown if m.value.startswith("PixCorr **")]
    vals = [float(v.split("**")[1]) for v in lines]
    assert len(vals) >= 2 and vals == sorted(vals, reverse=True)  # best first
    at.button(key="rec_path_go").click().run()
    assert not at.exception


@pytest.mark.browser
def test_a_newcomer_reconstructs_seen_images_and_sees_pairs_with_metrics_in_the_browser(decoders_fitted, tmp_path):
    """Open Reconstruction, pick the ridge baseline (already fitted here; BIT reads the same way), 4 images,
    Reconstruct, watch the progress, then see seen | low-level | reconstruction rows with their metrics."""
    import subprocess

    from tests.browser import chromium_page, streamlit_server, wait_for_app

    ws = decoders_fitted[0]
    try:
        with streamlit_server(ws.path) as url, chromium_page(1400, 1300) as page:
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/reconstruction")
            wait_for_app(page, 180_000)
            page.get_by_role("combobox", name="Model", exact=True).click()
            page.get_by_role("option", name="Ridge baseline").click()
            wait_for_app(page, 60_000)
            box = page.get_by_label("Test images", exact=True)
            box.fill("4")  # (the runs stored by the tests above have 6 and 8 images)
            box.press("Enter")
            wait_for_app(page, 60_000)
            page.get_by_role("button", name="Reconstruct").click()
            assert page.wait_for_selector("text=/Reconstructing|Scoring|queued/", timeout=120_000) is not None
            page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stImageCaption\"]')]"
                                   ".filter(c => c.innerText.startsWith('seen · stim')).length === 4", timeout=600_000)
            wait_for_app(page, 120_000)
            page.screenshot(path=str(tmp_path / "reconstruction.png"), full_page=True)
            assert page.locator("[data-testid='stException']").count() == 0
            assert page.locator("text=/^seen · stim/").count() == 4
            assert page.locator("text=/^final · score/").count() == 4
            assert page.locator("text=/^PixCorr .* SSIM .* Emb/").count() == 4
            assert not errors, errors
    finally:  # the page started a worker for the workspace
        subprocess.run(["pkill", "-9", "-f", "--", f"--workspace {ws.path} jobs worker"])


def test_the_real_path_scores_with_the_papers_networks_and_refuses_a_text_only_generator(decoders_fitted, tmp_path,
                                                                                          monkeypatch):
    """Real data: AlexNet, InceptionV3, EfficientNet-B1 and SwAV ResNet-50 load from state-dict files in
    torchvision's layout (random weights here; a checkpoint with a ``module.`` prefix and heads the metrics never
    read loads too) and a CLIP folder gives the CLIP column: the papers' eight columns in their order, perfect on
    identical sets; models.toml's [metrics] switches the scoring to them. A file of the wrong network is refused
    naming the file. A text-only Stable Diffusion folder cannot take predicted image embeddings, and says so before
    anything is stored."""
    import torch

    from backend.models.embedder import load_embedder
    from backend.models.generator import load_generator
    from backend.reconstruction import ReconConfig, reconstruct, reconstruction_runs
    from backend.reconstruction.field_nets import AlexNetFeatures, EfficientNetB1, Inception3, ResNet50
    from backend.reconstruction.metrics import METRIC_COLUMNS, metric_feature_nets
    from tests.tiny import tiny_hf_clip, tiny_stable_diffusion

    files = {}
    for name, net in (("alexnet", AlexNetFeatures()), ("inception", Inception3()), ("efficientnet", EfficientNetB1()),
                      ("swav", ResNet50())):
        files[name] = tmp_path / f"{name}.pth"
        torch.save(net.state_dict(), files[name])
    swav = {"state_dict": {f"module.{k}": v for k, v in ResNet50().state_dict().items()}}
    swav["state_dict"]["module.projection_head.0.weight"] = torch.zeros(2, 2)
    torch.save(swav, tmp_path / "swav_hub.pth.tar")
    files["swav"] = tmp_path / "swav_hub.pth.tar"
    clip = load_embedder(tiny_hf_clip(tmp_path / "c"))
    nets = metric_feature_nets(None, clip, files)
    a, b = _images(4, 0), _images(4, 3)
    same = evaluate_pairs(a, a, nets)
    assert list(same) == METRIC_COLUMNS
    assert all(same[k] == 1.0 for k in ("Alex(2)", "Alex(5)", "Incep", "CLIP"))
    assert all(abs(same[k]) < 1e-6 for k in ("Eff", "SwAV"))
    assert evaluate_pairs(a, b, nets)["SwAV"] > 0
    with pytest.raises(InvalidInputError, match="inception.pth.*not a ResNet-50"):
        metric_feature_nets(None, None, {"swav": files["inception"]})
    with pytest.raises(InvalidInputError, match="not found"):
        metric_feature_nets(None, None, {"alexnet": tmp_path / "missing.pth"})
    cfg = tmp_path / "models.toml"
    cfg.write_text((ROOT / "models.toml").read_text().replace('efficientnet_path = ""',
                                                                f'efficientnet_path = "{files["efficientnet"]}"'))
    monkeypatch.setenv("VOXELSCOPE_MODELS", str(cfg))
    assert [n.name for n in metric_feature_nets(None, clip)] == ["CLIP", "Eff"]
    ws, _, ridge = decoders_fitted
    n_runs = len(reconstruction_runs(ws))
    sd = load_generator(tiny_stable_diffusion(tmp_path / "sd"))
    with pytest.raises(InvalidInputError, match="image embeddings"):
        reconstruct(ws, ridge, "subj01", ReconConfig(n_images=4, samples=1, steps=4), generator=sd)
    assert len(reconstruction_runs(ws)) == n_runs


def test_the_field_networks_have_torchvisions_layout():
    """Our InceptionV3, EfficientNet-B1 and ResNet-50 (SwAV) have exactly the parameters of torchvision's (its
    published counts: 27,161,264, 7,794,184 and 25,557,032, with the heads the metrics do not read added back), so
    the published state dicts fit them; each gives the pooled feature size the field's metrics read."""
    import torch

    from backend.reconstruction.field_nets import EfficientNetB1, Inception3, ResNet50

    def count(m):
        return sum(p.numel() for p in m.parameters())

    fc = 2048 * 1000 + 1000
    aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)  # Inception's AuxLogits
    assert count(Inception3()) + aux + fc == 27_161_264
    assert count(EfficientNetB1()) + 1280 * 1000 + 1000 == 7_794_184
    assert count(ResNet50()) + fc == 25_557_032
    with torch.no_grad():
        assert Inception3().eval()(torch.zeros(1, 3, 342, 342)).shape == (1, 2048)
        assert EfficientNetB1().eval()(torch.zeros(1, 3, 255, 255)).shape == (1, 1280)
        assert ResNet50().eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 2048)
