"""Brain-IT (2025): the brain interaction transformer (BIT) that decodes betas for reconstruction, and the ridge
baseline it is compared with.

Both map a subject's betas (z-scored per session, repeats averaged) of one image to what reconstruction needs:
the embedder's global image embedding and patch tokens (**semantic**), and a coarse 32 px image (**low-level**).

BIT (Brain-IT 2025, after the paper's description): voxel token = beta x voxel embedding, where the voxel embedding
is a shared linear map of the voxel's vector (its encoder and visual-field weights, :mod:`.clusters`) plus a
per-subject learned residual; voxel tokens are averaged into the shared clusters' tokens (plus a learned cluster
code, the same in every subject); self-attention blocks over the cluster tokens; cross-attention blocks into learned
output queries (one global, one per patch, one per 8 x 8 tile of the low-level image); linear heads, plus (by
default) a linear readout of the global embedding and the coarse image from the cluster tokens themselves, added to
the heads' outputs. Every weight is shared across subjects except the residuals, so a subject with one hour of data
borrows what the others taught. Losses: cosine + 0.5 x contrastive (InfoNCE) on the global embedding, MSE on patch
tokens, MSE (or L1) on the coarse image.

The ridge baseline: betas -> embedding and betas -> coarse image by ridge regression (one alpha per output, chosen
by generalised cross-validation), then the same generator.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..datasets.reading import stimulus_images, subject_betas
from ..encoders.features import stored_features, stimulus_patch_tokens
from ..encoders.ridge import fit_ridge_cv
from ..errors import InvalidInputError, NotFoundError
from ..store import ProgressFn, Workspace, current_encoder, report, require_subject, stimulus_ids
from .clusters import DEFAULT_K, mixture, voxel_vectors

__all__ = ["BITConfig", "DecoderData", "decoder_data", "fit_bit", "fit_ridge_decoder", "load_decoder", "decoders",
           "ensure_decoder",
           "Decoder", "LOW_SIZE", "one_hour_images"]

LOW_SIZE = 32  # the low-level image's side (pixels)
TILE = 8


@dataclass
class BITConfig:
    dim: int = 128
    self_blocks: int = 2
    cross_blocks: int = 2
    heads: int = 4
    dropout: float = 0.0  # (torch dropout costs a quarter of a CPU step here; noise on the betas regularises)
    k: int = DEFAULT_K
    epochs: int = 10  # (the full demo world: 9,000 training images a subject, 1,280 steps)
    min_steps: int = 600  # small data (one hour) gets more passes, up to this many steps (early stopping guards)
    batch: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    residual_decay: float = 1e-3  # L2 on the per-subject voxel residuals (pulls a subject towards the shared map)
    temperature: float = 0.05
    w_patch: float = 1.0
    w_low: float = 1.0
    patience: int = 6
    # also read the global embedding and the low-level image linearly from the cluster tokens (zero-initialised,
    # added to the heads' outputs): on the full demo world it lifts every column of the reconstruction table
    linear_readout: bool = True
    w_contrastive: float = 0.5  # weight of the InfoNCE term of the global loss (the cosine term has weight 1)
    low_loss: str = "mse"  # the low-level image's loss: "mse" (x10; PixCorr rewards it, as for the ridge) or "l1"
    # every subject gets as many batches an epoch as the one with the most images (a one-hour subject's images are
    # drawn again, in fresh orders), so a subject with little data is not a few steps among many
    balance_subjects: bool = True
    seed: int = 0


@dataclass
class DecoderData:
    """One subject's decoding data: betas (n, n_voxels) and targets of its train (``tr``) and test (``te``) images."""
    subject: str
    stim_tr: np.ndarray
    stim_te: np.ndarray
    B_tr: np.ndarray
    B_te: np.ndarray
    emb_tr: np.ndarray  # (n, dim) unit
    patch_tr: np.ndarray  # (n, P, dim)
    low_tr: np.ndarray  # (n, 32, 32, 3) float in [0, 1]


def regime_name(one_hour: str | None = None, alone: bool = False) -> str:
    """How a decoder's training data is named in ``decoders.regime``: "full", "1h subj01 + shared", "1h subj01 alone"."""
    return "full" if one_hour is None else f"1h {one_hour}" + (" alone" if alone else " + shared")


