"""The resumable caption runner: every voxel of a subject, each registered method, in committed batches.

``precompute`` is the one caption loop: the command line (``python -m backend captions run|all``) and
the Captions page both call it (through ``caption_all`` for the whole pipeline). Each batch of voxels is
one transaction, so a killed run loses at most one batch; rerun with the same parameters, it continues
with the voxels that have no caption yet, in the same run (no duplicates).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..encoders.voxelwise import encoder_weights
from ..errors import InvalidInputError
from ..executor import get_executor, gpus_for
from ..store import ProgressFn, Workspace, current_encoder, one_connection, report
from ..store import subjects as all_subjects
from .banks import bank_table, build_demo_bank, load_bank
from .evaluation import evaluate
from .registry import CAPTION_METHODS, caption_method
from .search import store_caption_embeddings

__all__ = ["precompute", "caption_all", "caption_status", "caption_runs", "captioned_subjects"]


def caption_runs(ws: Workspace, subject: str) -> pd.DataFrame:
    """Per method: how many of the subject's voxels have a caption, and the run that made them."""
    return ws.query("SELECT method, count(*) AS n, any_value(run_id) AS run_id FROM voxel_captions WHERE subject = ? "
                    "GROUP BY method ORDER BY method", [subject])


@one_connection
def caption_status(ws: Workspace) -> pd.DataFrame:
    """Per subject: its voxel count and, per registered method, how many voxels have a caption
    (columns ``subject, n_voxels, <method>...``) and how many caption rows are evaluated (``n_eval``)."""
    counts = ", ".join(f"count(c.voxel) FILTER (WHERE c.method = '{m}') AS \"{m}\"" for m in CAPTION_METHODS)
    st = ws.query(f"SELECT s.subject, s.n_voxels, {counts} FROM subjects s LEFT JOIN voxel_captions c "
                  "USING (subject) GROUP BY ALL ORDER BY s.subject")
    ev = ws.query("SELECT subject, count(*) AS n_eval FROM caption_eval GROUP BY subject")
    return st.merge(ev, on="subject", how="left").fillna({"n_eval": 0})


def captioned_subjects(ws: Workspace, methods=None) -> set[str]:
    """The subjects whose every voxel has a caption by each of ``methods`` (default: all) and an evaluation."""
    cols = list(methods or CAPTION_METHODS)
    st = caption_status(ws)
    ok = (st[cols].to_numpy() == st.n_voxels.to_numpy()[:, None]).all(axis=1) & (st.n_eval == len(cols) * st.n_voxels)
    return set(st.subject[ok])


_CAPTIONERS: dict = {}  # per process: spec -> the method's captioner, built once (a Ray worker keeps its own)


def caption_chunk(spec: dict, bank: np.ndarray, bank_captions, W: np.ndarray, icpt: np.ndarray):
    """Captions and keywords of one chunk of voxels (encoder weights ``W``, intercepts ``icpt``) by ``spec``'s method:
    the task an executor runs. It never opens the workspace; the models come from ``spec``'s configuration file."""
    key = json.dumps(spec, sort_keys=True, default=str)
    captioner = _CAPTIONERS.get(key)
    if captioner is None:
        from ..models import load_role, model_config

        cls = caption_method(spec["method"])
        cfg = model_config(spec["models_config"])
        models = {role: load_role(role, spec["device"], cfg) for role in ("embedder", *cls.roles)}
        captioner = _CAPTIONERS[key] = cls(spec["params"], np.asarray(bank), list(bank_captions), models,
                                           spec["device"])
    return captioner.caption(np.asarray(W), np.asarray(icpt))


def _existing_run(ws, subject, method) -> tuple[str | None, dict | None]:
    df = ws.query("SELECT DISTINCT c.run_id, r.parameters FROM voxel_captions c JOIN runs r USING (run_id) "
                  "WHERE c.subject = ? AND c.method = ?", [subject, method])
    if df.empty:
        return None, None
    return df.run_id.iloc[0], json.loads(df.parameters.iloc[0])


