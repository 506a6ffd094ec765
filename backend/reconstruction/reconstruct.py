"""Reconstruct seen images: decoder -> low-level image -> the generator started from it (img2img) under the
predicted image embedding; N samples per image ranked by agreement of their embedding with the predicted one.

Runs are stored (``reconstruction_runs``, ``reconstructions``; images as arrays) with provenance, resumed image by
image after a kill, and re-opened instantly when asked again with the same parameters. Every run is scored with
the field's metrics (:mod:`.metrics`) against the seen images; on the demo world also against the simulated
subject (its true response to the reconstruction vs to the seen image, per ROI).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..datasets.reading import stimulus_images, subject_betas
from ..errors import InvalidInputError, NotFoundError
from ..store import ProgressFn, Workspace, report, require_subject
from .brainit import load_decoder
from .metrics import evaluate_pairs, metric_feature_nets

__all__ = ["ReconConfig", "reconstruct", "reconstruction_runs", "run_reconstructions", "test_images",
           "brain_equivalence", "run_metrics", "per_image_metrics", "reconstruction_steps", "metrics_table"]


@dataclass
class ReconConfig:
    n_images: int = 100  # the first n test images of the subject (all: 0)
    samples: int = 3
    strength: float = 0.7  # img2img: 0 keeps the low-level image, 1 ignores it
    steps: int = 30
    guidance: float = 3.0
    seed: int = 0
    batch: int = 32


def test_images(ws: Workspace, subject: str, n: int = 0):
    """(stim_ids, betas) of the subject's first ``n`` test images (all when 0)."""
    betas, rows = subject_betas(ws, subject)
    te = np.flatnonzero((rows.split == "test").to_numpy())
    if n:
        te = te[:n]
    if len(te) < 2:
        raise InvalidInputError(f"{subject} has {len(te)} test images; reconstruction metrics need at least 2")
    return rows.stim_id.to_numpy()[te], np.asarray(betas, np.float32)[te]


def sample_seed(cfg: ReconConfig, stim_id: int, k: int) -> int:
    """The noise seed of sample ``k`` of one test image (the same whatever batch the image is in)."""
    return (cfg.seed * 1_000_003 + int(stim_id) * 64 + k) % 2**31


