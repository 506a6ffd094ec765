"""Test helpers: tiny random models built from configs (no downloads), and opening a page of the app (AppTest)."""
from __future__ import annotations

from pathlib import Path


def tiny_language_model(folder: Path, words: list[str]) -> Path:
    """A 1-layer GPT-2 with a word-level tokenizer over ``words`` (plus [UNK] and [EOS]), saved to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = ["[UNK]", "[EOS]"] + [w for w in words if w not in ("[UNK]", "[EOS]")]
    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", eos_token="[EOS]", pad_token="[EOS]")
    GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2, n_positions=512,
                               eos_token_id=1, bos_token_id=1)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return Path(folder)


def open_page(ws, monkeypatch, page: str, timeout: float = 240):
    """The app (AppTest) on workspace ``ws``, switched to ``views/<page>.py`` and run once."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(ws.path))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=timeout)
    at.switch_page(f"views/{page}.py").run()
    return at
