"""Caption decoder from an embedding, ClipCap-style: embedding -> MLP -> prefix -> GPT-2 -> beam search.

Folder layout (the same for our demo model and for a converted ClipCap checkpoint)::

    config.json         {"model_type": "voxelscope-clipcap", "prefix_length": 8, "embed_dim": 256, "model_id": ...}
    mapper.safetensors  the MLP from the embedding to the prefix
    lm/                 a transformers GPT2LMHeadModel folder (config.json, model.safetensors)
    vocab.json          our word tokenizer (demo)  -- or HF tokenizer files in lm/ (e.g. GPT-2's)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InvalidInputError
from ._files import load_weights, need_file, read_config
from .tokenizer import WordTokenizer

CLIPCAP_TYPE = "voxelscope-clipcap"


class PrefixMapper(nn.Module):
    """ClipCap's mapping network: an embedding -> ``prefix_length`` token embeddings of the language model."""
    def __init__(self, embed_dim: int, n_embd: int, prefix_length: int):
        super().__init__()
        self.prefix_length = prefix_length
        self.n_embd = n_embd
        self.net = nn.Sequential(nn.Linear(embed_dim, 2 * n_embd), nn.GELU(),
                                 nn.Linear(2 * n_embd, prefix_length * n_embd))

    def forward(self, e):
        return self.net(e).view(-1, self.prefix_length, self.n_embd)


class _HFTokenizerAdapter:
    """Gives a transformers tokenizer the few methods the captioner uses."""

    def __init__(self, tok):
        self.tok = tok
        self.eos_id = tok.eos_token_id
        self.bos_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_id

    def __len__(self):
        return len(self.tok)

    def decode(self, ids) -> str:
        ids = list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tok.decode(ids, skip_special_tokens=True).strip()


