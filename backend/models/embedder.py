"""Image/text embedders (CLIP-like): one interface for our demo model and Hugging Face CLIP folders.

``load_embedder(folder, device)`` reads ``folder/config.json``:

* ``"model_type": "voxelscope-demo-clip"`` -> :class:`DemoClip` (conv image tower, transformer text tower);
* ``"model_type": "clip"`` (a transformers ``CLIPModel`` folder, e.g. openai/clip-vit-base-patch32
  saved locally) -> :class:`HFClipEmbedder`.

Every embedder gives unit-normalised ``image_features`` (n, dim), ``text_features`` (n, dim) and
``patch_tokens`` (n, n_patches, dim), takes uint8 RGB images (n, H, W, 3) and runs on ``device``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InvalidInputError
from ._files import load_weights, read_config
from .tokenizer import WordTokenizer

__all__ = ["Embedder", "DemoClip", "HFClipEmbedder", "EMBEDDER_TYPES", "load_embedder"]

DEMO_TYPE = "voxelscope-demo-clip"


class ChannelNorm(nn.Module):
    """LayerNorm over the channels at each position: unlike GroupNorm it mixes nothing across positions, so a
    patch token depends only on its receptive field."""
    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _norm(kind: str, channels: int) -> nn.Module:
    """``"group"``: GroupNorm(8) (statistics over the whole image); ``"channel"``: :class:`ChannelNorm`."""
    if kind == "group":
        return nn.GroupNorm(8, channels)
    if kind == "channel":
        return ChannelNorm(channels)
    raise InvalidInputError(f"image_norm must be 'group' or 'channel', got {kind!r}")


class ConvBlock(nn.Module):
    """Conv 3x3 -> norm -> GELU, twice."""
    def __init__(self, cin: int, cout: int, stride: int, norm: str = "group"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(norm, cout), nn.GELU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _norm(norm, cout), nn.GELU())

    def forward(self, x):
        return self.net(x)


class ConvImageTower(nn.Module):
    """64x64 image -> 8x8 grid of patch tokens (dim) and a pooled embedding (dim)."""

    def __init__(self, width: int, dim: int, norm: str = "group"):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 4, 2, 1), _norm(norm, width), nn.GELU(),  # 32x32
                                 ConvBlock(width, 2 * width, 2, norm),  # 16x16
                                 ConvBlock(2 * width, 4 * width, 2, norm),  # 8x8
                                 ConvBlock(4 * width, 8 * width, 1, norm))
        self.patch = nn.Conv2d(8 * width, dim, 1)
        self.pool = nn.Linear(dim, dim)
        # where things are: a small per-position code, flattened (mean pooling alone forgets position)
        self.where = nn.Conv2d(8 * width, 16, 1)
        self.where_proj = nn.Linear(16 * 64, dim)

    def forward(self, x):
        h = self.net(x)
        tokens = self.patch(h).flatten(2).transpose(1, 2)  # (B, 64, dim)
        return tokens, self.pool(tokens.mean(1)) + self.where_proj(self.where(h).flatten(1))


class TextTower(nn.Module):
    """A small transformer over word tokens, pooled at the end token."""
    def __init__(self, vocab: int, dim: int, layers: int, heads: int, max_length: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(max_length, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, ids, mask):
        h = self.tok(ids) + self.pos[: ids.shape[1]]
        h = self.norm(self.enc(h, src_key_padding_mask=~mask))
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.proj(pooled)


class DemoClipModel(nn.Module):
    """The demo dual encoder (conv image tower with patch tokens, transformer text tower), CLIP-style."""
    def __init__(self, vocab: int, dim: int = 256, width: int = 32, text_layers: int = 3, heads: int = 4,
                 max_length: int = 32, image_size: int = 64, image_norm: str = "group"):
        super().__init__()
        self.config = dict(model_type=DEMO_TYPE, vocab=vocab, dim=dim, width=width, text_layers=text_layers,
                           heads=heads, max_length=max_length, image_size=image_size, image_norm=image_norm)
        self.image = ConvImageTower(width, dim, image_norm)
        self.text = TextTower(vocab, dim, text_layers, heads, max_length)
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, S, S), normalised."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        s = self.config["image_size"]
        if x.shape[-1] != s:
            x = F.interpolate(x, size=(s, s), mode="area" if x.shape[-1] > s else "bilinear")
        return (x - 0.5) / 0.25


def _to_uint8_batch(images) -> np.ndarray:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        arr = images
    else:
        arr = np.stack([np.asarray(i) for i in images])
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise InvalidInputError(f"images must be uint8 RGB (n, H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


class Embedder:
    """The interface every image/text embedder offers.

    Images are uint8 RGB (n, H, W, 3); every feature is unit-normalised in the joint image-text space:
    ``image_features`` (n, dim), ``text_features`` (n, dim), ``patch_embeddings`` (n, n_patches, dim);
    ``patch_tokens`` (n, n_patches, token dim) are the tower's own patch tokens (the attention encoder's input), on a
    ``patch_grid`` of (rows, columns);
    ``image_features_torch`` is the differentiable path for methods that optimise images.
    """

    model_id: str
    dim: int
    device: str

    def image_features(self, images, batch_size: int = 256) -> np.ndarray:  # (n, dim), unit norm
        raise NotImplementedError

    def text_features(self, texts, batch_size: int = 256) -> np.ndarray:  # (n, dim), unit norm
        raise NotImplementedError

    def patch_tokens(self, images, batch_size: int = 256) -> np.ndarray:  # (n, n_patches, dim)
        raise NotImplementedError

    def patch_embeddings(self, images, batch_size: int = 256) -> np.ndarray:  # (n, n_patches, dim), unit norm
        """Each patch token taken to the joint image-text space the way the pooled token is (BrainSAIL's dense
        features): an encoder fitted on ``image_features`` can be applied to every patch."""
        raise NotImplementedError

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(rows, columns) of the patch grid, row-major as in ``patch_tokens``."""
        raise NotImplementedError

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the text tower cannot represent (a word-level vocabulary); [] for subword models."""
        return []


class DemoClip(Embedder):
    """Our demo CLIP: trained by ``python -m backend models train`` on the procedural world."""

    def __init__(self, model: DemoClipModel, tokenizer: WordTokenizer, model_id: str, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.dim = model.config["dim"]
        self.device = device

    def unknown_words(self, text: str) -> list[str]:
        from .tokenizer import words

        return [w for w in words(text) if w not in self.tokenizer.index]

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> "DemoClip":
        folder = Path(folder)
        cfg = read_config(folder, DEMO_TYPE)
        kw = {k: cfg[k] for k in ("vocab", "dim", "width", "text_layers", "heads", "max_length", "image_size")}
        kw["image_norm"] = cfg.get("image_norm", "group")  # folders saved before the option existed: GroupNorm
        model = DemoClipModel(**kw)
        load_weights(model, folder)
        tok = WordTokenizer.from_pretrained(folder)
        return cls(model, tok, cfg.get("model_id", f"demo:{folder.name}"), device)

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({**self.model.config, "model_id": self.model_id}, indent=1))
        self.tokenizer.save_pretrained(folder)

    @torch.no_grad()
    def _images(self, images, batch_size, what: str):
        arr = _to_uint8_batch(images)
        out = []
        for a in range(0, len(arr), batch_size):
            x = self.model.preprocess(torch.from_numpy(np.array(arr[a:a + batch_size])).to(self.device))
            tokens, pooled = self.model.image(x)
            # "patches" in the joint space: the pooling head applied to each token (the pooled embedding is
            # pool(mean of tokens) plus a global position code, which no single patch has)
            f = {"pooled": pooled, "tokens": tokens, "patches": self.model.image.pool(tokens)}[what]
            out.append(F.normalize(f, dim=-1).cpu())
        return torch.cat(out).numpy()

    def image_features(self, images, batch_size: int = 256) -> np.ndarray:
        return self._images(images, batch_size, "pooled")

    def patch_tokens(self, images, batch_size: int = 256) -> np.ndarray:
        return self._images(images, batch_size, "tokens")

    def patch_embeddings(self, images, batch_size: int = 256) -> np.ndarray:
        return self._images(images, batch_size, "patches")

    @property
    def patch_grid(self) -> tuple[int, int]:
        g = self.model.config["image_size"] // 8  # three stride-2 stages
        return g, g

    @torch.no_grad()
    def text_features(self, texts, batch_size: int = 256) -> np.ndarray:
        texts = list(texts)
        out = []
        for a in range(0, len(texts), batch_size):
            ids, mask = self.tokenizer.batch(texts[a:a + batch_size])
            out.append(F.normalize(self.model.text(ids.to(self.device), mask.to(self.device)), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    # differentiable path, for methods that optimise images through the embedder (BrainDiVE)
    def image_features_torch(self, x01: torch.Tensor) -> torch.Tensor:
        """x01: float (B, 3, H, W) in [0, 1] -> unit embeddings (B, dim), differentiable."""
        s = self.model.config["image_size"]
        x = F.interpolate(x01, size=(s, s), mode="bilinear", antialias=True) if x01.shape[-1] != s else x01
        return F.normalize(self.model.image((x - 0.5) / 0.25)[1], dim=-1)


class HFClipEmbedder(Embedder):
    """A transformers ``CLIPModel`` folder (with its processor files), loaded offline."""

    def __init__(self, model, processor, model_id: str, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.processor = processor
        self.model_id = model_id
        self.dim = self.model.config.projection_dim
        self.device = device

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> "HFClipEmbedder":
        from transformers import CLIPModel, CLIPProcessor

        folder = Path(folder)
        cfg = read_config(folder, "clip")
        if not any((folder / n).exists() for n in ("model.safetensors", "pytorch_model.bin")):
            raise FileNotFoundError(f"model folder {folder} has no model.safetensors")
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True)
        processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
        return cls(model, processor, cfg.get("_name_or_path") or f"hf:{folder.name}", device)

    def _pixel_batches(self, images, batch_size: int):
        arr = _to_uint8_batch(images)
        for a in range(0, len(arr), batch_size):
            yield self.processor(images=list(arr[a:a + batch_size]), return_tensors="pt")["pixel_values"].to(self.device)

    @torch.no_grad()
    def image_features(self, images, batch_size: int = 64) -> np.ndarray:
        out = []
        for px in self._pixel_batches(images, batch_size):
            f = self.model.get_image_features(pixel_values=px)
            out.append(F.normalize(getattr(f, "pooler_output", f), dim=-1).cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def text_features(self, texts, batch_size: int = 256) -> np.ndarray:
        texts = list(texts)
        out = []
        for a in range(0, len(texts), batch_size):
            enc = self.processor(text=texts[a:a + batch_size], return_tensors="pt", padding=True, truncation=True)
            f = self.model.get_text_features(**{k: v.to(self.device) for k, v in enc.items()})
            f = getattr(f, "pooler_output", f)
            out.append(F.normalize(f, dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def _patches(self, images, batch_size: int, project: bool) -> np.ndarray:
        out = []
        for px in self._pixel_batches(images, batch_size):
            h = self.model.vision_model.post_layernorm(self.model.vision_model(pixel_values=px).last_hidden_state[:, 1:])
            out.append(F.normalize(self.model.visual_projection(h) if project else h, dim=-1).cpu())
        return torch.cat(out).numpy()

    def patch_tokens(self, images, batch_size: int = 64) -> np.ndarray:
        """The vision tower's last-layer patch tokens (layer-normed; hidden size), as the attention encoder reads them."""
        return self._patches(images, batch_size, project=False)

    def patch_embeddings(self, images, batch_size: int = 64) -> np.ndarray:
        return self._patches(images, batch_size, project=True)

    @property
    def patch_grid(self) -> tuple[int, int]:
        c = self.model.config.vision_config
        g = c.image_size // c.patch_size
        return g, g

    def image_features_torch(self, x01: torch.Tensor) -> torch.Tensor:
        size = self.processor.image_processor.crop_size["height"]
        mean = torch.tensor(self.processor.image_processor.image_mean, device=x01.device)[None, :, None, None]
        std = torch.tensor(self.processor.image_processor.image_std, device=x01.device)[None, :, None, None]
        x = F.interpolate(x01, size=(size, size), mode="bicubic", antialias=True)
        f = self.model.get_image_features(pixel_values=(x - mean) / std)
        return F.normalize(getattr(f, "pooler_output", f), dim=-1)


# config.json "model_type" -> the class that loads such a folder
EMBEDDER_TYPES: dict[str, type[Embedder]] = {DEMO_TYPE: DemoClip, "clip": HFClipEmbedder}


def load_embedder(folder: str | Path, device: str = "cpu") -> Embedder:
    """The embedder in ``folder``, by the ``model_type`` of its ``config.json`` (see ``EMBEDDER_TYPES``)."""
    kind = read_config(Path(folder)).get("model_type")
    if kind not in EMBEDDER_TYPES:
        raise InvalidInputError(f"{Path(folder) / 'config.json'}: model_type {kind!r} is not an embedder "
                                f"(expected one of {', '.join(map(repr, EMBEDDER_TYPES))})")
    return EMBEDDER_TYPES[kind].from_pretrained(folder, device)