def one_hour_images(ws: Workspace, subject: str, sessions: int = 2) -> int:
    """How many distinct training images ``sessions`` of the subject's sessions hold (NSD: 750 trials a session, 3
    repeats per image -> 1 h of scanning ~ 1-2 sessions ~ 250-500 images)."""
    row = ws.query("SELECT n_sessions, n_trials, n_images FROM subjects WHERE subject = ?", [subject]).iloc[0]
    per_image = row.n_trials / max(row.n_images, 1)
    return int(round(sessions * row.n_trials / max(row.n_sessions, 1) / per_image))


def decoder_data(ws: Workspace, subject: str, n_train: int | None = None, embedder_folder: str | None = None,
                 embedder=None) -> DecoderData:
    """The subject's betas and the decoding targets (the embedder's stored features and patch tokens, the images at
    32 px); ``n_train`` keeps only the first training images (the 1-hour regime)."""
    subject = require_subject(ws, subject)
    enc = current_encoder(ws, subject)
    if enc is None:
        raise NotFoundError(f"no encoder for {subject} (run `python -m backend encoder fit`): BIT's voxel vectors "
                            "and targets come from it")
    betas, rows = subject_betas(ws, subject)
    B = np.asarray(betas, np.float32)
    train = (rows.split == "train").to_numpy()
    tr, te = np.flatnonzero(train), np.flatnonzero(~train)
    if n_train is not None:
        if n_train < 10:
            raise InvalidInputError(f"n_train={n_train}: a decoder needs at least 10 training images")
        tr = tr[:n_train]
    ids = rows.stim_id.to_numpy()
    pos = np.searchsorted(stimulus_ids(ws), ids[tr])
    emb = np.asarray(stored_features(ws, enc["feature_key"]), np.float32)[pos]
    if embedder is None:
        from ..models import load_role, model_config

        embedder = load_role("embedder")
        embedder_folder = model_config()["embedder"]["path"]
    tokens, _ = stimulus_patch_tokens(ws, embedder, embedder_folder)
    patch = np.asarray(tokens[np.sort(pos)], np.float32)[np.argsort(np.argsort(pos))]
    low = np.stack(stimulus_images(ws, ids[tr], size=LOW_SIZE)).astype(np.float32) / 255
    return DecoderData(subject, ids[tr], ids[te], B[tr], B[te], emb, patch, low)


