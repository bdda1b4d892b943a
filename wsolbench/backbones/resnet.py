"""ResNets with the global-average-pooling head.

- ``resnet18``, ``resnet50``: torchvision's layout unchanged (stem, ``layer1..layer4``;
  stride 32, a 7 x 7 CAM at 224). ``large_feature_map`` does not apply.
- ``resnet50_wsol``: the WSOL literature's ResNet-50 (wsolevaluation's ResNet50 CAM,
  Choe et al. CVPR 2020): ``layer4`` with stride 1, so a 224 input gives a 14 x 14 CAM;
  ``large_feature_map=True`` sets ``layer3``'s stride to 1 as well (28 x 28). Only the
  strides change, so torchvision's ImageNet weights load unchanged.
- ``se_resnet50``: squeeze-and-excitation ResNet-50 (Hu et al., CVPR 2018; used by the
  entropy-regularization study, Hwang et al. PRL 2023): torchvision's bottleneck with an
  SE module (reduction 16) on the residual branch before the addition, adapted like
  ``resnet50_wsol``. torchvision has no SE weights: ``weights=FILE`` only.

Stages (name: module, channels, stride), the same names on all four; ``e`` is the block
expansion (1 for ResNet-18, 4 for the ResNet-50s):

- ``stem``: after the max-pool, 64, 4
- ``layer1``: 64e, 4
- ``layer2``: 128e, 8
- ``layer3.0``: ``layer3``'s first block, 256e, s3
- ``layer3``: 256e, s3
- ``layer4.0``: ``layer4``'s first block, 512e, s4
- ``layer4``: 512e, s4; the output of ``layer4``'s last block (``layer4.2`` for the
  ResNet-50s, ``layer4.1`` for ResNet-18), the last stage and the CAM's map

with s3, s4 = 16, 32 (plain), 16, 16 (adapted) or 8, 8 (adapted, ``large_feature_map``).
The plain ResNets keep torchvision's modules in an index-numbered ``features``
(``stem`` is ``features.3``, ``layer1`` ``features.4``, ..., ``layer4`` ``features.7``);
the adapted ones name them (``features.maxpool``, ``features.layer3.0``, ...). ADL (as
wsolevaluation) goes after ``layer3.0``, ``layer4.0`` and ``layer4`` (= ``layer4.2``);
Bridging the gap's attentive dropout after ``layer4.0``.

New layers (LR multiplier): ``fc`` for the plain ResNets; ``layer4`` and ``fc`` for the
adapted ones, as wsolevaluation (``lr_classifier_ratio``); and the attached ``taps``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from torch import Tensor, nn
from torchvision import models
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import SqueezeExcitation

from wsolbench.backbones.base import BACKBONES, CamBackbone

Weights = str | os.PathLike[str] | None

# torchvision's module names -> the plain ResNets' ``features`` indices
_PLAIN_INDEX = {"conv1": 0, "bn1": 1, "maxpool": 3, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}


def resnet_stages(path: dict[str, str], expansion: int, s3: int, s4: int) -> list[tuple[str, str, int, int]]:
    """The ResNet stage table (see the module docstring); ``path`` maps torchvision's module names
    (``maxpool``, ``layer1``, ...) to their paths in the backbone."""
    e = expansion
    return [("stem", path["maxpool"], 64, 4), ("layer1", path["layer1"], 64 * e, 4),
            ("layer2", path["layer2"], 128 * e, 8), ("layer3.0", path["layer3"] + ".0", 256 * e, s3),
            ("layer3", path["layer3"], 256 * e, s3), ("layer4.0", path["layer4"] + ".0", 512 * e, s4),
            ("layer4", path["layer4"], 512 * e, s4)]


class TorchvisionResNet(CamBackbone):
    """torchvision's ResNet as ``features`` (an index-numbered Sequential) + GAP + ``fc``."""

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        net = models.get_model(arch, weights=None, num_classes=num_classes)
        self.features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                      net.layer1, net.layer2, net.layer3, net.layer4)
        self.fc = net.fc
        paths = {name: f"features.{index}" for name, index in _PLAIN_INDEX.items()}
        self._declare_stages(resnet_stages(paths, net.layer1[0].expansion, 16, 32))

    def map_weight_key(self, key: str) -> str:
        head, _, rest = key.partition(".")
        return f"features.{_PLAIN_INDEX[head]}.{rest}" if head in _PLAIN_INDEX else key


