"""ADL, the attention-based dropout layer (Choe & Shim, "Attention-based Dropout Layer for Weakly
Supervised Object Localization", CVPR 2019; Choe, Lee & Shim, TPAMI 2021).

A parameter-free layer attached after several backbone stages. During training, at each attached
stage and once per batch, it either hides the most discriminative region of the features or
emphasizes it::

    A(i, j)  = mean_c F_c(i, j)                                self-attention map, per image (B, 1, h, w)
    M_drop   = 1[A < gamma * max_ij A]                         the drop mask (per image maximum)
    M_imp    = sigmoid(A)                                      the importance map
    F'       = F * M_drop   with probability drop_rate,  else  F * M_imp

so the dropped region is exactly the positions with ``A >= gamma * max A``. At evaluation the layer is
the identity; the loss is the run's ``objective`` on the logits of the network with the layers, and
the localization map is the native CAM.

Hyperparameters, their defaults and sources (wsolevaluation ``config.py``, protocol notes 1.1):

- ``drop_rate`` 0.75: the probability of the drop branch, ``adl_drop_rate``.
- ``gamma`` 0.9: the drop threshold as a fraction of the maximum, ``adl_threshold`` (the ``ADL``
  module's own default is 0.8, but ``main.py`` always passes the configured 0.9).
- ``stages`` (None: per backbone family), the positions wsolevaluation attaches ADL at
  (``wsol/vgg.py``, ``resnet.py`` ``_ADL_POSITION``, ``inception.py`` ``InceptionAdl``):

  - VGG16: after ``pool3``, ``conv4_3`` (its ReLU, before pool4) and ``conv5_3``;
  - ResNets (ResNet-50, PreResNet-18, SE-ResNet-50, ResNet-18): after ``layer3.0`` (layer3[0]),
    ``layer4.0`` and ``layer4`` (layer4[2], the last block, for ResNet-50);
  - Inception-v3: after ``Mixed_5d`` (before its max-pool), ``Mixed_6e`` and ``head_conv2``
    (wsolevaluation's ``SPG_A3_2b``, before the class conv);
  - other backbones (``small_cnn``, which tests and CI use): the last two stages, as RDAP's fallback,
    so a tap before the CAM map and one on it are exercised.

Where this follows the public code (wsolevaluation ``wsol/method/adl.py``) and what it leaves open:

- One branch draw per layer and per forward pass, shared by the whole batch: the public code's
  ``floor(rand() + drop_rate)``; here the draw is ``u < drop_rate`` with ``u`` from the step's
  generator (the same probability), one per attached layer, in the order of ``stages``.
- The maximum is per image, over all positions; the comparison is strict (``<``) as in the code,
  so a position at exactly ``gamma * max A`` is dropped. The attention and both maps are computed in
  float32 (also under AMP) and cast to the features' dtype; the importance map is not detached (the
  public code lets the gradient through ``sigmoid(A)``), the drop mask has no gradient.
- wsolevaluation's ADL models are its CAM models with the layers inserted (its Inception CAM model's
  feature dropout is absent from ``InceptionAdl``, and from the benchmark's Inception-v3), so attaching
  the layers to the benchmark's CAM backbones (``net.attach``, which keeps every weight key) is the
  published architecture.

Published for VGG-GAP, ResNet-50(-SE) and Inception-v3, among others (Choe & Shim), and run by
wsolevaluation on VGG16, ResNet-50 and Inception-v3; it applies to every backbone with named stages.
The layers have no parameters; the backbone's parameters get a gradient in every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from wsolbench.backbones import CamBackbone, tap_key
from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import Objective

#: Per backbone family, keyed by a stage name only that family has: the stages ADL is attached after.
_PLACEMENT: dict[str, tuple[str, ...]] = {
    "conv5_3": ("pool3", "conv4_3", "conv5_3"),  # VGG16
    "layer4.0": ("layer3.0", "layer4.0", "layer4"),  # ResNets
    "Mixed_6e": ("Mixed_5d", "Mixed_6e", "head_conv2"),  # Inception-v3
}


def self_attention(x: Tensor) -> Tensor:
    """ADL's self-attention map: the channel mean of ``x`` ``(B, C, h, w)``, ``(B, 1, h, w)`` float32."""
    return x.float().mean(dim=1, keepdim=True)


