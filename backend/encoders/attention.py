"""Transformer brain encoder with attention routing (Adeli et al., 2023/2025).

Frozen patch tokens of the embedder (``Embedder.patch_tokens``) are the keys and values of a DETR-style decoder:
one learned query per ROI and hemisphere (plus one per hemisphere for the voxels outside every ROI) attends over
the patch grid (2-D sine positional encoding added to the keys only, so where a query looks is learned and the
values carry what is there); a feed-forward block follows each cross-attention layer. Each voxel reads its own
query's output token with its own linear weights, so a voxel depends only on its ROI's token and the ROI's
attention map over the image says where its voxels' drive comes from.

Query modes: ``"rois"`` (the published default: one query per ROI x hemisphere), ``"streams"`` (one per visual
stream x hemisphere: early, ventral, lateral, dorsal), ``"voxels"`` (one query per voxel for ROIs of at most
``voxel_query_max`` voxels, the rest by ROI).

Training: MSE on the subject's training images (repeats averaged, as for ridge), AdamW (lr 5e-4, weight decay
1e-4), batch 16, early stopping on a validation split of the training images; the test split is the shared
images, as for ridge. Weights are stored as a safetensors file in the workspace, per-voxel test accuracy in
``voxel_encoding`` (feature key ``attention:<patch feature key>``), and a run with every parameter.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidInputError, NotFoundError
from ..store import ProgressFn, Workspace, report, require_subject
from ..surface.rois import EARLY_ROIS
from .ridge import pearson_columns, r2_columns
from .voxelwise import design_matrices

__all__ = ["attention_encoders", "AttentionConfig", "QUERY_MODES", "STREAMS", "voxel_queries", "fit_attention_encoder",
           "fit_attention_encoders", "load_attention_encoder", "AttentionEncoder", "attention_key"]

QUERY_MODES = ("rois", "streams", "voxels")
# the ROIs of each stream (NSD's streams atlas groups them the same way)
STREAMS = {"early": list(EARLY_ROIS),
           "ventral": ["FFA-1", "FFA-2", "aTL-faces", "PPA", "OWFA", "VWFA-1", "VWFA-2", "ventral-food", "FBA-2"],
           "lateral": ["OFA", "EBA", "FBA-1"],
           "dorsal": ["OPA", "RSC"]}
OUTSIDE = "outside ROIs"


def attention_key(patch_key: str) -> str:
    """The ``voxel_encoding`` feature key of attention encoders fitted on patch feature set ``patch_key``."""
    return f"attention:{patch_key}"


@dataclass
class AttentionConfig:
    """Architecture and training parameters (every one is stored with the run)."""
    d_model: int = 128
    heads: int = 4
    layers: int = 1
    ffn: int = 256
    dropout: float = 0.1
    query_mode: str = "rois"
    voxel_query_max: int = 40
    lr: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 16
    max_epochs: int = 30
    patience: int = 4
    val_fraction: float = 0.1
    seed: int = 0

    def check(self) -> "AttentionConfig":
        if self.query_mode not in QUERY_MODES:
            raise InvalidInputError(f"query_mode must be one of {', '.join(QUERY_MODES)}, got {self.query_mode!r}")
        if self.d_model % self.heads:
            raise InvalidInputError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        if not 0 < self.val_fraction < 0.5:
            raise InvalidInputError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        for name in ("layers", "batch_size", "max_epochs", "d_model", "heads"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        return self


def voxel_queries(voxels: pd.DataFrame, mode: str = "rois", voxel_query_max: int = 40) -> tuple[list[str], np.ndarray]:
    """The decoder's queries and each voxel's query.

    Parameters
    ----------
    voxels : DataFrame
        ``hemi`` and ``roi`` (primary ROI, None outside every ROI) per voxel, in voxel order.

    Returns
    -------
    names : list of str
        One per query, e.g. ``"FFA-1 lh"``, ``"early rh"``, ``"outside ROIs lh"``, ``"VWFA-2 lh #3"``.
    index : ndarray (n_voxels,) int64
        Each voxel's query.
    """
    if mode not in QUERY_MODES:
        raise InvalidInputError(f"query mode must be one of {', '.join(QUERY_MODES)}, got {mode!r}")
    stream_of = {r: s for s, rois in STREAMS.items() for r in rois}
    roi = voxels["roi"].astype(object).where(voxels["roi"].notna(), None).to_numpy()
    hemi = voxels["hemi"].astype(str).to_numpy()
    counts = pd.Series([f"{r} {h}" for r, h in zip(roi, hemi) if r]).value_counts()
    labels = []
    for k, (r, h) in enumerate(zip(roi, hemi)):
        if not r:
            labels.append(f"{OUTSIDE} {h}")
        elif mode == "streams":
            labels.append(f"{stream_of.get(r, OUTSIDE)} {h}")
        elif mode == "voxels" and counts[f"{r} {h}"] <= voxel_query_max:
            labels.append(f"{r} {h} #{k}")
        else:
            labels.append(f"{r} {h}")
    names = sorted(set(labels), key=lambda s: (s.startswith(OUTSIDE), s))
    pos = {n: i for i, n in enumerate(names)}
    return names, np.array([pos[lab] for lab in labels], np.int64)


def _sine_positions(rows: int, cols: int, dim: int):
    """DETR's 2-D sine positional encoding: (rows * cols, dim), half for y, half for x."""
    import torch

    half = dim // 2
    t = torch.arange(half // 2, dtype=torch.float32)
    freq = 1.0 / (10000 ** (2 * t / half))
    y = (torch.arange(rows, dtype=torch.float32) + 0.5) / rows * 2 * math.pi
    x = (torch.arange(cols, dtype=torch.float32) + 0.5) / cols * 2 * math.pi
    py = torch.cat([torch.sin(y[:, None] * freq), torch.cos(y[:, None] * freq)], 1)  # (rows, half)
    px = torch.cat([torch.sin(x[:, None] * freq), torch.cos(x[:, None] * freq)], 1)  # (cols, half)
    pos = torch.cat([py[:, None, :].expand(rows, cols, half), px[None, :, :].expand(rows, cols, half)], -1)
    out = torch.zeros(rows * cols, dim)
    out[:, : 2 * half] = pos.reshape(rows * cols, 2 * half)
    return out


def _build(d_in: int, n_queries: int, query_index: np.ndarray, grid: tuple[int, int], cfg: AttentionConfig):
    import torch
    from torch import nn

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.cross = nn.MultiheadAttention(cfg.d_model, cfg.heads, dropout=cfg.dropout, batch_first=True)
            self.norm1 = nn.LayerNorm(cfg.d_model)
            self.ffn = nn.Sequential(nn.Linear(cfg.d_model, cfg.ffn), nn.GELU(), nn.Dropout(cfg.dropout),
                                     nn.Linear(cfg.ffn, cfg.d_model))
            self.norm2 = nn.LayerNorm(cfg.d_model)
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, tgt, query_pos, key, value):
            out, attn = self.cross(tgt + query_pos, key, value, need_weights=True, average_attn_weights=False)
            tgt = self.norm1(tgt + self.drop(out))
            return self.norm2(tgt + self.drop(self.ffn(tgt))), attn  # attn: (B, heads, Q, P)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, cfg.d_model))
            self.register_buffer("pos", _sine_positions(grid[0], grid[1], cfg.d_model))
            self.register_buffer("qidx", torch.as_tensor(query_index, dtype=torch.long))
            # the readout weights are kept grouped by query (voxels sorted by query): each query's voxels are one
            # small matmul, and torch.split's backward is one concatenation (gathering every voxel's token, or
            # indexing the weights per query, ran 5-10x slower on CPU)
            order = np.argsort(query_index, kind="stable")
            bounds = np.searchsorted(query_index[order], np.arange(n_queries + 1))
            self._groups = [q for q in range(n_queries) if bounds[q + 1] > bounds[q]]
            self._sizes = [int(bounds[q + 1] - bounds[q]) for q in self._groups]
            self.register_buffer("_unsort", torch.as_tensor(np.argsort(order), dtype=torch.long), persistent=False)
            self.query = nn.Parameter(torch.randn(n_queries, cfg.d_model) * 0.1)
            self.layers = nn.ModuleList([DecoderLayer() for _ in range(cfg.layers)])
            n_vox = len(query_index)
            # rows in query-sorted voxel order (see above)
            self.w = nn.Parameter(torch.randn(n_vox, cfg.d_model) * (0.1 / math.sqrt(cfg.d_model)))
            self.b = nn.Parameter(torch.zeros(n_vox))

        def forward(self, tokens, voxels=None):
            """tokens (B, P, d_in) -> predicted responses (B, n_voxels or len(voxels)), [attention per layer]."""
            mem = self.inp(tokens)
            key = mem + self.pos
            q = self.query.unsqueeze(0).expand(tokens.shape[0], -1, -1)
            tgt = torch.zeros_like(q)
            attns = []
            for layer in self.layers:
                tgt, a = layer(tgt, q, key, mem)
                attns.append(a)
            if voxels is not None:  # a few voxels: gather their tokens
                rows = self._unsort[voxels]
                pred = torch.einsum("bvd,vd->bv", tgt[:, self.qidx[voxels], :], self.w[rows]) + self.b[rows]
                return pred, attns
            tokens_q = tgt.unbind(1)
            parts = [tokens_q[q] @ w.T + b for q, w, b in zip(self._groups, torch.split(self.w, self._sizes),
                                                              torch.split(self.b, self._sizes))]
            return torch.cat(parts, 1)[:, self._unsort], attns

    return Model()