@BACKBONES.register("resnet18")
def resnet18(num_classes: int, pretrained: bool = False, weights: Weights = None, **_: Any) -> CamBackbone:
    net = TorchvisionResNet("resnet18", num_classes)
    net.init_weights_from("resnet18", pretrained=pretrained, weights=weights,
                          torchvision_weights=models.ResNet18_Weights.IMAGENET1K_V1)
    return net


@BACKBONES.register("resnet50")
def resnet50(num_classes: int, pretrained: bool = False, weights: Weights = None, **_: Any) -> CamBackbone:
    net = TorchvisionResNet("resnet50", num_classes)
    net.init_weights_from("resnet50", pretrained=pretrained, weights=weights,
                          torchvision_weights=models.ResNet50_Weights.IMAGENET1K_V1)
    return net


def keep_resolution(stage: nn.Sequential) -> None:
    """Give a ResNet stage stride 1: its first block's strided convs (the 3x3 and the 1x1
    projection) get stride 1. Kernels are unchanged, so pretrained weights still apply."""
    for m in stage[0].modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            m.stride = (1, 1)


class WsolResNet(CamBackbone):
    """A torchvision ``ResNet`` with stride-1 ``layer4`` (and ``layer3`` with ``large_feature_map``).

    ``features`` is a Sequential with torchvision's module names (``features.layer1...``),
    so a torchvision state dict maps by prefixing ``features.``.
    """

    new_modules = ("features.layer4", "fc", "taps")

    def __init__(self, net: ResNet, large_feature_map: bool) -> None:
        super().__init__()
        keep_resolution(net.layer4)
        if large_feature_map:
            keep_resolution(net.layer3)
        self.features = nn.Sequential(OrderedDict(
            conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool,
            layer1=net.layer1, layer2=net.layer2, layer3=net.layer3, layer4=net.layer4))
        self.fc = net.fc
        s = 8 if large_feature_map else 16
        paths = {name: f"features.{name}" for name in ("maxpool", "layer1", "layer2", "layer3", "layer4")}
        self._declare_stages(resnet_stages(paths, net.layer1[0].expansion, s, s))

    def map_weight_key(self, key: str) -> str:
        return key if key.startswith(("features.", "fc.")) else f"features.{key}"


@BACKBONES.register("resnet50_wsol")
def resnet50_wsol(num_classes: int, pretrained: bool = False, weights: Weights = None,
                  large_feature_map: bool = False, **_: Any) -> CamBackbone:
    net = WsolResNet(models.resnet50(weights=None, num_classes=num_classes), large_feature_map)
    net.init_weights_from("resnet50_wsol", pretrained=pretrained, weights=weights,
                          torchvision_weights=models.ResNet50_Weights.IMAGENET1K_V1)
    return net


class SEBottleneck(Bottleneck):
    """torchvision's bottleneck with squeeze-and-excitation (Hu et al., CVPR 2018, reduction r = 16)
    rescaling the residual branch's channels before the identity is added."""

    reduction = 16

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channels = self.conv3.out_channels
        self.se = SqueezeExcitation(channels, channels // self.reduction)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


@BACKBONES.register("se_resnet50")
def se_resnet50(num_classes: int, pretrained: bool = False, weights: Weights = None,
                large_feature_map: bool = False, **_: Any) -> CamBackbone:
    net = WsolResNet(ResNet(SEBottleneck, [3, 4, 6, 3], num_classes=num_classes), large_feature_map)
    net.init_weights_from("se_resnet50", pretrained=pretrained, weights=weights)
    return net
