"""Training of the demo models on the procedural world (reproducible from a seed, CPU-sized).

    python -m backend models train [embedder|captioner|generator|all] [--seed 0] [--out assets/models]

The training images come from the stimulus renderer with their own seed (not the subjects'
world); quality is measured on held-out images rendered with another seed
(:mod:`backend.models.evaluate`).
"""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...store.progress import ProgressFn, report

TRAIN_SEED_OFFSET = 1000   # training images: world seed 1000 + seed
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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def train_embedder(out: Path, data: dict, seed: int = 0, steps: int = 1400, batch: int = 128,
                   progress: ProgressFn = None, log=print, image_norm: str = "group") -> dict:
    """Contrastive (CLIP) training of the demo embedder; saves it to ``out``."""
    from ..embedder import DemoClip, DemoClipModel
    from ..tokenizer import WordTokenizer

    _seed_everything(seed)
    captions = data["captions"]
    tok = WordTokenizer.train([c for cs in captions for c in cs])
    model = DemoClipModel(vocab=len(tok), image_norm=image_norm)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    images = torch.from_numpy(data["images"])
    rng = np.random.default_rng(seed)
    n = len(images)
    t0 = time.time()
    model.train()
    for step in range(steps):
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
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, 1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        report(progress, "Training embedder", step + 1, steps)
        if step % 100 == 0 or step == steps - 1:
            log(f"embedder step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    model.eval()
    emb = DemoClip(model, tok, model_id=f"voxelscope/demo-clip-seed{seed}")
    emb.save_pretrained(out)
    return {"steps": steps, "batch": batch, "seconds": round(time.time() - t0), "final_loss": float(loss.item())}


def train_captioner(out: Path, data: dict, embedder, seed: int = 0, steps: int = 2000, batch: int = 128,
                    noise: float = 0.01, progress: ProgressFn = None, log=print) -> dict:
    """ClipCap training: the embedder's image features of the training images -> their captions."""
    from ..captioner import new_demo_captioner

    _seed_everything(seed)
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
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, 1e-3)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        report(progress, "Training captioner", step + 1, steps)
        if step % 250 == 0 or step == steps - 1:
            log(f"captioner step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    dec.mapper.eval()
    dec.lm.eval()
    dec.save_pretrained(out)
    return {"steps": steps, "batch": batch, "seconds": round(time.time() - t0), "final_loss": float(loss.item())}


def train_generator(out: Path, data: dict, embedder, seed: int = 0, cycles: tuple[int, ...] = (1600, 1600),
                    batch: int = 48, size: int = 32, p_uncond: float = 0.1, start_cycle: int = 0,
                    progress: ProgressFn = None, log=print) -> dict:
    """Pixel-space diffusion at ``size`` px conditioned on the embedder's text features of a caption.

    The schedule is cosine cycles with warm restarts (``cycles`` steps each; fresh optimiser and a random stream
    seeded by (seed, cycle) per cycle), saved after every cycle, so ``start_cycle=k`` resumes exactly from the
    model saved after cycle k-1."""
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

    from ..generator import EmbeddingConditionedPipeline, new_demo_unet

    imgs = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    imgs = F.interpolate(imgs, size=(size, size), mode="area")
    captions = data["captions"]
    flat = [c for cs in captions for c in cs]
    owner = np.concatenate([[i] * len(cs) for i, cs in enumerate(captions)])
    text = torch.from_numpy(embedder.text_features(flat))
    train_sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    if start_cycle == 0:
        _seed_everything(seed)
        unet = new_demo_unet(embedder.dim, size)
    else:
        unet = UNet2DModel.from_pretrained(str(Path(out) / "unet"), local_files_only=True)
        log(f"generator: resuming after cycle {start_cycle} from {out}")
    t0 = time.time()
    for cycle in range(start_cycle, len(cycles)):
        steps = cycles[cycle]
        if cycle > 0:
            torch.manual_seed(seed * 1000 + cycle)
        rng = np.random.default_rng(seed if cycle == 0 else [seed, cycle])
        loss = _generator_cycle(unet, imgs, text, owner, flat, train_sched, rng, steps, batch, p_uncond, cycle,
                                progress, log, t0)
        unet.eval()
        pipe = EmbeddingConditionedPipeline(unet, DDIMScheduler.from_config(train_sched.config))
        pipe.save_pretrained(str(out))
        (Path(out) / "voxelscope.json").write_text(json.dumps({
            "model_id": f"voxelscope/demo-pixel-diffusion-seed{seed}", "condition": embedder.model_id,
            "cycles_done": cycle + 1, "cycles": list(cycles)}))
    return {"cycles": list(cycles), "batch": batch, "size": size, "seconds_this_run": round(time.time() - t0),
            "final_loss": float(loss)}


def _generator_cycle(unet, imgs, text, owner, flat, train_sched, rng, steps, batch, p_uncond, cycle, progress,
                     log, t0) -> float:
    opt = torch.optim.AdamW(unet.parameters(), lr=4e-4, weight_decay=0.0)
    unet.train()
    for step in range(steps):
        cap = rng.choice(len(flat), batch, replace=False)
        x0 = imgs[owner[cap]]
        cond = text[cap].clone()
        cond[torch.from_numpy(rng.random(batch) < p_uncond)] = 0
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,))
        xt = train_sched.add_noise(x0, noise, t)
        loss = F.mse_loss(unet(xt, t, class_labels=cond).sample, noise)
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, 4e-4)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        report(progress, f"Training generator (cycle {cycle + 1})", step + 1, steps)
        if step % 200 == 0 or step == steps - 1:
            log(f"generator cycle {cycle + 1} step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    return float(loss.item())


def save_report(out: Path, name: str, report_: dict) -> None:
    """Write ``report_`` under ``name`` into ``out/training.json`` (other models' entries kept)."""
    p = out / "training.json"
    d = json.loads(p.read_text()) if p.exists() else {}
    d[name] = report_
    p.write_text(json.dumps(d, indent=1, default=float))


def train_all(out: Path, which: list[str], seed: int = 0, cache: Path | None = None, workers: int | None = None,
              progress: ProgressFn = None, log=print, resume: bool = False) -> dict:
    """Train the demo models named in ``which`` into ``out/<role>`` and evaluate them on held-out images."""
    from ..embedder import DemoClip
    from . import evaluate

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train = render_set(TRAIN_SEED_OFFSET + seed, 30000, cache=cache, workers=workers)
    held = render_set(HELDOUT_SEED_OFFSET + seed, 2000, cache=cache, workers=workers)
    results = {}
    if "embedder" in which:
        rep = train_embedder(out / "embedder", train, seed=seed, progress=progress, log=log)
        emb = DemoClip.from_pretrained(out / "embedder")
        rep["zero_shot"] = evaluate.zero_shot_accuracy(emb, held["images"], held["objects"])
        rep["retrieval"] = evaluate.retrieval(emb, held["images"], held["captions"])
        log(f"embedder: zero-shot {rep['zero_shot']['accuracy']:.3f}, image->caption {rep['retrieval']}")
        save_report(out, "embedder", rep)
        results["embedder"] = rep
    emb = DemoClip.from_pretrained(out / "embedder")
    if "captioner" in which:
        from ..captioner import CaptionDecoder

        rep = train_captioner(out / "captioner", train, emb, seed=seed, progress=progress, log=log)
        dec = CaptionDecoder.from_pretrained(out / "captioner")
        rep["names_categories"] = evaluate.caption_category_accuracy(dec, emb, held["images"], held["objects"])
        log(f"captioner: categories named in held-out captions {rep['names_categories']}")
        save_report(out, "captioner", rep)
        results["captioner"] = rep
    if "generator" in which:
        from ..generator import load_generator

        start = 0
        info = out / "generator" / "voxelscope.json"
        if resume and info.exists():
            start = json.loads(info.read_text()).get("cycles_done", 1)
        rep = train_generator(out / "generator", train, emb, seed=seed, start_cycle=start, progress=progress, log=log)
        gen = load_generator(out / "generator", embedder=emb)
        rep["category_agreement"] = evaluate.generator_agreement(gen, emb, out / "generator_samples.png")
        log(f"generator: category agreement {rep['category_agreement']['overall']:.3f}")
        save_report(out, "generator", rep)
        results["generator"] = rep
    return results


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
    if (out / "generator").exists():
        gen = load_generator(out / "generator", embedder=emb)
        g = rep.setdefault("generator", {})
        g["category_agreement"] = evaluate.generator_agreement(gen, emb, out / "generator_samples.png")
        log(f"generator: category agreement {g['category_agreement']}")
    p.write_text(json.dumps(rep, indent=1, default=float))
    return rep
