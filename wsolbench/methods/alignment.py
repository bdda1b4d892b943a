"""Feature-direction alignment (Kim, Kim, Kim, Lee, Lee, Yoon, "Bridging the Gap between Classification and
Localization for Weakly Supervised Object Localization", CVPR 2022).

The CAM of class y at position (i, j) is ``w_y . f_ij = ||w_y|| ||f_ij|| cos(f_ij, w_y)``: a feature-norm map
times a cosine-similarity map. Classification only needs the similarity to be high somewhere; localization
needs the two maps to agree (large norms exactly where the features point at the class weight). With ``F``
the last feature map ``(B, C, h, w)`` and ``W`` the head's weights ``(K, C)``::

    n_ij    = minmax_ij ||f_ij||_2                                   normalized feature norm, per image, in [0, 1]
    s^k_ij  = cos(f_ij, w_k)                                          similarity map of every class, in [-1, 1]
    L_sim   = 2 + mean_b [ mean_{n < tau_bg} s^y  -  mean_{n > tau_fg} s^y ]
    L_norm  = 1 + mean_b [ mean_{s < 0} n  -  mean_{s > 0} n ]        s = max_k s^k (``norm_by="max"``) or s^y
    L_drop  = mean |F - F'|                                           F' = F with attentive dropout at ``drop_stage``
    loss    = objective(logits, target) + lambda_drop L_drop
              + [epoch > warm_epochs] (lambda_sim L_sim + lambda_norm L_norm)

Attentive dropout (``AttentiveDrop`` of the public code), at one stage, on that stage's output ``G``: the
positions whose channel mean exceeds ``drop_threshold`` times its per-image maximum are zeroed, each
independently with probability ``drop_prob``; ``F'`` is what the rest of the network (shared weights) makes of
the erased ``G``. Both ``F`` and ``F'`` receive the gradient of ``L_drop``. The region means use the public
code's ``sum / (count + 1e-15)`` (an empty region has mean 0) and its ``(x - min) / (max - min + 1e-15)``
normalization. The logits and the localization map are the plain network's (the native CAM); at evaluation
the dropout is off.

The constants 2 and 1 are ours: the public code's losses are the bracketed differences, whose lower bounds are
-2 and -1. Adding the bounds changes no gradient; it makes each logged loss >= 0 and exactly 0 when the maps
agree: ``s^y = +1`` where ``n > tau_fg``, ``-1`` where ``n < tau_bg``, and ``n = 1`` where ``s > 0``, ``0`` where
``s < 0`` (with both regions non-empty).

Defaults per backbone family (``None`` fields), from the public code's CUB configs
(ejkim47/bridging-gap-wsol ``configs/config_exp.yaml`` for ResNet-50, ``config_exp_vgg.yaml`` for VGG16; see
protocol notes 1.2):

==================  =========  ==========  ===============================================================
parameter           VGG16      ResNets     source (ImageNet values from the repository's issue #1)
==================  =========  ==========  ===============================================================
``lambda_sim``      0.5        0.5         ``loss_ratio_sim`` (ImageNet ResNet-50: 8.0)
``lambda_norm``     0.15       0.05        ``loss_ratio_norm`` (ImageNet ResNet-50: 1.0)
``lambda_drop``     3.0        2.0         ``loss_ratio_drop``
``fg_threshold``    0.6        0.4         ``sim_fg_thres``, tau_fg (ImageNet ResNet-50: 0.28)
``bg_threshold``    0.1        0.2         ``sim_bg_thres``, tau_bg (ImageNet ResNet-50: 0.25)
``drop_threshold``  0.8        0.8         ``drop_threshold``
``drop_prob``       0.5        0.25        ``drop_prob``
``warm_epochs``     20         20          ``warm_epochs``, of 70 (ImageNet: 5 of 40 VGG16, 14 of 30 ResNet-50)
``drop_stage``      conv4_3    layer4.0    ``wsol/vgg.py`` ('D' after conv4_3), ``wsol/resnet.py`` (layer4[0])
``norm_by``         max        max         ``trainer.py``: max_k s^k on CUB, s^y on ILSVRC (``label``)
==================  =========  ==========  ===============================================================

The warm-up counts whole epochs: the public ``warm = epoch < warm_epochs`` with 0-based epochs is
``ctx.epoch <= warm_epochs`` here (1-based). The method does not know the run's length, so with the quick and
smoke presets (3 to 5 epochs) a published warm-up of 20 never ends: set ``method.warm_epochs`` there.

Open choices (not published), with the reason:

- Inception-v3 (not in the paper): the ResNet values, with the dropout after ``Mixed_6e``, the last pretrained
  block, so that two layers (``head_conv1``, ``head_conv2``) are shared after it, as VGG16 shares conv5 + conv6
  and ResNet-50 shares layer4[1:] after theirs. ``small_cnn`` (tests, CI): the ResNet values with the dropout
  after ``block2`` (``block3`` shared) and ``warm_epochs`` 1, so the synthetic presets reach the alignment
  losses (1 of 3 to 5 epochs, about the published 20 of 70). Any other backbone: the ResNet values at the
  second-to-last stage.
- One forward pass: at ``drop_stage`` a tap returns ``cat([G, G * mask])`` along the batch, so the layers after
  it run once on 2B images and ``F``, ``F'`` are its two halves. The public code runs those layers twice, once
  per half; for layers without batch statistics (VGG16, Inception's head) this is identical, for BatchNorm
  (ResNet-50's layer4[1:]) the training-mode statistics are taken over both halves together (the running
  statistics see the same two halves either way). A second full pass would repeat the whole backbone and
  update the statistics of the layers before the stage twice per step.
- The dropout's random draws (one per position of each image) come from the step's generator.
- The learning-rate multiplier stays the benchmark's (the public code multiplies only ``fc`` on ResNet-50, where
  wsolevaluation also multiplies layer4): it is a property of the protocol, shared by every method.

Published for VGG16 and ResNet-50 (CUB-200-2011, ILSVRC); runs on every backbone with named stages. No new
parameters; every parameter receives a gradient in every step.
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
from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import Objective

#: The public code's eps of the region means and of the min-max normalization.
EPS = 1e-15


@dataclass(frozen=True)
class Resolved:
    """The effective hyperparameters of one run (the ``None`` fields of the Config filled per backbone)."""

    lambda_sim: float
    lambda_norm: float
    lambda_drop: float
    fg_threshold: float
    bg_threshold: float
    drop_threshold: float
    drop_prob: float
    warm_epochs: int
    drop_stage: str
    norm_by: str


_VGG = dict(lambda_norm=0.15, lambda_drop=3.0, fg_threshold=0.6, bg_threshold=0.1, drop_prob=0.5, warm_epochs=20)
_RESNET = dict(lambda_norm=0.05, lambda_drop=2.0, fg_threshold=0.4, bg_threshold=0.2, drop_prob=0.25, warm_epochs=20)

#: Per backbone family, keyed by a stage name only that family has: (drop stage, defaults).
_PLACEMENT: dict[str, tuple[str, dict]] = {
    "conv5_3": ("conv4_3", _VGG),  # VGG16
    "layer4.0": ("layer4.0", _RESNET),  # ResNets
    "Mixed_6e": ("Mixed_6e", _RESNET),  # Inception-v3 (our choice)
    "block2": ("block2", {**_RESNET, "warm_epochs": 1}),  # small_cnn (our choice)
}


def normalize_minmax(maps: Tensor) -> Tensor:
    """``(x - min) / (max - min + 1e-15)`` per image, ``(B, h, w)``; differentiable (a constant map gives 0)."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    shifted = flat - lo
    return (shifted / (shifted.max(dim=1, keepdim=True).values + EPS)).view_as(maps)


