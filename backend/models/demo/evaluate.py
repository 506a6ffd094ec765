"""Quality of the demo models on held-out demo images (what the README and closing notes report)."""
from __future__ import annotations

import re

import numpy as np

from ...datasets.demo.stimuli import CATEGORIES, CATEGORY_WORDS


# prompts in the captions' own words (the grammar's category phrases)
def category_prompts() -> dict[str, list[str]]:
    """{category: prompts in the demo world's words} for zero-shot classification."""
    out = {c: list(dict.fromkeys(CATEGORY_WORDS[c])) for c in CATEGORIES}
    out["word"] = out["word"] + ['the word "stop"', 'a sign that says "open"']
    return out


def category_text_features(embedder) -> np.ndarray:
    """(n_categories, dim): mean of the unit text features of each category's prompts, renormalised."""
    prompts = category_prompts()
    feats = []
    for c in CATEGORIES:
        f = embedder.text_features(prompts[c]).mean(0)
        feats.append(f / np.linalg.norm(f))
    return np.stack(feats)


def single_object(objects) -> np.ndarray:
    """Index of images with exactly one object, and that object's category index."""
    idx, cat = [], []
    for i, objs in enumerate(objects):
        if isinstance(objs, list) and len(objs) == 1:
            idx.append(i)
            cat.append(CATEGORIES.index(objs[0]["category"]))
    return np.array(idx), np.array(cat)


def zero_shot_accuracy(embedder, images, objects) -> dict:
    """Share of single-object images whose image embedding is closest to their category's prompts."""
    idx, cat = single_object(objects)
    f = embedder.image_features(images[idx])
    pred = (f @ category_text_features(embedder).T).argmax(1)
    per = {c: float((pred[cat == k] == k).mean()) for k, c in enumerate(CATEGORIES) if (cat == k).any()}
    return {"accuracy": float((pred == cat).mean()), "per_category": per, "n": int(idx.size)}


def retrieval(embedder, images, captions, n: int = 1000) -> dict:
    """Image -> caption retrieval among ``n`` held-out images.

    ``first_caption_top1``: candidates are each image's first caption; a hit when the retrieved caption is the
    image's own (identical texts count as the same caption). ``coco_r1`` / ``coco_r5``: the COCO protocol,
    candidates are all 3-5 captions of the ``n`` images; a hit when a top-1 (top-5) caption is one of the image's."""
    caps = [c[0] for c in captions[:n]]
    fi = embedder.image_features(images[:n])
    ft = embedder.text_features(caps)
    best = (fi @ ft.T).argmax(1)
    first = float(np.mean([caps[b] == caps[i] for i, b in enumerate(best)]))
    flat = [c for cs in captions[:n] for c in cs]
    owner = np.concatenate([[i] * len(cs) for i, cs in enumerate(captions[:n])])
    order = np.argsort(-(fi @ embedder.text_features(flat).T), axis=1)[:, :5]
    hits = owner[order] == np.arange(n)[:, None]
    return {"first_caption_top1": first, "coco_r1": float(hits[:, 0].mean()), "coco_r5": float(hits.any(1).mean()),
            "n": n}


def names_category(text: str, category: str) -> bool:
    """Whether ``text`` names ``category`` (any of the category's words, as whole words)."""
    from ...datasets.demo.stimuli import CATEGORY_LEXICON

    t = " " + re.sub(r"[,.;:!?()]", " ", text.lower()).replace('"', ' " ') + " "
    return any(f" {w} " in t or (w == '"' and '"' in t) for w in CATEGORY_LEXICON[category])


