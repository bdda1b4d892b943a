"""ACoL, adversarial complementary learning (Zhang, Wei, Feng, Yang, Huang, CVPR 2018).

Two classifiers share the backbone. Classifier A is the backbone's own head; classifier B
sees the same features with A's discriminative region erased::

    F      = features at the erase stage                     (B, C, h, w)
    M_A    = CAM of A for the label, min-max normalized to [0, 1] per image
    F_B    = F * 1[M_A < threshold]                          (erased where M_A >= threshold)
    loss   = objective(logits_A, target) + objective(logits_B(F_B), target)
    map    = max(minmax(CAM_A), minmax(CAM_B))               (the localization map)

What this follows, and where from (wsolevaluation ``wsol/method/acol.py`` and the
``*Acol`` models in ``wsol/vgg.py``, ``resnet.py``, ``inception.py``; protocol notes 1.1):

- ``threshold`` 0.7: wsolevaluation's ``acol_drop_threshold`` default. The erased region is
  ``minmax(CAM_A) >= threshold`` (``torch.ge`` as the public code), on the class map of the
  ground-truth label during training (the public code passes the labels), detached.
- The attention is the per-image min-max of A's class map; a constant map erases nothing
  (the public code divides by zero there, gets NaN and erases nothing as well).
- The loss is the sum of the two classifiers' losses with weight 1 each; here each is the run's
  ``objective`` (CE in the public code), so ACoL combines with every objective.
- The map fuses the two branches as the public code does: the element-wise maximum of the
  two min-max-normalized class maps. As there, B's map at evaluation time is computed on
  features erased with A's map of the evaluated class (the GT class in the GT-known protocol):
  the erasing is part of how the map is made, so it is not train-only.
- Classification logits (top-1, the Grad-CAM family through ``classify``) are A's, as the public
  code's ``logits``.
- VGG16 only: the public code smooths the conv5_3 features with a 3 x 3 mean filter
  (``F.avg_pool2d(3, 1, 1)``) before both classifiers; ``smooth`` (None: on for VGG16, off
  elsewhere) does the same with a tap at the erase stage. (Its VGG16 also swaps the 2 x 2 max-pools
  for 3 x 3 ones and adds a stride-1 one after conv5_3; the benchmark's VGG16 is kept as it is.)

Where the benchmark's design departs from the public code, and why:

- Classifier A is the backbone's own head: the layers after the erase stage and ``fc`` (VGG16:
  ``conv6`` + ``fc`` after ``conv5_3``; Inception-v3: ``head_conv1``, ``head_conv2``, ``fc`` after
  ``Mixed_6e``, exactly the public classifier; ResNets: ``fc`` on ``layer4``). The public code
  replaces the head by two conv 3 x 3 (-> 1024) + conv 1 x 1 classifiers on every backbone; keeping
  the head of the CAM baseline keeps A identical to the baseline it is compared with, and the
  native CAM, the Grad-CAM family and the checkpoints of the backbone all apply to A unchanged.
- Classifier B mirrors A and is new: ``branch_convs`` conv 3 x 3 + ReLU layers (the first from the
  erase stage's channels to the CAM map's, the others at that width; None: as many as A has after
  the erase stage, so 1 on VGG16, 2 on Inception-v3, 0 when erasing at the last stage) and a
  linear classifier on their global average (= a 1 x 1 conv + GAP). New layers are initialized
  as wsolevaluation does (conv: Xavier-uniform, zero bias; linear: N(0, 0.01), zero bias) and
  trained at the new-layer learning rate (as the public classifiers on VGG16 and Inception-v3;
  its ResNet rule, ``layer4.`` + ``fc.`` at 10x, leaves its ACoL classifiers at the base rate).
- Erase stage per backbone family (``erase_stage``; None: the default): VGG16 ``conv5_3``,
  Inception-v3 ``Mixed_6e``, ResNets (and any other backbone) the last stage, the public code's
  positions; ``small_cnn`` ``block2`` (B is then a conv + linear mirror of ``block3`` + ``fc``, so
  the test network exercises the erase-before-the-head path). The stage must have the CAM map's
  stride, since A's map erases it cell by cell.

Published for VGG16, Inception-v3 (Zhang et al.; wsolevaluation) and ResNet-50 (wsolevaluation).
Every parameter receives a gradient in every step (DDP needs no unused-parameter search).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsolbench.backbones import CamBackbone, tap_key
from wsolbench.cams.native import cam_from_features, normalize_minmax
from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import Objective

#: Per backbone family, keyed by a stage name only that family has: (erase stage, B's conv layers, smooth).
_PLACEMENT: dict[str, tuple[str, int, bool]] = {
    "conv5_3": ("conv5_3", 1, True),  # VGG16: A = conv6 + fc
    "Mixed_6e": ("Mixed_6e", 2, False),  # Inception-v3: A = head_conv1 + head_conv2 + fc
    "block2": ("block2", 1, False),  # small_cnn: A = block3 + fc
}


def erase_above(features: Tensor, cam: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """ACoL's erasing: ``features * 1[minmax(cam) < threshold]`` and the erased region.

    features: ``(B, C, h, w)``; cam: ``(B, h, w)`` raw class maps (min-max normalized per image here;
    a constant map erases nothing). Returns the erased features (same dtype) and the boolean region
    ``minmax(cam) >= threshold`` ``(B, h, w)`` that was set to zero in every channel.
    """
    erased = normalize_minmax(cam.detach().float()) >= threshold
    return features * (~erased).unsqueeze(1).to(features.dtype), erased


def fuse_maps(cam_a: Tensor, cam_b: Tensor) -> Tensor:
    """The localization map: ``max(minmax(cam_a), minmax(cam_b))`` per image, ``(B, h, w)`` in [0, 1]."""
    return torch.maximum(normalize_minmax(cam_a.float()), normalize_minmax(cam_b.float()))


class StageKeeper(nn.Module):
    """A tap that optionally smooths a stage's output (3 x 3 mean, stride 1, zero padding counted, as
    ``F.avg_pool2d`` in the public code) and, while ``armed``, keeps a reference to what it returns."""

    def __init__(self, smooth: bool) -> None:
        super().__init__()
        self.smooth = smooth
        self.armed = False
        self.kept: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.smooth:
            x = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        if self.armed:
            self.kept = x
        return x


def _float32(x: Tensor) -> torch.autocast:
    """Autocast off on ``x``'s device: maps and masks are computed in float32 under AMP too."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@METHODS.register("acol")
