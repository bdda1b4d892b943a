"""The backbone contract and its registry."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from wsolbench._registry import Registry


class CamBackbone(nn.Module):
    """A classifier whose logit for class k is the spatial mean of its CAM for k (plus a bias).

    Subclasses build ``self.features`` (image -> (B, C, h, w)) and ``self.fc``
    (``nn.Linear(C, K)``). ``forward`` returns logits; CAMs are read from the same
    features with :func:`wsolbench.cams.cam_from_features`.
    """

    features: nn.Module
    fc: nn.Linear

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, feats: Tensor) -> Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(feats, 1), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def head_weight(self) -> Tensor:
        """``(K, C)`` classifier weights: the CAM channel weights of each class."""
        return self.fc.weight

    @property
    def num_classes(self) -> int:
        return self.fc.out_features


BACKBONES: Registry[Any] = Registry("backbone")


def create_backbone(name: str, *, num_classes: int, **kwargs: Any) -> CamBackbone:
    """Build a registered backbone with a fresh ``num_classes``-way head."""
    return BACKBONES.get(name)(num_classes=num_classes, **kwargs)