def norm_map(features: Tensor) -> Tensor:
    """``n``: the per-image min-max normalized L2 norm of ``features`` ``(B, C, h, w)`` over channels, ``(B, h, w)``."""
    return normalize_minmax(features.norm(dim=1))


def similarity_maps(features: Tensor, weight: Tensor) -> Tensor:
    """``s^k_ij = cos(f_ij, w_k)`` of every class, ``(B, K, h, w)``: features ``(B, C, h, w)``, weight ``(K, C)``."""
    return torch.einsum("bchw,kc->bkhw", F.normalize(features, dim=1), F.normalize(weight, dim=1))


def _region_mean(values: Tensor, region: Tensor) -> Tensor:
    """``sum(values * region) / (sum(region) + 1e-15)`` per image; ``(B, N)`` each, ``(B,)``."""
    region = region.to(values.dtype)
    return (values * region).sum(dim=1) / (region.sum(dim=1) + EPS)


def alignment_losses(norm: Tensor, sim: Tensor, labels: Tensor, fg_threshold: float, bg_threshold: float,
                     norm_by: str = "max") -> tuple[Tensor, Tensor]:
    """``(L_sim, L_norm)`` (module docstring), each >= 0 and 0 when the norm and similarity maps agree.

    norm: ``(B, h, w)`` in [0, 1] (:func:`norm_map`); sim: ``(B, K, h, w)`` (:func:`similarity_maps`); labels:
    ``(B,)`` long. ``norm_by`` ``"max"`` splits L_norm's regions by ``max_k s^k`` (the public code on CUB),
    ``"label"`` by ``s^y`` (on ILSVRC).
    """
    b = labels.shape[0]
    n = norm.reshape(b, -1)
    s_y = sim[torch.arange(b, device=sim.device), labels].reshape(b, -1)
    loss_sim = 2.0 + (_region_mean(s_y, n < bg_threshold) - _region_mean(s_y, n > fg_threshold)).mean()
    s = sim.amax(dim=1).reshape(b, -1) if norm_by == "max" else s_y
    loss_norm = 1.0 + (_region_mean(n, s < 0) - _region_mean(n, s > 0)).mean()
    return loss_sim, loss_norm


