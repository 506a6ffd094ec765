"""BrainDiVE held to ground truth on a demo world (``python -m backend synthesis evaluate``).

For each subject and target (each category's ROI file, and the FFA-1 / PPA contrasts): ``n_seeds`` guided images
(:func:`backend.synthesis.synthesize`, stored, so a second evaluation re-opens them), of which the re-ranking
encoder keeps the top share. Scored, against the simulated subject seeing the images through the judge's eyes:

* ``judged share``: share of the images the judge sees the ROI's category in (>= 2% of the image);
* ``judged main``: the stricter reading, share of the images whose largest judged category is the ROI's, and
  ``categories seen``: mean number of categories the judge sees per image (the world's own images: about 1.4; a
  blurry generated image read as a bit of everything passes ``judged share`` for several ROIs at once);
* ``true percentile``: where the mean true target response of the images falls among the world's natural
  stimuli (100 = above every stimulus); the target is >= 95;
* ``true gain`` / ``predicted gain``: mean response of the images minus the natural stimuli's mean, in natural
  standard deviations, true (simulated subject) and predicted (the re-ranking encoder);

next to two baselines on the same seeds: plain unconditional samples (``unguided``, all of them, and ``unguided
top``: the same samples re-ranked by the re-ranking encoder, kept at the same share, to separate what the guidance
adds from what selection adds), and text-conditioned samples of the category's name (``text``, BrainSCUBA-style).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..encoders import stored_features
from ..errors import InvalidInputError
from ..store import ProgressFn, Workspace, current_encoder, report
from ..store import subjects as all_subjects
from .braindive import GuidanceConfig, guided_batches
from .runner import (MIN_SHARE, SynthesisModels, run_images, shown_categories, synthesis_images, synthesize,
                     target_objectives)

__all__ = ["evaluate_synthesis", "default_targets", "CATEGORY_PROMPTS", "stored_evaluation", "judged_reading"]

# the text baseline's prompt per category (the demo world's own words)
CATEGORY_PROMPTS = {"face": "a face", "place": "a house", "body": "a person", "food": "food", "word": "a word"}


def default_targets() -> list[tuple[str, str, list[dict]]]:
    """(name, category the images should show, terms): each category's ROI file, and the two contrasts."""
    cats = [("faces", "face", "floc-faces"), ("places", "place", "floc-places"), ("bodies", "body", "floc-bodies"),
            ("words", "word", "floc-words"), ("food", "food", "food")]
    out = [(name, cat, [{"rois": [f], "weight": 1.0}]) for name, cat, f in cats]
    out += [("FFA-1 - PPA", "face", [{"rois": ["FFA-1"], "weight": 1.0}, {"rois": ["PPA"], "weight": -1.0}]),
            ("PPA - FFA-1", "place", [{"rois": ["PPA"], "weight": 1.0}, {"rois": ["FFA-1"], "weight": -1.0}])]
    return out


