"""Reconstruction metrics as the field computes them (MindEye2's final evaluation, which Brain-IT reports).

Usable on any two image sets of equal length (seen[i] is what reconstruction[i] tries to be):

- **PixCorr**: both resized to 425 px (bilinear), RGB flattened, Pearson r per pair, mean.
- **SSIM**: resized to 425 px, grayscale, scikit-image SSIM with gaussian weights, sigma 1.5, no sample covariance,
  data range 1, mean over pairs.
- **2-way identification** with a feature network: features of every seen and every reconstructed image
  flattened; R[i, j] = Pearson r(seen i, reconstruction j); for each j the share of other seen images i with
  R[i, j] < R[j, j]; mean (chance 50%).
- **feature distance** (1 - Pearson r between a pair's features, mean; lower is better), the EfficientNet / SwAV
  columns of the papers.

Every image first goes to 256 px, as in MindEye2's evaluation. Feature networks are :class:`FeatureNet` objects;
:func:`demo_feature_nets` gives the demo world's (the judge's early and late layers as low- and high-level
analogues of AlexNet(2) / AlexNet(5), the embedder's patch tokens and global embedding as the CLIP analogue);
:func:`metric_feature_nets` gives the field's networks (:mod:`.field_nets`: AlexNet, InceptionV3, EfficientNet-B1,
SwAV ResNet-50 from local state-dict files named in ``models.toml``'s ``[metrics]``, and the configured CLIP
embedder) where they are configured, else the demo world's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InvalidInputError

__all__ = ["pixcorr", "ssim", "two_way_identification", "feature_distance", "FeatureNet", "demo_feature_nets",
           "clip_feature_net", "metric_feature_nets", "field_feature_nets", "evaluate_pairs", "METRIC_COLUMNS",
           "PAPER_ROWS", "higher_is_better"]

EVAL_SIZE = 256  # everything is first brought to this size
PIX_SIZE = 425

# the papers' NSD figures (Brain-IT 2025 table; 40 h and 1 h of data), shown as reference rows for real data only
PAPER_ROWS = {
    "Brain-IT (NSD, 40 h)": {"PixCorr": 0.386, "SSIM": 0.486, "Alex(2)": 0.984, "Alex(5)": 0.995, "Incep": 0.973,
                             "CLIP": 0.964, "Eff": 0.564, "SwAV": 0.320},
    "MindEye2 (NSD, 40 h)": {"PixCorr": 0.322, "SSIM": 0.431, "Alex(2)": 0.961, "Alex(5)": 0.986, "Incep": 0.954,
                             "CLIP": 0.930, "Eff": 0.619, "SwAV": 0.344},
    "Brain-IT (NSD, 1 h)": {"PixCorr": 0.331, "SSIM": 0.473, "Alex(2)": 0.971, "Alex(5)": 0.986, "Incep": 0.944,
                            "CLIP": 0.930, "Eff": 0.648, "SwAV": 0.370},
}
METRIC_COLUMNS = ["PixCorr", "SSIM", "Alex(2)", "Alex(5)", "Incep", "CLIP", "Eff", "SwAV"]  # the papers' order


def higher_is_better(metric: str) -> bool:
    return not (metric.endswith("dist") or metric in ("Eff", "SwAV"))


def _as_float_batch(images, name: str) -> np.ndarray:
    """uint8 (n, H, W, 3) or a list of such arrays (any sizes) -> float32 (n, 256, 256, 3) in [0, 1]."""
    from PIL import Image

    out = []
    for k, im in enumerate(images):
        a = np.asarray(im)
        if a.ndim != 3 or a.shape[2] != 3:
            raise InvalidInputError(f"{name} image {k}: need RGB (H, W, 3), got shape {a.shape}")
        if a.dtype != np.uint8:
            if a.dtype.kind != "f" or a.min() < -1e-6 or a.max() > 1 + 1e-6:
                raise InvalidInputError(f"{name} image {k}: need uint8, or floats in [0, 1], got {a.dtype}")
            a = (a * 255).round().astype(np.uint8)
        if a.shape[:2] != (EVAL_SIZE, EVAL_SIZE):
            a = np.asarray(Image.fromarray(a).resize((EVAL_SIZE, EVAL_SIZE), Image.BILINEAR))
        out.append(a.astype(np.float32) / 255)
    if not out:
        raise InvalidInputError(f"no {name} images")
    return np.stack(out)


def _pair(seen, recon) -> tuple[np.ndarray, np.ndarray]:
    s, r = _as_float_batch(seen, "seen"), _as_float_batch(recon, "reconstructed")
    if len(s) != len(r):
        raise InvalidInputError(f"{len(s)} seen images but {len(r)} reconstructions: the sets must pair up")
    return s, r


def _resize(batch: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(batch).permute(0, 3, 1, 2)
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False).permute(0, 2, 3, 1).numpy()


def _rowwise_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, 0.0)


def pixcorr(seen, recon, per_image: bool = False):
    """Mean Pearson r between the flattened RGB pixels of each pair at 425 px (per pair with ``per_image``)."""
    s, r = _pair(seen, recon)
    v = _rowwise_r(_resize(s, PIX_SIZE).reshape(len(s), -1).astype(np.float64),
                   _resize(r, PIX_SIZE).reshape(len(r), -1).astype(np.float64))
    return v if per_image else float(v.mean())


def ssim(seen, recon, per_image: bool = False):
    """Mean SSIM of each pair at 425 px in grayscale (gaussian weights, sigma 1.5, population covariance, data
    range 1), scikit-image's implementation, as MindEye2 computes it."""
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    s, r = _pair(seen, recon)
    s, r = _resize(s, PIX_SIZE).clip(0, 1), _resize(r, PIX_SIZE).clip(0, 1)
    v = np.array([structural_similarity(rgb2gray(a), rgb2gray(b), gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=1.0) for a, b in zip(s, r)])
    return v if per_image else float(v.mean())