def drop_mask(attention: Tensor, gamma: float) -> Tensor:
    """``1[A < gamma * max A]`` ``(B, 1, h, w)`` float32, the maximum taken per image: 0 on the dropped
    (most discriminative) positions, those with ``A >= gamma * max A``."""
    peak = attention.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
    return (attention < gamma * peak).float()


class AttentionDropout(nn.Module):
    """The ADL layer. ``drop`` is the branch of the current training forward pass, set by the method:
    True multiplies the features by :func:`drop_mask`, False by ``sigmoid(A)``. Identity in eval mode."""

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma
        self.drop: bool | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        if self.drop is None:
            raise RuntimeError("AttentionDropout in training mode needs its branch drawn by the method "
                               "(Adl.training_step sets .drop for each forward pass)")
        with torch.autocast(device_type=x.device.type, enabled=False):  # the maps in float32, also under AMP
            attention = self_attention(x)
            selected = drop_mask(attention.detach(), self.gamma) if self.drop else torch.sigmoid(attention)
        return x * selected.to(x.dtype)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@METHODS.register("adl")
class Adl(WsolMethod):
    """ADL (Choe & Shim, CVPR 2019): attention-based dropout after the published backbone stages.

    After each attached stage, with probability ``drop_rate`` per batch, the features are multiplied by
    ``1[A < gamma max A]`` (A = channel mean), else by ``sigmoid(A)``; training only. See the module
    docstring for the placement per backbone, the defaults and their sources."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "drop_rate"
        drop_rate: float = 0.75  # probability of the drop branch (wsolevaluation adl_drop_rate)
        gamma: float = 0.9  # drop where A >= gamma * max A (wsolevaluation adl_threshold)
        stages: tuple[str, ...] | None = None  # None: the published positions per backbone family

        def __post_init__(self) -> None:
            if not (_number(self.drop_rate) and 0 <= self.drop_rate <= 1):
                raise ConfigError(f"method.drop_rate must be a number in [0, 1], got {self.drop_rate!r}")
            if not (_number(self.gamma) and 0 <= self.gamma <= 1):
                raise ConfigError(f"method.gamma must be a number in [0, 1], got {self.gamma!r}")
            s = self.stages
            if s is not None and (not isinstance(s, tuple) or not s or len(set(s)) != len(s)
                                  or not all(isinstance(n, str) and n for n in s)):
                raise ConfigError(f"method.stages must be distinct stage names or None, got {s!r}")

    def __init__(self, net: CamBackbone, objective: Objective, config: Config | None = None) -> None:
        super().__init__(net, objective, config)
        names = [s.name for s in net.stages]
        default = next((row for marker, row in _PLACEMENT.items() if marker in names), tuple(names[-2:]))
        stages = self.config.stages if self.config.stages is not None else default
        unknown = [s for s in stages if s not in names]
        if unknown:
            raise ConfigError(f"method.stages: {type(net).__name__} has no stage(s) "
                              f"{', '.join(map(repr, unknown))} (stages: {', '.join(names)})")
        self.stages = tuple(stages)
        self._keys = tuple(tap_key(s) for s in self.stages)
        for stage in self.stages:
            net.attach(stage, AttentionDropout(self.config.gamma))

    def layers(self) -> list[AttentionDropout]:
        """The attached ADL layers, in the order of ``stages``."""
        return [self.net.taps[key] for key in self._keys]

    @contextmanager
    def branches(self, generator: torch.Generator) -> Iterator[list[bool]]:
        """Draw each layer's branch for one forward pass (True: drop mask); cleared on exit."""
        layers = self.layers()
        drops = (torch.rand(len(layers), generator=generator) < self.config.drop_rate).tolist()
        for layer, drop in zip(layers, drops, strict=True):
            layer.drop = drop
        try:
            yield drops
        finally:
            for layer in layers:
                layer.drop = None

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        with self.branches(ctx.generator):
            logits = self.net(batch["image"])
        parts = {"objective": self.objective(logits, batch["target"])}
        return {"loss": sum(parts.values()), **parts, "logits": logits}
