"""A synthesis run: BrainDiVE images for a target, re-ranked, stored with how they were made.

One run = one target spec x guidance parameters x models x encoders x seeds. Its key is a hash of all of those, so
asking again for the same run re-opens it (instant), and a run killed half-way resumes with the seeds it has not
stored (each batch of seeds is committed in one write: images + rows, never half).

Re-ranking without self-deception: the images are guided by the encoder fitted on one half of the training images
and ranked by the encoder fitted on the other half (:func:`backend.encoders.fit_encoder_halves`); the kept images are
the top ``keep`` share by the re-ranking encoder, and the summary says how many of the guiding encoder's top share
survive that (adversarial images that fool only the guiding encoder fall out).

On a demo world each image is also shown to the simulated subjects (its true target response, through the
judge's eyes) and the categories the judge sees in it are stored.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..encoders import encoder_half, fit_encoder_halves
from ..errors import InvalidInputError, NotFoundError
from ..executor import Executor, get_executor, gpus_for
from ..store import ProgressFn, Workspace, current_encoder, feature_set_model, report
from .braindive import GuidanceConfig, guided_batches
from .targets import Objective, normalise_spec, voxel_weights

__all__ = ["synthesize", "synthesis_runs", "synthesis_images", "run_images", "find_run", "run_key", "preview_path",
           "target_objectives", "shown_categories", "SynthesisModels", "require_run", "MIN_SHARE", "natural_top",
           "gallery_files", "braindive_batch"]

MIN_SHARE = 0.02  # the judge "sees" a category when it covers at least 2% of the image


class SynthesisModels:
    """The generator and embedder a run uses (loaded once by the caller and reused across runs)."""

    def __init__(self, generator, embedder, judge=None):
        self.generator = generator
        self.embedder = embedder
        self.judge = judge

    @classmethod
    def load(cls, device: str = "cpu") -> "SynthesisModels":
        from ..models import load_role

        gen = load_role("generator", device, purpose="braindive")
        emb = getattr(gen, "embedder", None) or load_role("embedder", device)
        return cls(gen, emb)


_SYNTH_MODELS: dict = {}  # per process: models spec -> (generator, embedder), loaded once (a Ray worker keeps its own)


def braindive_batch(spec: dict, objective: Objective, seeds: list[int], config: dict) -> tuple[list[int], np.ndarray, str]:
    """BrainDiVE images of one batch of seeds: the task an executor runs. It never opens the workspace; the
    generator and embedder come from ``spec`` (``models_config``: the configuration file, ``device``); ``config``:
    a :class:`GuidanceConfig` as a dict (its scale resolved). Returns (seeds, images, the generator's model id)."""
    key = json.dumps(spec, sort_keys=True)
    if key not in _SYNTH_MODELS:
        from ..models import load_role, model_config

        cfg = model_config(spec["models_config"])
        gen = load_role("generator", spec["device"], cfg, purpose="braindive")
        _SYNTH_MODELS[key] = (gen, getattr(gen, "embedder", None) or load_role("embedder", spec["device"], cfg))
    gen, emb = _SYNTH_MODELS[key]
    seeds, images = next(guided_batches(gen, emb, objective, seeds, GuidanceConfig(**{**config, "batch": len(seeds)})))
    return seeds, images, gen.model_id


def target_objectives(ws: Workspace, spec: dict, device: str = "cpu", progress: ProgressFn = None
                      ) -> tuple[Objective, Objective, dict]:
    """(guiding objective (half 0), re-ranking objective (half 1), voxel weights per subject). Fits the half-data
    encoders of the target's subjects on first use."""
    weights = voxel_weights(ws, spec)
    guide, rerank = {}, {}
    for s in weights:
        fit_encoder_halves(ws, s, device=device, progress=progress)
        guide[s] = encoder_half(ws, s, 0)
        rerank[s] = encoder_half(ws, s, 1)
    return Objective.from_encoders(weights, guide), Objective.from_encoders(weights, rerank), weights


def run_key(spec: dict, n_seeds: int, first_seed: int, config: GuidanceConfig, keep: float, model_ids: dict,
            encoder_ids: dict) -> str:
    blob = json.dumps({"target": normalise_spec(spec), "n_seeds": n_seeds, "first_seed": first_seed,
                       "guidance": config.as_dict() | {"preview_every": None, "batch": None}, "keep": keep,
                       "models": model_ids, "encoders": encoder_ids}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def preview_path(ws: Workspace, key: str) -> Path:
    """Where a running synthesis writes its live preview (a PNG grid of the current estimates)."""
    return ws.path / "previews" / f"synthesis-{key}.png"


def find_run(ws: Workspace, key: str) -> dict | None:
    """The stored run with ``key`` (a dict of its ``synthesis_runs`` row), or None."""
    if not ws.has_table("synthesis_runs"):
        return None
    df = ws.query("SELECT * FROM synthesis_runs WHERE key = ? ORDER BY created_at DESC LIMIT 1", [key])
    return None if df.empty else df.iloc[0].to_dict()


def synthesis_runs(ws: Workspace) -> pd.DataFrame:
    """Every synthesis run, newest first, with how many images it has and keeps."""
    if not ws.has_table("synthesis_runs"):
        return pd.DataFrame(columns=["run_id", "key", "label", "target", "subjects", "n_seeds", "first_seed", "steps",
                                     "scale", "sampler", "state", "created_at", "n_images", "n_kept"])
    return ws.query("SELECT r.*, count(i.seed) AS n_images, count(*) FILTER (WHERE i.kept) AS n_kept "
                    "FROM synthesis_runs r LEFT JOIN synthesis_images i USING (run_id) "
                    "GROUP BY ALL ORDER BY r.created_at DESC")


def synthesis_images(ws: Workspace, run_id: str) -> pd.DataFrame:
    """The run's rows, best first by the re-ranking encoder: seed, images_array, idx, pred_guide, pred_rerank, kept,
    rank, true_response, judged."""
    return ws.query("SELECT * FROM synthesis_images WHERE run_id = ? ORDER BY rank NULLS LAST, pred_rerank DESC",
                    [run_id])


def run_images(ws: Workspace, rows: pd.DataFrame) -> np.ndarray:
    """uint8 images (n, H, W, 3) of ``rows`` (from :func:`synthesis_images`), in their order."""
    if rows.empty:
        return np.zeros((0, 1, 1, 3), np.uint8)
    out = []
    arrays = {}
    for name, idx in zip(rows.images_array, rows.idx):
        if name not in arrays:
            arrays[name] = ws.array(name)
        out.append(np.asarray(arrays[name][idx]))
    return np.stack(out)


def shown_categories(labels: np.ndarray, min_share: float = MIN_SHARE) -> list[list[str]]:
    """Per judge segmentation (n, H, W), the categories covering at least ``min_share`` of the image, largest
    first (the judge "sees" them)."""
    from ..models.judge import JUDGE_CLASSES

    shares = np.stack([(labels == c).mean((1, 2)) for c in range(1, len(JUDGE_CLASSES))], 1)
    return [[JUDGE_CLASSES[1 + k] for k in np.argsort(-row) if row[k] >= min_share] for row in shares]


def _truth(ws: Workspace, weights: dict, images: np.ndarray, judge):
    """(true target response per image (mean over subjects), the categories the judge sees, comma-separated,
    largest first) on a demo world; (None, None) elsewhere."""
    from ..simulate import has_ground_truth, simulate_response

    if not has_ground_truth(ws):
        return None, None
    vals, labels = [], None
    for s, w in weights.items():
        resp, (_, _, labels) = simulate_response(ws, s, list(images), judge, return_seen=True)
        vals.append(resp @ w)
    return np.mean(vals, 0), [",".join(c) for c in shown_categories(labels)]


def _write_preview(path: Path, images: np.ndarray, step: int, steps: int) -> None:
    from ..images import image_grid, png_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{step}.tmp")
    tmp.write_bytes(png_bytes(image_grid(images, columns=8, size=max(64, images.shape[1]))))
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps({"step": step, "steps": steps}))


def synthesize(ws: Workspace, spec: dict, n_seeds: int = 32, first_seed: int = 0, config: GuidanceConfig | None = None,
               keep: float = 0.2, models: SynthesisModels | None = None, device: str = "cpu",
               progress: ProgressFn = None, previews: bool = True, preview_file: str | Path | None = None,
               executor: str | Executor | None = None) -> dict:
    """Run (or re-open, or resume) BrainDiVE for ``spec`` and store the images and their scores.

    Parameters
    ----------
    spec : target spec (:mod:`backend.synthesis.targets`)
    n_seeds, first_seed : seeds ``first_seed .. first_seed + n_seeds - 1``, one image each
    config : guidance parameters (:class:`GuidanceConfig`)
    keep : share of the images kept after re-ranking (the paper: top 20%)
    previews : write the live preview PNG (``preview_file``, default ``preview_path(ws, key)``) while sampling
    executor : where the seed batches are sampled (:mod:`backend.executor`): ``local`` (the default: in this
        process, with the live preview and progress per denoising step) or ``ray`` (one task per batch of
        ``config.batch`` seeds, on the configured models; progress per batch; this process stores each batch)

    Returns
    -------
    dict with run_id, key, label, state, n_images, n_kept, survivors (of the guiding encoder's top ``keep``, how many
    the re-ranking encoder also puts in its top ``keep``), reopened (True when nothing had to be computed).
    """
    config = config or GuidanceConfig()
    spec = normalise_spec(spec)
    if not 1 <= int(n_seeds) <= 100_000:
        raise InvalidInputError(f"n_seeds must be between 1 and 100000, got {n_seeds}")
    if not 0 < keep <= 1:
        raise InvalidInputError(f"keep must be in (0, 1], got {keep}")
    guide, rerank, weights = target_objectives(ws, spec, device, progress)
    models = models or SynthesisModels.load(device)
    gen, emb = models.generator, models.embedder
    for s in weights:
        fmodel = feature_set_model(ws, current_encoder(ws, s)["feature_key"])
        if fmodel is not None and fmodel != emb.model_id:
            raise InvalidInputError(f"the encoders of {s} were fitted on features of {fmodel}, but the loaded "
                                    f"embedder is {emb.model_id}")
    config = config.resolved(gen)
    model_ids = {"generator": gen.model_id, "embedder": emb.model_id}
    enc_ids = {"guide": guide.encoder_ids, "rerank": rerank.encoder_ids}
    key = run_key(spec, n_seeds, first_seed, config, keep, model_ids, enc_ids)
    run = find_run(ws, key)
    if run is not None and run["state"] == "done":
        return _summary(ws, run, reopened=True)
    if run is None:
        params = {"target": spec, "n_seeds": int(n_seeds), "first_seed": int(first_seed), "keep": keep,
                  "guidance": config.as_dict(), "key": key, "encoders": enc_ids}
        with ws.writer() as tx:
            run_id = tx.new_run("braindive", params, seed=int(first_seed), model_ids=model_ids | {
                f"encoder {k} {s}": v for k, ids in enc_ids.items() for s, v in ids.items()})
            tx.sql("INSERT INTO synthesis_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', now())",
                   [run_id, key, spec["label"], json.dumps(spec), spec["subjects"], int(n_seeds), int(first_seed),
                    int(config.steps), float(config.scale), config.sampler])
        run = find_run(ws, key)
    run_id = run["run_id"]
    have = set(ws.query("SELECT seed FROM synthesis_images WHERE run_id = ?", [run_id]).seed)
    todo = [s for s in range(first_seed, first_seed + n_seeds) if s not in have]
    prev = Path(preview_file) if preview_file else preview_path(ws, key)
    judge = models.judge
    if todo and judge is None:
        from ..simulate import has_ground_truth

        if has_ground_truth(ws):
            from ..models import load_judge

            judge = models.judge = load_judge(device=device)
    stage = f"Synthesizing {spec['label']}"
    report(progress, stage, len(have) * config.steps, n_seeds * config.steps)
    offset = len(have) * config.steps

    def shifted(st, d, t):  # progress over the whole run, counting seeds stored by an earlier attempt
        report(progress, st, d + offset, t + offset)

    ex = get_executor(executor)
    if ex.name == "local":
        batches = guided_batches(gen, emb, guide, todo, config, progress=shifted, stage=stage,
                                 preview=(lambda im, k, n: _write_preview(prev, im, k, n)) if previews else None)
    else:
        from ..models import config_path

        task_spec = {"models_config": str(config_path()), "device": device}
        batches = _counted(ex.map(braindive_batch, [(task_spec, guide, todo[a:a + config.batch], config.as_dict())
                                                    for a in range(0, len(todo), config.batch)],
                                  num_gpus=gpus_for(device)),
                           lambda n: shifted(stage, n * config.steps, len(todo) * config.steps), gen.model_id)
    for seeds, images in batches:
        e = emb.image_features(list(images))
        true, judged = _truth(ws, weights, images, judge)
        rows = pd.DataFrame({"run_id": run_id, "seed": seeds, "idx": np.arange(len(seeds)),
                             "pred_guide": guide(e).astype(np.float32), "pred_rerank": rerank(e).astype(np.float32),
                             "true_response": true if true is not None else np.nan,
                             "judged": judged if judged is not None else None})
        with ws.writer() as tx:
            name = f"synthesis_{run_id}_{seeds[0]}"
            tx.put_array(name, images, run_id, f"BrainDiVE images of seeds {seeds[0]}..{seeds[-1]}")
            tx.insert_df("synthesis_images", rows.assign(images_array=name))
    _finish(ws, run_id, keep)
    prev.unlink(missing_ok=True)
    prev.with_suffix(".json").unlink(missing_ok=True)
    return _summary(ws, find_run(ws, key), reopened=not todo and run["state"] == "done")


def _counted(results, on_seeds, generator_id: str):
    """The executor's (seeds, images, generator id) as (seeds, images), reporting the seeds done after each; a
    task that ran another generator than this run records is an error, not a silently mixed run."""
    n = 0
    for seeds, images, gid in results:
        if gid != generator_id:
            raise InvalidInputError(f"the executor's workers loaded generator {gid} from the models configuration, "
                                    f"this run is for {generator_id}: pass no models, or configure that generator")
        yield seeds, images
        n += len(seeds)
        on_seeds(n)


def _finish(ws: Workspace, run_id: str, keep: float) -> None:
    df = ws.query("SELECT seed, pred_rerank FROM synthesis_images WHERE run_id = ?", [run_id])
    n_keep = max(1, math.ceil(keep * len(df)))
    order = df.sort_values(["pred_rerank", "seed"], ascending=[False, True]).seed.to_numpy()
    ranks = pd.DataFrame({"seed": order, "rank": np.arange(len(order)), "kept": np.arange(len(order)) < n_keep})
    with ws.writer() as tx:
        tx.con.register("_ranks", ranks)
        tx.sql("UPDATE synthesis_images AS i SET rank = r.rank, kept = r.kept FROM _ranks AS r "
               "WHERE i.run_id = ? AND i.seed = r.seed", [run_id])
        tx.con.unregister("_ranks")
        tx.sql("UPDATE synthesis_runs SET state = 'done' WHERE run_id = ?", [run_id])


def _summary(ws: Workspace, run: dict, reopened: bool) -> dict:
    rows = synthesis_images(ws, run["run_id"])
    n_keep = int(rows.kept.sum())
    top_guide = set(rows.nlargest(n_keep, "pred_guide").seed)
    survivors = len(top_guide & set(rows[rows.kept].seed))
    return {"run_id": run["run_id"], "key": run["key"], "label": run["label"], "state": run["state"],
            "n_images": len(rows), "n_kept": n_keep, "survivors": survivors, "reopened": reopened,
            "kept_pred_rerank": float(rows[rows.kept].pred_rerank.mean()) if n_keep else float("nan"),
            "all_pred_rerank": float(rows.pred_rerank.mean()) if len(rows) else float("nan")}


def natural_top(ws: Workspace, spec: dict, n: int = 8) -> dict[str, pd.DataFrame]:
    """Per subject of the target, the stimuli it responds to most: the ``n`` seen images with the highest measured
    target response (its betas, weighted by the target's voxel weights) and the ``n`` with the highest predicted
    one (its full encoder on the stored features), each with stim_id, measured, predicted and which list it is on
    (``by``: 'measured' / 'predicted') - the natural images to compare synthesized ones with."""
    from ..datasets.reading import subject_betas
    from ..encoders import encoder_weights, stored_features
    from ..store import stimulus_ids

    out = {}
    all_ids = stimulus_ids(ws)
    for subject, w in voxel_weights(ws, spec).items():
        betas, rows = subject_betas(ws, subject)
        cols = np.flatnonzero(w)
        measured = np.asarray(betas[:, cols], np.float32) @ w[cols]
        W, b, key = encoder_weights(ws, subject)
        feats = np.asarray(stored_features(ws, key))[np.searchsorted(all_ids, rows.stim_id.to_numpy())]
        predicted = feats @ (w[cols] @ W[cols]) + float(w[cols] @ b[cols])
        df = pd.DataFrame({"stim_id": rows.stim_id.to_numpy(), "measured": measured, "predicted": predicted})
        out[subject] = pd.concat([df.nlargest(n, "measured").assign(by="measured"),
                                  df.nlargest(n, "predicted").assign(by="predicted")], ignore_index=True)
    return out


def gallery_files(ws: Workspace, run_id: str, size: int = 128) -> tuple[bytes, bytes]:
    """(PNG grid of the kept images, zip of every image with a JSON of the run's parameters and scores)."""
    import io
    import zipfile

    from ..images import image_grid, png_bytes

    run = require_run(ws, run_id)
    rows = synthesis_images(ws, run_id)
    images = run_images(ws, rows)
    kept = rows.kept.fillna(False).to_numpy()
    grid = png_bytes(image_grid(list(images[kept]) or list(images[:1]), columns=8, size=size))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for r, im in zip(rows.itertuples(), images):
            z.writestr(f"rank{r.rank + 1:04d}_seed{r.seed}{'_kept' if r.kept else ''}.png", png_bytes(im))
        params = ws.query("SELECT parameters, model_ids, code_version FROM runs WHERE run_id = ?", [run_id])
        z.writestr("run.json", json.dumps({
            "run": {k: str(v) for k, v in run.items()}, "target": json.loads(run["target"]),
            "parameters": json.loads(params.parameters.iloc[0]) if len(params) else None,
            "model_ids": json.loads(params.model_ids.iloc[0]) if len(params) else None,
            "code_version": params.code_version.iloc[0] if len(params) else None,
            "images": json.loads(rows.drop(columns=["images_array", "idx"]).to_json(orient="records"))}, indent=1))
    return grid, buf.getvalue()


def require_run(ws: Workspace, run_id: str) -> dict:
    df = ws.query("SELECT * FROM synthesis_runs WHERE run_id = ?", [run_id]) if ws.has_table("synthesis_runs") else pd.DataFrame()
    if df.empty:
        raise NotFoundError(f"no synthesis run {run_id!r} in workspace {ws.path}")
    return df.iloc[0].to_dict()
