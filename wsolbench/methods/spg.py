"""SPG, self-produced guidance (Zhang, Wei, Kang, Huang, Yang, ECCV 2018).

The classifier's own attention, thresholded into foreground / background / ignore, becomes
pixel-level guidance for 1-channel side branches on earlier layers, and their fused
output guides another branch in turn::

    A       = minmax(upsample(CAM of the label))            (B, H, W), at the input resolution
    B1, B2  = shared(conv(F_b1)), shared(conv(F_b2))          1-channel logits on two earlier stages
    C       = head_c(F_last)                                   1-channel logits on the CAM map
    mask(a, h, l): foreground a > h, background a < l, ignore in between
    loss    = objective(logits, target)
            + BCE(B2, mask(A, h1, l1))                         stage 1: the classifier guides B2
            + BCE(B1, mask(sigmoid(B2), h2, l2))               stage 2: B2 guides B1
            + BCE(C,  mask((sigmoid(B1) + sigmoid(B2)) / 2, h3, l3))   stage 3: the fused B guides C

each BCE with logits averaged over the non-ignored pixels of the whole batch, every map
bilinearly upsampled (``align_corners=False``) to the input size first. The localization map is
the native CAM (the public code's CAM is the class channel of ``SPG_A4``, the 1 x 1 class conv
whose GAP gives the logits: the native CAM plus a constant bias, the same after min-max).

Defaults and sources (wsolevaluation ``wsol/method/spg.py``, the ``*Spg`` models, ``config.py``;
protocol notes 1.1):

- Threshold pairs (high, low): ``(threshold_1h, threshold_1l) = (0.7, 0.01)``,
  ``(threshold_2h, threshold_2l) = (0.5, 0.05)``, ``(threshold_3h, threshold_3l) = (0.7, 0.1)``:
  wsolevaluation's ``spg_threshold_*`` defaults.
- Foreground is ``a > high`` and background ``a < low`` (strict, as the public code); where both
  could hold (only after the fallback below) background wins, as the public code writes it last.
- Fallback (public code ``mask_fg``): an image with fewer than ``min_foreground`` = 30 foreground
  pixels takes ``a > fallback * max(a)``, ``fallback`` = 0.7, instead. The public code counts
  pixels at 224 x 224, its input size; here at the input size of the run.
- Guidance targets are detached (the public code builds them with comparisons into a new
  tensor); every loss backpropagates into the backbone through its branch, which is how the
  earlier layers are supervised. The attention A uses the ground-truth label (the public code
  passes the labels in training) and is min-max normalized after upsampling, as there; a
  constant map becomes zeros (all background) instead of the public code's NaN (all ignored).
- Weights: every term has weight 1, as the public loss. The classification term is the run's
  ``objective`` (CE in the public code), so SPG combines with every objective.
- Branch placement per backbone family (``b1_stage``, ``b2_stage``; None: the family's default),
  as the public models read them: VGG16 B1 after ``pool4`` (``SPG_A_1`` = conv4 + pool), B2 after
  ``conv5_3``, width 512; ResNet-50 B1 after ``layer3.0`` (``SPG_A1``), B2 after ``layer3``
  (``SPG_A2``), width 1024 (the ``layer3`` channels, so smaller ResNets scale with it);
  Inception-v3 B1 after ``Mixed_5d``, B2 after ``Mixed_6d`` (the public ``SPG_B_2a`` reads
  ``Mixed_6d``'s output, not ``Mixed_6e``'s), width 512. Branch heads as the public code:
  ``conv3x3(C -> W) + ReLU`` per branch, then a shared ``conv3x3(W -> W) + ReLU + conv1x1(W -> 1)``;
  C: ``conv3x3(C_last -> 512) + ReLU + conv1x1(512 -> 1)`` on the CAM map. Other backbones
  (``small_cnn``): B1, B2 on the two stages before the last, width = B2's channels, C width =
  the CAM map's channels. New layers are Xavier-uniform with zero bias (wsolevaluation's
  ``initialize_weights(..., 'xavier')``) and trained at the new-layer learning rate (as the public
  code on VGG16 and Inception-v3; its ResNet rule, ``layer4.`` + ``fc.`` at 10x, leaves them at the
  base rate).

Where the benchmark departs from the public code: the backbone is the benchmark's own (VGG16
keeps ``conv6`` as the last layer before the head where the public model has two new 3 x 3
convs ``SPG_A_3``; Inception-v3's ``head_conv1``/``head_conv2`` are the public ``SPG_A3_1b``/
``SPG_A3_2b``), so the CAM baseline and SPG differ only by the guidance branches; the public
Inception model's dropout layers before and after its head convs are not added.

Published for Inception-v3 (Zhang et al.), VGG16 and ResNet-50 (wsolevaluation). Every parameter
receives a gradient in every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsolbench.backbones import CamBackbone, tap_key
from wsolbench.cams.native import cam_from_features, normalize_minmax
from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import Objective

#: Per backbone family, keyed by a stage name only that family has: (B1 stage, B2 stage, width or None =
#: B2's channels, C width).
_PLACEMENT: dict[str, tuple[str, str, int | None, int]] = {
    "conv5_3": ("pool4", "conv5_3", 512, 512),  # VGG16
    "layer3.0": ("layer3.0", "layer3", None, 512),  # ResNets (1024 on ResNet-50)
    "Mixed_6d": ("Mixed_5d", "Mixed_6d", 512, 512),  # Inception-v3
}


def guidance_masks(attention: Tensor, high: float, low: float, *, min_foreground: int = 30,
                   fallback: float = 0.7) -> tuple[Tensor, Tensor]:
    """SPG's self-produced guidance from ``attention`` ``(B, H, W)`` in [0, 1]: ``(foreground, background)``.

    Foreground ``attention > high``; an image with fewer than ``min_foreground`` such pixels uses
    ``attention > fallback * max(attention)`` instead. Background ``attention < low`` (it wins where both
    hold). Every other pixel is ignored. Both masks are boolean ``(B, H, W)``, disjoint.
    """
    a = attention.detach().float()
    fg = a > high
    few = fg.flatten(1).sum(dim=1) < min_foreground
    peak = a.flatten(1).max(dim=1).values
    fg = torch.where(few[:, None, None], a > fallback * peak[:, None, None], fg)
    bg = a < low
    return fg & ~bg, bg


def masked_bce(logits: Tensor, foreground: Tensor, background: Tensor) -> Tensor:
    """Binary cross-entropy with logits ``(B, H, W)`` against 1 on ``foreground``, 0 on ``background``,
    averaged over those pixels of the whole batch (0 when there are none), float32."""
    valid = foreground | background
    loss = F.binary_cross_entropy_with_logits(logits.float(), foreground.float(), reduction="none")
    return (loss * valid).sum() / valid.sum().clamp(min=1)


class StageKeeper(nn.Module):
    """A tap that returns its input unchanged and, while ``armed``, keeps a reference to it."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.kept: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.armed:
            self.kept = x
        return x


