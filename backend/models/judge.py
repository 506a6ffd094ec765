"""The judge: the simulated subjects' eyes. From pixels alone it recovers what the demo world's responses depend
on, so that any image (generated, reconstructed, uploaded) can be shown to a synthetic subject.

* a small fully convolutional segmentation network (a U-Net of its own, sharing nothing with the embedder)
  labels every pixel as background or one of the world's categories (face, body, place, food, word, object);
* a global head classifies the background (plain, indoor, outdoor);
* contrast energy is computed, not learned (:func:`backend.datasets.image_features.contrast_energy`).

``Judge.features(images)`` gives, per image, the visible area of every object it finds (connected regions of one
category, nearby pieces joined), which :mod:`backend.simulate` turns into the world's semantic features.
Trained by ``python -m backend models train judge`` (:func:`backend.models.demo.train.train_judge`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ._files import load_weights, read_config

__all__ = ["JUDGE_CLASSES", "BACKGROUND_TYPES", "JudgeNet", "Judge", "JUDGE_PATH", "load_judge", "objects_in"]

JUDGE_CLASSES = ("background", "face", "body", "place", "food", "word", "object")
BACKGROUND_TYPES = ("plain", "indoor", "outdoor")
JUDGE_PATH = Path(__file__).resolve().parent.parent.parent / "assets" / "models" / "judge"


def _net(width: int = 16, size: int = 64):
    import torch
    from torch import nn

    def block(a, b):
        return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(8, b), nn.SiLU(),
                             nn.Conv2d(b, b, 3, padding=1), nn.GroupNorm(8, b), nn.SiLU())

    class Net(nn.Module):
        """U-Net: 3 down-steps (64 -> 8 px), skip connections back up; a background head on the bottleneck."""

        def __init__(self):
            super().__init__()
            w = [width, width * 2, width * 4, width * 6]
            self.size = size
            self.enc = nn.ModuleList([block(3, w[0]), block(w[0], w[1]), block(w[1], w[2]), block(w[2], w[3])])
            self.up = nn.ModuleList([nn.ConvTranspose2d(w[k + 1], w[k], 2, stride=2) for k in range(3)])
            self.dec = nn.ModuleList([block(2 * w[k], w[k]) for k in range(3)])
            self.seg = nn.Conv2d(w[0], len(JUDGE_CLASSES), 1)
            self.bg = nn.Sequential(nn.Linear(w[3] + w[0], 64), nn.SiLU(), nn.Linear(64, len(BACKGROUND_TYPES)))

        def forward(self, x, with_features: bool = False):  # x: (n, 3, size, size) in [-1, 1]
            skips = []
            for k, b in enumerate(self.enc):
                x = b(x if k == 0 else torch.nn.functional.max_pool2d(x, 2))
                skips.append(x)
            bottom = x
            for k in (2, 1, 0):
                x = self.dec[k](torch.cat([self.up[k](x), skips[k]], 1))
            g = torch.cat([bottom.mean((2, 3)), x.mean((2, 3))], 1)
            return (self.seg(x), self.bg(g), g) if with_features else (self.seg(x), self.bg(g))

    return Net()


JudgeNet = _net  # the architecture (a factory: torch is imported only when a judge is built)


class Judge:
    """A trained judge. ``segment`` labels pixels; ``features`` lists the objects it sees."""

    def __init__(self, net, config: dict, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.config = config
        self.size = int(config["size"])
        self.device = device
        self.model_id = config.get("model_id", "voxelscope/demo-judge")

    @classmethod
    def from_pretrained(cls, folder: str | Path = JUDGE_PATH, device: str = "cpu") -> "Judge":
        folder = Path(folder)
        cfg = read_config(folder, "voxelscope-judge")
        net = _net(cfg["width"], cfg["size"])
        load_weights(net, folder)
        return cls(net, cfg, device)

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in self.net.state_dict().items()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({**self.config, "model_type": "voxelscope-judge"}, indent=1))

    def preprocess(self, images):
        """RGB uint8 images (a list of arrays of any size, or an (n, H, W, 3) array) -> (n, 3, size, size)."""
        import torch
        import torch.nn.functional as F

        batch = []
        for k, im in enumerate(images):
            a = np.asarray(im)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise InvalidInputError(f"image {k}: the judge needs RGB uint8 (H, W, 3), got {a.dtype} {a.shape}")
            t = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 127.5 - 1
            if t.shape[-1] != self.size or t.shape[-2] != self.size:
                t = F.interpolate(t, size=(self.size, self.size), mode="area" if a.shape[0] > self.size else "bilinear",
                                  **({} if a.shape[0] > self.size else {"align_corners": False}))
            batch.append(t)
        return torch.cat(batch).to(self.device)

    def segment(self, images, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(labels (n, size, size) uint8 indices into JUDGE_CLASSES, background probabilities (n, 3))."""
        import torch

        labs, bgs = [], []
        images = list(images)
        with torch.no_grad():
            for a in range(0, len(images), batch):
                seg, bg = self.net(self.preprocess(images[a:a + batch]))
                labs.append(seg.argmax(1).to(torch.uint8).cpu().numpy())
                bgs.append(bg.softmax(-1).cpu().numpy())
        return np.concatenate(labs), np.concatenate(bgs)

    def embed(self, images, batch: int = 64) -> np.ndarray:
        """(n, d) pooled features of the judge's network (for Frechet distances between image sets)."""
        import torch

        out = []
        images = list(images)
        with torch.no_grad():
            for a in range(0, len(images), batch):
                out.append(self.net(self.preprocess(images[a:a + batch]), with_features=True)[2].cpu().numpy())
        return np.concatenate(out)

    def features(self, images, batch: int = 64, min_pixels: int = 10, join: int = 3
                 ) -> tuple[list[list[dict]], list[str], np.ndarray]:
        """What the simulated subject sees in each image.

        An object is a connected region (8-neighbours) of one category after a ``join`` x ``join`` morphological
        closing of that category's pixels, so the letters of one word, or an object cut by a thin mislabelled line,
        count once (the world's response sums sqrt(area) per object: counting each letter of a word as an object
        inflates it). Regions with fewer than ``min_pixels`` pixels of the category are dropped as noise.

        Returns
        -------
        objects : list (per image) of dicts ``category, area`` (area = the region's pixels of its category, as a
            share of the image)
        backgrounds : list of str, the most likely background type per image
        labels : (n, size, size) uint8, the segmentation
        """
        labels, bg = self.segment(images, batch)
        return objects_in(labels, min_pixels, join), [BACKGROUND_TYPES[i] for i in bg.argmax(1)], labels


def objects_in(labels: np.ndarray, min_pixels: int = 10, join: int = 3) -> list[list[dict]]:
    """The objects of segmentations ``labels`` ((n, H, W) indices into JUDGE_CLASSES): per image, dicts
    ``category, area``; grouping as in :meth:`Judge.features`."""
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    objects = []
    for lab in labels:
        objs = []
        for c in range(1, len(JUDGE_CLASSES)):
            mask = lab == c
            if not mask.any():
                continue
            grown = mask | ndimage.binary_closing(mask, np.ones((join, join), bool)) if join > 1 else mask
            comp, n = ndimage.label(grown, structure=eight)
            sizes = np.bincount(comp[mask], minlength=n + 1)[1:]
            objs += [{"category": JUDGE_CLASSES[c], "area": float(s / lab.size)} for s in sizes if s >= min_pixels]
        objects.append(objs)
    return objects


def load_judge(folder: str | Path | None = None, device: str = "cpu") -> Judge:
    """The judge shipped in ``assets/models/judge`` (or ``folder``)."""
    return Judge.from_pretrained(folder or JUDGE_PATH, device)