def _key(decoder_id: str, subject: str, cfg: ReconConfig, generator_id: str) -> str:
    blob = json.dumps({"decoder": decoder_id, "subject": subject, **asdict(cfg), "generator": generator_id},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def reconstruct(ws: Workspace, decoder_id: str, subject: str, cfg: ReconConfig | None = None, generator=None,
                embedder=None, judge=None, device: str = "cpu", progress: ProgressFn = None) -> dict:
    """Reconstruct ``subject``'s test images with a stored decoder; returns {run_id, reopened, metrics}."""
    from ..models import load_judge, load_role

    cfg = cfg or ReconConfig()
    if cfg.samples < 1 or not 0 <= cfg.strength <= 1 or cfg.steps < 1:
        raise InvalidInputError(f"samples >= 1, strength in [0, 1] and steps >= 1 are needed, got {asdict(cfg)}")
    subject = require_subject(ws, subject)
    decoder = load_decoder(ws, decoder_id, device)
    generator = generator or load_role("generator", device, purpose="reconstruction")
    if not hasattr(generator, "condition_images"):
        raise InvalidInputError(f"the generator {generator.model_id} cannot be conditioned on image embeddings "
                                "(reconstruction needs an unCLIP-style generator)")
    embedder = embedder or getattr(generator, "embedder", None) or load_role("embedder", device)
    key = _key(decoder_id, subject, cfg, generator.model_id)
    done = ws.query("SELECT run_id, state FROM reconstruction_runs WHERE key = ?", [key]) \
        if ws.has_table("reconstruction_runs") else pd.DataFrame()
    if not done.empty and done.state.iloc[0] == "done":
        return {"run_id": done.run_id.iloc[0], "reopened": True, "metrics": run_metrics(ws, done.run_id.iloc[0])}
    stim, B = test_images(ws, subject, cfg.n_images)
    emb, low = decoder.predict(subject, B)
    if done.empty:
        with ws.writer() as tx:
            run = tx.new_run("brainit-reconstruction", {"decoder": decoder_id, "decoder_kind": decoder.kind,
                                                        "regime": decoder.regime, "subject": subject, **asdict(cfg)},
                             seed=cfg.seed, model_ids={"generator": generator.model_id, "embedder": embedder.model_id,
                                                       "decoder": decoder_id})
            tx.sql("INSERT INTO reconstruction_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                   [run, key, decoder_id, subject, len(stim), cfg.samples, cfg.strength, cfg.steps, "running", None])
            tx.put_array(f"recon_{run}_low", low, run, "(n, 32, 32, 3) uint8: the decoder's low-level images")
    else:
        run = done.run_id.iloc[0]
    have = set(ws.query("SELECT DISTINCT stim_id FROM reconstructions WHERE run_id = ?", [run]).stim_id)
    cond_all = generator.condition_images(emb)
    todo = [i for i, s in enumerate(stim) if int(s) not in have]
    stage = f"Reconstructing {subject}'s test images ({decoder.kind}, {cfg.samples} samples)"
    report(progress, stage, len(stim) - len(todo), len(stim))
    for a in range(0, len(todo), cfg.batch):
        idx = todo[a:a + cfg.batch]
        samples = [generator.img2img(list(low[idx]), cond_all[idx], strength=cfg.strength, steps=cfg.steps,
                                     guidance=cfg.guidance, seed=[sample_seed(cfg, stim[i], k) for i in idx])
                   for k in range(cfg.samples)]
        S = np.stack(samples, 1)  # (b, samples, H, W, 3)
        se = embedder.image_features(list(S.reshape(-1, *S.shape[2:]))).reshape(len(idx), cfg.samples, -1)
        score = np.einsum("bsd,bd->bs", se, emb[idx])
        rank = np.argsort(np.argsort(-score, 1), 1)
        rows = pd.DataFrame([{"run_id": run, "decoder_id": decoder_id, "subject": subject, "stim_id": int(stim[i]),
                              "sample": k, "rank": int(rank[j, k]), "score": float(score[j, k]), "images_array": "",
                              "idx": j * cfg.samples + k} for j, i in enumerate(idx) for k in range(cfg.samples)])
        with ws.writer() as tx:
            name = f"recon_{run}_{a // cfg.batch:04d}_{idx[0]}"
            tx.put_array(name, S.reshape(-1, *S.shape[2:]), run, "uint8 reconstructions, (image, sample) rows")
            rows["images_array"] = name
            tx.insert_df("reconstructions", rows)
        report(progress, stage, len(stim) - len(todo) + a + len(idx), len(stim))
    metrics = _score(ws, run, subject, stim, low, embedder, judge or load_judge(), progress)
    with ws.writer() as tx:
        tx.sql("UPDATE reconstruction_runs SET state = 'done', metrics = ? WHERE run_id = ?", [json.dumps(metrics), run])
    return {"run_id": run, "reopened": False, "metrics": metrics}


def run_reconstructions(ws: Workspace, run_id: str):
    """(rows, best images (n, H, W, 3), low-level images (n, 32, 32, 3), seen stim ids): the best-ranked sample of
    each test image of a run, in test-image order. rows: stim_id, sample, rank, score, ..."""
    best = ws.query("SELECT c.* FROM reconstructions c JOIN subject_stimuli s ON s.subject = c.subject AND "
                    "s.stim_id = c.stim_id WHERE c.run_id = ? AND c.rank = 0 ORDER BY s.row", [run_id])
    if best.empty:
        raise NotFoundError(f"no reconstructions for run {run_id!r}")
    arrays = {n: np.asarray(ws.array(n)) for n in best.images_array.unique()}
    images = np.stack([arrays[r.images_array][r.idx] for r in best.itertuples()])
    low = np.asarray(ws.array(f"recon_{run_id}_low"))
    return best, images, low, best.stim_id.to_numpy()


def _score(ws, run, subject, stim, low, embedder, judge, progress) -> dict:
    _, images, _, _ = run_reconstructions(ws, run)
    seen = stimulus_images(ws, stim)
    report(progress, "Scoring the reconstructions", 0, 1)
    nets = metric_feature_nets(judge, embedder)
    final = evaluate_pairs(seen, images, nets)
    low_only = evaluate_pairs(seen, list(low), nets)
    out = {"final": final, "low-level": low_only, "n": len(stim)}
    if ws.has_table("voxel_truth") and not ws.query("SELECT 1 FROM voxel_truth WHERE subject = ? LIMIT 1",
                                                    [subject]).empty:
        out["truth"] = brain_equivalence(ws, subject, seen, list(images), judge)
    report(progress, "Scoring the reconstructions", 1, 1)
    return out


def brain_equivalence(ws: Workspace, subject: str, seen, recon, judge=None) -> dict:
    """The demo world's simulated subject shown the seen images and their reconstructions: per ROI, the mean over
    images of the correlation between the two response patterns over the ROI's voxels, and (chance level) the same
    with the reconstructions shuffled."""
    from ..simulate import simulate_response

    a = simulate_response(ws, subject, list(seen), judge)
    b = simulate_response(ws, subject, list(recon), judge)
    vox = ws.query("SELECT voxel, roi FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
    perm = np.random.default_rng(0).permutation(len(b))
    out = {}
    for roi, g in vox.dropna(subset=["roi"]).groupby("roi"):
        v = g.voxel.to_numpy()
        if len(v) < 5:
            continue
        out[roi] = {"r": _mean_r(a[:, v], b[:, v]), "shuffled": _mean_r(a[:, v], b[perm][:, v])}
    return out


def _mean_r(a, b) -> float:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.nanmean(np.where(den > 0, (a * b).sum(1) / np.maximum(den, 1e-12), np.nan)))


def run_metrics(ws: Workspace, run_id: str) -> dict:
    row = ws.query("SELECT metrics FROM reconstruction_runs WHERE run_id = ?", [run_id])
    return json.loads(row.metrics.iloc[0]) if not row.empty and row.metrics.iloc[0] else {}


def reconstruction_runs(ws: Workspace) -> pd.DataFrame:
    """Stored runs, newest first, with their decoder's kind and regime."""
    if not ws.has_table("reconstruction_runs"):
        return pd.DataFrame(columns=["run_id", "decoder_id", "subject", "kind", "regime", "n_images", "samples",
                                     "strength", "steps", "state", "metrics", "created_at"])
    return ws.query("SELECT r.run_id, r.decoder_id, r.subject, d.kind, d.regime, r.n_images, r.samples, r.strength, "
                    "r.steps, r.state, r.metrics, r.created_at FROM reconstruction_runs r "
                    "JOIN decoders d USING (decoder_id) ORDER BY r.created_at DESC")


def per_image_metrics(ws: Workspace, run_id: str, judge=None, embedder=None) -> pd.DataFrame:
    """One row per test image of a run: stim_id, score (the best sample's agreement with the predicted embedding)
    and every metric for that image (2-way: the share of the other test images its reconstruction beats)."""
    from ..models import load_judge, load_role

    best, images, _, stim = run_reconstructions(ws, run_id)
    nets = metric_feature_nets(judge or load_judge(), embedder or load_role("embedder"))
    per = evaluate_pairs(stimulus_images(ws, stim), list(images), nets, per_image=True)
    return pd.concat([best[["stim_id", "score"]].reset_index(drop=True), pd.DataFrame(per)], axis=1)


def reconstruction_steps(ws: Workspace, run_id: str, stim_id: int, shown: int = 5, generator=None,
                         device: str = "cpu") -> list[tuple[str, np.ndarray]]:
    """One image's path, recomputed with the run's parameters: the low-level guess, the generator's estimate of
    the final image at ``shown`` evenly spaced steps, and the final image (the kept sample, recomputed from its
    seed: the same image as stored)."""
    from ..models import load_role

    meta = ws.query("SELECT r.*, p.parameters FROM reconstruction_runs r JOIN runs p USING (run_id) "
                    "WHERE r.run_id = ?", [run_id])
    if meta.empty:
        raise NotFoundError(f"no reconstruction run {run_id!r}")
    prm = json.loads(meta.parameters.iloc[0])
    cfg = ReconConfig(**{k: prm[k] for k in ReconConfig.__dataclass_fields__ if k in prm})
    stim, B = test_images(ws, meta.subject.iloc[0], cfg.n_images)
    where = np.flatnonzero(stim == int(stim_id))
    if not len(where):
        raise InvalidInputError(f"stimulus {stim_id} is not among run {run_id}'s test images")
    emb, low = load_decoder(ws, meta.decoder_id.iloc[0], device).predict(meta.subject.iloc[0], B[where])
    generator = generator or load_role("generator", device, purpose="reconstruction")
    best = ws.query("SELECT sample FROM reconstructions WHERE run_id = ? AND stim_id = ? AND rank = 0",
                    [run_id, int(stim_id)])
    k = int(best["sample"].iloc[0]) if not best.empty else 0
    seen = []
    final = generator.img2img(list(low), generator.condition_images(emb), strength=cfg.strength, steps=cfg.steps,
                              guidance=cfg.guidance, seed=[sample_seed(cfg, stim_id, k)],
                              on_step=lambda j, n, x0: seen.append((j, n, x0[0])))
    n = len(seen)
    picks = sorted(set(np.linspace(0, n - 1, min(shown, n)).round().astype(int))) if n else []
    return ([("low-level guess", low[0])] + [(f"step {seen[i][0] + 1} of {n}", seen[i][2]) for i in picks]
            + [("final", final[0])])


def metrics_table(ws: Workspace, subject: str | None = None) -> pd.DataFrame:
    """Every finished run's metrics (final images), one row per run: subject, model, regime, decoder (its id: two
    fits of one kind are told apart), n, then the metric columns in the papers' order."""
    runs = reconstruction_runs(ws)
    runs = runs[runs.state == "done"]
    if subject:
        runs = runs[runs.subject == subject]
    rows = []
    for r in runs.itertuples():
        m = json.loads(r.metrics) if r.metrics else {}
        if "final" in m:
            rows.append({"run_id": r.run_id, "subject": r.subject, "model": "BIT" if r.kind == "bit" else "ridge",
                         "regime": r.regime, "decoder": r.decoder_id, "images": m.get("n"), "samples": r.samples,
                         "strength": r.strength,
                         **m["final"]})
    return pd.DataFrame(rows)
