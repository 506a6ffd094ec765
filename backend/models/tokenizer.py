"""A word-level tokenizer for the demo models (the demo world's captions use a few hundred words)."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import torch

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[\".,]")


def words(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (the demo tokenizer's units)."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Lower-cases and splits into words and punctuation; ids from a fixed vocabulary."""

    def __init__(self, vocab: list[str], max_length: int = 32):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (self.index[s] for s in SPECIALS)

    @classmethod
    def train(cls, texts, min_count: int = 1, max_length: int = 32) -> "WordTokenizer":
        counts = Counter(w for t in texts for w in words(t))
        vocab = SPECIALS + sorted(w for w, c in counts.items() if c >= min_count)
        return cls(vocab, max_length)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, bos: bool = True, eos: bool = True) -> list[int]:
        ids = [self.index.get(w, self.unk_id) for w in words(text)]
        ids = ([self.bos_id] if bos else []) + ids[: self.max_length - 2] + ([self.eos_id] if eos else [])
        return ids

    def batch(self, texts, bos: bool = True, eos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (n, L) long, attention mask (n, L) bool), padded on the right."""
        enc = [self.encode(t, bos, eos) for t in texts]
        L = max(len(e) for e in enc)
        ids = torch.full((len(enc), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(enc), L), dtype=torch.bool)
        for i, e in enumerate(enc):
            ids[i, : len(e)] = torch.tensor(e)
            mask[i, : len(e)] = True
        return ids, mask

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.vocab[i])
        text = " ".join(out)
        text = re.sub(r' " (.*?) "', r' "\1"', text)
        return re.sub(r" ([.,])", r"\1", text)

    def save_pretrained(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "vocab.json").write_text(json.dumps({"vocab": self.vocab, "max_length": self.max_length}))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "WordTokenizer":
        p = Path(folder) / "vocab.json"
        if not p.exists():
            raise FileNotFoundError(f"{folder} has no vocab.json (expected a VoxelScope word tokenizer)")
        d = json.loads(p.read_text())
        return cls(d["vocab"], d.get("max_length", 32))
