"""Inception-v3 adapted for WSOL at 224 x 224 (after SPG, Zhang et al. ECCV 2018, and wsolevaluation).

What is kept: torchvision's Inception-v3 modules from ``Conv2d_1a_3x3`` to ``Mixed_6e``
(768 channels) with their names, so torchvision's ImageNet (Google) weights load by
name; ``Mixed_7*``, ``AuxLogits`` and torchvision's ``fc`` are dropped.

What changes, and why:

- "same" padding: the three 3 x 3 convs without padding (``Conv2d_1a_3x3``,
  ``Conv2d_2a_3x3``, ``Conv2d_4a_3x3``), both max-pools and ``Mixed_6a``'s strided
  branches get padding 1, so every stride-2 step halves the size exactly: the map has
  stride 16 like VGG16 and ResNet-50 in the same protocol (14 x 14 at 224) instead of
  torchvision's uneven 12 x 12. Only padding changes; the kernels are the pretrained ones.
- ``large_feature_map``: ``Mixed_6a`` (the reduction block) runs with stride 1, the
  ResNet-style "last stride 1" adaptation: 28 x 28 at 224 (stride 8).
- head as in SPG: two added 3 x 3 convs 768 -> 1024 -> 1024 (+ ReLU, ``head_conv1``,
  ``head_conv2``), then GAP + ``fc`` (1024 -> K). SPG's 1 x 1 class conv followed by GAP
  is the same as GAP + ``fc``, so the CAM is that conv's class channel.
- input: the Google weights expect images scaled to [-1, 1]; with ``transform_input``
  (default) the ImageNet-normalized input is mapped to that range first, as torchvision
  does when it loads these weights.

Stages (name = module under ``features``, channels, stride; ``s`` = 16, or 8 with
``large_feature_map``): ``maxpool1`` 64, 4; ``maxpool2`` 192, 8; ``Mixed_5b`` 256, 8;
``Mixed_5c`` 288, 8; ``Mixed_5d`` 288, 8; ``Mixed_6a``, ``Mixed_6b``, ``Mixed_6c``,
``Mixed_6d``, ``Mixed_6e`` 768, s; ``head_conv1`` 1024, s; ``head_conv2`` 1024, s (after
its ReLU; the last stage, the CAM's map). wsolevaluation's ``InceptionAdl`` puts ADL
after ``Mixed_5d`` (before its max-pool, which here is ``Mixed_6a``'s stride), after
``Mixed_6e`` and after ``SPG_A3_2b``, i.e. ``head_conv2``.

New layers (LR multiplier): ``head_conv1``, ``head_conv2`` and ``fc``; everything but the
``Mixed_*`` / ``Conv2d_*`` modules, as wsolevaluation; and the attached ``taps``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn
from torchvision import models

from wsolbench.backbones.base import BACKBONES, CamBackbone
from wsolbench.structs import IMAGENET_MEAN, IMAGENET_STD


def _same(conv_block: nn.Module, stride: int | None = None) -> nn.Module:
    """Set padding 1 (and ``stride``) on a torchvision ``BasicConv2d``'s 3 x 3 conv, in place."""
    conv = conv_block.conv
    conv.padding = (1, 1)
    if stride is not None:
        conv.stride = (stride, stride)
    return conv_block


class ReductionB(nn.Module):
    """torchvision's ``InceptionB`` (``Mixed_6a``) with padding 1 and a chosen stride; same parameter names."""

    def __init__(self, block: nn.Module, stride: int) -> None:
        super().__init__()
        self.branch3x3 = _same(block.branch3x3, stride)
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = _same(block.branch3x3dbl_3, stride)
        self.pool = nn.MaxPool2d(3, stride, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), dbl, self.pool(x)], 1)


class InceptionV3Wsol(CamBackbone):
    new_modules = ("features.head_conv1", "features.head_conv2", "fc", "taps")

    def __init__(self, num_classes: int, large_feature_map: bool = False, transform_input: bool = True) -> None:
        super().__init__()
        tv = models.inception_v3(weights=None, aux_logits=False, init_weights=True)
        self.features = nn.Sequential(OrderedDict(
            Conv2d_1a_3x3=_same(tv.Conv2d_1a_3x3), Conv2d_2a_3x3=_same(tv.Conv2d_2a_3x3),
            Conv2d_2b_3x3=tv.Conv2d_2b_3x3, maxpool1=nn.MaxPool2d(3, 2, padding=1),
            Conv2d_3b_1x1=tv.Conv2d_3b_1x1, Conv2d_4a_3x3=_same(tv.Conv2d_4a_3x3),
            maxpool2=nn.MaxPool2d(3, 2, padding=1),
            Mixed_5b=tv.Mixed_5b, Mixed_5c=tv.Mixed_5c, Mixed_5d=tv.Mixed_5d,
            Mixed_6a=ReductionB(tv.Mixed_6a, 1 if large_feature_map else 2),
            Mixed_6b=tv.Mixed_6b, Mixed_6c=tv.Mixed_6c, Mixed_6d=tv.Mixed_6d, Mixed_6e=tv.Mixed_6e,
            head_conv1=nn.Sequential(nn.Conv2d(768, 1024, 3, padding=1), nn.ReLU(inplace=True)),
            head_conv2=nn.Sequential(nn.Conv2d(1024, 1024, 3, padding=1), nn.ReLU(inplace=True))))
        self.fc = nn.Linear(1024, num_classes)
        for name in ("head_conv1", "head_conv2"):
            conv = self.features.get_submodule(name)[0]
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        self.transform_input = transform_input
        s = 8 if large_feature_map else 16
        self._declare_stages([(name, f"features.{name}", channels, stride) for name, channels, stride in (
            ("maxpool1", 64, 4), ("maxpool2", 192, 8), ("Mixed_5b", 256, 8), ("Mixed_5c", 288, 8),
            ("Mixed_5d", 288, 8), ("Mixed_6a", 768, s), ("Mixed_6b", 768, s), ("Mixed_6c", 768, s),
            ("Mixed_6d", 768, s), ("Mixed_6e", 768, s), ("head_conv1", 1024, s), ("head_conv2", 1024, s))])
        # ImageNet-normalized x -> (raw - 0.5) / 0.5: x * std / 0.5 + (mean - 0.5) / 0.5, per channel
        self.register_buffer("_scale", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) / 0.5, persistent=False)
        self.register_buffer("_shift", (torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) - 0.5) / 0.5,
                             persistent=False)

    def forward_features(self, x: Tensor) -> Tensor:
        if self.transform_input:
            x = x * self._scale.to(x.dtype) + self._shift.to(x.dtype)
        return self.features(x)

    def map_weight_key(self, key: str) -> str:
        return key if key.startswith(("features.", "fc.")) else f"features.{key}"


@BACKBONES.register("inception_v3_wsol")
def inception_v3_wsol(num_classes: int, pretrained: bool = False, weights: str | os.PathLike[str] | None = None,
                      large_feature_map: bool = False, transform_input: bool = True, **_: Any) -> CamBackbone:
    net = InceptionV3Wsol(num_classes, large_feature_map, transform_input)
    net.init_weights_from("inception_v3_wsol", pretrained=pretrained, weights=weights,
                          torchvision_weights=models.Inception_V3_Weights.IMAGENET1K_V1)
    return net
