"""Backbones with the ``forward_features`` / ``forward_head`` contract, registered by name.

Every backbone is an ``nn.Module`` exposing::

    feats = net.forward_features(x)   # (B, C, h, w), the last feature map
    logits = net.forward_head(feats)  # (B, K), global average pooling + linear
    net.head_weight                   # (K, C), the classifier weights (the CAM weights)

so that logits and CAMs come out of one forward pass (see ``wsolbench.cams``), and its
named stages (:class:`Stage`: name, channels, output stride), input to output::

    net.stages                        # (Stage("stem", 64, 4), ..., Stage("layer4", 2048, 16))
    net.last_stage                    # "layer4": what forward_features returns
    net.stage_module("layer3.0")      # the module whose output is that stage (Grad-CAM target)
    net.attach("layer3.0", adl)       # out = adl(out) on every forward; stored in net.taps

Registered: ``small_cnn`` (the CPU network), ``resnet18`` / ``resnet50`` (torchvision's
layout, 7 x 7 CAM at 224), and the WSOL literature's adapted networks with a 14 x 14 CAM
at 224 (28 x 28 with ``large_feature_map``): ``vgg16_wsol``, ``resnet50_wsol``,
``inception_v3_wsol``, ``preresnet18``, ``se_resnet50``. Every constructor takes
``num_classes``, ``pretrained``, ``weights`` (a local file) and ``large_feature_map``;
see :mod:`wsolbench.backbones.weights` for where weights come from (never downloaded).
"""

from wsolbench.backbones import inception as _inception  # noqa: F401  (registers inception_v3_wsol)
from wsolbench.backbones import preresnet as _preresnet  # noqa: F401  (registers preresnet18)
from wsolbench.backbones import resnet as _resnet  # noqa: F401  (resnet18, resnet50, resnet50_wsol, se_resnet50)
from wsolbench.backbones import small_cnn as _small_cnn  # noqa: F401  (registers small_cnn)
from wsolbench.backbones import vgg as _vgg  # noqa: F401  (registers vgg16_wsol)
from wsolbench.backbones.base import BACKBONES, CamBackbone, Stage, create_backbone, tap_key
from wsolbench.backbones.weights import WeightsInfo

__all__ = ["BACKBONES", "CamBackbone", "Stage", "WeightsInfo", "create_backbone", "tap_key"]