def _corr_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """R[i, j] = Pearson r(a[i], b[j]) over flattened features."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def two_way_identification(seen_features: np.ndarray, recon_features: np.ndarray, per_image: bool = False):
    """For each reconstruction j, the share of other seen images i whose features correlate less with it than its
    own seen image's do (R[i, j] < R[j, j]); the mean over j (chance 0.5). Features: (n, ...) arrays."""
    n = len(seen_features)
    if n != len(recon_features):
        raise InvalidInputError(f"{n} seen feature rows but {len(recon_features)} reconstructed ones")
    if n < 2:
        raise InvalidInputError("2-way identification needs at least 2 images")
    R = _corr_matrix(seen_features, recon_features)
    own = np.diag(R)
    wins = (R < own[None, :]).sum(0) / (n - 1)  # the diagonal itself never counts (R[j, j] < R[j, j] is false)
    return wins if per_image else float(wins.mean())


def feature_distance(seen_features: np.ndarray, recon_features: np.ndarray, per_image: bool = False):
    """Mean correlation distance (1 - Pearson r) between each pair's flattened features (lower is better)."""
    a = seen_features.reshape(len(seen_features), -1).astype(np.float64)
    b = recon_features.reshape(len(recon_features), -1).astype(np.float64)
    v = 1 - _rowwise_r(a, b)
    return v if per_image else float(v.mean())


@dataclass
class FeatureNet:
    """A named feature extractor and how its column is scored: ``"2way"`` or ``"distance"``.

    ``fn`` takes float images (n, 256, 256, 3) in [0, 1] and returns features (n, ...); the network's own resize and
    normalisation live inside it."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    kind: str = "2way"
    model_id: str = ""

    def __post_init__(self):
        if self.kind not in ("2way", "distance"):
            raise InvalidInputError(f"feature net {self.name}: kind must be '2way' or 'distance', got {self.kind!r}")


def _to_uint8(batch: np.ndarray) -> np.ndarray:
    return (batch.clip(0, 1) * 255).round().astype(np.uint8)


def demo_feature_nets(judge, embedder, batch: int = 64) -> list[FeatureNet]:
    """The demo world's feature networks, in the papers' column order: the judge's first encoder stage (64 px, like
    AlexNet's second layer: edges and colour blobs) and its bottleneck (the semantic end), then the embedder's patch
    tokens (spatial, semantic) and its global embedding (the CLIP column), and correlation distances of the judge's
    pooled features and the embedder's global one (the EfficientNet / SwAV columns)."""
    import torch

    def judge_layer(stage: int):
        def fn(images: np.ndarray) -> np.ndarray:
            out, u8 = [], _to_uint8(images)
            with torch.no_grad():
                for a in range(0, len(u8), batch):
                    x = judge.preprocess(list(u8[a:a + batch]))
                    for k, blk in enumerate(judge.net.enc[:stage + 1]):
                        x = blk(x if k == 0 else torch.nn.functional.max_pool2d(x, 2))
                    if stage == 0:  # 64x64 maps are large: pool to 16x16 as AlexNet(2)'s 27x27 grid is coarse
                        x = torch.nn.functional.avg_pool2d(x, 4)
                    out.append(x.flatten(1).cpu().numpy())
            return np.concatenate(out)
        return fn

    def pooled_judge(images):
        return judge.embed(list(_to_uint8(images)), batch)

    def emb_global(images):
        return embedder.image_features(list(_to_uint8(images)), batch)

    def emb_patches(images):
        return embedder.patch_tokens(list(_to_uint8(images)), batch)

    jid, eid = getattr(judge, "model_id", "judge"), getattr(embedder, "model_id", "embedder")
    return [FeatureNet("Judge(early)", judge_layer(0), "2way", jid),
            FeatureNet("Judge(late)", judge_layer(3), "2way", jid),
            FeatureNet("Emb(patch)", emb_patches, "2way", eid),
            FeatureNet("Emb", emb_global, "2way", eid),
            FeatureNet("Judge dist", pooled_judge, "distance", jid),
            FeatureNet("Emb dist", emb_global, "distance", eid)]


