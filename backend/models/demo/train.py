"""Training of the demo models on the procedural world (reproducible from a seed, CPU-sized).

    python -m backend models train [embedder|captioner|generator|all] [--seed 0] [--out assets/models]

The training images come from the stimulus renderer with their own seed (not the subjects'
world); quality is measured on held-out images rendered with another seed
(:mod:`backend.models.evaluate`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...store.progress import ProgressFn
from .loop import (Checkpoint, draw_conditions, ema_update, latent_inputs, min_snr_weights, object_weights, optimise,
                   seed_everything, tick, weighted_mse)

TRAIN_SEED_OFFSET = 1000   # training images: world seed 1000 + seed
# the generator recipes ``models train`` knows: name -> (folder under the output, what the log calls it)
GENERATOR_RECIPES = {"generator": ("generator", "the default generator (32 px pixels, object-weighted)"),
                     "latent_generator": ("generator_latent64", "the latent generator (64 px)"),
                     "latent_generator_ow": ("generator_latent64_ow",
                                             "the latent generator's object-weighted second stage"),
                     "code_generator": ("generator_code", "the compact-code generator")}
HELDOUT_SEED_OFFSET = 5000  # held-out images for evaluation


def render_set(seed: int, n: int, size: int = 64, workers: int | None = None, cache: Path | None = None):
    """Render ``n`` stimuli (world seed ``seed``) at 128 px and shrink to ``size``.

    Returns dict(images (n, size, size, 3) uint8, captions list[list[str]], objects list[list[dict]])."""
    import tempfile

    from ...datasets.demo.world import WorldConfig, render_stimuli

    if cache is not None and (cache / f"set_{seed}_{n}_{size}.npz").exists():
        d = np.load(cache / f"set_{seed}_{n}_{size}.npz", allow_pickle=True)
        return {"images": d["images"], "captions": list(d["captions"]), "objects": list(d["objects"])}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = WorldConfig(seed=seed, n_images=n, n_shared=0, n_unique=0, sessions=[], roi_scale=[])
        stim, objects, caps = render_stimuli(cfg, Path(tmp), workers=workers)
        big = np.load(Path(tmp) / "images.npy", mmap_mode="r")
        f = big.shape[1] // size
        images = np.empty((n, size, size, 3), np.uint8)
        for a in range(0, n, 2000):
            b = np.asarray(big[a:a + 2000], np.float32)
            images[a:a + 2000] = b.reshape(-1, size, f, size, f, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    captions = caps.groupby("stim_id").caption.apply(list).reindex(range(n)).tolist()
    objs = objects.groupby("stim_id").apply(lambda g: g[["category", "kind", "area"]].to_dict("records"),
                                            include_groups=False).reindex(range(n)).tolist()
    out = {"images": images, "captions": captions, "objects": objs}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / f"set_{seed}_{n}_{size}.npz", images=images, captions=np.array(captions, dtype=object),
                 objects=np.array(objs, dtype=object))
    return out


def train_embedder(out: Path, data: dict, seed: int = 0, steps: int = 1400, batch: int = 128,
                   progress: ProgressFn = None, log=print, image_norm: str = "group",
                   checkpoint_every: int = 100) -> dict:
    """Contrastive (CLIP) training of the demo embedder; saves it to ``out``.

    Every ``checkpoint_every`` steps the model, optimiser and random streams go to ``out/train_state.pt``
    (written to a temporary file, then renamed), so a run killed at any moment resumes from the last checkpoint
    and ends with the same weights as an uninterrupted run; the file is removed when training finishes."""
    from ..embedder import DemoClip, DemoClipModel
    from ..tokenizer import WordTokenizer

    seed_everything(seed)
    out = Path(out)
    captions = data["captions"]
    tok = WordTokenizer.train([c for cs in captions for c in cs])
    model = DemoClipModel(vocab=len(tok), image_norm=image_norm)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    images = torch.from_numpy(data["images"])
    rng = np.random.default_rng(seed)
    n = len(images)
    t0 = time.time()
    ckpt = Checkpoint(out, {"seed": seed, "steps": steps, "batch": batch, "image_norm": image_norm})
    start = ckpt.load(model, opt, rng, log)
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        idx = rng.choice(n, batch, replace=False)
        texts = [captions[i][rng.integers(len(captions[i]))] for i in idx]
        ids, mask = tok.batch(texts)
        x = model.preprocess(images[idx])
        if rng.random() < 0.5:  # mirror the images whose captions name no side
            no_side = torch.tensor([("left" not in t and "right" not in t) for t in texts])
            x = torch.where(no_side[:, None, None, None], x.flip(-1), x)
        _, img = model.image(x)
        txt = model.text(ids, mask)
        img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        target = torch.arange(batch)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimise(opt, loss, step, steps, 1e-3)
        tick(progress, log, "embedder", step, steps, loss, t0)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(model, opt, rng, step + 1)
    model.eval()
    emb = DemoClip(model, tok, model_id=f"voxelscope/demo-clip-seed{seed}")
    emb.save_pretrained(out)
    ckpt.done()
    return {"steps": steps, "batch": batch, "image_norm": image_norm, "seconds_this_run": round(time.time() - t0),
            "final_loss": float(loss.item())}


def render_judge_set(seed: int, n: int, size: int = 64, workers: int | None = None, cache: Path | None = None):
    """Stimuli (world seed ``seed``) with what the judge learns: per-pixel class (index into JUDGE_CLASSES) and the
    background type. Returns dict(images (n, size, size, 3) uint8, labels (n, size, size) uint8, background (n,))."""
    import tempfile

    from ...datasets.demo.world import WorldConfig, render_stimuli
    from ..judge import BACKGROUND_TYPES, JUDGE_CLASSES

    f = cache / f"judge_{seed}_{n}_{size}.npz" if cache is not None else None
    if f is not None and f.exists():
        d = np.load(f)
        return {k: d[k] for k in ("images", "labels", "background")}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = WorldConfig(seed=seed, n_images=n, n_shared=0, n_unique=0, sessions=[], roi_scale=[])
        stim, objects, _ = render_stimuli(cfg, Path(tmp), workers=workers)
        big = np.load(Path(tmp) / "images.npy", mmap_mode="r")
        masks = np.load(Path(tmp) / "masks.npy", mmap_mode="r")
        k = big.shape[1] // size
        images = np.empty((n, size, size, 3), np.uint8)
        labels = np.zeros((n, size, size), np.uint8)
        lut = np.zeros((n, 8), np.uint8)  # object index -> class, per image
        cls = objects.category.map({c: i for i, c in enumerate(JUDGE_CLASSES)}).to_numpy()
        lut[objects.stim_id.to_numpy(), objects.obj.to_numpy()] = cls
        for a in range(0, n, 2000):
            b = np.asarray(big[a:a + 2000], np.float32)
            images[a:a + 2000] = b.reshape(-1, size, k, size, k, 3).mean(axis=(2, 4)).round().astype(np.uint8)
            m = np.asarray(masks[a:a + 2000])[:, k // 2::k, k // 2::k]
            labels[a:a + 2000] = np.take_along_axis(lut[a:a + 2000], m.reshape(len(m), -1), 1).reshape(m.shape)
    background = stim.background.map({b: i for i, b in enumerate(BACKGROUND_TYPES)}).to_numpy().astype(np.uint8)
    out = {"images": images, "labels": labels, "background": background}
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        np.savez(f, **out)
    return out


def _degrade(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Augmentations that make the judge see generated images as the world's: blur (a smaller generator),
    noise, colour jitter. ``x``: (n, 3, H, W) in [-1, 1]."""
    n, _, h, w = x.shape
    low = torch.from_numpy(rng.random(n) < 0.3)
    if low.any():
        side = int(rng.choice([24, 32, 48]))
        small = F.interpolate(x[low], size=(side, side), mode="area")
        x = x.clone()
        x[low] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    gain = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 3, 1, 1)).astype(np.float32))
    x = x * gain + torch.from_numpy(rng.normal(0, 0.03, (n, 1, 1, 1)).astype(np.float32))
    x = x + torch.from_numpy(rng.uniform(0, 0.06, (n, 1, 1, 1)).astype(np.float32)) * torch.randn_like(x)
    return x.clamp(-1, 1)


