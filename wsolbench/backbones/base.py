"""The backbone contract and its registry."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from wsolbench._registry import Registry
from wsolbench.backbones.weights import WeightsInfo, load_weights, resolve_weights_file


class CamBackbone(nn.Module):
    """A classifier whose logit for class k is the spatial mean of its CAM for k (plus a bias).

    Subclasses build ``self.features`` (image -> (B, C, h, w)) and ``self.fc``
    (``nn.Linear(C, K)``); one that adds layers after ``features`` overrides
    :meth:`forward_features`. ``forward`` returns logits; CAMs are read from the same
    features with :func:`wsolbench.cams.cam_from_features`.

    ``new_modules`` names (dotted, relative to the backbone) the submodules trained at
    the new-layer learning rate (``lr * new_layer_lr_mult``, see
    :func:`wsolbench.engine.build_optimizer`): the head, and the layers the WSOL
    literature adapts or adds. ``weights_info`` is set when weights were loaded.
    """

    features: nn.Module
    fc: nn.Linear
    new_modules: tuple[str, ...] = ("fc",)
    weights_info: WeightsInfo | None = None

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

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``new_modules`` (trained at ``lr * new_layer_lr_mult``)."""
        return [p for n, p in self.named_parameters() if self._is_new(n)]

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """All other parameters: the (possibly pretrained) body, trained at the base ``lr``."""
        return [p for n, p in self.named_parameters() if not self._is_new(n)]

    def _is_new(self, param_name: str) -> bool:
        return any(param_name == m or param_name.startswith(m + ".") for m in self.new_modules)

    def map_weight_key(self, key: str) -> str:
        """A weights file's state-dict key (torchvision's naming) -> this backbone's key."""
        return key

    def init_weights_from(self, name: str, *, pretrained: bool = False,
                          weights: str | os.PathLike[str] | None = None, torchvision_weights: Any = None) -> None:
        """Load ``weights`` (a file) or, with ``pretrained``, torchvision's cached ImageNet weights.

        ``torchvision_weights`` is the pinned weight enum (None: torchvision has none). Called
        at the end of a registered constructor; see :mod:`wsolbench.backbones.weights`.
        """
        path = resolve_weights_file(name, pretrained=pretrained, weights=weights,
                                    torchvision_weights=torchvision_weights)
        if path is not None:
            self.weights_info = load_weights(self, path, self.map_weight_key)


BACKBONES: Registry[Any] = Registry("backbone")


def create_backbone(name: str, *, num_classes: int, **kwargs: Any) -> CamBackbone:
    """Build a registered backbone with a fresh ``num_classes``-way head.

    Every backbone accepts ``pretrained`` (bool), ``weights`` (a local file) and
    ``large_feature_map`` (bool; ignored by those without the option) besides its own
    keywords; unknown keywords are ignored.
    """
    return BACKBONES.get(name)(num_classes=num_classes, **kwargs)
