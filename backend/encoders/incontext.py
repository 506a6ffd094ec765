"""In-context voxel encoders (BraInCoRL-style): the network of :mod:`backend.models.incontext` reads one voxel's
(image embedding, response) pairs and writes that voxel's linear encoder ``(w, b)`` in embedding space. Nothing is
fitted for a new subject: a few dozen to a thousand images of it give every voxel an encoder in one forward pass.

Training (:func:`train_incontext`) samples, per step, a context size (log-uniform over ``n_range``), that many
training images, a batch of voxels of the training subjects, and scores the written encoders on other training
images of the same voxels (squared error over each voxel's variance: 1 - R^2). Checkpointed and resumable.

Use (:func:`fit_incontext_encoder`): a subject's first N training images -> an encoder per voxel, evaluated on the
test images like the ridge encoder and stored next to it (``encoders.method = 'in-context'``); every method that
reads a subject's encoder can use it.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, NotFoundError
from ..models.incontext import InContextEncoder, arch_config
from ..store import ProgressFn, Workspace, current_encoder, report, require_subject

__all__ = ["incontext_model_path", "load_incontext_model", "incontext_weights", "train_incontext", "fit_incontext_encoder", "context_rows",
           "incontext_halves"]


def incontext_model_path() -> Path | None:
    """The configured in-context encoder folder if it holds a model, else None (the feature is then unavailable)."""
    from ..models import model_config

    path = model_config()["incontext_encoder"]["path"]
    return Path(path) if path and (Path(path) / "model.safetensors").exists() else None


def load_incontext_model(path: str | Path | None = None, device: str = "cpu") -> InContextEncoder:
    """The in-context encoder network at ``path`` (default: the ``incontext_encoder`` role of ``models.toml``)."""
    if path is None:
        from ..models import model_config

        path = model_config()["incontext_encoder"]["path"]
        if not path:
            raise NotFoundError("no in-context encoder configured ([incontext_encoder] path in models.toml); train "
                                "one with `python -m backend encoder in-context-train`")
    return InContextEncoder.from_pretrained(path, device)


def incontext_weights(model: InContextEncoder, X: np.ndarray, Y: np.ndarray, chunk: int = 512,
                      progress: ProgressFn = None) -> tuple[np.ndarray, np.ndarray]:
    """Each voxel's encoder from its context: ``X`` (n, dim) embeddings, ``Y`` (n, n_voxels) responses.

    Returns
    -------
    W : ndarray, shape (n_voxels, dim)
    b : ndarray, shape (n_voxels,)
    """
    import torch

    X = np.asarray(X, np.float32)
    Y = np.asarray(Y, np.float32)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise InvalidInputError(f"context embeddings {X.shape} and responses {Y.shape} must be (n, dim) and "
                                "(n, n_voxels) with the same n")
    if X.shape[1] != model.config["dim"]:
        raise InvalidInputError(f"the in-context encoder reads {model.config['dim']}-d embeddings; these are "
                                f"{X.shape[1]}-d (another embedder?)")
    if len(X) < 2:
        raise InvalidInputError("an in-context encoder needs at least 2 context images")
    if not np.isfinite(X).all() or not np.isfinite(Y).all():
        raise InvalidInputError("context embeddings and responses must be finite (no NaN/inf)")
    Xt = torch.from_numpy(X).to(model.device)
    W = np.empty((Y.shape[1], X.shape[1]), np.float32)
    b = np.empty(Y.shape[1], np.float32)
    with torch.no_grad():
        for a in range(0, Y.shape[1], chunk):
            e = min(a + chunk, Y.shape[1])
            w_, b_ = model.net(Xt, torch.from_numpy(np.ascontiguousarray(Y[:, a:e].T)).to(model.device))
            W[a:e], b[a:e] = w_.cpu().numpy(), b_.cpu().numpy()
            report(progress, "In-context encoders", e, Y.shape[1])
    return W, b


def context_rows(n_train: int, n_images: int, order: str = "first", seed: int = 0) -> np.ndarray:
    """Which training rows form a context of ``n_images``: the first ones (as a new subject's first sessions
    would give them) or a random draw by ``seed``."""
    if n_images < 2 or n_images > n_train:
        raise InvalidInputError(f"the number of context images (--images) must be between 2 and the subject's "
                                f"{n_train:,} training images, got {n_images}")
    if order == "first":
        return np.arange(n_images)
    if order == "random":
        return np.sort(np.random.default_rng(seed).permutation(n_train)[:n_images])
    raise InvalidInputError(f"order must be 'first' or 'random', got {order!r}")


def _training_data(ws: Workspace, subjects):
    from .features import stored_features
    from .voxelwise import design_matrices

    data = []
    for s in subjects:
        enc = current_encoder(ws, require_subject(ws, s), method="ridge")
        if enc is None:
            raise NotFoundError(f"{s} has no ridge encoder in {ws.path}: its features are computed by "
                                "`python -m backend encoder fit`")
        Xtr, Ytr, Xte, Yte, _ = design_matrices(ws, s, stored_features(ws, enc["feature_key"]))
        data.append({"subject": s, "X": Xtr, "Y": Ytr, "Xte": Xte, "Yte": Yte, "var": Ytr.var(0) + 1e-6,
                     "key": enc["feature_key"], "model_id": enc["model_id"]})
    return data


def train_incontext(ws: Workspace, subjects, out: str | Path, steps: int = 3000, voxels: int = 256,
                    queries: int = 512, n_range=(16, 1200), lr: float = 1e-3, seed: int = 0, device: str = "cpu",
                    checkpoint_every: int = 100, progress: ProgressFn = None, log=print, **arch) -> dict:
    """Train the in-context encoder on the training images of ``subjects`` (their test images are never seen).

    Every ``checkpoint_every`` steps the state goes to ``out/train_state.pt``; a killed run resumes there and ends
    with the same weights. Writes ``out/model.safetensors`` and ``out/config.json`` (with the training log)."""
    import torch

    from ..models.demo.loop import Checkpoint, optimise, seed_everything

    seed_everything(seed)
    data = _training_data(ws, subjects)
    dims = {d["X"].shape[1] for d in data}
    if len(dims) != 1 or len({d["key"] for d in data}) != 1:
        raise InvalidInputError("the training subjects' encoders must share one feature set")
    dim = dims.pop()
    model = InContextEncoder.new(dim, **arch)
    net = model.net.to(device).train()
    model.device = device
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    config = {"subjects": list(subjects), "steps": steps, "voxels": voxels, "queries": queries,
              "n_range": list(n_range), "lr": lr, "seed": seed, **arch_config(arch)}
    ckpt = Checkpoint(out, config)
    start = ckpt.load(net, opt, rng, log)
    t0 = time.time()
    history = []
    lo, hi = math.log(n_range[0]), math.log(n_range[1])
    loss = torch.tensor(float("nan"))
    for step in range(start, steps):
        d = data[rng.integers(len(data))]
        n_all, n_vox = d["Y"].shape
        n = int(round(math.exp(rng.uniform(lo, hi))))
        perm = rng.permutation(n_all)
        ctx, qry = perm[:n], perm[n:n + queries]
        vox = rng.choice(n_vox, min(voxels, n_vox), replace=False)
        X = torch.from_numpy(d["X"][ctx]).to(device)
        Y = torch.from_numpy(np.ascontiguousarray(d["Y"][np.ix_(ctx, vox)].T)).to(device)
        w, b = net(X, Y)
        pred = torch.from_numpy(d["X"][qry]).to(device) @ w.T + b  # (q, b)
        target = torch.from_numpy(d["Y"][np.ix_(qry, vox)]).to(device)
        loss = (((pred - target) ** 2).mean(0) / torch.from_numpy(d["var"][vox]).to(device)).mean()
        optimise(opt, loss, step, steps, lr, clip_params=net.parameters(), warmup=200)
        report(progress, "Training the in-context encoder", step + 1, steps)
        if step % 100 == 0 or step == steps - 1:
            val = _validate(model, data[0], 100)
            history.append({"step": step + 1, "loss": round(loss.item(), 4), "val_r2_100": round(val, 4)})
            log(f"in-context step {step + 1}/{steps} n={n} loss {loss.item():.4f} "
                f"test R^2 (100 images of {data[0]['subject']}) {val:.4f} ({time.time() - t0:.0f} s)")
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(net, opt, rng, step + 1)
    net.eval()
    model.config.update({"model_id": f"voxelscope/incontext-{data[0]['key']}-seed{seed}",
                         "embedder_model_id": data[0]["model_id"], "feature_key": data[0]["key"],
                         "training": {**config, "seconds_last_run": round(time.time() - t0), "history": history}})
    model.net, model.device = net.cpu(), "cpu"
    model.save_pretrained(out)
    ckpt.done()
    return model.config


def _validate(model: InContextEncoder, d: dict, n: int) -> float:
    """Mean test R^2 of the subject's voxels with a context of ``n`` random training images (fixed draw)."""
    from .ridge import r2_columns

    ctx = np.random.default_rng(12345).permutation(len(d["X"]))[:n]
    W, b = incontext_weights(model, d["X"][ctx], d["Y"][ctx], chunk=1024)  # no grad; the net has no dropout
    return float(np.nanmean(r2_columns(d["Yte"], d["Xte"] @ W.T + b)))


