"""The feature networks of the field's reconstruction metrics, for real data (MindEye2's evaluation recipe, which
Brain-IT reports): AlexNet(2) / AlexNet(5), InceptionV3 (avgpool, 2-way), EfficientNet-B1 (avgpool, distance),
SwAV ResNet-50 (avgpool, distance), each loaded from a local PyTorch state-dict file.

The networks are written here in torchvision's module layout (the same parameter names), so the published state
dicts load as they are (``strict``: a file that does not fit says which keys are missing): torchvision itself cannot
be installed beside the project's pinned CPU build of PyTorch (``../shared/reference/platform.md``), and these four
are all the metrics need. Preprocessing as MindEye2's: resize (bilinear) to 256 px for AlexNet, 342 for Inception
(with torchvision's ``transform_input``, as its pretrained Inception does), 255 for EfficientNet, 224 for SwAV;
ImageNet normalisation. Files (named in ``models.toml``'s ``[metrics]``): ``alexnet-owt-7be5be79.pth``,
``inception_v3_google-0cc3c7bd.pth``, ``efficientnet_b1_rwightman-bac287d4.pth`` (or ``..._b1-c27df63c.pth``),
SwAV's ``resnet50`` hub weights (``swav_800ep_pretrain.pth.tar``; a ``module.`` prefix and its projection head are
dropped).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError

__all__ = ["AlexNetFeatures", "Inception3", "EfficientNetB1", "ResNet50", "load_state", "extractor"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class AlexNetFeatures(nn.Module):
    """torchvision AlexNet's ``features`` (what AlexNet(2) = features.4 and AlexNet(5) = features.11 read)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2))

    def forward(self, x, upto: int = 11):
        for k, m in enumerate(self.features):
            x = m(x)
            if k == upto:
                break
        return x


