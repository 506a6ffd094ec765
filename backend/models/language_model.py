"""Optional causal language model (any local transformers AutoModelForCausalLM folder), used by LaVCa."""
from __future__ import annotations

from pathlib import Path

import torch


class LanguageModel:
    """A local causal language model folder (transformers), greedy ``generate(prompt)``."""
    def __init__(self, model, tokenizer, model_id: str, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> "LanguageModel":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(folder)
        for name in ("config.json",):
            if not (folder / name).exists():
                raise FileNotFoundError(f"model folder {folder} has no {name}")
        if not any((folder / n).exists() for n in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
            raise FileNotFoundError(f"model folder {folder} has no tokenizer.json")
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        return cls(model, tok, f"hf:{folder.name}", device)

    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int = 40) -> str:
        enc = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                  pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