def caption_category_accuracy(decoder, embedder, images, objects, n: int = 500) -> dict:
    """Decode a caption from each held-out image's embedding and check the categories it names.

    ``single_object``: on one-object images, the caption names that object's category;
    ``precision``: every category the caption names is in the image (nothing wrong is named);
    ``names_all``: every visible object's category (area >= 1%) is named; ``names_largest``: the largest object's."""
    from ...datasets.demo.stimuli import CATEGORIES

    caps = decoder.generate(embedder.image_features(images[:n]))
    single, precision, names_all, largest, examples = [], [], [], [], []
    for cap, objs in zip(caps, objects[:n]):
        cats = {o["category"] for o in objs if o["area"] >= 0.01}
        if not cats:
            continue
        named = {c for c in CATEGORIES if names_category(cap, c)}
        precision.append(bool(named) and named <= cats)
        names_all.append(cats <= named)
        largest.append(max(objs, key=lambda o: o["area"])["category"] in named)
        if len(objs) == 1:
            single.append(cats <= named)
        if len(examples) < 8:
            examples.append({"caption": cap, "categories": sorted(cats)})
    return {"single_object": float(np.mean(single)), "precision": float(np.mean(precision)),
            "names_all": float(np.mean(names_all)), "names_largest": float(np.mean(largest)),
            "n": len(precision), "n_single": len(single), "examples": examples}


def generator_agreement(generator, embedder, grid_path=None, per_category: int = 24, steps: int = 50,
                        guidance: float = 3.0, seed: int = 0) -> dict:
    """Generate ``per_category`` samples from each category's prompts; the embedder's zero-shot label must agree."""
    prompts = category_prompts()
    text = category_text_features(embedder)
    per, grid = {}, []
    for k, c in enumerate(CATEGORIES):
        ps = [prompts[c][i % len(prompts[c])] for i in range(per_category)]
        imgs = generator.sample(ps, steps=steps, guidance=guidance, seed=seed + k)
        pred = (embedder.image_features(imgs) @ text.T).argmax(1)
        per[c] = float((pred == k).mean())
        grid.append(imgs[:8])
    if grid_path is not None:
        from PIL import Image

        rows = [np.concatenate(list(r), axis=1) for r in grid]
        Image.fromarray(np.concatenate(rows, axis=0)).resize((8 * 64, len(rows) * 64), Image.NEAREST).save(grid_path)
    return {"overall": float(np.mean(list(per.values()))), "per_category": per, "guidance": guidance,
            "steps": steps, "samples_per_category": per_category}


def judge_accuracy(judge, data: dict) -> dict:
    """The judge on held-out world images (``render_judge_set``): per-pixel accuracy, per-category pixel recall,
    the correlation over images of each category's visible area (predicted vs true), background accuracy."""
    from ..judge import BACKGROUND_TYPES, JUDGE_CLASSES

    labels, bg = judge.segment(list(data["images"]))
    true = data["labels"]
    out = {"pixel_accuracy": float((labels == true).mean()), "n": int(len(true))}
    recall, area_r = {}, {}
    for c in range(1, len(JUDGE_CLASSES)):
        m = true == c
        recall[JUDGE_CLASSES[c]] = float((labels[m] == c).mean()) if m.any() else float("nan")
        a, b = (labels == c).mean((1, 2)), m.mean((1, 2))
        area_r[JUDGE_CLASSES[c]] = float(np.corrcoef(a, b)[0, 1])
    out["pixel_recall"] = recall
    out["area_r"] = area_r
    out["background_accuracy"] = float((bg.argmax(1) == data["background"]).mean())
    out["background_types"] = list(BACKGROUND_TYPES)
    return out


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows = images): FID's formula."""
    from scipy import linalg

    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(ca @ cb, disp=False)
    return float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * np.real(root)))


def shows(labels: np.ndarray, category: str, min_share: float = 0.02) -> np.ndarray:
    """(n,) whether the judge's segmentations show ``category`` over at least ``min_share`` of the image."""
    from ..judge import JUDGE_CLASSES

    return (labels == JUDGE_CLASSES.index(category)).mean((1, 2)) >= min_share