def _branch(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=False))


def _check_pair(high: float, low: float, names: str) -> None:
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (high, low))
    if not (ok and 0 <= low < high <= 1):
        raise ConfigError(f"method.{names} must satisfy 0 <= low < high <= 1, got high={high!r}, low={low!r}")


@METHODS.register("spg")
class Spg(WsolMethod):
    """SPG (Zhang et al., ECCV 2018): thresholded attention of the later layers supervises 1-channel
    branches on earlier layers (foreground / background / ignore). See the module docstring."""

    @dataclass(frozen=True)
    class Config:
        threshold_1h: float = 0.7  # stage 1 (classifier attention -> B2), wsolevaluation spg_threshold_1h
        threshold_1l: float = 0.01
        threshold_2h: float = 0.5  # stage 2 (sigmoid(B2) -> B1)
        threshold_2l: float = 0.05
        threshold_3h: float = 0.7  # stage 3 (fused B1, B2 -> C)
        threshold_3l: float = 0.1
        min_foreground: int = 30  # public code: fewer foreground pixels -> fallback threshold
        fallback: float = 0.7  # ... fallback * max(attention)
        b1_stage: str | None = None  # None: the backbone family's default (module docstring)
        b2_stage: str | None = None

        def __post_init__(self) -> None:
            for i in (1, 2, 3):
                _check_pair(getattr(self, f"threshold_{i}h"), getattr(self, f"threshold_{i}l"),
                            f"threshold_{i}h/threshold_{i}l")
            n = self.min_foreground
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ConfigError(f"method.min_foreground must be an integer >= 0, got {n!r}")
            f = self.fallback
            if not (isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f <= 1):
                raise ConfigError(f"method.fallback must be a number in [0, 1], got {f!r}")
            for key in ("b1_stage", "b2_stage"):
                value = getattr(self, key)
                if value is not None and (not isinstance(value, str) or not value):
                    raise ConfigError(f"method.{key} must be a stage name or None, got {value!r}")

    def __init__(self, net: CamBackbone, objective: Objective, config: Config | None = None) -> None:
        super().__init__(net, objective, config)
        cfg = self.config
        names = [s.name for s in net.stages]
        default = next((row for marker, row in _PLACEMENT.items() if marker in names), None)
        if default is None:
            if len(names) < 3:
                raise ConfigError(f"spg needs two stages before the last; {type(net).__name__} has {names}")
            default = (names[-3], names[-2], None, net.stages[-1].channels)
        b1 = cfg.b1_stage or default[0]
        b2 = cfg.b2_stage or default[1]
        for key, stage in (("b1_stage", b1), ("b2_stage", b2)):
            if stage not in names:
                raise ConfigError(f"method.{key}: {type(net).__name__} has no stage {stage!r} "
                                  f"(stages: {', '.join(names)})")
        if b1 == b2:
            raise ConfigError(f"method.b1_stage and method.b2_stage must differ, both are {b1!r}")
        self.b1_stage, self.b2_stage = b1, b2
        width = default[2] or net.stage(b2).channels
        self.b1_in = _branch(net.stage(b1).channels, width)
        self.b2_in = _branch(net.stage(b2).channels, width)
        self.b_shared = nn.Sequential(_branch(width, width), nn.Conv2d(width, 1, 1))
        self.head_c = nn.Sequential(_branch(net.stages[-1].channels, default[3]), nn.Conv2d(default[3], 1, 1))
        for module in (self.b1_in, self.b2_in, self.b_shared, self.head_c):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        self._keys = (tap_key(b1), tap_key(b2))
        net.attach(b1, StageKeeper())
        net.attach(b2, StageKeeper())

    @contextmanager
    def _keeping(self) -> Iterator[list[Tensor]]:
        """Arm both keepers for one forward pass; the list receives the B1 and B2 stages' outputs."""
        keepers = [self.net.taps[key] for key in self._keys]
        out: list[Tensor] = []
        for k in keepers:
            k.armed, k.kept = True, None
        try:
            yield out
        finally:
            out.extend(k.kept for k in keepers if k.kept is not None)
            for k in keepers:
                k.armed, k.kept = False, None

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        x, cfg = batch["image"], self.config
        size = x.shape[-2:]
        with self._keeping() as kept:
            feats = self.net.forward_features(x)
        f1, f2 = kept
        logits = self.net.forward_head(feats)

        def up(t: Tensor) -> Tensor:  # (B, 1, h, w) -> (B, H, W) float32 at the input size
            return F.interpolate(t.float(), size=size, mode="bilinear", align_corners=False).squeeze(1)

        heads = (self.b_shared(self.b1_in(f1)), self.b_shared(self.b2_in(f2)), self.head_c(feats))
        parts = {"objective": self.objective(logits, batch["target"])}
        with torch.autocast(device_type=x.device.type, enabled=False):  # guidance in float32, also under AMP
            with torch.no_grad():
                cam = cam_from_features(feats.detach().float(), self.net.head_weight.detach().float(),
                                        batch["label"])
                attention = normalize_minmax(up(cam.unsqueeze(1)))
            b1, b2, c = (up(h) for h in heads)
            p1, p2 = torch.sigmoid(b1.detach()), torch.sigmoid(b2.detach())
            masks = dict(min_foreground=cfg.min_foreground, fallback=cfg.fallback)
            parts["guidance_b2"] = masked_bce(b2, *guidance_masks(attention, cfg.threshold_1h, cfg.threshold_1l,
                                                                  **masks))
            parts["guidance_b1"] = masked_bce(b1, *guidance_masks(p2, cfg.threshold_2h, cfg.threshold_2l, **masks))
            parts["guidance_c"] = masked_bce(c, *guidance_masks((p1 + p2) / 2, cfg.threshold_3h, cfg.threshold_3l,
                                                                **masks))
        return {"loss": sum(parts.values()), **parts, "logits": logits}
