"""One image through a subject's attention encoder: each ROI's attention map and predicted response, its dense
selectivity map, and an ROI's average attention over its preferred images; the grid figure the page exports."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..store import Workspace, require_subject
from .maps import attention_maps, dense_maps, patch_fractions, roi_weight_vector, upsample

__all__ = ["ImageAttention", "image_attention", "attention_on_objects", "roi_dense_map", "roi_average_attention", "attention_grid_png",
           "map_overlay_png", "load_image_file"]


@dataclass
class ImageAttention:
    """Attention of every query of one subject's encoder over one image."""
    image: np.ndarray  # (H, W, 3) uint8
    names: list[str]  # query names, e.g. "FFA-1 lh"
    maps: np.ndarray  # (n_queries, rows, cols), mean over heads, each sums to 1
    heads: np.ndarray  # (n_heads, n_queries, rows, cols)
    responses: dict[str, float]  # query name -> mean predicted response of its voxels
    predicted: np.ndarray  # (n_voxels,) predicted response of every voxel

    def map_of(self, name: str, head: int | None = None) -> np.ndarray:
        if name not in self.names:
            raise InvalidInputError(f"no query {name!r} (queries: {', '.join(self.names[:6])}, ...)")
        q = self.names.index(name)
        return self.maps[q] if head is None else self.heads[head, q]


MAX_UPLOAD_BYTES = 25_000_000
MAX_PIXELS = 25_000_000


def load_image_file(data: bytes, name: str = "upload") -> np.ndarray:
    """An uploaded PNG/JPEG as RGB uint8, centre-cropped to a square; a clear error for anything else (not an
    image, another format, too small, over ``MAX_UPLOAD_BYTES`` or ``MAX_PIXELS``)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInputError(f"{name} is {len(data) / 1e6:.0f} MB; images up to {MAX_UPLOAD_BYTES / 1e6:.0f} MB "
                                "are accepted")
    try:
        img = Image.open(io.BytesIO(data))
        if img.size[0] * img.size[1] > MAX_PIXELS:  # checked before the pixels are decoded
            raise InvalidInputError(f"{name} is {img.size[0]}x{img.size[1]} pixels; images up to "
                                    f"{MAX_PIXELS / 1e6:.0f} megapixels are accepted")
        img.load()
    except Image.DecompressionBombError as exc:  # Pillow's own guard, before ours, for very large claims
        raise InvalidInputError(f"{name} is larger than {MAX_PIXELS / 1e6:.0f} megapixels ({exc}); images up to "
                                f"{MAX_PIXELS / 1e6:.0f} megapixels are accepted") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{name} is not a readable PNG or JPEG image ({exc})") from None
    if img.format not in ("PNG", "JPEG"):
        raise InvalidInputError(f"{name} is a {img.format} image; upload a PNG or JPEG")
    if min(img.size) < 16:
        raise InvalidInputError(f"{name} is {img.size[0]}x{img.size[1]} pixels; at least 16x16 is needed")
    img = img.convert("RGB")
    side = min(img.size)  # centre square, as the stimuli are
    left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)))


def image_attention(ws: Workspace, subject: str, image: np.ndarray, encoder, embedder) -> ImageAttention:
    """Attention maps (mean and per head) and predicted responses of ``subject``'s attention encoder for ``image``."""
    subject = require_subject(ws, subject)
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise InvalidInputError(f"the image must be RGB uint8 (H, W, 3), got {img.dtype} {img.shape}")
    pred, attn = encoder.predict(embedder.patch_tokens(img[None]), with_attention=True)
    rows, cols = encoder.grid
    heads = attn[0].reshape(attn.shape[1], attn.shape[2], rows, cols)
    responses = {}
    for q, name in enumerate(encoder.names):
        vox = np.flatnonzero(encoder.query_index == q)
        responses[name] = float(pred[0, vox].mean()) if vox.size else float("nan")
    return ImageAttention(img, list(encoder.names), heads.mean(0), heads, responses, pred[0])


