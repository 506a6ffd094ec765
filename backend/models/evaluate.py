"""Quality of the demo models on held-out demo images (what the README and closing notes report)."""
from __future__ import annotations

import numpy as np

from ..stimuli import CATEGORIES, CATEGORY_WORDS

# prompts in the captions' own words (the grammar's category phrases)
def category_prompts() -> dict[str, list[str]]:
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
    idx, cat = single_object(objects)
    f = embedder.image_features(images[idx])
    pred = (f @ category_text_features(embedder).T).argmax(1)
    per = {c: float((pred[cat == k] == k).mean()) for k, c in enumerate(CATEGORIES) if (cat == k).any()}
    return {"accuracy": float((pred == cat).mean()), "per_category": per, "n": int(idx.size)}


def retrieval_top1(embedder, images, captions, n: int = 1000) -> float:
    """Image -> caption retrieval among ``n`` held-out images (each image's first caption); a hit counts
    when the retrieved caption's text equals the true one (duplicates are the same caption)."""
    caps = [c[0] for c in captions[:n]]
    fi = embedder.image_features(images[:n])
    ft = embedder.text_features(caps)
    best = (fi @ ft.T).argmax(1)
    return float(np.mean([caps[b] == caps[i] for i, b in enumerate(best)]))


def names_category(text: str, category: str) -> bool:
    from ..stimuli import CATEGORY_LEXICON

    t = " " + text.lower().replace('"', ' " ') + " "
    return any(f" {w} " in t or (w == '"' and '"' in t) for w in CATEGORY_LEXICON[category])


def caption_category_accuracy(decoder, embedder, images, objects, n: int = 500) -> dict:
    """Share of held-out images whose decoded caption names the category of each visible object (area >= 1%)."""
    feats = embedder.image_features(images[:n])
    caps = decoder.generate(feats)
    per_image, examples = [], []
    for cap, objs in zip(caps, objects[:n]):
        cats = {o["category"] for o in objs if o["area"] >= 0.01}
        if not cats:
            continue
        per_image.append(all(names_category(cap, c) for c in cats))
        if len(examples) < 8:
            examples.append({"caption": cap, "categories": sorted(cats)})
    return {"accuracy": float(np.mean(per_image)), "n": len(per_image), "examples": examples}


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