def train_judge(out: Path, data: dict, seed: int = 0, steps: int = 5000, batch: int = 32, width: int = 24,
                progress: ProgressFn = None, log=print, checkpoint_every: int = 200) -> dict:
    """Train the judge (segmentation into the world's categories + background type) on world pixels and masks;
    resumable (:class:`Checkpoint`). Saves it to ``out``."""
    from ..judge import JUDGE_CLASSES, Judge, JudgeNet

    seed_everything(seed)
    out = Path(out)
    size = data["images"].shape[1]
    net = JudgeNet(width, size)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2)
    labels = torch.from_numpy(data["labels"]).long()
    bgs = torch.from_numpy(data["background"]).long()
    # rare classes count more: weights ~ 1 / sqrt(pixel frequency)
    freq = np.bincount(data["labels"][:2000].ravel(), minlength=len(JUDGE_CLASSES)) + 1.0
    cw = torch.from_numpy((freq.sum() / freq) ** 0.5).float()
    cw = cw / cw.mean()
    ckpt = Checkpoint(out, {"seed": seed, "steps": steps, "batch": batch, "width": width, "size": size})
    start = ckpt.load(net, opt, rng, log)
    t0 = time.time()
    net.train()
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        idx = torch.from_numpy(rng.choice(len(images), batch, replace=False))
        x = images[idx].float() / 127.5 - 1
        y, b = labels[idx], bgs[idx]
        if rng.random() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        x = _degrade(x, rng)
        seg, bg = net(x)
        loss = F.cross_entropy(seg, y, weight=cw) + 0.3 * F.cross_entropy(bg, b)
        optimise(opt, loss, step, steps, 2e-3)
        tick(progress, log, "judge", step, steps, loss, t0)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(net, opt, rng, step + 1)
    Judge(net, {"width": width, "size": size, "model_id": f"voxelscope/demo-judge-w{width}-seed{seed}",
                "classes": list(JUDGE_CLASSES)}).save_pretrained(out)
    ckpt.done()
    return {"steps": steps, "batch": batch, "width": width, "size": size,
            "seconds_this_run": round(time.time() - t0), "final_loss": float(loss.item())}