def fit_incontext_encoder(ws: Workspace, subject: str, n_images: int, order: str = "first", seed: int = 0,
                          model: InContextEncoder | None = None, embedder=None, device: str = "cpu",
                          progress: ProgressFn = None) -> dict:
    """Build ``subject``'s encoders from ``n_images`` of its training images (its first ones, or a random draw)
    with the in-context encoder, evaluate them on its test images and store them as its ``in-context`` encoder.

    The stimuli are embedded with the configured embedder (cached), which must be the one the in-context model was
    trained with. Returns a summary like :func:`backend.encoders.fit_encoder`'s."""
    from ..models import load_role, model_config
    from .features import caption_features, stimulus_features
    from .voxelwise import design_matrices, store_encoder

    require_subject(ws, subject)
    model = model or load_incontext_model(device=device)
    cfg = model_config()
    emb = embedder or load_role("embedder", device, cfg)
    feats, key = stimulus_features(ws, emb, cfg["embedder"]["path"], device=device, progress=progress)
    caption_features(ws, emb, key, progress=progress)
    want = model.config.get("feature_key")
    # keys of other embedders shown to give the same image features bit for bit (e.g. after a vocabulary extension,
    # which changes only the text tower): {key: how that was checked}
    if want and key != want and key not in model.config.get("equivalent_feature_keys", {}):
        raise InvalidInputError(f"the in-context encoder {model.model_id} was trained on features {want}; this "
                                f"workspace's embedder gives {key}: train one for this embedder "
                                "(`python -m backend encoder in-context-train`)")
    Xtr, Ytr, Xte, Yte, _ = design_matrices(ws, subject, feats)
    idx = context_rows(len(Xtr), int(n_images), order, seed)
    W, b = incontext_weights(model, Xtr[idx], Ytr[idx], progress=progress)
    if len(Xte) == 0:
        raise InvalidInputError(f"{subject} has no test images (split = 'test' in subject_stimuli) to evaluate "
                                "its encoders on")
    return store_encoder(ws, subject, "in-context", W, b, key, emb.model_id, Xte, Yte, n_train=len(idx),
                         parameters={"n_images": int(len(idx)), "order": order, "context_rows": _ranges(idx),
                                     "model": model.model_id},
                         seed=seed if order == "random" else None, model_ids={"incontext_encoder": model.model_id},
                         progress=progress)