def clip_feature_net(embedder) -> FeatureNet:
    """The CLIP column: 2-way identification on any :class:`~backend.models.embedder.Embedder`'s global image
    embedding (CLIP ViT-L/14 from a local folder on real data; its processor does the 224 px resize)."""
    return FeatureNet("CLIP", lambda im: embedder.image_features(list(_to_uint8(im)), 32), "2way",
                      getattr(embedder, "model_id", "clip"))


def metric_feature_nets(judge, embedder, files: dict | None = None, device: str = "cpu") -> list[FeatureNet]:
    """The feature networks reconstructions are scored with: the field's (:func:`field_feature_nets`,
    the papers' columns) when ``files`` (default: the ``*_path`` entries of ``models.toml``'s ``[metrics]``) names
    any, else the demo world's analogues (:func:`demo_feature_nets`)."""
    if files is None:
        from ..models import model_config

        files = {k[:-5]: v for k, v in model_config()["metrics"].items() if k.endswith("_path") and v}
    if any(files.values()):
        return field_feature_nets(files, embedder, device)
    return demo_feature_nets(judge, embedder)


def field_feature_nets(files: dict, embedder=None, device: str = "cpu") -> list:
    """The papers' feature columns for the networks ``files`` names (keys ``alexnet``, ``inception``,
    ``efficientnet``, ``swav``: paths to state-dict files; empty or absent = that column is left out), in the papers'
    order: Alex(2), Alex(5), Incep, CLIP (``embedder``'s global image embedding, when given), Eff, SwAV."""
    from .field_nets import AlexNetFeatures, EfficientNetB1, Inception3, ResNet50, extractor, load_state

    nets = []
    if files.get("alexnet"):
        alex = load_state(AlexNetFeatures(), files["alexnet"], "torchvision AlexNet")
        mid = f"alexnet:{Path(files['alexnet']).name}"
        nets += [FeatureNet("Alex(2)", extractor(alex, 256, device, upto=4), "2way", mid),
                 FeatureNet("Alex(5)", extractor(alex, 256, device, upto=11), "2way", mid)]
    if files.get("inception"):
        net = load_state(Inception3(), files["inception"], "torchvision InceptionV3")
        nets.append(FeatureNet("Incep", extractor(net, 342, device), "2way",
                               f"inception_v3:{Path(files['inception']).name}"))
    if embedder is not None:
        nets.append(clip_feature_net(embedder))
    if files.get("efficientnet"):
        net = load_state(EfficientNetB1(), files["efficientnet"], "torchvision EfficientNet-B1")
        nets.append(FeatureNet("Eff", extractor(net, 255, device), "distance",
                               f"efficientnet_b1:{Path(files['efficientnet']).name}"))
    if files.get("swav"):
        net = load_state(ResNet50(), files["swav"], "ResNet-50 (SwAV)")
        nets.append(FeatureNet("SwAV", extractor(net, 224, device), "distance", f"swav:{Path(files['swav']).name}"))
    return nets


def evaluate_pairs(seen, recon, nets: list[FeatureNet] | None = None, per_image: bool = False):
    """Every metric for the pairs (seen[i], recon[i]): {"PixCorr", "SSIM", then one entry per feature net}. With
    ``per_image`` each value is an array over pairs (2-way: the share of other images each reconstruction beats)."""
    s, r = _pair(seen, recon)
    out = {"PixCorr": pixcorr(s, r, per_image), "SSIM": ssim(s, r, per_image)}
    for net in nets or []:
        fs, fr = net.fn(s), net.fn(r)
        if net.kind == "2way":
            out[net.name] = two_way_identification(fs, fr, per_image)
        else:
            out[net.name] = feature_distance(fs, fr, per_image)
    return out