def train_captioner(out: Path, data: dict, embedder, seed: int = 0, steps: int = 2000, batch: int = 128,
                    noise: float = 0.01, progress: ProgressFn = None, log=print) -> dict:
    """ClipCap training: the embedder's image features of the training images -> their captions."""
    from ..captioner import new_demo_captioner

    seed_everything(seed)
    feats = torch.from_numpy(embedder.image_features(data["images"]))
    captions = data["captions"]
    dec = new_demo_captioner(embedder.tokenizer, embedder.dim, model_id=f"voxelscope/demo-clipcap-seed{seed}")
    params = list(dec.mapper.parameters()) + list(dec.lm.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    dec.mapper.train()
    dec.lm.train()
    t0 = time.time()
    for step in range(steps):
        idx = rng.choice(len(feats), batch, replace=False)
        texts = [captions[i][rng.integers(len(captions[i]))] for i in idx]
        ids, mask = embedder.tokenizer.batch(texts)
        e = F.normalize(feats[idx] + noise * torch.randn_like(feats[idx]), dim=-1)  # robust to projected embeddings
        loss = dec.loss(e, ids, mask)
        optimise(opt, loss, step, steps, 1e-3, params)
        tick(progress, log, "captioner", step, steps, loss, t0, every=250)
    dec.mapper.eval()
    dec.lm.eval()
    dec.save_pretrained(out)
    return {"steps": steps, "batch": batch, "seconds": round(time.time() - t0), "final_loss": float(loss.item())}


def train_vae(out: Path, data: dict, seed: int = 0, steps: int = 2000, batch: int = 24, kl_weight: float = 1e-6,
              progress: ProgressFn = None, log=print, checkpoint_every: int = 200) -> dict:
    """The generator's autoencoder: (3, 64, 64) world images <-> (4, 16, 16) latents. L1 + MSE reconstruction and a
    small KL term; resumable (:class:`Checkpoint`). The latents' scaling factor (1 / their std over 2,000 training
    images) is stored in its config, as Stable Diffusion's VAE does. Saves it to ``out``."""
    from ..generator import new_demo_vae

    seed_everything(seed)
    out = Path(out)
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2)
    vae = new_demo_vae(size=images.shape[-1])
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    ckpt = Checkpoint(out, {"seed": seed, "steps": steps, "batch": batch, "kl_weight": kl_weight})
    start = ckpt.load(vae, opt, rng, log)
    t0 = time.time()
    vae.train()
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        x = images[torch.from_numpy(rng.choice(len(images), batch, replace=False))].float() / 127.5 - 1
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + kl_weight * post.kl().mean()
        optimise(opt, loss, step, steps, 1e-3, vae.parameters())
        tick(progress, log, "the generator's autoencoder", step, steps, loss, t0)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(vae, opt, rng, step + 1)
    vae.eval()
    with torch.no_grad():
        x = images[:2000].float() / 127.5 - 1
        z = torch.cat([vae.encode(x[a:a + 200]).latent_dist.mode() for a in range(0, len(x), 200)])
        rec = torch.cat([vae.decode(z[a:a + 200]).sample for a in range(0, len(z), 200)])
    vae.register_to_config(scaling_factor=float(1 / z.std()))
    vae.save_pretrained(str(out))
    ckpt.done()
    psnr = float(10 * torch.log10(4 / F.mse_loss(rec.clamp(-1, 1), x)))
    return {"steps": steps, "batch": batch, "seconds_this_run": round(time.time() - t0), "final_loss": float(loss.item()),
            "psnr_train_2000": psnr, "scaling_factor": float(1 / z.std())}