class AttentionEncoder:
    """A fitted attention encoder: predicted responses and per-query attention maps for any patch tokens."""

    def __init__(self, model, names: list[str], query_index: np.ndarray, grid: tuple[int, int], cfg: AttentionConfig,
                 info: dict, y_mean: np.ndarray, y_std: np.ndarray, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.y_mean, self.y_std = np.asarray(y_mean, np.float32), np.asarray(y_std, np.float32)
        self.names = names
        self.query_index = query_index
        self.grid = tuple(grid)
        self.cfg = cfg
        self.info = info
        self.device = device

    def predict(self, tokens: np.ndarray, batch_size: int = 64, with_attention: bool = False):
        """Responses (n, n_voxels) to patch tokens (n, P, d); with ``with_attention`` also the last layer's
        attention (n, heads, n_queries, P), each row summing to 1 over the patches."""
        import torch

        preds, attns = [], []
        with torch.no_grad():
            for a in range(0, len(tokens), batch_size):
                x = torch.as_tensor(np.asarray(tokens[a:a + batch_size], np.float32), device=self.device)
                p, at = self.model(x)
                preds.append(p.cpu().numpy() * self.y_std + self.y_mean)
                if with_attention:
                    attns.append(at[-1].cpu().numpy())
        pred = np.concatenate(preds) if preds else np.zeros((0, len(self.query_index)), np.float32)
        return (pred, np.concatenate(attns)) if with_attention else pred

    def query_of(self, roi: str, hemi: str) -> int:
        """The index of the query named ``"<roi> <hemi>"`` (an ROI, or a stream in stream mode)."""
        name = f"{roi} {hemi}"
        if name not in self.names:
            raise NotFoundError(f"no query {name!r} in this encoder (queries: {', '.join(self.names[:8])}, ...)")
        return self.names.index(name)


def fit_attention_encoder(ws: Workspace, subject: str, tokens: np.ndarray, patch_key: str, model_id: str,
                          grid: tuple[int, int], cfg: AttentionConfig | None = None, device: str = "cpu",
                          progress: ProgressFn = None) -> dict:
    """Train, evaluate and store the attention encoder of ``subject`` on stored patch tokens (n_stimuli, P, d).

    Returns a summary: run id, epochs trained, best validation loss, per-ROI median R^2/NC on the test images.
    After every epoch the training state is saved in the workspace's ``staging/`` folder; a fit that was killed or
    cancelled continues from its last finished epoch when run again with the same data and configuration.
    """
    data = _subject_data(ws, subject, tokens, cfg)
    ckpt = ws.staging_dir / f"attention_{data['subject']}.ckpt"
    trained = train_attention(data["Xtr"], data["Ytr"], data["names"], data["qidx"], grid, data["cfg"], device,
                              ckpt=ckpt, features=patch_key, progress=progress, stage=f"{data['subject']}: attention encoder")
    out = _finish(ws, data, trained, grid, patch_key, model_id, device, progress)
    ckpt.unlink(missing_ok=True)
    return out


def _subject_data(ws: Workspace, subject: str, tokens: np.ndarray, cfg: AttentionConfig | None) -> dict:
    """What one subject's fit needs from the workspace: train/test tokens and betas, voxels, queries."""
    cfg = (cfg or AttentionConfig()).check()
    subject = require_subject(ws, subject)
    Xtr, Ytr, Xte, Yte, _ = design_matrices(ws, subject, tokens)
    if len(Xte) == 0:
        raise InvalidInputError(f"{subject} has no test images (split = 'test' in subject_stimuli)")
    if not (np.isfinite(Ytr).all() and np.isfinite(Yte).all()):
        raise InvalidInputError(f"{subject}'s betas contain NaN or inf; the attention encoder needs finite responses")
    vox = ws.query("SELECT voxel, hemi, roi, noise_ceiling_test FROM voxels WHERE subject = ? ORDER BY voxel",
                   [subject])
    names, qidx = voxel_queries(vox, cfg.query_mode, cfg.voxel_query_max)
    return dict(subject=subject, cfg=cfg, Xtr=Xtr, Ytr=Ytr, Xte=Xte, Yte=Yte, vox=vox, names=names, qidx=qidx)


def train_attention(Xtr: np.ndarray, Ytr: np.ndarray, names: list[str], qidx: np.ndarray, grid: tuple[int, int],
                    cfg: AttentionConfig, device: str = "cpu", ckpt: Path | None = None, features: str = "",
                    progress: ProgressFn = None, stage: str = "attention encoder") -> dict:
    """Train one subject's attention encoder on its training tokens ``Xtr`` (n, P, d) and betas ``Ytr`` (n, voxels),
    early-stopped on a held-out tenth: the task an executor runs per subject (it never opens the workspace).

    ``ckpt``: a file for the training state after every epoch (a killed fit resumes from it); None under Ray, where a
    subject that was not stored is trained again. Returns the best weights (CPU tensors), the target standardisation
    and the history."""
    import torch

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(Xtr))
    n_val = max(1, int(round(cfg.val_fraction * len(Xtr))))
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    y_mean, y_std = Ytr[train].mean(0), Ytr[train].std(0) + 1e-6  # standardised targets; undone for predictions
    Yn = ((Ytr - y_mean) / y_std).astype(np.float32)
    model = _build(Xtr.shape[2], len(names), qidx, grid, cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def batches(idx, shuffle):
        order = rng.permutation(idx) if shuffle else idx
        for a in range(0, len(order), cfg.batch_size):
            b = np.sort(order[a:a + cfg.batch_size])
            yield (torch.as_tensor(np.asarray(Xtr[b], np.float32), device=device),
                   torch.as_tensor(Yn[b], device=device))

    def val_loss():
        model.eval()
        tot = 0.0
        with torch.no_grad():
            for x, y in batches(val, False):
                tot += float(((model(x)[0] - y) ** 2).mean()) * len(x)
        model.train()
        return tot / len(val)

    best, best_state, best_epoch, bad = math.inf, None, 0, 0
    steps = math.ceil(len(train) / cfg.batch_size)
    history = []
    ident = {"config": asdict(cfg), "features": features, "n_train": int(len(Xtr)), "grid": list(grid)}
    start = 1
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state.get("ident") == ident:  # the same fit: continue after its last finished epoch
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            best, best_state, best_epoch, bad = state["best"], state["best_state"], state["best_epoch"], state["bad"]
            history, start = state["history"], state["epoch"] + 1
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
    model.train()
    for epoch in range(start, cfg.max_epochs + 1):
        if bad >= cfg.patience:
            break
        for k, (x, y) in enumerate(batches(train, True)):
            loss = ((model(x)[0] - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            report(progress, stage, (epoch - 1) * steps + k + 1, cfg.max_epochs * steps)
        v = val_loss()
        history.append(round(v, 5))
        if v < best - 1e-4:
            best, best_epoch, bad = v, epoch, 0
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else:
            bad += 1
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"ident": ident, "model": model.state_dict(), "opt": opt.state_dict(), "best": best,
                        "best_state": best_state, "best_epoch": best_epoch, "bad": bad, "history": history,
                        "epoch": epoch, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, tmp)
            tmp.replace(ckpt)
        if bad >= cfg.patience:
            break
    return {"state": {k: t.detach().cpu() for k, t in best_state.items()}, "y_mean": y_mean, "y_std": y_std,
            "history": history, "best_epoch": best_epoch, "best": best, "n_train": int(len(train)),
            "n_val": int(len(val))}


def _finish(ws: Workspace, data: dict, trained: dict, grid, patch_key: str, model_id: str, device: str,
            progress: ProgressFn) -> dict:
    """Evaluate a trained encoder on the subject's test images and store it (the writer's part)."""
    cfg, names, qidx, vox = data["cfg"], data["names"], data["qidx"], data["vox"]
    model = _build(data["Xtr"].shape[2], len(names), qidx, grid, cfg)
    model.load_state_dict(trained["state"])
    model = model.to(device)
    enc = AttentionEncoder(model, names, qidx, grid, cfg, {}, trained["y_mean"], trained["y_std"], device)
    pred = enc.predict(data["Xte"])
    r, r2 = pearson_columns(data["Yte"], pred), r2_columns(data["Yte"], pred)
    nc = vox.noise_ceiling_test.to_numpy(np.float32) / 100
    with np.errstate(invalid="ignore", divide="ignore"):
        r2_nc = np.where(nc > 0, r2 / nc, np.nan).astype(np.float32)
    history = trained["history"]
    run = _store(ws, data["subject"], model, names, qidx, grid, cfg, patch_key, model_id, trained["y_mean"],
                 trained["y_std"], r, r2, r2_nc, vox,
                 dict(n_train=trained["n_train"], n_val=trained["n_val"], n_test=int(len(data["Xte"])),
                      epochs=len(history), best_epoch=trained["best_epoch"], val_history=history), progress)
    df = pd.DataFrame({"roi": vox.roi.fillna(""), "r2_nc": r2_nc})
    return {"subject": data["subject"], "run": run, "epochs": len(history), "best_epoch": trained["best_epoch"],
            "best_val_loss": trained["best"], "n_queries": len(names),
            "median_r2_nc_by_roi": df.groupby("roi").r2_nc.median().to_dict()}


def _store(ws, subject, model, names, qidx, grid, cfg, patch_key, model_id, y_mean, y_std, r, r2, r2_nc, vox, extra,
           progress):
    import torch
    from safetensors.torch import save_file

    report(progress, "Storing attention encoder", 0, 1)
    key = attention_key(patch_key)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state["y_mean"] = torch.as_tensor(y_mean, dtype=torch.float32)
    state["y_std"] = torch.as_tensor(y_std, dtype=torch.float32)
    with ws.writer() as tx:
        run = tx.new_run("encoder-attention", {"subject": subject, "features": patch_key, "grid": list(grid),
                                               "queries": names, **asdict(cfg), **extra,
                                               "targets": "betas z-scored per session, repeats averaged"},
                         seed=cfg.seed, model_ids={"embedder": model_id})
        path = tx.new_file_path(f"attention_{subject}", ".safetensors")
        tmp = path.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"config": json.dumps(asdict(cfg)), "queries": json.dumps(names),
                                             "grid": json.dumps(list(grid)), "run": run})
        tmp.replace(path)
        tx.put_file(f"attention_{subject}_{patch_key}", path, run, f"attention encoder of {subject} (safetensors)")
        tx.sql("DELETE FROM attention_encoders WHERE subject = ? AND feature_key = ?", [subject, patch_key])
        tx.sql("INSERT INTO attention_encoders VALUES (?, ?, ?, ?, ?, ?, ?)",
               [subject, patch_key, model_id, run, str(path.relative_to(ws.path)), extra["n_train"], extra["n_test"]])
        tx.sql("DELETE FROM voxel_encoding WHERE subject = ? AND feature_key = ?", [subject, key])
        tx.insert_df("voxel_encoding", pd.DataFrame({"subject": subject, "feature_key": key, "voxel": vox.voxel,
                                                     "alpha": np.nan, "r_test": r, "r2_test": r2, "r2_nc": r2_nc}))
    report(progress, "Storing attention encoder", 1, 1)
    return run


