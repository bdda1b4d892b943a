"""VGG16 with the GAP head of the WSOL literature (wsolevaluation's VGG16 CAM, Choe et al. CVPR 2020).

``features`` is VGG16's convolutional part up to conv5_3 + ReLU, numbered exactly as
torchvision's ``vgg16().features`` (so its ImageNet weights load by name); pool5 is
removed, and with ``large_feature_map`` pool4 too (an ``nn.Identity`` keeps the
numbering). Then the added ``conv6`` (3 x 3, 512 -> 1024, padding 1) + ReLU, GAP and
``fc`` (1024 -> K). A 224 input gives a 14 x 14 CAM, 28 x 28 with ``large_feature_map``.
torchvision's fc6-fc8 (``classifier.*``) are not used.

Stages (name: module, channels, stride; ``s`` = 16, or 8 with ``large_feature_map``):

- ``pool1``: ``features.4``, 64, 2
- ``pool2``: ``features.9``, 128, 4
- ``pool3``: ``features.16``, 256, 8
- ``conv4_3``: ``features.22`` (conv4_3's ReLU), 512, 8
- ``pool4``: ``features.23``, 512, s (an identity with ``large_feature_map``: the same map as ``conv4_3``)
- ``conv5_3``: ``features.29`` (conv5_3's ReLU), 512, s
- ``conv6``: ``relu6`` (conv6's ReLU), 1024, s; the last stage, the CAM's map

ADL (Choe & Shim, CVPR 2019, as wsolevaluation) goes after ``pool3``, ``conv4_3`` and
``conv5_3``; Bridging the gap's attentive dropout after ``conv4_3``.

New layers (LR multiplier): ``conv6`` and ``fc``, everything outside ``features`` as in
wsolevaluation, and the attached ``taps``.
"""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor, nn
from torchvision import models

from wsolbench.backbones.base import BACKBONES, CamBackbone

# VGG16 ("configuration D"): output channels of each 3x3 conv, "M" a 2x2 max-pool
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_POOL4 = 23  # index of pool4 in torchvision's vgg16().features


def vgg16_features(large_feature_map: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.Identity() if large_feature_map and len(layers) == _POOL4 else nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            cin = int(v)
    return nn.Sequential(*layers)


class Vgg16Wsol(CamBackbone):
    new_modules = ("conv6", "fc", "taps")

    def __init__(self, num_classes: int, large_feature_map: bool = False) -> None:
        super().__init__()
        self.features = vgg16_features(large_feature_map)
        self.conv6 = nn.Conv2d(512, 1024, 3, padding=1)
        self.relu6 = nn.ReLU(inplace=True)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        s = 8 if large_feature_map else 16
        self._declare_stages([
            ("pool1", "features.4", 64, 2), ("pool2", "features.9", 128, 4), ("pool3", "features.16", 256, 8),
            ("conv4_3", "features.22", 512, 8), ("pool4", f"features.{_POOL4}", 512, s),
            ("conv5_3", "features.29", 512, s), ("conv6", "relu6", 1024, s)])

    def forward_features(self, x: Tensor) -> Tensor:
        return self.relu6(self.conv6(self.features(x)))


@BACKBONES.register("vgg16_wsol")
def vgg16_wsol(num_classes: int, pretrained: bool = False, weights: str | os.PathLike[str] | None = None,
               large_feature_map: bool = False, **_: Any) -> CamBackbone:
    net = Vgg16Wsol(num_classes, large_feature_map)
    net.init_weights_from("vgg16_wsol", pretrained=pretrained, weights=weights,
                          torchvision_weights=models.VGG16_Weights.IMAGENET1K_V1)
    return net