def incontext_halves(ws: Workspace, subject: str, enc: dict, seed: int = 0, device: str = "cpu"):
    """The in-context encoder of ``subject`` made again from each half of its context images (BrainDiVE guides
    with one and re-ranks with the other). Returns [(W, b, n_images, context rows), ...] for halves 0 and 1."""
    from .features import stored_features
    from .voxelwise import design_matrices

    params = json.loads(ws.query("SELECT parameters FROM runs WHERE run_id = ?", [enc["run_id"]]).parameters.iloc[0])
    idx = _unranges(params["context_rows"])
    model = load_incontext_model(device=device)
    Xtr, Ytr, _, _, _ = design_matrices(ws, subject, stored_features(ws, enc["feature_key"]))
    order = np.random.default_rng(seed).permutation(len(idx))
    out = []
    for part in (order[: len(idx) // 2], order[len(idx) // 2:]):
        rows = np.sort(idx[part])
        W, b = incontext_weights(model, Xtr[rows], Ytr[rows])
        out.append((W, b, len(rows), model.model_id))
    return out


def _ranges(idx: np.ndarray) -> list[list[int]]:
    """Sorted row indices as [start, stop) runs (a first-N context is one pair)."""
    idx = np.asarray(idx)
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) != 1) + 1
    return [[int(p[0]), int(p[-1]) + 1] for p in np.split(idx, cuts)]


def _unranges(ranges) -> np.ndarray:
    return np.concatenate([np.arange(a, b) for a, b in ranges]) if ranges else np.zeros(0, int)