class Decoder:
    """A fitted decoder: ``predict(subject, betas)`` -> (embedding (n, dim) unit, low-level images uint8 (n, 32, 32, 3))."""

    def __init__(self, decoder_id: str, kind: str, subjects: list[str], regime: str, predictors: dict, run_id: str):
        self.decoder_id, self.kind, self.subjects, self.regime = decoder_id, kind, subjects, regime
        self.predictors = predictors
        self.run_id = run_id

    def predict(self, subject: str, betas: np.ndarray):
        if subject not in self.predictors:
            raise InvalidInputError(f"decoder {self.decoder_id} was not trained for {subject} "
                                    f"(it knows {', '.join(self.subjects)})")
        emb, low = self.predictors[subject](np.asarray(betas, np.float32))
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
        return emb.astype(np.float32), (np.clip(low, 0, 1) * 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------------------------- the BIT network
def _network(vec_dim: int, emb_dim: int, n_patches: int, n_voxels: dict[str, int], cfg: BITConfig):
    import torch
    from torch import nn

    n_tiles = (LOW_SIZE // TILE) ** 2

    class BIT(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.dim
            self.vox_proj = nn.Linear(vec_dim, d)
            self.residual = nn.ParameterDict({s: nn.Parameter(torch.zeros(n, d)) for s, n in n_voxels.items()})
            self.cluster_code = nn.Parameter(torch.randn(cfg.k, d) * 0.02)
            self.token_norm = nn.LayerNorm(d)
            layer = nn.TransformerEncoderLayer(d, cfg.heads, 4 * d, cfg.dropout, batch_first=True, norm_first=True)
            self.self_attn = nn.TransformerEncoder(layer, cfg.self_blocks, enable_nested_tensor=False)
            self.queries = nn.Parameter(torch.randn(1 + n_patches + n_tiles, d) * 0.02)
            dec = nn.TransformerDecoderLayer(d, cfg.heads, 4 * d, cfg.dropout, batch_first=True, norm_first=True)
            self.cross_attn = nn.TransformerDecoder(dec, cfg.cross_blocks)
            self.out_norm = nn.LayerNorm(d)
            self.head_global = nn.Linear(d, emb_dim)
            self.head_patch = nn.Linear(d, emb_dim)
            self.head_low = nn.Linear(d, TILE * TILE * 3)
            self.n_patches = n_patches
            if cfg.linear_readout:
                self.lin_global = nn.Linear(cfg.k * d, emb_dim)
                self.lin_low = nn.Linear(cfg.k * d, LOW_SIZE * LOW_SIZE * 3)
                for lin in (self.lin_global, self.lin_low):
                    nn.init.zeros_(lin.weight)
                    nn.init.zeros_(lin.bias)

        def forward(self, subject: str, betas, vectors, assign):
            """betas (B, V); vectors (V, vec_dim); assign (K, V), rows sum to 1 (mean over a cluster's voxels)."""
            E = self.vox_proj(vectors) + self.residual[subject]  # (V, d) voxel embeddings
            tok = torch.einsum("kv,bv,vd->bkd", assign, betas, E)  # mean of beta x embedding within each cluster
            h = self.self_attn(self.token_norm(tok) + self.cluster_code)
            out = self.out_norm(self.cross_attn(self.queries.expand(len(betas), -1, -1), h))
            g = self.head_global(out[:, 0])
            p = self.head_patch(out[:, 1:1 + self.n_patches])
            tiles = self.head_low(out[:, 1 + self.n_patches:])  # (B, T, 8*8*3) logits
            side = LOW_SIZE // TILE
            low = tiles.view(len(betas), side, side, TILE, TILE, 3).permute(0, 1, 3, 2, 4, 5)
            low = low.reshape(len(betas), LOW_SIZE, LOW_SIZE, 3)
            if cfg.linear_readout:
                flat = tok.flatten(1)
                g = g + self.lin_global(flat)
                low = low + self.lin_low(flat).view(len(betas), LOW_SIZE, LOW_SIZE, 3)
            return g, p, torch.sigmoid(low)

    return BIT()


def _assign_matrix(clusters: np.ndarray, k: int):
    import torch

    A = np.zeros((k, len(clusters)), np.float32)
    A[clusters, np.arange(len(clusters))] = 1
    A /= np.maximum(A.sum(1, keepdims=True), 1)
    return torch.from_numpy(A)


def fit_bit(ws: Workspace, subjects=None, cfg: BITConfig | None = None, one_hour: str | None = None,
            alone: bool = False, device: str = "cpu", progress: ProgressFn = None, executor=None) -> str:
    """Train BIT on ``subjects`` (all by default) and store it; returns its decoder id.

    ``one_hour``: that subject gets only :func:`one_hour_images` training images (its voxel vectors, hence its
    clusters, are computed from those images too); with ``alone`` it is trained on nothing else (the comparison the
    issue asks for: shared clusters and the other subjects' data vs the subject alone). ``executor`` ``ray``: the
    training (one network shared by the subjects) runs as one Ray task, on a GPU of the cluster with ``cuda``."""
    import torch

    from ..store import subjects as all_subjects

    cfg = cfg or BITConfig()
    if cfg.low_loss not in ("l1", "mse"):
        raise InvalidInputError(f"BITConfig.low_loss={cfg.low_loss!r}: expected 'l1' or 'mse'")
    subjects = [require_subject(ws, s) for s in (subjects or all_subjects(ws))]
    if one_hour is not None:
        one_hour = require_subject(ws, one_hour)
        subjects = [one_hour] if alone else sorted(set(subjects) | {one_hour})
    limit = {s: (one_hour_images(ws, s) if s == one_hour else None) for s in subjects}
    regime = regime_name(one_hour, alone)
    torch.manual_seed(cfg.seed)
    data, vecs = {}, []
    for i, s in enumerate(subjects):
        report(progress, "Decoding targets and voxel vectors", i, len(subjects))
        data[s] = decoder_data(ws, s, limit[s])
        vecs.append(voxel_vectors(ws, s, limit[s], device))
    report(progress, "Decoding targets and voxel vectors", len(subjects), len(subjects))
    _, assigned = mixture(vecs, cfg.k, cfg.seed)
    clusters = {s: a[0] for s, a in zip(subjects, assigned)}
    from ..executor import LocalExecutor, get_executor, gpus_for

    ex = get_executor(executor)
    if isinstance(ex, LocalExecutor):
        trained = train_bit(data, vecs, clusters, subjects, cfg, regime, device, progress)
    else:  # one Ray task (a GPU node of the cluster on cuda); progress only when it is done
        report(progress, f"Training BIT ({regime}) as a Ray task", 0, 1)
        trained = next(iter(ex.map(train_bit, [(data, vecs, clusters, subjects, cfg, regime, device)],
                                   num_gpus=gpus_for(device))))
        report(progress, f"Training BIT ({regime}) as a Ray task", 1, 1)
    d0 = data[subjects[0]]
    net = _network(vecs[0].shape[1], d0.emb_tr.shape[1], d0.patch_tr.shape[1],
                   {s: len(v) for s, v in zip(subjects, vecs)}, cfg)
    net.load_state_dict(trained["state"])
    extra = {"regime": regime, "subjects": subjects, "n_train": {s: int(len(data[s].stim_tr)) for s in subjects},
             **{k: trained[k] for k in ("epochs_run", "best_epoch", "val_cosine", "seconds")}}
    return _store_bit(ws, net, cfg, subjects, regime, vecs, clusters, extra)


def train_bit(data: dict, vecs: list, clusters: dict, subjects: list[str], cfg: BITConfig, regime: str,
              device: str = "cpu", progress: ProgressFn = None) -> dict:
    """Train the BIT network on the subjects' decoder data (:func:`decoder_data`), voxel vectors and clusters,
    early-stopped on a validation tenth of each subject's training images: the task an executor runs (it never
    opens the workspace). Returns the best weights (CPU tensors) and the training history."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vec_t = {s: torch.from_numpy(v).to(device) for s, v in zip(subjects, vecs)}
    asg_t = {s: _assign_matrix(clusters[s], cfg.k).to(device) for s in subjects}
    d0 = data[subjects[0]]
    net = _network(vecs[0].shape[1], d0.emb_tr.shape[1], d0.patch_tr.shape[1],
                   {s: len(v) for s, v in zip(subjects, vecs)}, cfg).to(device)
    # a validation tenth of each subject's training images picks the epoch (early stopping)
    split = {}
    for s in subjects:
        order = rng.permutation(len(data[s].stim_tr))
        n_val = max(2, len(order) // 10)
        split[s] = (np.sort(order[n_val:]), np.sort(order[:n_val]))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    chunks = {s: math.ceil(len(split[s][0]) / cfg.batch) for s in subjects}  # batches in one pass over s
    per_epoch = {s: max(chunks.values()) if cfg.balance_subjects else chunks[s] for s in subjects}
    steps_per_epoch = sum(per_epoch.values())
    epochs = max(cfg.epochs, min(math.ceil(cfg.min_steps / steps_per_epoch), 20 * cfg.epochs))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=epochs * steps_per_epoch, pct_start=0.1)

    def batch_loss(s, idx, train: bool):
        dd = data[s]
        b = torch.from_numpy(dd.B_tr[idx]).to(device)
        if train:
            b = b + 0.1 * torch.randn_like(b)
        g, p, low = net(s, b, vec_t[s], asg_t[s])
        e = torch.from_numpy(dd.emb_tr[idx]).to(device)
        gn = F.normalize(g, dim=-1)
        logits = gn @ e.T / cfg.temperature
        lab = torch.arange(len(idx), device=device)
        l_glob = (cfg.w_contrastive * (F.cross_entropy(logits, lab) + F.cross_entropy(logits.T, lab)) / 2
                  + (1 - (gn * e).sum(1)).mean())
        l_patch = F.mse_loss(p, torch.from_numpy(dd.patch_tr[idx]).to(device)) * p.shape[-1]
        low_t = torch.from_numpy(dd.low_tr[idx]).to(device)
        l_low = F.mse_loss(low, low_t) * 10 if cfg.low_loss == "mse" else F.l1_loss(low, low_t)
        l_res = sum((r ** 2).mean() for r in net.residual.values())
        return l_glob + cfg.w_patch * l_patch + cfg.w_low * l_low + cfg.residual_decay * l_res, gn, e

    best, best_state, best_epoch, bad, history = -1e9, None, 0, 0, []
    t0, total = time.time(), epochs * steps_per_epoch
    for epoch in range(epochs):
        net.train()
        order = []
        for s in subjects:
            mine = []
            while len(mine) < per_epoch[s]:
                mine += np.array_split(rng.permutation(split[s][0]), chunks[s])
            order += [(s, chunk) for chunk in mine[:per_epoch[s]]]
        rng.shuffle(order)
        for j, (s, idx) in enumerate(order):
            loss, _, _ = batch_loss(s, idx, True)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            report(progress, f"Training BIT ({regime}), epoch {epoch + 1}/{epochs}",
                   epoch * steps_per_epoch + j + 1, total)
        net.eval()
        with torch.no_grad():
            cos = [float((gn * e).sum(1).mean()) for s in subjects
                   for gn, e in [batch_loss(s, split[s][1], False)[1:]]]
        score = float(np.mean(cos))
        history.append(round(score, 4))
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    return {"state": {k: v.cpu() for k, v in best_state.items()}, "epochs_run": len(history),
            "best_epoch": best_epoch + 1, "val_cosine": history, "seconds": round(time.time() - t0, 1)}


def _store_bit(ws, net, cfg, subjects, regime, vecs, clusters, extra) -> str:
    import torch
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    for s, v in zip(subjects, vecs):
        state[f"vectors.{s}"] = torch.from_numpy(np.ascontiguousarray(v, np.float32))
        state[f"clusters.{s}"] = torch.from_numpy(np.ascontiguousarray(clusters[s], np.int64))
    model_id = current_encoder(ws, subjects[0])["model_id"]
    with ws.writer() as tx:
        run = tx.new_run("brainit-bit", {**asdict(cfg), **extra}, seed=cfg.seed, model_ids={"embedder": model_id})
        path = tx.new_file_path("bit", ".safetensors")
        tmp = path.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"config": json.dumps(asdict(cfg)), "subjects": json.dumps(subjects)})
        tmp.replace(path)
        tx.put_file(f"decoder_{run}", path, run, f"BIT decoder ({regime})")
        tx.sql("INSERT INTO decoders VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
               [run, "bit", subjects, regime, str(path.relative_to(ws.path)), run])
    return run


def fit_ridge_decoder(ws: Workspace, subjects=None, one_hour: str | None = None, device: str = "cpu",
                      progress: ProgressFn = None) -> str:
    """The baseline: per subject, ridge from betas to the embedding and to the 32 px image. Returns its decoder id."""
    from ..store import subjects as all_subjects

    subjects = [require_subject(ws, s) for s in (subjects or all_subjects(ws))]
    if one_hour is not None:
        subjects = [require_subject(ws, one_hour)]
    regime = regime_name(one_hour, alone=True)
    arrays = {}
    for i, s in enumerate(subjects):
        report(progress, "Fitting ridge decoders", i, len(subjects))
        dd = decoder_data(ws, s, one_hour_images(ws, s) if one_hour else None)
        Y = np.hstack([dd.emb_tr, dd.low_tr.reshape(len(dd.low_tr), -1)])
        fit = fit_ridge_cv(dd.B_tr, Y, device=device)
        arrays[s] = np.vstack([fit.coef, fit.intercept[None]]).astype(np.float32)
    report(progress, "Fitting ridge decoders", len(subjects), len(subjects))
    model_id = current_encoder(ws, subjects[0])["model_id"]
    with ws.writer() as tx:
        run = tx.new_run("brainit-ridge", {"subjects": subjects, "regime": regime, "cv": "gcv",
                                           "targets": "embedding | 32 px image"}, seed=0,
                         model_ids={"embedder": model_id})
        for s, a in arrays.items():
            tx.put_array(f"decoder_{run}_{s}", a, run, "(n_voxels + 1, dim + 32*32*3) ridge weights, last row = "
                                                       "intercept")
        tx.sql("INSERT INTO decoders VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
               [run, "ridge", subjects, regime, "", run])
    return run


def decoders(ws: Workspace):
    """The stored decoders, newest first: decoder_id, kind, subjects, regime, created_at."""
    if not ws.has_table("decoders"):
        import pandas as pd

        return pd.DataFrame(columns=["decoder_id", "kind", "subjects", "regime", "created_at"])
    return ws.query("SELECT decoder_id, kind, subjects, regime, created_at FROM decoders ORDER BY created_at DESC")


def ensure_decoder(ws: Workspace, name: str, one_hour: str | None = None, alone: bool = False, device: str = "cpu",
                   progress: ProgressFn = None, executor=None) -> str:
    """A decoder id: ``name`` itself when it is one, else the newest stored decoder of kind ``name`` ("bit" or
    "ridge") in the regime the other arguments describe, fitted first when there is none."""
    if name not in ("bit", "ridge"):
        load_decoder_row(ws, name)
        return name
    if one_hour is not None:
        one_hour = require_subject(ws, one_hour)
    regime = regime_name(one_hour, alone or name == "ridge")  # (a ridge decoder is one subject's own)
    d = decoders(ws)
    d = d[(d.kind == name) & (d.regime == regime)]
    if not d.empty:
        return d.decoder_id.iloc[0]
    if name == "ridge":
        return fit_ridge_decoder(ws, one_hour=one_hour, device=device, progress=progress)
    return fit_bit(ws, one_hour=one_hour, alone=alone, device=device, progress=progress, executor=executor)


def load_decoder_row(ws: Workspace, decoder_id: str):
    row = ws.query("SELECT * FROM decoders WHERE decoder_id = ?", [decoder_id]) if ws.has_table("decoders") else None
    if row is None or row.empty:
        raise NotFoundError(f"no decoder {decoder_id!r} in workspace {ws.path} "
                            "(fit one with `python -m backend reconstruction fit`)")
    return row.iloc[0]


def load_decoder(ws: Workspace, decoder_id: str, device: str = "cpu") -> Decoder:
    import torch

    row = load_decoder_row(ws, decoder_id)
    subjects = list(row.subjects)
    if row.kind == "ridge":
        preds = {}
        for s in subjects:
            W = np.asarray(ws.array(f"decoder_{decoder_id}_{s}"))
            dim = W.shape[1] - LOW_SIZE * LOW_SIZE * 3

            def predict(B, W=W, dim=dim):
                out = B @ W[:-1] + W[-1]
                return out[:, :dim], out[:, dim:].reshape(len(B), LOW_SIZE, LOW_SIZE, 3)
            preds[s] = predict
        return Decoder(decoder_id, "ridge", subjects, row.regime, preds, row.run_id)
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = ws.path / row.path
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    known = {f.name for f in fields(BITConfig)}
    # decoders stored before an option existed were trained without it (the readout changes the weights' layout)
    stored = {"linear_readout": False, "w_contrastive": 1.0, "low_loss": "l1", "balance_subjects": False,
              **json.loads(meta["config"])}
    cfg = BITConfig(**{k: v for k, v in stored.items() if k in known})
    state = load_file(str(path))
    vecs = {s: state.pop(f"vectors.{s}") for s in subjects}
    clusters = {s: state.pop(f"clusters.{s}").numpy() for s in subjects}
    emb_dim = state["head_global.weight"].shape[0]
    n_patches = state["queries"].shape[0] - 1 - (LOW_SIZE // TILE) ** 2
    net = _network(next(iter(vecs.values())).shape[1], emb_dim, n_patches, {s: len(v) for s, v in vecs.items()}, cfg)
    net.load_state_dict(state)
    net = net.to(device).eval()

    def make(s):
        A, V = _assign_matrix(clusters[s], cfg.k).to(device), vecs[s].to(device)

        def predict(B):
            out_e, out_l = [], []
            with torch.no_grad():
                for a in range(0, len(B), 256):
                    g, _, low = net(s, torch.from_numpy(B[a:a + 256]).to(device), V, A)
                    out_e.append(g.cpu().numpy())
                    out_l.append(low.cpu().numpy())
            return np.concatenate(out_e), np.concatenate(out_l)
        return predict

    return Decoder(decoder_id, "bit", subjects, row.regime, {s: make(s) for s in subjects}, row.run_id)