def attention_on_objects(att: ImageAttention, mask: np.ndarray, labels: list[str], names: list[str] | None = None,
                         head: int | None = None):
    """Where each query's attention goes among the objects of the image (for images with object masks: the
    dataset's, or one composed from the demo world's grammar).

    Parameters
    ----------
    mask : ndarray (H, W) int
        0 = background, k = the k-th object (``labels[k - 1]``), as :func:`backend.datasets.stimulus_masks`.
    labels : list of str
        A name per object ("face", "house (right)", ...); repeated names are numbered.
    names : list of str, optional
        The queries (default: all).

    Returns
    -------
    DataFrame
        Index: ``"share of the image"`` (each object's area: what attention spread evenly would give), then
        one row per query; columns: the objects, then ``background``; each row sums to 1.
    """
    import pandas as pd

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidInputError(f"the object mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.max() > len(labels):
        raise InvalidInputError(f"the mask has object {int(mask.max())} but only {len(labels)} labels were given")
    cols_, seen = [], {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        cols_.append(lab if labels.count(lab) == 1 else f"{lab} {seen[lab]}")
    rows, cols = att.maps.shape[1:]
    fracs = np.stack([patch_fractions(mask == k, rows, cols) for k in range(len(labels) + 1)])  # (K+1, r, c)
    names = list(att.names) if names is None else names
    share = np.stack([(fracs * att.map_of(n, head)[None]).sum((1, 2)) for n in names])  # (Q, K+1)
    area = np.array([(mask == k).mean() for k in range(len(labels) + 1)])
    table = np.vstack([area[None], share])
    return pd.DataFrame(np.concatenate([table[:, 1:], table[:, :1]], axis=1),
                        index=["share of the image"] + names, columns=cols_ + ["background"])


def roi_dense_map(ws: Workspace, subject: str, roi: str, hemi: str, image: np.ndarray, embedder,
                  ridge_weights: np.ndarray) -> np.ndarray:
    """The dense selectivity map (image resolution) of ``roi`` in ``hemi`` for ``image``."""
    vox = ws.query("SELECT voxel FROM voxels WHERE subject = ? AND roi = ? AND hemi = ? ORDER BY voxel",
                   [require_subject(ws, subject), roi, hemi]).voxel.to_numpy()
    if vox.size == 0:
        raise InvalidInputError(f"{subject} has no voxels in {roi} ({hemi})")
    return dense_maps(embedder, roi_weight_vector(ridge_weights, vox), np.asarray(image)[None])[0, 0]


def roi_average_attention(ws: Workspace, subject: str, name: str, encoder, tokens: np.ndarray,
                          n_images: int = 50) -> tuple[np.ndarray, list[int]]:
    """A query's attention averaged over the training images its voxels respond to most (measured mean
    response); returns the (rows, cols) map and those images' stim ids."""
    from ..datasets import subject_betas
    from ..store import stimulus_ids

    if name not in encoder.names:
        raise InvalidInputError(f"no query {name!r} in this encoder")
    q = encoder.names.index(name)
    vox = np.flatnonzero(encoder.query_index == q)
    betas, rows = subject_betas(ws, subject)
    train = (rows.split == "train").to_numpy()
    score = np.asarray(betas, np.float32)[:, vox].mean(1)
    score[~train] = -np.inf
    top = np.argsort(-score)[:n_images]
    ids = rows.stim_id.to_numpy()[top]
    pos = np.searchsorted(stimulus_ids(ws), ids)
    maps, _ = attention_maps(encoder, np.asarray(tokens[pos], np.float32))
    return maps[:, q].mean(0), [int(i) for i in ids]


def attention_grid_png(att: ImageAttention, names: list[str] | None = None, head: int | None = None,
                       alpha: float = 0.6, cmap: str = "inferno", columns: int = 6, cell: float = 2.0) -> bytes:
    """The image with each query's attention map over it, one panel per query, titled with the query's predicted
    response; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = names or att.names
    n = len(names) + 1
    cols = min(columns, n)
    rws = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rws, cols, figsize=(cols * cell, rws * (cell + 0.3)), squeeze=False)
    h, w = att.image.shape[:2]
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(att.image)
    axes[0, 0].set_title("image", fontsize=8)
    for k, name in enumerate(names, start=1):
        ax = axes.ravel()[k]
        m = upsample(att.map_of(name, head), (h, w))
        ax.imshow(att.image)
        lo, hi = float(m.min()), float(m.max())  # each map on its own range, as attention maps are usually shown
        ax.imshow(m, cmap=cmap, alpha=alpha, vmin=lo, vmax=hi if hi > lo else lo + 1e-9)
        ax.set_title(f"{name} · {att.responses.get(name, float('nan')):+.2f}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def map_overlay_png(image: np.ndarray, m: np.ndarray, title: str = "", alpha: float = 0.6, cmap: str = "inferno",
                    size: float = 4.0, diverging: bool = False) -> bytes:
    """One map (patch grid or image resolution) over the image, with a colour bar; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = np.asarray(image).shape[:2]
    up = upsample(m, (h, w)) if np.asarray(m).shape != (h, w) else np.asarray(m, np.float32)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    ax.imshow(image)
    if diverging:
        lim = float(np.abs(up).max()) or 1.0
        im = ax.imshow(up, cmap="RdBu_r", alpha=alpha, vmin=-lim, vmax=lim)
    else:
        im = ax.imshow(up, cmap=cmap, alpha=alpha, vmin=float(up.min()), vmax=float(up.max()) or 1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