def train_generator(out: Path, data: dict, embedder, seed: int = 0, steps: int = 5500, batch: int = 48,
                    p_text: float = 0.45, p_uncond: float = 0.15, ema_decay: float = 0.999,
                    progress: ProgressFn = None, log=print, checkpoint_every: int = 250,
                    labels: np.ndarray | None = None, object_weight: float = 0.0, snr_gamma: float | None = None,
                    init: Path | None = None, lr: float = 3e-4) -> dict:
    """The demo generator: latent diffusion on the VAE in ``out/vae`` (train it first: :func:`train_vae`).

    Recipe: v-prediction with a cosine noise schedule; the condition of each training image is, at random, the
    text embedding of one of its captions (``p_text``), its own image embedding (unCLIP-style, the rest), or
    zeros (``p_uncond``, so the model also samples unconditionally and supports classifier-free guidance); EMA
    weights (``ema_decay``) are what is saved; AdamW with warm-up and cosine decay. Resumable after kill -9
    (:class:`Checkpoint`, the EMA included). Saves the pipeline (unet = EMA weights, vae, DDIM scheduler) to ``out``.

    A second stage (``init``: a trained latent generator's folder, whose UNet the run starts from) can weight the
    loss as the pixel generator's recipe does: ``labels`` (n, H, W) per-pixel object labels of the training images,
    ``object_weight`` (latent positions over an object count 1 + that much, max-pooled so thin bodies and letters
    keep their weight) and ``snr_gamma`` (min-SNR-gamma weighting over timesteps)."""
    import copy

    from diffusers import AutoencoderKL, DDPMScheduler

    from ..generator import new_demo_latent_unet

    out = Path(out)
    vae = AutoencoderKL.from_pretrained(str(out / "vae"), local_files_only=True).eval()
    sf = vae.config.scaling_factor
    inputs = latent_inputs(out, data, vae, embedder)  # latents and embeddings: computed once per run
    lat = inputs["lat"]
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    seed_everything(seed)
    if init is not None:
        from diffusers import UNet2DModel

        unet = UNet2DModel.from_pretrained(str(Path(init) / "unet"), local_files_only=True)
    else:
        unet = new_demo_latent_unet(embedder.dim, lat.shape[-1])
    ema = copy.deepcopy(unet).requires_grad_(False)
    both = torch.nn.ModuleDict({"unet": unet, "ema": ema})  # checkpointed together
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    config = {"seed": seed, "steps": steps, "batch": batch, "p_text": p_text, "p_uncond": p_uncond,
              "ema_decay": ema_decay, "vae_scaling": sf}
    if init is not None or object_weight or snr_gamma is not None:  # a weighted (second) stage
        if labels is None and object_weight:
            raise ValueError("object_weight needs the training images' labels")
        config.update({"init": Path(init).name if init is not None else None, "object_weight": object_weight,
                       "snr_gamma": snr_gamma, "lr": lr})
    weights = None
    if labels is not None and object_weight:
        if labels.shape[0] != len(lat):
            raise ValueError(f"labels {labels.shape} do not match {len(lat)} training images")
        weights = object_weights(labels, lat.shape[-1], object_weight)
    t_weight = min_snr_weights(sched, snr_gamma) if snr_gamma is not None else None
    ckpt = Checkpoint(out, config)
    start = ckpt.load(both, opt, rng, log)
    t0 = time.time()
    unet.train()
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        idx = rng.choice(len(lat), batch, replace=False)
        x0 = lat[idx]
        cond = draw_conditions(rng, idx, inputs, p_text, p_uncond)
        noise = torch.randn_like(x0)
        t = torch.from_numpy(rng.integers(0, 1000, batch))
        xt = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)
        pred = unet(xt, t, class_labels=cond).sample
        if weights is None and t_weight is None:  # the first stage's plain loss
            loss = F.mse_loss(pred, target)
        else:
            loss = weighted_mse(pred, target, weights[idx] if weights is not None else None,
                                t_weight[t] if t_weight is not None else None)
        optimise(opt, loss, step, steps, lr, unet.parameters(), warmup=200)
        ema_update(ema, unet, step, ema_decay)
        tick(progress, log, "generator", step, steps, loss, t0)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(both, opt, rng, step + 1)
            _save_generator(out, ema, vae, sched, seed, embedder, step + 1, steps, config)  # a usable snapshot
    _save_generator(out, ema, vae, sched, seed, embedder, steps, steps, config)
    ckpt.done()
    (out / "train_inputs.pt").unlink(missing_ok=True)
    return {**{k: v for k, v in config.items() if k not in ("seed", "vae_scaling")},
            "seconds_this_run": round(time.time() - t0), "final_loss": float(loss)}


