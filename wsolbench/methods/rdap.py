"""RDAP, region-based dropout with attention prior (Choe, Han, Yun, Ha, Oh, Shim, Pattern Recognition
116, 107949, 2021).

A layer attached after backbone stages (like ADL, by the same authors): the self-attention map
finds the most discriminative part and a fixed-size square mask centred on it hides it during
training, combining adversarial erasing (where to drop) with regional dropout (what shape to
drop; Cutout, DropBlock), which the paper motivates by hyperparameters that transfer across
architectures and datasets. At each attached stage, for each image chosen with probability
``drop_rate``::

    A(i, j)  = mean_c F_c(i, j)                              self-attention (channel mean), (h, w)
    (i*, j*) = argmax A                                      first maximum in row-major order
    s        = max(1, floor(mask_size * min(h, w) + 1/2))    side of the square, in cells
    M(i, j)  = 0 if  i* - s//2 <= i < i* - s//2 + s  and  j* - s//2 <= j < j* - s//2 + s, else 1
    F'       = F * M                                         (clipped at the borders, not shifted)

and ``F' = F`` for the other images, always at evaluation. The training loss is the run's
``objective`` on the logits of the masked network; the localization map is the native CAM.

No public code exists and the paper's text was not available to us, so every detail below is
our choice, stated with its reason. The description we implement is the one the issue and the
entropy-regularization study (Hwang et al., PRL 2023) give: "utilizes the self-attention mechanism
to find the most discriminative part ... unlike the ADL, RDAP hides the most discriminative part
with a fixed-size square mask".

- Attention: the channel mean of the stage's features, ADL's self-attention map (the same
  authors' layer that RDAP modifies). Computed on the features, detached (the mask is a
  selection, it has no gradient).
- Centre: the maximum of that map; ties go to the first in row-major order (``argmax``).
- Size: ``mask_size`` is the side of the square as a fraction of the feature map's shorter side,
  so the hidden region covers the same part of the image at every stage and at every feature-map
  size (``large_feature_map``), in the spirit of the paper's transferable hyperparameters; the
  side is rounded half up to whole cells, at least 1. Default 0.5, our choice: half the side is
  the Cutout size found best on CIFAR-10 (16 of 32 pixels, DeVries & Taylor 2017), the regional
  dropout RDAP builds on. Even sides put the extra cell above / left of the centre (``s//2``
  before it), as Cutout's ``y - s//2 : y + s//2``; the square is clipped at the borders (a
  maximum near an edge hides fewer cells), not shifted inside.
- Drop probability: ``drop_rate`` 0.75, ADL's published drop rate (wsolevaluation), which RDAP
  replaces at the same positions. Drawn per image and per attached stage from the step's
  generator (Cutout draws per image; ADL's one draw per batch is a by-product of its TF code).
  Images not dropped pass unchanged: no importance map (ADL's other branch), since the method is
  described by its drop mask alone; and no rescaling of the kept features (neither Cutout nor
  ADL rescales).
- Placement (``stages``; None: per backbone family): ADL's published positions, as wsolevaluation
  attaches ADL: VGG16 after ``pool3``, ``conv4_3``, ``conv5_3``; ResNets (ResNet-50 SE,
  PreResNet-18, ...) after ``layer3.0``, ``layer4.0``, ``layer4``; Inception-v3 after ``Mixed_5d``,
  ``Mixed_6e``, ``head_conv2``; other backbones (``small_cnn``) the last two stages.

Published for VGG-GAP (VGG16), Inception-v3, ResNet-50 SE and PreResNet-18. The layers have no
parameters; the backbone's parameters get a gradient in every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from wsolbench.backbones import CamBackbone, tap_key
from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import Objective

#: Per backbone family, keyed by a stage name only that family has: the stages RDAP is attached after.
_PLACEMENT: dict[str, tuple[str, ...]] = {
    "conv5_3": ("pool3", "conv4_3", "conv5_3"),  # VGG16
    "layer4.0": ("layer3.0", "layer4.0", "layer4"),  # ResNets
    "Mixed_6e": ("Mixed_5d", "Mixed_6e", "head_conv2"),  # Inception-v3
}


def mask_side(mask_size: float, h: int, w: int) -> int:
    """The square's side in cells: ``max(1, floor(mask_size * min(h, w) + 0.5))``."""
    return max(1, math.floor(mask_size * min(h, w) + 0.5))


