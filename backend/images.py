"""Image utilities every stage may use: a grid of images as one array or PNG (galleries, previews, sample sheets)."""
from __future__ import annotations

import io

import numpy as np

__all__ = ["image_grid", "png_bytes"]


def image_grid(images, columns: int = 8, pad: int = 2, size: int | None = None, fill: int = 255) -> np.ndarray:
    """uint8 images (n, H, W, 3) -> one (rows * (S + pad) - pad, columns * (S + pad) - pad, 3) sheet, left to right,
    top to bottom; each image resized (nearest) to ``size`` (default: its own)."""
    from PIL import Image

    images = [np.asarray(i) for i in images]
    if not images:
        raise ValueError("no images to lay out")
    s = size or images[0].shape[0]
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    sheet = np.full((rows * (s + pad) - pad, columns * (s + pad) - pad, 3), fill, np.uint8)
    for k, im in enumerate(images):
        if im.shape[:2] != (s, s):
            im = np.asarray(Image.fromarray(im).resize((s, s), Image.NEAREST if im.shape[0] < s else Image.BILINEAR))
        r, c = divmod(k, columns)
        sheet[r * (s + pad):r * (s + pad) + s, c * (s + pad):c * (s + pad) + s] = im[..., :3]
    return sheet


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB uint8 array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