class CaptionDecoder:
    """Turns (n, embed_dim) unit embeddings into sentences."""

    def __init__(self, mapper: PrefixMapper, lm, tokenizer, model_id: str, device: str = "cpu",
                 stop_tokens: tuple[str, ...] = (".",)):
        self.mapper = mapper.to(device).eval()
        self.lm = lm.to(device).eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.embed_dim = mapper.net[0].in_features
        vocab = getattr(tokenizer, "index", None)
        self.stop_ids = {tokenizer.eos_id} | ({vocab[s] for s in stop_tokens if s in vocab} if vocab else set())

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> "CaptionDecoder":
        from transformers import GPT2LMHeadModel

        folder = Path(folder)
        cfg = read_config(folder, CLIPCAP_TYPE)
        lm_dir = folder / "lm"
        need_file(lm_dir, "config.json")
        lm = GPT2LMHeadModel.from_pretrained(str(lm_dir), local_files_only=True)
        mapper = PrefixMapper(cfg["embed_dim"], lm.config.n_embd, cfg["prefix_length"])
        load_weights(mapper, folder, "mapper.safetensors")
        if (folder / "vocab.json").exists():
            tok = WordTokenizer.from_pretrained(folder)
        else:
            from transformers import AutoTokenizer

            tok = _HFTokenizerAdapter(AutoTokenizer.from_pretrained(str(lm_dir), local_files_only=True))
        return cls(mapper, lm, tok, cfg.get("model_id", f"clipcap:{folder.name}"), device)

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.mapper.state_dict().items()},
                  str(folder / "mapper.safetensors"))
        self.lm.save_pretrained(str(folder / "lm"))
        (folder / "config.json").write_text(json.dumps({
            "model_type": CLIPCAP_TYPE, "prefix_length": self.mapper.prefix_length, "embed_dim": self.embed_dim,
            "model_id": self.model_id}, indent=1))
        if isinstance(self.tokenizer, WordTokenizer):
            self.tokenizer.save_pretrained(folder)

    def loss(self, embeddings: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of caption tokens ``ids`` (with BOS/EOS) given the embeddings."""
        prefix = self.mapper(embeddings)
        tok_emb = self.lm.transformer.wte(ids[:, :-1])
        h = torch.cat([prefix, tok_emb], dim=1)
        logits = self.lm(inputs_embeds=h).logits[:, prefix.shape[1] - 1:]
        target = ids.masked_fill(~mask, -100)
        target[:, 0] = -100  # BOS is given, not predicted
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def generate(self, embeddings, beam_size: int = 5, max_tokens: int = 30, batch_size: int = 64) -> list[str]:
        """Beam search from each embedding (n, embed_dim); stops at EOS or '.'."""
        e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        if e.ndim != 2 or e.shape[1] != self.embed_dim:
            raise InvalidInputError(f"embeddings must be (n, {self.embed_dim}), got {tuple(e.shape)}")
        out = []
        for a in range(0, len(e), batch_size):
            out.extend(self._beam(F.normalize(e[a:a + batch_size], dim=-1).to(self.device), beam_size, max_tokens))
        return out

    def _beam(self, e: torch.Tensor, k: int, max_tokens: int) -> list[str]:
        """Beam search with the language model's key/value cache: each step feeds only the newest token and
        reorders the cache to follow the surviving beams (same result as recomputing the whole sequence)."""
        n = e.shape[0]
        prefix = self.mapper(e)  # (n, P, D)
        bos = self.tokenizer.bos_id
        seqs = torch.full((n, 1, 1), bos, dtype=torch.long, device=self.device)  # (n, beams, len)
        scores = torch.zeros(n, 1, device=self.device)
        done = torch.zeros(n, 1, dtype=torch.bool, device=self.device)
        stop = torch.tensor(sorted(self.stop_ids), device=self.device)
        out = self.lm(inputs_embeds=torch.cat([prefix, self.lm.transformer.wte(seqs[:, 0])], dim=1), use_cache=True)
        past, logits = out.cache, out.logits[:, -1]
        for step in range(max_tokens):
            b = seqs.shape[1]
            logp = F.log_softmax(logits.float(), dim=-1).view(n, b, -1)
            V = logp.shape[-1]
            # finished beams only extend with a pad that costs nothing
            logp = torch.where(done[..., None], torch.full_like(logp, -1e9), logp)
            logp[..., self.tokenizer.pad_id] = torch.where(done, 0.0, -1e9)
            cand = (scores[..., None] + logp).view(n, -1)
            top, idx = cand.topk(min(k, cand.shape[1]), dim=1)
            beam, tok = idx // V, idx % V
            seqs = torch.cat([torch.gather(seqs, 1, beam[..., None].expand(-1, -1, seqs.shape[2])), tok[..., None]], 2)
            done = torch.gather(done, 1, beam) | torch.isin(tok, stop)
            scores = top
            if done.all() or step == max_tokens - 1:
                break
            src = (torch.arange(n, device=self.device)[:, None] * b + beam).reshape(-1)
            past.reorder_cache(src)
            out = self.lm(inputs_embeds=self.lm.transformer.wte(tok.reshape(-1, 1)), cache=past,
                          use_cache=True)
            past, logits = out.cache, out.logits[:, -1]
        # length-normalised best beam
        lengths = ((seqs != self.tokenizer.pad_id) & (seqs != bos)).sum(-1).clamp(min=1)
        best = (scores / lengths.float()).argmax(1)
        return [self.tokenizer.decode(seqs[i, best[i], 1:].tolist()).rstrip(" .") for i in range(n)]


def new_demo_captioner(tokenizer: WordTokenizer, embed_dim: int, prefix_length: int = 8, n_embd: int = 256,
                       n_layer: int = 3, n_head: int = 4, model_id: str = "voxelscope/demo-clipcap") -> CaptionDecoder:
    """An untrained demo caption decoder (prefix mapper + small GPT-2) for ``tokenizer``'s vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=prefix_length + tokenizer.max_length + 2, n_embd=n_embd,
                     n_layer=n_layer, n_head=n_head, bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                     pad_token_id=tokenizer.pad_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return CaptionDecoder(PrefixMapper(embed_dim, n_embd, prefix_length), GPT2LMHeadModel(cfg), tokenizer, model_id)