def attentive_drop_mask(stage: Tensor, threshold: float, drop_prob: float, generator: torch.Generator) -> Tensor:
    """The public ``AttentiveDrop``'s mask ``(B, 1, h, w)`` float32: 0 at the positions whose channel mean is
    ``> threshold * max`` (per image) and whose draw ``u ~ U[0, 1)`` is ``<= drop_prob``, 1 elsewhere."""
    attention = stage.detach().float().mean(dim=1, keepdim=True)
    peak = attention.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
    u = torch.rand(attention.shape, generator=generator).to(attention.device)
    return 1.0 - ((attention > threshold * peak) & (u <= drop_prob)).float()


class AttentiveDrop(nn.Module):
    """The tap at the drop stage. While ``generator`` is set (a training forward of the method), it returns
    ``cat([G, G * mask])`` along the batch (mask from :func:`attentive_drop_mask`) and keeps the mask in
    ``last_mask``; otherwise (evaluation, plain forwards) it is the identity."""

    def __init__(self, threshold: float, drop_prob: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.drop_prob = drop_prob
        self.generator: torch.Generator | None = None
        self.last_mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.generator is None:
            return x
        mask = attentive_drop_mask(x, self.threshold, self.drop_prob, self.generator)
        self.last_mask = mask
        return torch.cat([x, x * mask.to(x.dtype)], dim=0)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, drop_prob={self.drop_prob}"


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@METHODS.register("alignment")
class Alignment(WsolMethod):
    """Feature-direction alignment (Kim et al., CVPR 2022): align the CAM's feature norms and directions.

    The similarity and norm losses (after ``warm_epochs``) align the normalized feature-norm map with the
    cosine-similarity map to the class weight; an L1 consistency with attentive dropout applies throughout.
    See the module docstring for the formula, the defaults per backbone and their sources."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "lambda_sim"
        lambda_sim: float = 0.5  # loss_ratio_sim, both CUB configs
        lambda_norm: float | None = None  # None: 0.15 VGG16, 0.05 ResNets / others
        lambda_drop: float | None = None  # None: 3.0 VGG16, 2.0 ResNets / others
        fg_threshold: float | None = None  # tau_fg; None: 0.6 VGG16, 0.4 ResNets / others
        bg_threshold: float | None = None  # tau_bg; None: 0.1 VGG16, 0.2 ResNets / others
        drop_threshold: float = 0.8  # attentive dropout: channel mean > drop_threshold * max
        drop_prob: float | None = None  # None: 0.5 VGG16, 0.25 ResNets / others
        warm_epochs: int | None = None  # epochs without L_sim, L_norm; None: 20 (small_cnn: 1)
        drop_stage: str | None = None  # None: conv4_3 VGG16, layer4.0 ResNets, Mixed_6e Inception, block2 small_cnn
        norm_by: str = "max"  # L_norm's regions by max_k s^k ("max", CUB) or s^y ("label", ILSVRC)

        def __post_init__(self) -> None:
            for name in ("lambda_sim", "lambda_norm", "lambda_drop"):
                v = getattr(self, name)
                _check(v is None and name != "lambda_sim" or _number(v) and v >= 0,
                       f"method.{name} must be a number >= 0{'' if name == 'lambda_sim' else ' or None'}, got {v!r}")
            for name in ("fg_threshold", "bg_threshold", "drop_prob"):
                v = getattr(self, name)
                _check(v is None or _number(v) and 0 <= v <= 1, f"method.{name} must be in [0, 1] or None, got {v!r}")
            _check(_number(self.drop_threshold) and 0 <= self.drop_threshold <= 1,
                   f"method.drop_threshold must be in [0, 1], got {self.drop_threshold!r}")
            w = self.warm_epochs
            _check(w is None or isinstance(w, int) and not isinstance(w, bool) and w >= 0,
                   f"method.warm_epochs must be an integer >= 0 or None, got {w!r}")
            _check(self.drop_stage is None or isinstance(self.drop_stage, str) and bool(self.drop_stage),
                   f"method.drop_stage must be a stage name or None, got {self.drop_stage!r}")
            _check(self.norm_by in ("max", "label"), f"method.norm_by must be 'max' or 'label', got {self.norm_by!r}")

    def __init__(self, net: CamBackbone, objective: Objective, config: Config | None = None) -> None:
        super().__init__(net, objective, config)
        cfg = self.config
        names = [s.name for s in net.stages]
        if len(names) < 2 and cfg.drop_stage is None:
            raise ConfigError(f"method.drop_stage: {type(net).__name__} has a single stage; name one to drop at")
        stage, defaults = next(((s, d) for marker, (s, d) in _PLACEMENT.items() if marker in names),
                               (names[-2] if len(names) > 1 else "", _RESNET))
        stage = cfg.drop_stage or stage
        if stage not in names:
            raise ConfigError(f"method.drop_stage: {type(net).__name__} has no stage {stage!r} "
                              f"(stages: {', '.join(names)})")
        given = {k: getattr(cfg, k) for k in defaults if getattr(cfg, k) is not None}
        self.params = Resolved(lambda_sim=cfg.lambda_sim, drop_threshold=cfg.drop_threshold, drop_stage=stage,
                               norm_by=cfg.norm_by, **{**defaults, **given})
        if self.params.fg_threshold < self.params.bg_threshold:
            raise ConfigError(f"method.fg_threshold ({self.params.fg_threshold}) must be >= method.bg_threshold "
                              f"({self.params.bg_threshold})")
        self._key = tap_key(stage)
        net.attach(stage, AttentiveDrop(self.params.drop_threshold, self.params.drop_prob))

    @property
    def drop(self) -> AttentiveDrop:
        """The attached attentive-dropout tap."""
        return self.net.taps[self._key]

    @contextmanager
    def _dropping(self, generator: torch.Generator) -> Iterator[AttentiveDrop]:
        drop = self.drop
        drop.generator, drop.last_mask = generator, None
        try:
            yield drop
        finally:
            drop.generator = None

    def features(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(F, F')``: the last feature map of ``x`` and of ``x`` with attentive dropout at the drop stage, each
        ``(B, C, h, w)``, from one pass (training mode; the mask stays in ``self.drop.last_mask``)."""
        with self._dropping(generator):
            both = self.net.forward_features(x)
        b = x.shape[0]
        if both.shape[0] != 2 * b:
            raise RuntimeError("alignment: the attentive-dropout tap did not run (is the method in training mode?)")
        return both[:b], both[b:]

    def warm(self, epoch: int) -> bool:
        """True while the similarity and norm losses are off (``epoch <= warm_epochs``, 1-based epochs)."""
        return epoch <= self.params.warm_epochs

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        p = self.params
        feats, erased = self.features(batch["image"], ctx.generator)
        logits = self.net.forward_head(feats)
        with torch.autocast(device_type=feats.device.type, enabled=False):  # the losses in float32 under AMP
            f32 = feats.float()
            parts = {"objective": self.objective(logits, batch["target"]),
                     "drop": p.lambda_drop * F.l1_loss(f32, erased.float())}
            if self.warm(ctx.epoch):
                zero = f32.new_zeros(())
                parts |= {"similarity": zero, "norm": zero}
            else:
                sim = similarity_maps(f32, self.net.head_weight.float())
                loss_sim, loss_norm = alignment_losses(norm_map(f32), sim, batch["label"], p.fg_threshold,
                                                       p.bg_threshold, p.norm_by)
                parts |= {"similarity": p.lambda_sim * loss_sim, "norm": p.lambda_norm * loss_norm}
        return {"loss": sum(parts.values()), **parts, "logits": logits}


__all__ = ["Alignment", "AttentiveDrop", "alignment_losses", "attentive_drop_mask", "norm_map", "similarity_maps"]