def precompute(ws: Workspace, subject: str, methods=None, bank: str = "demo", device: str = "cpu",
               batch: int = 256, params: dict | None = None, overwrite: bool = False, models: dict | None = None,
               voxels=None, progress: ProgressFn = None, executor=None) -> dict:
    """Caption the voxels of ``subject`` with each method and store the captions.

    Parameters
    ----------
    methods : list of str, optional
        Names from ``CAPTION_METHODS`` (default: all of them).
    bank : str
        The embedding bank (``captions.banks``) the methods project onto / rank over.
    batch : int
        Voxels per committed transaction (a kill loses at most one batch).
    params : dict, optional
        ``{method: {parameter: value}}`` over each method's ``defaults``.
    overwrite : bool
        Replace captions made with other parameters (otherwise that is an error).
    models : dict, optional
        Already loaded models by role (``embedder``, ``captioner``, ``language_model``); the others are
        loaded from ``models.toml``.
    voxels : iterable of int, optional
        Only these voxels (default: all).
    executor : str or Executor, optional
        Where the batches are captioned (:mod:`backend.executor`: ``local``, the default, or ``ray``); the
        captions are stored here, batch by batch, in voxel order, whatever computed them.

    Returns
    -------
    dict
        ``{method: {"run": run id, "n": voxels asked for, "new": voxels captioned now}}``.
    """
    from ..models import config_path, load_role, model_config

    classes = [caption_method(m) for m in (methods or CAPTION_METHODS)]
    ex = get_executor(executor)
    cfg = model_config()
    models = dict(models or {})
    enc = current_encoder(ws, subject)
    W, icpt, key = encoder_weights(ws, subject, method=enc["method"] if enc else None)
    emb_bank, bank_caps, bank_row = load_bank(ws, bank)
    if "embedder" not in models:
        models["embedder"] = load_role("embedder", device, cfg)
    embedder = models["embedder"]
    if bank_row["model_id"] != embedder.model_id or emb_bank.shape[1] != W.shape[1]:
        raise InvalidInputError(f"bank {bank!r} was embedded with {bank_row['model_id']} ({emb_bank.shape[1]}-d), the "
                                f"encoder of {subject} uses {embedder.model_id} ({W.shape[1]}-d): rebuild the bank "
                                "with this embedder")
    wanted = range(len(W)) if voxels is None else sorted({int(v) for v in voxels})
    bad = [v for v in wanted if not 0 <= v < len(W)]
    if bad:
        raise InvalidInputError(f"{subject} has no voxel {bad[0]} (it has {len(W)})")
    summary = {}
    for cls in classes:
        method = cls.name
        p = {**cls.defaults, **((params or {}).get(method, {}))}
        run, old = _existing_run(ws, subject, method)
        full = {"method": method, "subject": subject, "bank": bank, "encoder_features": key,
                "encoder": enc["method"], "encoder_run": enc["run_id"], **p}
        older = {k: v for k, v in full.items() if k not in ("encoder", "encoder_run")}  # before both were recorded
        if run is not None and old != full and not (old == older and enc["method"] == "ridge"):
            if not overwrite:
                raise InvalidInputError(f"captions of {subject} by {method} exist with other parameters ({old}); pass "
                                        "overwrite=True (--overwrite) to replace them")
            with ws.writer() as tx:
                tx.sql("DELETE FROM voxel_captions WHERE subject = ? AND method = ?", [subject, method])
            run = None
        for role in cls.roles:
            if role not in models:
                models[role] = load_role(role, device, cfg)
        captioner = cls(p, emb_bank, bank_caps, models, device)
        spec = {"method": method, "params": p, "bank": bank_row["run_id"], "device": device,
                "models_config": str(config_path())}
        spec_key = json.dumps(spec, sort_keys=True, default=str)
        _CAPTIONERS[spec_key] = captioner  # what the local executor's tasks use (a Ray worker builds its own)
        model_ids = {"embedder": embedder.model_id, "bank": bank_row["run_id"], **captioner.model_ids}
        if run is None:
            with ws.writer() as tx:
                run = tx.new_run(f"captions-{method}", full, seed=p.get("seed"), model_ids=model_ids)
        done = set(ws.query("SELECT voxel FROM voxel_captions WHERE subject = ? AND method = ?",
                            [subject, method]).voxel.tolist())
        todo = np.array([v for v in wanted if v not in done], dtype=int)
        total = len(wanted)
        done_n = total - len(todo)
        stage = f"{subject}: {cls.label} captions"
        report(progress, stage, done_n, total)
        chunks = [todo[a:a + batch] for a in range(0, len(todo), batch)]
        refs = [ex.put(x) for x in (emb_bank, bank_caps)] if chunks else []
        results = ex.map(caption_chunk, [(spec, *refs, W[vox], icpt[vox]) for vox in chunks],
                         num_gpus=gpus_for(device))
        written = done_n
        for vox, (caps, kws) in zip(chunks, results):
            rows = pd.DataFrame({"subject": subject, "method": method, "voxel": vox, "caption": caps,
                                 "keywords": kws, "run_id": run})
            with ws.writer() as tx:  # one transaction per batch: a kill loses at most this batch
                tx.insert_df("voxel_captions", rows)
            written += len(vox)
            report(progress, stage, written, total)
        _CAPTIONERS.pop(spec_key, None)
        summary[method] = {"run": run, "n": int(total), "new": int(len(todo))}
    return summary