def attention_encoders(ws: Workspace) -> pd.DataFrame:
    """The stored attention encoders: subject, feature_key, model_id, run_id, n_train, n_test (newest first)."""
    return ws.query("SELECT subject, feature_key, model_id, run_id, n_train, n_test FROM attention_encoders "
                    "ORDER BY run_id DESC")


def load_attention_encoder(ws: Workspace, subject: str, patch_key: str | None = None,
                           device: str = "cpu") -> AttentionEncoder:
    """The stored attention encoder of ``subject`` (the newest when ``patch_key`` is None)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    subject = require_subject(ws, subject)
    sql = "SELECT * FROM attention_encoders WHERE subject = ?" + (" AND feature_key = ?" if patch_key else "")
    row = ws.query(sql + " ORDER BY run_id DESC LIMIT 1", [subject] + ([patch_key] if patch_key else []))
    if row.empty:
        raise NotFoundError(f"no attention encoder for {subject} in workspace {ws.path} "
                            "(run `python -m backend attention fit`)")
    row = row.iloc[0]
    path = ws.path / row.path
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    known = {f.name for f in dataclasses.fields(AttentionConfig)}  # files from older versions may carry more
    cfg = AttentionConfig(**{k: v for k, v in json.loads(meta["config"]).items() if k in known})
    names, grid = json.loads(meta["queries"]), tuple(json.loads(meta["grid"]))
    state = load_file(str(path))
    y_mean, y_std = state.pop("y_mean").numpy(), state.pop("y_std").numpy()
    qidx = state["qidx"].numpy()
    d_in = state["inp.0.weight"].shape[0]
    model = _build(d_in, len(names), qidx, grid, cfg)
    model.load_state_dict(state)
    return AttentionEncoder(model, names, qidx, grid, cfg, {"run": row.run_id, "feature_key": row.feature_key,
                                                             "model_id": row.model_id}, y_mean, y_std, device)


def fit_attention_encoders(ws: Workspace, subjects=None, cfg: AttentionConfig | None = None, device: str = "cpu",
                           only_missing: bool = False, progress: ProgressFn = None, executor=None) -> list[dict]:
    """Patch tokens of every stimulus with the configured embedder (stored once), then an attention encoder per
    subject (``only_missing``: skip subjects that have one on these tokens).

    ``executor`` ``ray`` trains the subjects at once, one Ray task each (a GPU each on ``cuda``); each is stored here
    as it finishes. Under Ray progress is per subject and a killed run trains the subjects it had not stored again
    (the local executor resumes a subject from its last epoch)."""
    from ..models import load_role, model_config
    from ..store import subjects as all_subjects
    from .features import stimulus_patch_tokens

    names = [require_subject(ws, s) for s in subjects] if subjects else all_subjects(ws)
    mc = model_config()
    emb = load_role("embedder", device, mc)
    tokens, key = stimulus_patch_tokens(ws, emb, mc["embedder"]["path"], device=device, progress=progress)
    have = set(ws.query("SELECT subject FROM attention_encoders WHERE feature_key = ?", [key]).subject)
    todo = [s for s in names if not (only_missing and s in have)]
    from ..executor import LocalExecutor, get_executor, gpus_for

    ex = get_executor(executor)
    if isinstance(ex, LocalExecutor):
        return [fit_attention_encoder(ws, s, tokens, key, emb.model_id, emb.patch_grid, cfg, device, progress)
                for s in todo]
    data = [_subject_data(ws, s, tokens, cfg) for s in todo]
    tasks = ((d["Xtr"], d["Ytr"], d["names"], d["qidx"], emb.patch_grid, d["cfg"], device) for d in data)
    out = []
    report(progress, "Attention encoders (Ray, a task per subject)", 0, len(data))
    for d, trained in zip(data, ex.map(train_attention, tasks, num_gpus=gpus_for(device))):
        out.append(_finish(ws, d, trained, emb.patch_grid, key, emb.model_id, device, progress))
        report(progress, "Attention encoders (Ray, a task per subject)", len(out), len(data))
    return out
