"""Teaching the trained demo embedder the words a changed caption grammar uses, without retraining what depends on it.

    python -m backend models extend-embedder    # words the world's captions use that the embedder lacks

The embedder is what the captioner, the generators, the encoders and the in-context encoder are trained on, so
retraining it moves the joint space under all of them. When the caption grammar gains words (the word category's
names "text", "written text", "a word", which earlier captions never used, and "fruit"), the **vocabulary
extension** appends rows for the new words to the text tower's token table and trains only those rows (the
contrastive loss of the embedder's own training, against the frozen image tower, on captions that use them):
image features, and the text features of every text without a new word, stay bit-identical, so nothing trained
on the embedder has to change. (A prompt's text embedding is what the generators are conditioned on; a word the
tokenizer does not know is read as ``[UNK]``, so before the extension the prompt "text" asked for nothing.) A
from-scratch ``models train embedder`` learns the same words in its own training; the extension then finds
nothing to do.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...store.progress import ProgressFn
from .loop import Checkpoint, optimise, seed_everything, tick


_COMPLETE = ".complete"


def _finish_move(staging: Path, folder: Path) -> None:
    """Move a complete staged model's files over ``folder``'s, then remove the staging folder. Killed part-way, the
    next call finishes the move (the marker goes last); an incomplete staging folder is discarded."""
    if not staging.exists():
        return
    if (staging / _COMPLETE).exists():
        for f in staging.iterdir():
            if f.name == _COMPLETE:
                continue
            if f.is_dir() and (folder / f.name).is_dir():
                shutil.rmtree(folder / f.name)
            f.replace(folder / f.name)
    shutil.rmtree(staging)


def missing_words(tokenizer, captions) -> dict[str, int]:
    """{word: how many captions use it} for the words of ``captions`` (a list of lists) ``tokenizer`` lacks."""
    from ..tokenizer import words

    counts = Counter(w for cs in captions for c in cs for w in set(words(c)) if w not in tokenizer.index)
    return dict(sorted(counts.items()))


def extend_embedder_vocabulary(folder: Path, data: dict, seed: int = 0, steps: int = 300, batch: int = 128,
                               lr: float = 3e-3, progress: ProgressFn = None, log=print,
                               checkpoint_every: int = 100) -> dict:
    """Teach the demo embedder in ``folder`` the words of ``data["captions"]`` its vocabulary lacks (in place).

    Each new word gets a token row, started at the mean of the existing word rows; only the new rows are trained
    (AdamW without weight decay, on the symmetric contrastive loss of the embedder's own training), each batch
    half images whose captions use a new word (with such a caption) and half any images (with any caption). The
    rows the embedder had, and all its other weights, are restored bit for bit before saving. Resumable
    (``folder/vocab_state.pt``); the folder is replaced only when the extended embedder is complete. The model id
    gains ``+words``. Returns the report ({"new_words": {}} when there is nothing to learn)."""
    from ..embedder import DemoClip
    from ..tokenizer import WordTokenizer, words

    folder = Path(folder)
    staging = folder.with_name(folder.name + ".extending")
    _finish_move(staging, folder)  # a run killed while it replaced the folder's files
    emb = DemoClip.from_pretrained(folder)
    captions = data["captions"]
    new = missing_words(emb.tokenizer, captions)
    if not new:
        log(f"{folder}: the embedder knows every word of the captions")
        return {"new_words": {}}
    names = list(new)
    seed_everything(seed)
    model = emb.model.eval().requires_grad_(False)
    old = model.text.tok.weight.detach().clone()
    n_old, dim = old.shape
    tok = torch.nn.Embedding(n_old + len(names), dim)
    with torch.no_grad():
        tok.weight[:n_old] = old
        tok.weight[n_old:] = old[4:].mean(0)  # past the specials ([PAD], [UNK], [BOS], [EOS])
    tok.weight.register_hook(lambda g: torch.cat([torch.zeros_like(g[:n_old]), g[n_old:]]))
    model.text.tok = tok
    model.config["vocab"] = n_old + len(names)
    tokenizer = WordTokenizer(emb.tokenizer.vocab + names, emb.tokenizer.max_length)
    opt = torch.optim.AdamW([tok.weight], lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    config = {"seed": seed, "steps": steps, "batch": batch, "lr": lr, "new_words": names}
    ckpt = Checkpoint(folder, config, name="vocab_state.pt")
    start = ckpt.load(tok, opt, rng, log)
    uses = [[c for c in cs if set(words(c)) & new.keys()] for cs in captions]
    with_new = np.array([i for i, u in enumerate(uses) if u])
    log(f"embedder: learning {len(names)} new words {new} from {len(with_new):,} images")
    img = torch.from_numpy(emb.image_features(data["images"]))  # the frozen image tower, once
    scale = model.logit_scale.exp().clamp(max=100)
    t0 = time.time()
    loss = torch.tensor(float("nan"))
    half = batch // 2
    for step in range(start, steps):
        a = rng.choice(with_new, half, replace=False)
        b = rng.choice(np.setdiff1d(np.arange(len(captions)), a), batch - half, replace=False)
        texts = [uses[i][rng.integers(len(uses[i]))] for i in a] + \
                [captions[i][rng.integers(len(captions[i]))] for i in b]
        ids, mask = tokenizer.batch(texts)
        txt = F.normalize(model.text(ids, mask), dim=-1)
        logits = scale * img[np.concatenate([a, b])] @ txt.T
        target = torch.arange(batch)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimise(opt, loss, step, steps, lr, warmup=20)
        tick(progress, log, "embedder vocabulary", step, steps, loss, t0)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(tok, opt, rng, step + 1)
    with torch.no_grad():
        if not torch.equal(tok.weight[:n_old], old):
            raise RuntimeError("the embedder's existing token rows changed while learning new words")
    base_id = emb.model_id
    extended = DemoClip(model, tokenizer, model_id=f"{base_id}+words", device="cpu")
    shutil.rmtree(staging, ignore_errors=True)
    extended.save_pretrained(staging)
    cfg = json.loads((staging / "config.json").read_text())
    cfg["vocabulary_extensions"] = cfg.get("vocabulary_extensions", []) + [
        {**config, "from_model_id": base_id, "captions_using_them": new}]
    (staging / "config.json").write_text(json.dumps(cfg, indent=1))
    (staging / _COMPLETE).touch()
    _finish_move(staging, folder)
    ckpt.done()
    return {**config, "captions_using_them": new, "model_id": extended.model_id,
            "seconds_this_run": round(time.time() - t0), "final_loss": float(loss.detach())}



def extend_embedder(out: Path, seed: int = 0, cache: Path | None = None, workers: int | None = None,
                    progress: ProgressFn = None, log=print) -> dict:
    """:func:`extend_embedder_vocabulary` on ``out/embedder`` with the current world's training captions; when it
    learned words, the embedder's zero-shot accuracy on held-out images goes into ``out/training.json``
    (``embedder_vocabulary``)."""
    from ..embedder import DemoClip
    from . import evaluate
    from .train import HELDOUT_SEED_OFFSET, TRAIN_SEED_OFFSET, render_set, save_report

    out = Path(out)
    train = render_set(TRAIN_SEED_OFFSET + seed, 30000, cache=cache, workers=workers)
    rep = extend_embedder_vocabulary(out / "embedder", train, seed=seed, progress=progress, log=log)
    if rep["new_words"]:
        held = render_set(HELDOUT_SEED_OFFSET + seed, 2000, cache=cache, workers=workers)
        emb = DemoClip.from_pretrained(out / "embedder")
        rep["zero_shot"] = evaluate.zero_shot_accuracy(emb, held["images"], held["objects"])
        save_report(out, "embedder_vocabulary", rep)
    return rep
