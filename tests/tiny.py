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


def _clip_tokenizer(folder: Path, words: list[str], max_length: int = 77):
    import json

    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"{w}</w>": i + 2 for i, w in enumerate(words)}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v.json").write_text(json.dumps(vocab))
    (folder / "m.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "v.json"), str(folder / "m.txt"), model_max_length=max_length), len(vocab)


def tiny_hf_clip(folder: Path, image_size: int = 32, dim: int = 16) -> Path:
    """A 1-layer transformers CLIPModel (ViT, patch 8) with its processor, saved to ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok, n = _clip_tokenizer(Path(folder) / "tok", ["a", "face", "food", "!"])
    cfg = CLIPConfig(text_config=dict(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=16, eos_token_id=1,
                                      bos_token_id=0),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                        image_size=image_size, patch_size=8), projection_dim=dim)
    CLIPModel(cfg).save_pretrained(folder)
    size = {"height": image_size, "width": image_size}
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size=size),
                  tokenizer=tok).save_pretrained(folder)
    return Path(folder)


def tiny_stable_diffusion(folder: Path, latent_size: int = 8) -> Path:
    """A Stable Diffusion pipeline (UNet2DConditionModel with cross-attention, VAE, CLIP text model, DDIM) with a
    few thousand random weights, images of 2 * ``latent_size`` pixels, saved to ``folder``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok, n = _clip_tokenizer(Path(folder).parent / (Path(folder).name + "_tok"), ["a", "face"], max_length=8)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=n, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=8, eos_token_id=1, bos_token_id=0))
    unet = UNet2DConditionModel(sample_size=latent_size, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=8, sample_size=2 * latent_size)
    StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=DDIMScheduler(),
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)
    return Path(folder)


def open_page(ws, monkeypatch, page: str, timeout: float = 240):
    """The app (AppTest) on workspace ``ws``, switched to ``views/<page>.py`` and run once."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(ws.path))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=timeout)
    at.switch_page(f"views/{page}.py").run()
    return at
