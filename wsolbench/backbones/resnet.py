"""torchvision ResNet-18/50 with the global-average-pooling head.

The features are torchvision's stem and ``layer1..layer4``; the head is GAP +
``fc``. Weights start from torchvision's initialisation (``weights=None``):
nothing is downloaded. A 224 x 224 input gives a 7 x 7 CAM.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision import models

from wsolbench.backbones.base import BACKBONES, CamBackbone


class TorchvisionResNet(CamBackbone):
    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        net = models.get_model(arch, weights=None, num_classes=num_classes)
        self.features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                      net.layer1, net.layer2, net.layer3, net.layer4)
        self.fc = net.fc


@BACKBONES.register("resnet18")
def resnet18(num_classes: int, **_: Any) -> CamBackbone:
    return TorchvisionResNet("resnet18", num_classes)


@BACKBONES.register("resnet50")
def resnet50(num_classes: int, **_: Any) -> CamBackbone:
    return TorchvisionResNet("resnet50", num_classes)