def square_mask(attention: Tensor, side: int) -> Tensor:
    """``(B, h, w)`` bool, True inside the ``side`` x ``side`` square centred on each map's maximum.

    attention: ``(B, h, w)``. The square spans rows ``i* - side//2 .. i* - side//2 + side - 1`` (and the
    same for columns) around the first maximum ``(i*, j*)`` in row-major order, clipped at the borders.
    """
    b, h, w = attention.shape
    peak = attention.detach().flatten(1).argmax(dim=1)
    top, left = peak // w - side // 2, peak % w - side // 2
    rows = torch.arange(h, device=attention.device)
    cols = torch.arange(w, device=attention.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
    return in_rows[:, :, None] & in_cols[:, None, :]


class RegionDrop(nn.Module):
    """The RDAP layer: hides the square around the attention maximum of the images in ``drop``.

    ``drop`` is a ``(B,)`` bool set by the method for one training forward pass (None otherwise);
    the layer is the identity in eval mode or without it.
    """

    def __init__(self, mask_size: float) -> None:
        super().__init__()
        self.mask_size = mask_size
        self.drop: Tensor | None = None

    def hidden(self, x: Tensor) -> Tensor:
        """The cells hidden from ``x`` ``(B, C, h, w)`` if every image were dropped: ``(B, h, w)`` bool."""
        attention = x.detach().float().mean(dim=1)
        return square_mask(attention, mask_side(self.mask_size, *x.shape[-2:]))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop is None:
            return x
        hide = self.hidden(x) & self.drop.to(x.device)[:, None, None]
        return x * (~hide).unsqueeze(1).to(x.dtype)


@METHODS.register("rdap")
class Rdap(WsolMethod):
    """RDAP (Choe et al., Pattern Recognition 2021): a square of side ``mask_size`` (fraction of the map)
    centred on the self-attention maximum is hidden with probability ``drop_rate`` at each attached stage
    during training. Implemented from the paper's description; see the module docstring for each choice."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "mask_size"
        mask_size: float = 0.5  # side of the square / the map's shorter side (our choice, module docstring)
        drop_rate: float = 0.75  # per image and stage (ADL's published drop rate)
        stages: tuple[str, ...] | None = None  # None: ADL's positions per backbone family

        def __post_init__(self) -> None:
            s = self.mask_size
            if not (isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s <= 1):
                raise ConfigError(f"method.mask_size must be a number in (0, 1], got {s!r}")
            p = self.drop_rate
            if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1):
                raise ConfigError(f"method.drop_rate must be a number in [0, 1], got {p!r}")
            if self.stages is not None and (not self.stages or len(set(self.stages)) != len(self.stages)):
                raise ConfigError(f"method.stages must be distinct stage names or None, got {self.stages!r}")

    def __init__(self, net: CamBackbone, objective: Objective, config: Config | None = None) -> None:
        super().__init__(net, objective, config)
        names = [s.name for s in net.stages]
        default = next((row for marker, row in _PLACEMENT.items() if marker in names), tuple(names[-2:]))
        stages = tuple(self.config.stages) if self.config.stages is not None else default
        unknown = [s for s in stages if s not in names]
        if unknown:
            raise ConfigError(f"method.stages: {type(net).__name__} has no stage(s) {', '.join(map(repr, unknown))} "
                              f"(stages: {', '.join(names)})")
        self.stages = stages
        self._keys = tuple(tap_key(s) for s in stages)
        for stage in stages:
            net.attach(stage, RegionDrop(self.config.mask_size))

    def layers(self) -> list[RegionDrop]:
        """The attached RDAP layers, in the order of ``stages``."""
        return [self.net.taps[key] for key in self._keys]

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        x = batch["image"]
        layers = self.layers()
        draws = torch.rand(len(layers), x.shape[0], generator=ctx.generator) < self.config.drop_rate
        for layer, drop in zip(layers, draws, strict=True):
            layer.drop = drop.to(x.device)
        try:
            logits = self.net(x)
        finally:
            for layer in layers:
                layer.drop = None
        parts = {"objective": self.objective(logits, batch["target"])}
        return {"loss": sum(parts.values()), **parts, "logits": logits}
