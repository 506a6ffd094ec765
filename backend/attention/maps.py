"""Where an ROI looks in an image: attention maps of the attention encoder, and dense selectivity maps.

* Attention maps: the last decoder layer's cross-attention of each query over the patch grid (mean over heads,
  or one head), each a distribution over the patches.
* Dense selectivity maps (BrainSAIL-style, Luo et al. 2024): the ROI's ridge encoder, fitted on the global image
  embedding, applied to every patch embedding (``Embedder.patch_embeddings``, the patches in the same joint
  space), averaged over a few shifted and mirrored views of the image (each map taken back to the original
  frame), which smooths the patch grid's blockiness and the artefacts of any one view.
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = ["attention_maps", "roi_weight_vector", "dense_maps", "upsample", "to_distribution", "DEFAULT_VIEWS",
           "patch_fractions"]

# (dx, dy, mirrored) in units of a patch: the original, half-patch shifts and the mirror image
DEFAULT_VIEWS = ((0.0, 0.0, False), (0.5, 0.0, False), (0.0, 0.5, False), (0.5, 0.5, False), (0.0, 0.0, True))


def attention_maps(encoder, tokens: np.ndarray, head: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Attention of every query over the patch grid for each image.

    Parameters
    ----------
    encoder : backend.encoders.attention.AttentionEncoder
    tokens : ndarray (n, P, d)
        Patch tokens of the images (``Embedder.patch_tokens``).
    head : int, optional
        One attention head (default: the mean over heads).

    Returns
    -------
    maps : ndarray (n, n_queries, rows, cols)
        Each map sums to 1.
    predicted : ndarray (n, n_voxels)
        The encoder's predicted responses to the same images.
    """
    pred, attn = encoder.predict(tokens, with_attention=True)  # attn (n, heads, Q, P)
    if head is not None and not 0 <= head < attn.shape[1]:
        raise InvalidInputError(f"head must be in 0..{attn.shape[1] - 1}, got {head}")
    a = attn.mean(1) if head is None else attn[:, head]
    rows, cols = encoder.grid
    return a.reshape(a.shape[0], a.shape[1], rows, cols), pred


def roi_weight_vector(W: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """The ROI's mean-response encoder: the mean of its voxels' ridge weights (n_voxels, dim) -> (dim,)."""
    voxels = np.asarray(voxels)
    if voxels.size == 0:
        raise InvalidInputError("the ROI has no voxels")
    return np.asarray(W)[voxels].mean(0)


def _view(image: np.ndarray, dx: int, dy: int, mirrored: bool) -> np.ndarray:
    """The image shifted by (dx, dy) pixels (edges replicated) and optionally mirrored left-right."""
    img = image[:, ::-1] if mirrored else image
    h, w = img.shape[:2]
    pad = np.pad(img, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    return np.ascontiguousarray(pad[abs(dy) - dy: abs(dy) - dy + h, abs(dx) - dx: abs(dx) - dx + w])


def upsample(grid_map: np.ndarray, size: int | tuple[int, int], smooth: bool = True) -> np.ndarray:
    """A (rows, cols) map at image resolution: bilinear (``smooth``) or blocks (each patch's value on its pixels)."""
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else size
    m = np.asarray(grid_map, np.float32)
    if not smooth:
        return np.kron(m, np.ones((h // m.shape[0], w // m.shape[1]), np.float32))
    return np.asarray(Image.fromarray(m, mode="F").resize((w, h), Image.BILINEAR), np.float32)


def dense_maps(embedder, weights: np.ndarray, images, views=DEFAULT_VIEWS, size: int | None = None) -> np.ndarray:
    """Dense selectivity maps of one or more ROIs over images.

    Parameters
    ----------
    embedder : Embedder
        With ``patch_embeddings`` and ``patch_grid``.
    weights : ndarray (k, dim) or (dim,)
        Encoders in the embedder's joint space (e.g. :func:`roi_weight_vector` of each ROI).
    images : ndarray (n, H, W, 3) uint8
    views : sequence of (dx, dy, mirrored)
        Shifts in patch units and mirroring; each view's map is taken back to the original frame.
    size : int, optional
        Output resolution (default: the images' own).

    Returns
    -------
    ndarray (n, k, size, size)
        The predicted response of each patch, averaged over views.
    """
    W = np.atleast_2d(np.asarray(weights, np.float32))
    images = np.asarray(images)
    n, H, Wd = images.shape[:3]
    size = size or H
    rows, cols = embedder.patch_grid
    out = np.zeros((n, W.shape[0], size, size), np.float32)
    for dx, dy, mirrored in views:
        px, py = round(dx * Wd / cols), round(dy * H / rows)
        batch = np.stack([_view(im, px, py, mirrored) for im in images])
        emb = embedder.patch_embeddings(batch)  # (n, P, dim)
        scores = emb @ W.T  # (n, P, k)
        for i in range(n):
            for k in range(W.shape[0]):
                m = upsample(scores[i, :, k].reshape(rows, cols), (H, Wd))
                # undo the view: shift back (edges replicated), then mirror back
                m = _view(m[..., None], -px, -py, False)[..., 0]
                if mirrored:
                    m = m[:, ::-1]
                out[i, k] += upsample(m, size) if size != H else m
    return out / len(views)


def to_distribution(m: np.ndarray) -> np.ndarray:
    """A map as a distribution over its pixels (for comparing dense maps with attention): the part above the
    map's mean, normalised to sum to 1 (uniform if the map is flat)."""
    m = np.asarray(m, np.float64)
    pos = np.clip(m - m.mean(), 0, None)
    s = pos.sum()
    return (pos / s if s > 0 else np.full_like(m, 1.0 / m.size)).astype(np.float32)


def patch_fractions(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The share of each patch of a (rows, cols) grid covered by a boolean/0-1 image ``mask`` (H, W)."""
    m = np.asarray(mask, np.float32)
    h, w = m.shape
    if h % rows == 0 and w % cols == 0:
        return m.reshape(rows, h // rows, cols, w // cols).mean((1, 3))
    from PIL import Image

    return np.asarray(Image.fromarray(m).resize((cols, rows), Image.Resampling.BOX), np.float32)