def _save_generator(out: Path, unet, vae, sched, seed: int, embedder, done: int, steps: int,
                    config: dict | None = None) -> None:
    from diffusers import DDIMScheduler

    from ..generator import EmbeddingConditionedPipeline

    # the generator hands out eps; latents are not clipped to [-1, 1] as pixels would be
    sampler = DDIMScheduler.from_config(sched.config, prediction_type="epsilon", clip_sample=False)
    EmbeddingConditionedPipeline(unet, sampler, vae).save_pretrained(str(out))
    (Path(out) / "voxelscope.json").write_text(json.dumps({
        "model_id": f"voxelscope/demo-latent-diffusion-{f'ow{steps}-' if config and 'init' in config else ''}seed{seed}",
        "condition": embedder.model_id, "prediction": "v_prediction", "steps_done": done, "steps": steps,
        **({"training": config} if config and "init" in config else {})}))


def save_report(out: Path, name: str, report_: dict) -> None:
    """Write ``report_`` under ``name`` into ``out/training.json`` (other models' entries kept)."""
    p = out / "training.json"
    d = json.loads(p.read_text()) if p.exists() else {}
    d[name] = report_
    p.write_text(json.dumps(d, indent=1, default=float))


def train_all(out: Path, which: list[str], seed: int = 0, cache: Path | None = None, workers: int | None = None,
              progress: ProgressFn = None, log=print, embedder_steps: int = 1400,
              image_norm: str = "group", vae: Path | None = None) -> dict:
    """Train the demo models named in ``which`` into ``out/<role>`` and evaluate them on held-out images.
    ``vae``: an already trained VAE folder for the code generator (``code_generator``), else it trains its own."""
    from ..embedder import DemoClip
    from . import evaluate

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if {"embedder", "captioner", *GENERATOR_RECIPES} & set(which):
        train = render_set(TRAIN_SEED_OFFSET + seed, 30000, cache=cache, workers=workers)
        held = render_set(HELDOUT_SEED_OFFSET + seed, 2000, cache=cache, workers=workers)
    results = {}
    if "embedder" in which:
        rep = train_embedder(out / "embedder", train, seed=seed, steps=embedder_steps, image_norm=image_norm,
                             progress=progress, log=log)
        emb = DemoClip.from_pretrained(out / "embedder")
        rep["zero_shot"] = evaluate.zero_shot_accuracy(emb, held["images"], held["objects"])
        rep["retrieval"] = evaluate.retrieval(emb, held["images"], held["captions"])
        log(f"embedder: zero-shot {rep['zero_shot']['accuracy']:.3f}, image->caption {rep['retrieval']}")
        save_report(out, "embedder", rep)
        results["embedder"] = rep
    if "judge" in which:
        from ..judge import load_judge

        jtrain = render_judge_set(TRAIN_SEED_OFFSET + seed, 20000, cache=cache, workers=workers)
        jheld = render_judge_set(HELDOUT_SEED_OFFSET + seed, 1000, cache=cache, workers=workers)
        rep = train_judge(out / "judge", jtrain, seed=seed, progress=progress, log=log)
        rep["held_out"] = evaluate.judge_accuracy(load_judge(out / "judge"), jheld)
        log(f"judge: held-out {rep['held_out']}")
        save_report(out, "judge", rep)
        results["judge"] = rep
    emb = DemoClip.from_pretrained(out / "embedder") if {"captioner", *GENERATOR_RECIPES} & set(which) else None
    if "captioner" in which:
        from ..captioner import CaptionDecoder

        rep = train_captioner(out / "captioner", train, emb, seed=seed, progress=progress, log=log)
        dec = CaptionDecoder.from_pretrained(out / "captioner")
        rep["names_categories"] = evaluate.caption_category_accuracy(dec, emb, held["images"], held["objects"])
        log(f"captioner: categories named in held-out captions {rep['names_categories']}")
        save_report(out, "captioner", rep)
        results["captioner"] = rep
    for recipe, (folder, label) in GENERATOR_RECIPES.items():
        if recipe not in which:
            continue
        from ..generator import load_generator

        gdir = out / folder
        if recipe == "generator":  # the default: pixels, with the training images' object masks
            from .train_pixel import train_pixel_generator

            rep = train_pixel_generator(gdir, train, _training_labels(train, seed, cache, workers), emb, seed=seed,
                                        progress=progress, log=log)
        elif recipe == "latent_generator_ow":  # a second stage of generator_latent64: its VAE, its UNet to start
            import shutil

            first = out / GENERATOR_RECIPES["latent_generator"][0]
            if not (first / "unet" / "config.json").exists():
                raise FileNotFoundError(f"{first}: latent_generator_ow continues the latent generator; train it first")
            if not (gdir / "vae" / "config.json").exists():
                shutil.copytree(first / "vae", gdir / "vae", dirs_exist_ok=True)
            rep = train_generator(gdir, train, emb, seed=seed, progress=progress, log=log, steps=4000,
                                  labels=_training_labels(train, seed, cache, workers), object_weight=4.0,
                                  snr_gamma=5.0, init=first, lr=2e-4)
        else:  # on a VAE: trained first (or, for the code generator, given with ``vae``)
            given = vae if recipe == "code_generator" else None
            if given is None and (not (gdir / "vae" / "config.json").exists()
                                  or (gdir / "vae" / "train_state.pt").exists()):
                save_report(out, f"{folder}_vae", train_vae(gdir / "vae", train, seed=seed, progress=progress, log=log))
            if recipe == "code_generator":
                from .train_code import train_code_generator

                rep = train_code_generator(gdir, train, emb, seed=seed, vae=given, progress=progress, log=log)
            else:
                rep = train_generator(gdir, train, emb, seed=seed, progress=progress, log=log)
        gen = load_generator(gdir, embedder=emb)
        rep.update(_judge_generator(out, gen, emb, seed, cache, workers, prefix=folder))
        log(f"{label}: judged {rep['judged']}")
        save_report(out, folder, rep)
        results[folder] = rep
    return results


