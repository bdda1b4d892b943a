"""Backbones with the ``forward_features`` / ``forward_head`` contract, registered by name.

Every backbone is an ``nn.Module`` exposing::

    feats = net.forward_features(x)   # (B, C, h, w), the last feature map
    logits = net.forward_head(feats)  # (B, K), global average pooling + linear
    net.head_weight                   # (K, C), the classifier weights (the CAM weights)

so that logits and CAMs come out of one forward pass (see ``wsolbench.cams``).
"""

from wsolbench.backbones.base import BACKBONES, CamBackbone, create_backbone
from wsolbench.backbones import resnet as _resnet  # noqa: F401  (registers resnet18, resnet50)
from wsolbench.backbones import small_cnn as _small_cnn  # noqa: F401  (registers small_cnn)

__all__ = ["BACKBONES", "CamBackbone", "create_backbone"]