class Acol(WsolMethod):
    """ACoL (Zhang et al., CVPR 2018): classifier B learns from features with classifier A's
    discriminative region (its normalized CAM >= ``threshold``) erased; the map is the maximum of the
    two normalized CAMs. See the module docstring for the formula, the defaults and their sources."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "threshold"
        threshold: float = 0.7  # wsolevaluation acol_drop_threshold
        erase_stage: str | None = None  # None: VGG16 conv5_3, Inception-v3 Mixed_6e, small_cnn block2, else last
        branch_convs: int | None = None  # B's conv 3x3 layers; None: as many as A has after the erase stage
        smooth: bool | None = None  # 3x3 mean filter on the erase stage (None: VGG16 only, as the public code)

        def __post_init__(self) -> None:
            t = self.threshold
            if not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and 0 < t <= 1):
                raise ConfigError(f"method.threshold must be a number in (0, 1], got {t!r}")
            if self.erase_stage is not None and (not isinstance(self.erase_stage, str) or not self.erase_stage):
                raise ConfigError(f"method.erase_stage must be a stage name or None, got {self.erase_stage!r}")
            n = self.branch_convs
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
                raise ConfigError(f"method.branch_convs must be an integer >= 0 or None, got {n!r}")

    def __init__(self, net: CamBackbone, objective: Objective, config: Config | None = None) -> None:
        super().__init__(net, objective, config)
        cfg = self.config
        names = [s.name for s in net.stages]
        default = next((row for marker, row in _PLACEMENT.items() if marker in names), None)
        stage = cfg.erase_stage or (default[0] if default else net.last_stage)
        if stage not in names:
            raise ConfigError(f"method.erase_stage: {type(net).__name__} has no stage {stage!r} "
                              f"(stages: {', '.join(names)})")
        erase, last = net.stage(stage), net.stages[-1]
        if erase.stride != last.stride:
            raise ConfigError(f"method.erase_stage: stage {stage!r} has stride {erase.stride} but the CAM map "
                              f"({last.name}) has stride {last.stride}; ACoL erases the stage with that map")
        at_default = default is not None and stage == default[0]
        convs = cfg.branch_convs
        if convs is None:
            convs = 0 if stage == last.name else (default[1] if at_default else 1)
        if convs == 0 and erase.channels != last.channels:
            raise ConfigError(f"method.branch_convs must be >= 1: stage {stage!r} has {erase.channels} channels, "
                              f"the CAM map {last.channels}")
        smooth = cfg.smooth if cfg.smooth is not None else bool(at_default and default[2])
        self.erase_stage, self.branch_convs, self.smooth = stage, convs, smooth

        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(erase.channels if i == 0 else last.channels, last.channels, 3, padding=1),
                       nn.ReLU(inplace=False)]
        self.branch_b = nn.Sequential(*layers)
        self.fc_b = nn.Linear(last.channels, net.num_classes)
        _xavier(self.branch_b)
        nn.init.normal_(self.fc_b.weight, 0, 0.01)
        nn.init.zeros_(self.fc_b.bias)
        # The erase stage's features come from a tap, unless they are the CAM map itself (unsmoothed).
        self._keeper: str | None = None
        if stage != last.name or smooth:
            net.attach(stage, StageKeeper(smooth))
            self._keeper = tap_key(stage)

    @contextmanager
    def _keeping(self) -> Iterator[list[Tensor]]:
        """Arm the keeper for one forward pass; the list receives the erase stage's output."""
        out: list[Tensor] = []
        keeper = self.net.taps[self._keeper] if self._keeper is not None else None
        if keeper is not None:
            keeper.armed, keeper.kept = True, None
        try:
            yield out
        finally:
            if keeper is not None:
                if keeper.kept is not None:
                    out.append(keeper.kept)
                keeper.armed, keeper.kept = False, None

    def branches(self, x: Tensor, classes: Tensor) -> dict[str, Tensor]:
        """Both classifiers on ``x`` ``(B, 3, H, W)``, erasing with A's CAM of ``classes`` ``(B,)``.

        Returns ``logits_a``, ``logits_b`` ``(B, K)``, ``cam_a`` ``(B, h, w)`` float32 (detached),
        ``features_b`` (B's feature map) and ``erased`` ``(B, h, w)`` bool (the region hidden from B).
        """
        with self._keeping() as kept:
            feats = self.net.forward_features(x)
        stage_feats = kept[0] if kept else feats
        logits_a = self.net.forward_head(feats)
        with _float32(x):  # the erased region is decided in float32, also under AMP
            with torch.no_grad():
                cam_a = cam_from_features(feats.detach().float(), self.net.head_weight.detach().float(), classes)
            erased_feats, erased = erase_above(stage_feats, cam_a, self.config.threshold)
        feats_b = self.branch_b(erased_feats)
        logits_b = self.fc_b(torch.flatten(F.adaptive_avg_pool2d(feats_b, 1), 1))
        return {"logits_a": logits_a, "logits_b": logits_b, "cam_a": cam_a, "features_b": feats_b,
                "erased": erased}

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        out = self.branches(batch["image"], batch["label"])
        parts = {"objective_a": self.objective(out["logits_a"], batch["target"]),
                 "objective_b": self.objective(out["logits_b"], batch["target"])}
        return {"loss": sum(parts.values()), **parts, "logits": out["logits_a"]}

    def localization_maps(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits_A, max(minmax(CAM_A), minmax(CAM_B)))``, B on features erased with A's map of ``classes``."""
        out = self.branches(x, classes)
        with _float32(x):
            cam_b = cam_from_features(out["features_b"].float(), self.fc_b.weight.float(), classes)
            return out["logits_a"], fuse_maps(out["cam_a"], cam_b)