def _training_labels(train: dict, seed: int, cache, workers) -> np.ndarray:
    """The per-pixel object labels of the generator's training images (the judge set of the same world seed)."""
    masks = render_judge_set(TRAIN_SEED_OFFSET + seed, len(train["images"]), cache=cache, workers=workers)
    if not np.array_equal(masks["images"][:100], train["images"][:100]):
        raise RuntimeError("the training images and their masks were rendered from different worlds")
    return masks["labels"]


def _judge_generator(out: Path, gen, emb, seed: int, cache, workers=None, prefix: str = "generator") -> dict:
    """The generator's quality: judged by the judge (conditional, unconditional, ceiling, Frechet distance; the two
    sample grids) and, for comparison with the first demo generator, the embedder's zero-shot agreement."""
    from ..judge import load_judge
    from . import evaluate

    jheld = render_judge_set(HELDOUT_SEED_OFFSET + seed, 1000, cache=cache, workers=workers)
    judge = load_judge(out / "judge") if (out / "judge").exists() else load_judge()
    return {"judged": evaluate.generator_judged(gen, judge, jheld, grid_path=out / f"{prefix}_samples.png",
                                                uncond_grid_path=out / f"{prefix}_unconditional.png"),
            "category_agreement": evaluate.generator_agreement(gen, emb)}


