"""LaVCa (Matsuyama et al. 2025): a voxel's caption from the captions of the images it prefers.

The paper's steps: the voxel's top-N images of a pool by predicted response; their captions;
keywords; a sentence. With a language model configured (``models.toml``: language_model) it
extracts the keywords and writes the sentence. Without one, a documented deterministic rule does:

* keywords: every word of the top-N captions (minus function words) scored by
  ``share_top * log(share_top / share_pool)``, where ``share_top`` is the fraction of the voxel's top-N
  captions that contain the word and ``share_pool`` the fraction of all pool captions that do: words that
  occur much more often among the voxel's favourite images than in general. The 5 best with
  ``share_top >= 0.2`` and ``share_top > share_pool`` are kept, best first.
* sentence: ``"images of " + k1 + ", " + k2 + ... + " and " + k_last`` (the keywords in score order).
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from ..errors import InvalidInputError

__all__ = ["LaVCa", "KeywordModel", "top_pool_indices", "lm_sentence", "caption_words", "STOPWORDS", "WORD_RE"]

STOPWORDS = set("""a an the of on in at to with and or its it is are was be by for from as this that these those
there here some very next near left right top bottom upper lower centre center middle picture image photo
photograph view shows showing one two three four five six small large big little""".split())
WORD_RE = re.compile(r"[a-z]+")


def caption_words(text: str) -> set[str]:
    """The content words of a caption (lower case, function words and single letters removed)."""
    return {w for w in WORD_RE.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


class KeywordModel:
    """The deterministic LaVCa keyword extractor and sentence rule (see the module docstring)."""

    def __init__(self, pool_captions: list[str], n_keywords: int = 5, min_share: float = 0.2):
        self.sets = [caption_words(c) for c in pool_captions]
        counts = Counter(w for s in self.sets for w in s)
        self.pool_share = {w: c / len(self.sets) for w, c in counts.items()}
        self.n_keywords, self.min_share = n_keywords, min_share

    def keywords(self, top: np.ndarray) -> list[tuple[str, float]]:
        counts = Counter(w for i in top for w in self.sets[i])
        n = len(top)
        scored = []
        for w, c in counts.items():
            s = c / n
            p = self.pool_share[w]
            if s >= self.min_share and s > p:
                scored.append((w, s * math.log(s / p)))
        scored.sort(key=lambda x: (-x[1], x[0]))
        return scored[: self.n_keywords]

    @staticmethod
    def sentence(keywords: list[str]) -> str:
        if not keywords:
            return "images with no distinctive content"
        if len(keywords) == 1:
            return f"images of {keywords[0]}"
        return "images of " + ", ".join(keywords[:-1]) + " and " + keywords[-1]


def lm_sentence(lm, captions: list[str]) -> tuple[str, list[str]]:
    """LaVCa with a language model: keywords, then one sentence, from the voxel's top captions."""
    listing = "\n".join(f"- {c}" for c in captions[:20])
    kw = lm.generate(f"Image descriptions:\n{listing}\nThe five most common content words, comma separated:")
    keywords = [k.strip() for k in kw.replace("\n", ",").split(",") if k.strip()][:5]
    sent = lm.generate(f"Keywords: {', '.join(keywords)}\nOne short sentence describing images with these:")
    return sent.split("\n")[0].strip(), keywords


def top_pool_indices(W: np.ndarray, b: np.ndarray, pool: np.ndarray, n: int, device: str = "cpu") -> np.ndarray:
    """(n_voxels, n) indices of the pool images with the highest predicted response, best first."""
    import torch

    P = torch.as_tensor(np.asarray(pool, np.float32), device=device)
    Wt = torch.as_tensor(np.asarray(W, np.float32), device=device)
    pred = Wt @ P.T + torch.as_tensor(np.asarray(b, np.float32), device=device)[:, None]
    return pred.topk(n, dim=1).indices.cpu().numpy()


class LaVCa:
    """The LaVCa caption method (see the module docstring). Registered in ``CAPTION_METHODS``."""

    name = "lavca"
    label = "LaVCa"
    how = "keywords of the captions of its top-50 predicted images"
    defaults = {"top_n": 50, "n_keywords": 5, "min_share": 0.2}
    roles = ("language_model",)

    def __init__(self, params: dict, bank: np.ndarray, bank_captions, models: dict, device: str = "cpu"):
        if bank_captions is None:
            raise InvalidInputError("the bank has no captions; LaVCa needs a captioned pool")
        self.p = {**self.defaults, **params}
        self.bank, self.bank_captions, self.device = bank, bank_captions, device
        self.lm = models.get("language_model")
        self.model_ids = {"language_model": self.lm.model_id if self.lm else "none (keyword rule)"}
        self.keyword_model = KeywordModel(bank_captions, self.p["n_keywords"], self.p["min_share"])

    def caption(self, W: np.ndarray, intercept: np.ndarray) -> tuple[list[str], list[str]]:
        """Captions and comma-separated keywords of the voxels whose weights are the rows of ``W``."""
        top = top_pool_indices(W, intercept, self.bank, self.p["top_n"], self.device)
        caps, kws = [], []
        for t in top:
            if self.lm is not None:
                s, k = lm_sentence(self.lm, [self.bank_captions[i] for i in t])
            else:
                k = [w for w, _ in self.keyword_model.keywords(t)]
                s = self.keyword_model.sentence(k)
            caps.append(s)
            kws.append(", ".join(k))
        return caps, kws