def judged_reading(labels: np.ndarray, category: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per judge segmentation (n, H, W): does the judge see ``category`` (>= MIN_SHARE of the image), is it the
    largest category it sees, and how many categories it sees."""
    seen = shown_categories(labels)
    return (np.array([category in c for c in seen]), np.array([bool(c) and c[0] == category for c in seen]),
            np.array([len(c) for c in seen]))


def _score(ws, subject, weights, images, judge, world_true, pred_fn, nat_pred, category) -> dict:
    from ..simulate import simulate_response

    resp, (_, _, labels) = simulate_response(ws, subject, list(images), judge, return_seen=True)
    true = resp @ weights
    shows, main, n_seen = judged_reading(labels, category)
    t_mean = float(true.mean())
    pred = pred_fn(images)
    return {"n_images": len(images), "judged share": float(shows.mean()), "judged main": float(main.mean()),
            "categories seen": float(n_seen.mean()),
            "true mean": t_mean, "true percentile": float(100 * (world_true < t_mean).mean()),
            "true gain": float((t_mean - world_true.mean()) / world_true.std()),
            "predicted gain": float((pred.mean() - nat_pred.mean()) / nat_pred.std())}


def evaluate_synthesis(ws: Workspace, subjects=None, n_seeds: int = 100, config: GuidanceConfig | None = None,
                       keep: float = 0.2, targets=None, baselines: bool = True, models: SynthesisModels | None = None,
                       device: str = "cpu", progress: ProgressFn = None, log=print, executor=None) -> pd.DataFrame:
    """The evaluation table (one row per subject x target x method) and its storage in ``synthesis_eval``.

    Methods: ``braindive`` (kept images), ``braindive all`` (every guided image), and with ``baselines``:
    ``unguided``, ``unguided top`` and ``text`` (see the module docstring). ``executor``: where the guided seed
    batches run (:func:`backend.synthesis.synthesize`)."""
    from ..models import load_judge
    from ..simulate import has_ground_truth, world_target_responses

    if not has_ground_truth(ws):
        raise InvalidInputError(f"workspace {ws.path} has no ground truth: the evaluation needs a demo world")
    config = config or GuidanceConfig()
    subjects = subjects or all_subjects(ws)
    targets = targets or default_targets()
    models = models or SynthesisModels.load(device)
    judge = models.judge = models.judge or load_judge(device=device)
    emb = models.embedder
    seeds = list(range(n_seeds))
    plain = text = None
    if baselines:  # the same seeds for every target: sampled once
        plain = np.concatenate([im for _, im in guided_batches(
            models.generator, emb, None, seeds, GuidanceConfig(**{**config.as_dict(), "scale": 0.0}),
            progress=progress, stage="Unguided samples")])
        text = {}
        for cat in sorted({c for _, c, _ in targets}):
            cfg = GuidanceConfig(**{**config.as_dict(), "scale": 0.0, "prompt": CATEGORY_PROMPTS[cat],
                                    "text_guidance": 3.0, "sag_scale": 0.0})
            text[cat] = np.concatenate([im for _, im in guided_batches(models.generator, emb, None, seeds, cfg,
                                                                       progress=progress,
                                                                       stage=f"Text samples: {CATEGORY_PROMPTS[cat]}")])
    rows = []
    for subject in subjects:
        feats = stored_features(ws, current_encoder(ws, subject)["feature_key"])
        for name, cat, terms in targets:
            spec = {"terms": terms, "subjects": [subject]}
            _, rerank, weights = target_objectives(ws, spec, device, progress)
            w = weights[subject]
            world_true = world_target_responses(ws, {subject: w})
            nat_pred = rerank(feats)

            def pred_fn(images):
                return rerank(emb.image_features(list(images)))

            res = synthesize(ws, spec, n_seeds=n_seeds, config=config, keep=keep, models=models, device=device,
                             progress=progress, executor=executor)
            im_rows = synthesis_images(ws, res["run_id"])
            imgs = run_images(ws, im_rows)
            kept = im_rows.kept.to_numpy()
            base = {"subject": subject, "target": name, "category": cat, "synthesis_run": res["run_id"]}
            rows.append({**base, "method": "braindive", "survivors": res["survivors"],
                         **_score(ws, subject, w, imgs[kept], judge, world_true, pred_fn, nat_pred, cat)})
            rows.append({**base, "method": "braindive all", "survivors": None,
                         **_score(ws, subject, w, imgs, judge, world_true, pred_fn, nat_pred, cat)})
            if baselines:
                p = pred_fn(plain)
                top = np.argsort(-p)[:max(1, int(np.ceil(keep * len(plain))))]
                rows.append({**base, "method": "unguided", "survivors": None,
                             **_score(ws, subject, w, plain, judge, world_true, pred_fn, nat_pred, cat)})
                rows.append({**base, "method": "unguided top", "survivors": None,
                             **_score(ws, subject, w, plain[top], judge, world_true, pred_fn, nat_pred, cat)})
                rows.append({**base, "method": "text", "survivors": None,
                             **_score(ws, subject, w, text[cat], judge, world_true, pred_fn, nat_pred, cat)})
            r = rows[-5] if baselines else rows[-2]
            log(f"{subject} {name}: judged {r['judged share']:.0%} {cat} (main category {r['judged main']:.0%}), "
                f"true percentile {r['true percentile']:.1f}, "
                f"survivors {res['survivors']}/{res['n_kept']}")
    table = pd.DataFrame(rows)
    report(progress, "Storing the evaluation", 0, 1)
    with ws.writer() as tx:
        run = tx.new_run("braindive-evaluation", {"subjects": subjects, "n_seeds": n_seeds, "keep": keep,
                                                  "guidance": config.as_dict(), "baselines": baselines,
                                                  "targets": [[n, c, t] for n, c, t in targets],
                                                  "text_prompts": CATEGORY_PROMPTS, "min_share": MIN_SHARE},
                         seed=0, model_ids={"generator": models.generator.model_id, "embedder": emb.model_id,
                                            "judge": judge.model_id})
        tx.sql("INSERT INTO synthesis_eval VALUES (?, now(), ?)", [run, table.to_json(orient="records")])
    report(progress, "Storing the evaluation", 1, 1)
    return table


def stored_evaluation(ws: Workspace) -> tuple[str | None, pd.DataFrame]:
    """(id of the newest stored evaluation, table): each subject's rows from the newest evaluation that scored it
    (subjects evaluated one at a time, ``--subject subj01`` then ``--subject subj02``, come out as one table, with
    an ``eval_run`` column naming where each row comes from); (None, empty) if there is none."""
    if not ws.has_table("synthesis_eval"):
        return None, pd.DataFrame()
    df = ws.query("SELECT eval_run, rows FROM synthesis_eval ORDER BY created_at DESC")
    if df.empty:
        return None, pd.DataFrame()
    parts, seen = [], set()
    for run, rows in zip(df.eval_run, df.rows):
        t = pd.DataFrame(json.loads(rows))
        t = t[~t.subject.isin(seen)]
        if len(t):
            parts.append(t.assign(eval_run=run))
            seen |= set(t.subject)
    return df.eval_run.iloc[0], pd.concat(parts, ignore_index=True).sort_values("subject", kind="stable",
                                                                                  ignore_index=True)