def evaluate_all(out: Path, seed: int = 0, cache: Path | None = None, log=print) -> dict:
    """Re-measure the quality of the models in ``out`` on held-out images; updates ``training.json``."""
    from ..captioner import CaptionDecoder
    from ..embedder import DemoClip
    from ..generator import load_generator
    from . import evaluate

    out = Path(out)
    held = render_set(HELDOUT_SEED_OFFSET + seed, 2000, cache=cache)
    p = out / "training.json"
    rep = json.loads(p.read_text()) if p.exists() else {}
    emb = DemoClip.from_pretrained(out / "embedder")
    e = rep.setdefault("embedder", {})
    e["zero_shot"] = evaluate.zero_shot_accuracy(emb, held["images"], held["objects"])
    e["retrieval"] = evaluate.retrieval(emb, held["images"], held["captions"])
    e.pop("retrieval_top1", None)
    log(f"embedder: zero-shot {e['zero_shot']['accuracy']:.3f}, retrieval {e['retrieval']}")
    if (out / "captioner").exists():
        dec = CaptionDecoder.from_pretrained(out / "captioner")
        c = rep.setdefault("captioner", {})
        c["names_categories"] = evaluate.caption_category_accuracy(dec, emb, held["images"], held["objects"])
        log(f"captioner: categories named {c['names_categories']}")
    for folder, label in GENERATOR_RECIPES.values():
        if (out / folder / "model_index.json").exists():
            g = rep.setdefault(folder, {})
            g.update(_judge_generator(out, load_generator(out / folder, embedder=emb), emb, seed, cache, prefix=folder))
            log(f"{label}: judged {g['judged']}")
    if (out / "judge").exists():
        from ..judge import load_judge

        j = rep.setdefault("judge", {})
        j["held_out"] = evaluate.judge_accuracy(load_judge(out / "judge"),
                                                render_judge_set(HELDOUT_SEED_OFFSET + seed, 1000, cache=cache))
        log(f"judge: held-out {j['held_out']}")
    p.write_text(json.dumps(rep, indent=1, default=float))
    return rep