def caption_all(ws: Workspace, subjects=None, methods=None, bank: str = "demo", device: str = "cpu",
                batch: int = 256, overwrite: bool = False, voxels=None, bank_size: int = 50_000,
                progress: ProgressFn = None, log=print, executor=None) -> dict:
    """The whole caption pipeline: the demo bank (if ``bank`` is ``"demo"`` and missing), every method for
    every subject (resuming), the evaluation, and the search index (sentence embeddings of the distinct
    captions). Subjects already captioned and evaluated are skipped; a stored index is reused.

    Returns
    -------
    dict
        ``{"bank": bank info or None, "captions": {subject: precompute summary}, "evaluation": {subject: DataFrame},
        "index": search index info}``.
    """
    from ..models import load_role

    out = {"bank": None, "captions": {}, "evaluation": {}}
    names = list(subjects) if subjects else all_subjects(ws)
    complete = captioned_subjects(ws, methods) if voxels is None else set()
    todo = [s for s in names if s not in complete]
    if not todo:
        log("captions: every subject is captioned and evaluated")
        out["index"] = _store_index(ws, device, progress, log)
        return out
    if bank == "demo" and "demo" not in set(bank_table(ws).bank):
        out["bank"] = build_demo_bank(ws, load_role("embedder", device), n=bank_size, progress=progress)
        log(f"bank 'demo': {out['bank']['n']:,} embeddings ({out['bank']['dim']}-d), run {out['bank']['run']}")
    for s in todo:
        out["captions"][s] = precompute(ws, s, methods, bank=bank, device=device, batch=batch, overwrite=overwrite,
                                        voxels=voxels, progress=progress, executor=executor)
        for m, r in out["captions"][s].items():
            log(f"{s} {m}: {r['n']:,} voxels captioned ({r['new']:,} new), run {r['run']}")
    for s in todo:
        out["evaluation"][s] = evaluate(ws, s, device=device)
    out["index"] = _store_index(ws, device, progress, log)
    return out


def _store_index(ws: Workspace, device: str, progress: ProgressFn, log) -> dict:
    """The sentence embeddings of the captions, stored for search (so no page embeds them on its first visit)."""
    from ..models import load_role

    info = store_caption_embeddings(ws, load_role("sentence_embedder", device), progress=progress)
    if info["new"]:
        log(f"search index: {info['n']:,} distinct captions ({info['new']:,} embedded now), run {info['run']}")
    return info
