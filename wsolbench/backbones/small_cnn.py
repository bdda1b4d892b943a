"""A small ResNet-style CAM network for CPU runs on the built-in synthetic data.

conv3x3 (stride 2) + BN + ReLU, then three basic blocks (w, stride 1), (2w, stride 2),
(4w, stride 1): a 64 x 64 input gives a 16 x 16 feature map (stride 4). With
w = 16 it has about 78k parameters.

Stages (name: module, channels, stride): ``stem`` (``features.2``, after the ReLU) w, 2;
``block1`` (``features.3``) w, 2; ``block2`` (``features.4``) 2w, 4; ``block3``
(``features.5``) 4w, 4, the last stage and the CAM's map.
"""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor, nn

from wsolbench.backbones.base import BACKBONES, CamBackbone


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallCnn(CamBackbone):
    """The CPU network; ``width`` sets the channels (w, 2w, 4w)."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            BasicBlock(w, w, 1), BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 4 * w, 1),
        )
        self.fc = nn.Linear(4 * w, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self._declare_stages([("stem", "features.2", w, 2), ("block1", "features.3", w, 2),
                              ("block2", "features.4", 2 * w, 4), ("block3", "features.5", 4 * w, 4)])


@BACKBONES.register("small_cnn")
def small_cnn(num_classes: int, width: int = 16, pretrained: bool = False,
              weights: str | os.PathLike[str] | None = None, **_: Any) -> CamBackbone:
    """``large_feature_map`` does not apply; there are no ImageNet weights (``weights=FILE`` loads a state dict)."""
    net = SmallCnn(num_classes, width)
    net.init_weights_from("small_cnn", pretrained=pretrained, weights=weights)
    return net