# --- InceptionV3 (torchvision's Inception3 layout, without the auxiliary classifier, which no metric reads)
class _Conv(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _branches(x, *branches):
    return torch.cat([b(x) for b in branches], 1)


class _A(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, kernel_size=1)
        self.branch5x5_1, self.branch5x5_2 = _Conv(cin, 48, kernel_size=1), _Conv(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, padding=1)
        self.branch_pool = _Conv(cin, pool, kernel_size=1)

    def forward(self, x):
        return _branches(x, self.branch1x1, lambda x: self.branch5x5_2(self.branch5x5_1(x)),
                         lambda x: self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                         lambda x: self.branch_pool(F.avg_pool2d(x, 3, 1, 1)))


class _B(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return _branches(x, self.branch3x3, lambda x: self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                         lambda x: F.max_pool2d(x, 3, 2))


def _seq(x, mods):
    for m in mods:
        x = m(x)
    return x


class _C(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = _Conv(cin, 192, kernel_size=1)
        self.branch7x7_1, self.branch7x7_2 = _Conv(cin, c7, kernel_size=1), _Conv(c7, c7, **row)
        self.branch7x7_3 = _Conv(c7, 192, **col)
        self.branch7x7dbl_1, self.branch7x7dbl_2 = _Conv(cin, c7, kernel_size=1), _Conv(c7, c7, **col)
        self.branch7x7dbl_3, self.branch7x7dbl_4 = _Conv(c7, c7, **row), _Conv(c7, c7, **col)
        self.branch7x7dbl_5 = _Conv(c7, 192, **row)
        self.branch_pool = _Conv(cin, 192, kernel_size=1)

    def forward(self, x):
        return _branches(x, self.branch1x1,
                         lambda x: _seq(x, [self.branch7x7_1, self.branch7x7_2, self.branch7x7_3]),
                         lambda x: _seq(x, [getattr(self, f"branch7x7dbl_{k}") for k in range(1, 6)]),
                         lambda x: self.branch_pool(F.avg_pool2d(x, 3, 1, 1)))


class _D(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = _Conv(cin, 192, kernel_size=1), _Conv(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = _Conv(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        return _branches(x, lambda x: self.branch3x3_2(self.branch3x3_1(x)),
                         lambda x: _seq(x, [getattr(self, f"branch7x7x3_{k}") for k in range(1, 5)]),
                         lambda x: F.max_pool2d(x, 3, 2))


class _E(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch1x1 = _Conv(cin, 320, kernel_size=1)
        self.branch3x3_1 = _Conv(cin, 384, kernel_size=1)
        self.branch3x3_2a = _Conv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a), self.branch3x3dbl_3a(b),
                          self.branch3x3dbl_3b(b), self.branch_pool(F.avg_pool2d(x, 3, 1, 1))], 1)


class Inception3(nn.Module):
    """InceptionV3 up to its global average pool (2048 features), torchvision's parameter names."""

    def __init__(self, transform_input: bool = True):
        super().__init__()
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = _Conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = _A(192, 32), _A(256, 64), _A(288, 64)
        self.Mixed_6a = _B(288)
        self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e = _C(768, 128), _C(768, 160), _C(768, 160), \
            _C(768, 192)
        self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = _D(768), _E(1280), _E(2048)

    def forward(self, x):  # x: ImageNet-normalised
        if self.transform_input:  # torchvision's pretrained Inception expects inputs mapped to [-1, 1]
            m, s = torch.tensor(IMAGENET_MEAN, device=x.device), torch.tensor(IMAGENET_STD, device=x.device)
            x = x * (s / 0.5).view(1, 3, 1, 1) + ((m - 0.5) / 0.5).view(1, 3, 1, 1)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
        x = F.max_pool2d(x, 3, 2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


# --- EfficientNet-B1 (torchvision's layout: features.0-8 of Conv2dNormActivation / MBConv stages)
def _cna(cin, cout, k=1, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.SiLU(inplace=True)) if act else nn.Sequential(*layers)


class _SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class _MBConv(nn.Module):
    def __init__(self, expand, k, stride, cin, cout):
        super().__init__()
        mid = _divisible(cin * expand)
        layers = [_cna(cin, mid)] if mid != cin else []
        layers += [_cna(mid, mid, k, stride, groups=mid), _SqueezeExcitation(mid, max(1, cin // 4)),
                   _cna(mid, cout, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return y + x if self.residual else y


def _divisible(v, d=8):
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


class EfficientNetB1(nn.Module):
    """EfficientNet-B1 (width 1.0, depth 1.1) up to its global average pool (1280 features)."""

    STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
              (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]

    def __init__(self, depth: float = 1.1):
        super().__init__()
        layers = [_cna(3, 32, 3, 2)]
        for expand, k, stride, cin, cout, n in self.STAGES:
            n = int(math.ceil(n * depth))
            layers.append(nn.Sequential(*[_MBConv(expand, k, stride if i == 0 else 1, cin if i == 0 else cout, cout)
                                          for i in range(n)]))
        layers.append(_cna(320, 1280))
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)


# --- ResNet-50 (torchvision's layout; SwAV's backbone)
class _Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
            if stride != 1 or cin != cout else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet50(nn.Module):
    """ResNet-50 up to its global average pool (2048 features)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        cin, layers = 64, []
        for width, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            blocks = []
            for i in range(n):
                blocks.append(_Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


# heads the metrics never read: dropped from the files before a strict load
_HEADS = ("fc.", "classifier.", "AuxLogits.", "projection_head.", "prototypes.")


def load_state(net: nn.Module, weights: str | Path, what: str) -> nn.Module:
    """Load a state-dict file (plain, or under ``state_dict`` / ``model``, keys optionally prefixed ``module.``)
    into ``net``, strictly apart from classification / projection heads. Errors name the file and the keys."""
    weights = Path(weights)
    if not weights.is_file():
        raise InvalidInputError(f"{what} weights {weights} not found (a PyTorch state dict file)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (pickle, zip or torch errors: all mean "not a state dict")
        raise InvalidInputError(f"{weights} could not be read as a PyTorch state dict: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise InvalidInputError(f"{weights} is not a {what} state dict: missing {missing[:5]}"
                                f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
                                f"{' ...' if len(extra) > 5 else ''}")
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise InvalidInputError(f"{weights} is not a {what} state dict: shapes differ for {bad[:5]}")
    net.load_state_dict(state)
    return net.eval()


def extractor(net: nn.Module, size: int, device: str, batch: int = 16, **kw):
    """images (n, H, W, 3) float in [0, 1] -> (n, d) features: resize to ``size`` (bilinear), ImageNet-normalise."""
    net = net.to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def fn(images: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for a in range(0, len(images), batch):
                x = torch.from_numpy(np.ascontiguousarray(images[a:a + batch], np.float32)).permute(0, 3, 1, 2)
                x = F.interpolate(x.to(device), size=(size, size), mode="bilinear", align_corners=False)
                out.append(net((x - mean) / std, **kw).flatten(1).cpu().numpy())
        return np.concatenate(out)
    return fn
