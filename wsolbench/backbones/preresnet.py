"""PreResNet-18: the pre-activation ResNet (He et al., "Identity Mappings in Deep Residual
Networks", ECCV 2016), ImageNet layout, with the GAP head; torchvision has none.

Stem: conv 7 x 7 / 2 (64) + BN + ReLU + max-pool 3 x 3 / 2. Four stages of two
pre-activation basic blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3, identity added without a
final activation; a 1 x 1 projection of the pre-activated input where the shape changes),
widths 64-128-256-512, then a final BN + ReLU (``final_bn``) since the last addition is
not activated. As the WSOL literature adapts ResNet-50 (wsolevaluation), ``layer4`` has
stride 1: a 224 input gives a 14 x 14 CAM; ``large_feature_map`` sets ``layer3``'s stride
to 1 too (28 x 28). Used by the entropy-regularization study (Hwang et al., PRL 2023).

Stages (name: module under ``features``, channels, stride; ``s`` = 16, or 8 with
``large_feature_map``): ``stem`` (``maxpool``) 64, 4; ``layer1`` 64, 4; ``layer2`` 128, 8;
``layer3.0`` 256, s; ``layer3`` 256, s; ``layer4.0`` 512, s; ``layer4`` 512, s (its last
block, ``layer4.1``: the sum before the final activation); ``final_relu`` 512, s
(``final_bn`` + ReLU; the last stage, the CAM's map). ADL's ResNet positions map to
``layer3.0``, ``layer4.0`` and ``layer4``.

Weights: ``weights=FILE`` only, a state dict in this layout without the ``features.``
prefix (``conv1.weight``, ``layer1.0.bn1.weight``, ...) or with it. New layers (LR
multiplier): ``layer4``, ``final_bn`` and ``fc``, the ResNet rule of wsolevaluation, and
the attached ``taps``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from torch import Tensor, nn

from wsolbench.backbones.base import BACKBONES, CamBackbone


class PreActBlock(nn.Module):
    """Full pre-activation basic block: ``x + conv(relu(bn(conv(relu(bn(x))))))``."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        # the projection shortcut takes the pre-activated input, so both branches see normalised features
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        return out + shortcut


def _stage(cin: int, cout: int, stride: int, blocks: int = 2) -> nn.Sequential:
    return nn.Sequential(PreActBlock(cin, cout, stride), *[PreActBlock(cout, cout, 1) for _ in range(blocks - 1)])


class PreResNet18(CamBackbone):
    new_modules = ("features.layer4", "features.final_bn", "fc", "taps")

    def __init__(self, num_classes: int, large_feature_map: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, 64, 7, 2, 3, bias=False), bn1=nn.BatchNorm2d(64), relu=nn.ReLU(inplace=True),
            maxpool=nn.MaxPool2d(3, 2, 1),
            layer1=_stage(64, 64, 1), layer2=_stage(64, 128, 2),
            layer3=_stage(128, 256, 1 if large_feature_map else 2), layer4=_stage(256, 512, 1),
            final_bn=nn.BatchNorm2d(512), final_relu=nn.ReLU(inplace=True)))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        s = 8 if large_feature_map else 16
        self._declare_stages([
            ("stem", "features.maxpool", 64, 4), ("layer1", "features.layer1", 64, 4),
            ("layer2", "features.layer2", 128, 8), ("layer3.0", "features.layer3.0", 256, s),
            ("layer3", "features.layer3", 256, s), ("layer4.0", "features.layer4.0", 512, s),
            ("layer4", "features.layer4", 512, s), ("final_relu", "features.final_relu", 512, s)])

    def map_weight_key(self, key: str) -> str:
        return key if key.startswith(("features.", "fc.")) else f"features.{key}"


@BACKBONES.register("preresnet18")
def preresnet18(num_classes: int, pretrained: bool = False, weights: str | os.PathLike[str] | None = None,
                large_feature_map: bool = False, **_: Any) -> CamBackbone:
    net = PreResNet18(num_classes, large_feature_map)
    net.init_weights_from("preresnet18", pretrained=pretrained, weights=weights)
    return net