def generator_judged(generator, judge, held: dict, per_category: int = 24, n_uncond: int = 96, steps: int = 50,
                     guidance: float = 3.0, seed: int = 0, grid_path=None, uncond_grid_path=None) -> dict:
    """The generator judged by the judge (independent of the embedder that conditions it).

    * conditional: ``per_category`` samples per category from the category prompts; the share the judge sees
      the category in (>= 2% of the image);
    * unconditional: ``n_uncond`` samples; per category, the share showing it, next to the share of held-out world
      images that do (``held`` from :func:`backend.models.demo.train.render_judge_set`);
    * ceiling: the same judge on held-out world images holding the category, brought to the generator's
      resolution and back, and (for a latent generator) through its own encoder and decoder and back;
    * Frechet distance of the judge's pooled features, generated (conditional and unconditional together) vs
      held-out world images.
    """
    import torch
    import torch.nn.functional as F

    prompts = category_prompts()
    size = generator.image_size
    cond, cond_imgs, grid = {}, [], []
    for k, c in enumerate(CATEGORIES):
        ps = [prompts[c][i % len(prompts[c])] for i in range(per_category)]
        imgs = generator.sample(ps, steps=steps, guidance=guidance, seed=seed + k)
        cond[c] = float(shows(judge.segment(list(imgs))[0], c).mean())
        cond_imgs.append(imgs)
        grid.append(imgs[:8])
    x = generator.prepare_latents(n_uncond, seed + 100)
    u = generator.unconditional(n_uncond)
    with torch.no_grad():
        for t in generator.timesteps(steps):
            x = generator.step(generator.predict_noise(x, t, u), t, x)
        unc = generator.to_uint8(generator.decode(x))
    unc_labels = judge.segment(list(unc))[0]
    real = torch.from_numpy(held["images"]).permute(0, 3, 1, 2).float()
    squeezed = F.interpolate(F.interpolate(real, size=(size, size), mode="area"), size=real.shape[-2:],
                             mode="bilinear", align_corners=False)
    squeezed = squeezed.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    sq_labels = judge.segment(list(squeezed))[0]
    through = None  # the generator's own round trip (its autoencoders), where it has one: what it can draw at best
    if getattr(generator, "vae", None) is not None:
        with torch.no_grad():
            x = generator.images_to_tensor(list(held["images"]))
            rt = np.concatenate([generator.to_uint8(generator.decode(generator.encode(x[a:a + 100])))
                                 for a in range(0, len(x), 100)])
        through = judge.segment(list(rt))[0]
    true = held["labels"]
    uncond, world, ceiling, round_trip = {}, {}, {}, {}
    from ..judge import JUDGE_CLASSES

    for c in CATEGORIES:
        has = (true == JUDGE_CLASSES.index(c)).mean((1, 2)) >= 0.02
        uncond[c] = float(shows(unc_labels, c).mean())
        world[c] = float(has.mean())
        ceiling[c] = float(shows(sq_labels[has], c).mean()) if has.any() else float("nan")
        if through is not None:
            round_trip[c] = float(shows(through[has], c).mean()) if has.any() else float("nan")
    gen_feats = judge.embed(list(np.concatenate(cond_imgs + [unc])))
    fd = frechet_distance(gen_feats, judge.embed(list(held["images"])))
    unc_rows = [unc[i * 8:(i + 1) * 8] for i in range(min(6, len(unc) // 8))]
    for path, rows in ((grid_path, grid), (uncond_grid_path, unc_rows)):
        if path is not None and rows and len(rows[0]):
            from PIL import Image

            im = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
            Image.fromarray(im).resize((im.shape[1] * 64 // size, im.shape[0] * 64 // size), Image.NEAREST).save(path)
    return {"conditional": cond, "conditional_overall": float(np.mean(list(cond.values()))),
            "unconditional": uncond, "world_share": world, "ceiling_real_at_generator_size": ceiling,
            "ceiling_through_generator_autoencoder": round_trip or None, "frechet_judge_features": fd, "image_size": size, "steps": steps, "guidance": guidance,
            "samples_per_category": per_category, "unconditional_samples": n_uncond}
