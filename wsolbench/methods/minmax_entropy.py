"""Min-max entropy (Belharbi, Rony, Dolz, Ben Ayed, McCaffrey, Granger, "Weakly Supervised Object
Localization using Min-Max Entropy: an Interpretable Framework", arXiv:1907.12934, 2019; first version
"Min-max Entropy for Weakly Supervised Pointwise Localization").

A localizer produces a pixel mask ``M``; the classifier sees the foreground ``x * M`` and the background
``x * (1 - M)``. The foreground must be classified with low conditional entropy (the objective, CE in the
paper) and the background with high entropy (cross-entropy to the uniform distribution), so the mask has to
hold all the class evidence and only it. Recursive erasing grows the mask over several passes of the
localizer. With ``f`` the classifier (the backbone with its GAP + ``fc`` head) and ``u`` uniform over K
classes::

    maps_k   = mean_m conv1x1(F)_{k, m}                        localizer class maps (B, K, h, w), m < modalities
    score_k  = mean of the top max(1, round(kmax h w)) values of maps_k (WILDCAT pooling; dropout in training)
    raw      = sum_k softmax(score)_k maps_k                   the localizer's map (B, h, w): the localization map
    M        = sigmoid(w * (minmax(up(raw)) - sigma))          pseudo-binary mask (B, H, W); up: bilinear
    loss     = sum_t objective(score^(t), target)              the localizer, once per erasing pass t
               + objective(f(x * M+), target)                  foreground: min entropy
               + mean_b [ -mean_k log softmax(f(x * (1 - M+)))_k ]    background: CE(u, p), max entropy

Recursive erasing (the public code's ``train_one_epoch``): ``M+`` starts at 0; pass t (t = 0 .. erase_times-1,
stopped early once no image is left) runs the localizer on the current image, and for each image

    trust_t  = exp(-t / erase_sigma) * 1[pred_t = y] * 1[ce_t <= ce_0] * max_k p_t,k * h_t
    h_t      = min(h_{t-1}, 1[pred_t = y])                    an image wrongly classified once stops for good
    M+       = max(M+, trust_t * M_t)
    x        = x * (1 - M+) where trust_t > 0, unchanged elsewhere

with ``p_t``, ``pred_t``, ``ce_t`` the localizer's softmax, prediction and per-image cross-entropy at pass t.
Without erasing (``erase_times`` 0, or before ``erase_start_epoch``) ``M+`` is the single pass's ``M``.

What follows the public code (sbelharbi/wsol-min-max-entropy-interpretability: ``deepmil/models.py``,
``criteria.py``, ``train.py``, ``decision_pooling.py``, ``config_yaml/cuball-4-erasing.yaml``; protocol
notes 1.4), with the defaults:

- The localizer is a WILDCAT head (Durand et al., CVPR 2017) on the backbone's last feature map, shared with
  the classifier: a 1 x 1 conv (bias) to ``K * modalities`` maps, averaged per class; ``modalities`` 5,
  ``kmax`` 0.09 (the top 9 % positions); ``alpha`` 0 in the config, so no min-pooling term; dropout
  ``pool_dropout`` 0.85 on the pooled values in training (``nn.Dropout`` semantics: kept values scaled by
  1 / (1 - p)). Its only parameters are the conv's ``C * K * 5 + K * 5``: the localizer is small, its
  features are the backbone's. The mask weights the class maps by the localizer's own softmax.
- ``mask_w`` 8 and ``mask_sigma`` 0.5 (``w``, ``sigma``); the upsampling is bilinear with aligned corners.
- The mask is detached (the public code detaches it after the upsampling): the localizer learns from its
  own classification loss, on the image and on each erased image; the min-max terms train the shared
  backbone and the classifier, so the localizer's features are pushed to put the class evidence where its
  mask is. ``mask_gradient`` True lets the min-max terms' gradient through the mask instead (the paper's
  description, "the localizer is driven ... by the conditional entropy measured at the classifier");
  the erased images of the next pass always use the detached mask.
- The localizer's loss is summed over the erasing passes (the public code calls backward once per pass).
- ``erase_times`` 4, ``erase_sigma`` 10 (``nbr_times_erase``, ``sigma_erase``); ``erase_start_epoch`` 2:
  the public ``epoch_start_erasing`` 1 counts epochs from 0, so its first epoch trains without erasing.
- No erasing at evaluation (``erase_in_inference`` false). The localization map is the localizer's map at
  the feature resolution (the evaluation resizes and min-max normalizes it; ``M`` is a monotone function of
  it); the logits are the classifier's on ``x * M``, as the public code predicts from the foreground.

Where the benchmark departs, and why:

- The classifier is the backbone with its own GAP + ``fc`` head (the public code: a second WILDCAT head,
  on an input downscaled by 0.5 from 480 x 480 crops, i.e. about the 224 x 224 the benchmark trains at), so
  the objective axis, the Grad-CAM family and the backbone's checkpoints apply to it unchanged. The
  objective replaces CE in both classification terms (localizer and foreground); the background term is the
  method's own (CE to uniform).
- The min-max normalization of the mask is per image (the public code takes min and max over the whole
  batch, which makes an image's mask depend on the others in its batch).
- Per-image cross-entropy for the trust test: the label's (``target`` as given: indices or distributions);
  the prediction test uses ``label``. The dropout draws come from the step's generator.
- BatchNorm running statistics per input role (``split_bn`` True; the public code keeps one set). The shared
  backbone sees three input distributions: whole (and erased) images in the localizer's passes, foregrounds
  ``x * M+`` (mostly zeros) and backgrounds ``x * (1 - M+)`` in the classifier's. Each training forward
  normalizes with its own batch's statistics, but one set of running averages mixes all of them, so at
  evaluation the classifier of ``x * M`` is normalized with statistics of no input it was trained on: on the
  quick preset its test top-1 fell to 30 % (35 % in the first leaderboard) while the same network with
  batch statistics, the localizer's scores and the classifier on the whole image were all at 98-100 %.
  So the classifier's foreground and background passes read and update their own running statistics
  (:class:`RoleStatistics`, buffers ``bn_stats.foreground.*`` / ``bn_stats.background.*``) and the
  localizer's passes keep the backbone's own; the BatchNorm weights and biases stay shared. Evaluation
  reads the localizer's statistics for ``M`` and the foreground's for the logits of ``x * M``.
  ``split_bn`` False gives the public code's single set. A backbone without BatchNorm is unaffected.

Published with ResNet-18/50/101 encoders (GlaS, CUB-200-2011, Oxford flowers); runs on every backbone.
Every parameter receives a gradient in every step (the localizer through its classification loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsolbench.backbones import CamBackbone
from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import Objective


def _float32(x: Tensor) -> torch.autocast:
    return torch.autocast(device_type=x.device.type, enabled=False)


class WildcatHead(nn.Module):
    """The localizer head: ``(scores (B, K), maps (B, K, h, w))`` from features ``(B, C, h, w)``.

    maps: a 1 x 1 conv to ``K * modalities`` channels, averaged over each class's modalities; scores: the mean
    of each map's top ``max(1, round(kmax * h w))`` values, after dropout (probability ``dropout``, kept values
    scaled by ``1 / (1 - dropout)``) when a generator is given in training mode.
    """

    def __init__(self, channels: int, num_classes: int, modalities: int = 5, kmax: float = 0.09,
                 dropout: float = 0.85) -> None:
        super().__init__()
        self.num_classes, self.modalities, self.kmax, self.dropout = num_classes, modalities, kmax, dropout
        self.to_modalities = nn.Conv2d(channels, num_classes * modalities, 1, bias=True)

    def class_maps(self, feats: Tensor) -> Tensor:
        b, _, h, w = feats.shape
        return self.to_modalities(feats).view(b, self.num_classes, self.modalities, h, w).mean(dim=2)

    def pool(self, maps: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, k, h, w = maps.shape
        top = max(1, round(self.kmax * h * w))
        values = maps.flatten(2).topk(top, dim=2).values  # (B, K, top), sorted descending
        if self.training and generator is not None and self.dropout > 0:
            keep = torch.rand(values.shape, generator=generator) >= self.dropout
            values = values * keep.to(values.device, values.dtype) / (1.0 - self.dropout)
        return values.sum(dim=2) / top

    def forward(self, feats: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        maps = self.class_maps(feats)
        return self.pool(maps, generator), maps

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, kmax={self.kmax}, dropout={self.dropout}"


def localizer_map(scores: Tensor, maps: Tensor) -> Tensor:
    """``sum_k softmax(scores)_k maps_k``: ``(B, h, w)`` float32 from scores ``(B, K)`` and maps ``(B, K, h, w)``."""
    return torch.einsum("bk,bkhw->bhw", torch.softmax(scores.float(), dim=1), maps.float())


def pseudo_binary(raw: Tensor, size: tuple[int, int], w: float, sigma: float) -> Tensor:
    """``M = sigmoid(w * (minmax(up(raw)) - sigma))`` ``(B, H, W)``: ``raw`` ``(B, h, w)`` upsampled bilinearly
    (aligned corners) to ``size``, min-max normalized per image (``+1e-15`` in the span; constant -> 0)."""
    up = F.interpolate(raw[:, None].float(), size=size, mode="bilinear", align_corners=True)[:, 0]
    flat = up.flatten(1)
    shifted = flat - flat.min(dim=1, keepdim=True).values
    norm = (shifted / (shifted.max(dim=1, keepdim=True).values + 1e-15)).view_as(up)
    return torch.sigmoid(w * (norm - sigma))


def uniform_cross_entropy(logits: Tensor) -> Tensor:
    """``CE(u, softmax(logits)) = -mean_k log p_k``, batch mean (>= log K, equal for uniform predictions)."""
    return -F.log_softmax(logits.float(), dim=1).mean(dim=1).mean()


def per_image_nll(logits: Tensor, target: Tensor) -> Tensor:
    """``-sum_k q_k log p_k`` per image ``(B,)``: ``target`` class indices ``(B,)`` or distributions ``(B, K)``."""
    logp = F.log_softmax(logits.float(), dim=1)
    if target.ndim == 1:
        return -logp.gather(1, target[:, None].long()).squeeze(1)
    return -(target.float() * logp).sum(dim=1)


def minmax_losses(classifier: Callable[[Tensor], Tensor], x: Tensor, mask: Tensor, target: Tensor,
                  objective: Callable[[Tensor, Tensor], Tensor],
                  background: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(foreground, background, logits_fg)``: ``objective(f(x * M), target)`` and ``CE(u, f(x * (1 - M)))``.

    x: ``(B, 3, H, W)``; mask: ``(B, H, W)`` in [0, 1]; classifier: images -> logits ``(B, K)``, used for the
    foreground and, unless ``background`` is given (the same network under other statistics), the background.
    """
    m = mask.unsqueeze(1).to(x.dtype)
    logits_fg = classifier(x * m)
    logits_bg = (background or classifier)(x * (1 - m))
    with _float32(x):
        return objective(logits_fg.float(), target), uniform_cross_entropy(logits_bg), logits_fg


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics, in module order."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None]


_STATS = ("running_mean", "running_var", "num_batches_tracked")


class RoleStatistics(nn.Module):
    """BatchNorm running statistics of a network, one set per input role besides the network's own.

    One backbone serves several input distributions (whole images for the localizer, the foregrounds
    ``x * M`` and the backgrounds ``x * (1 - M)`` for the classifier); in training each forward normalizes
    with its own batch's statistics, but a single set of running statistics would average all of them and
    match none at evaluation. ``use(net, role)`` makes ``net``'s BatchNorm layers read and update the role's
    statistics (buffers ``<role>.<stat><i>`` of this module, i the layer's index in module order, so they are
    saved, loaded and moved with the method); outside it, and for a role not listed, the layers keep their
    own. The tensors are swapped in and out, not copied: nothing an autograd graph saved is modified."""

    def __init__(self, net: nn.Module, roles: tuple[str, ...]) -> None:
        super().__init__()
        self.roles = roles
        for role in roles:
            holder = nn.Module()
            for i, bn in enumerate(batch_norms(net)):
                for stat in _STATS:
                    holder.register_buffer(f"{stat}{i}", getattr(bn, stat).detach().clone())
            self.add_module(role, holder)

    @contextmanager
    def use(self, net: nn.Module, role: str) -> Iterator[None]:
        if role not in self.roles:
            yield
            return
        holder = getattr(self, role)
        layers = batch_norms(net)

        def swap() -> None:
            for i, bn in enumerate(layers):
                for stat in _STATS:
                    mine, theirs = getattr(bn, stat), getattr(holder, f"{stat}{i}")
                    setattr(bn, stat, theirs)
                    setattr(holder, f"{stat}{i}", mine)

        swap()
        try:
            yield
        finally:
            swap()

    def extra_repr(self) -> str:
        return f"roles={self.roles}"


def erase_step(image: Tensor, accumulated: Tensor, mask: Tensor, probs: Tensor, ce: Tensor, ce_first: Tensor,
               labels: Tensor, history: Tensor, t: int, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """One pass of recursive erasing: ``(M+, erased image, history)`` after pass ``t`` (module docstring).

    image ``(B, 3, H, W)``; accumulated (``M+`` so far) and mask ``(B, H, W)``; probs ``(B, K)`` the localizer's
    softmax; ce, ce_first ``(B,)`` its per-image losses at this pass and the first; labels ``(B,)``; history
    ``(B,)`` float (1: still trusted). All are treated as constants (no gradient through the trust).
    """
    p_max, pred = probs.max(dim=1)
    correct = (pred == labels).to(probs.dtype)
    history = torch.minimum(correct, history)
    trust = math.exp(-t / sigma) * correct * (ce <= ce_first).to(probs.dtype) * p_max * history
    accumulated = torch.maximum(accumulated, trust[:, None, None] * mask)
    erase = (trust != 0)[:, None, None, None]
    image = torch.where(erase, image * (1 - accumulated.detach()[:, None]).to(image.dtype), image)
    return accumulated, image, history


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


@METHODS.register("minmax_entropy")
class MinMaxEntropy(WsolMethod):
    """Min-max entropy (Belharbi et al., 2019): low entropy on the localizer's foreground, high on the rest.

    A localizer's mask splits the image into a foreground classified with the objective and a background
    pushed to the uniform prediction, with recursive erasing; the map is the localizer's. See the module
    docstring for the formula, the defaults and their sources."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "erase_times"
        erase_times: int = 4  # nbr_times_erase (cuball-4-erasing.yaml); 0: no erasing
        erase_sigma: float = 10.0  # sigma_erase: the trust decays as exp(-t / sigma)
        erase_start_epoch: int = 2  # 1-based; the public epoch_start_erasing 1 counts from 0
        modalities: int = 5  # WILDCAT modalities per class
        kmax: float = 0.09  # WILDCAT top fraction
        pool_dropout: float = 0.85  # dropout on the pooled values (training)
        mask_w: float = 8.0  # M = sigmoid(w (minmax - sigma))
        mask_sigma: float = 0.5
        mask_gradient: bool = False  # False: the mask is detached (the public code)
        split_bn: bool = True  # BatchNorm running statistics per input role (ours; module docstring)

        def __post_init__(self) -> None:
            if not _integer(self.erase_times, 0):
                raise ConfigError(f"method.erase_times must be an integer >= 0, got {self.erase_times!r}")
            if not (_number(self.erase_sigma) and self.erase_sigma > 0):
                raise ConfigError(f"method.erase_sigma must be a number > 0, got {self.erase_sigma!r}")
            if not _integer(self.erase_start_epoch, 1):
                raise ConfigError(f"method.erase_start_epoch must be an integer >= 1, got {self.erase_start_epoch!r}")
            if not _integer(self.modalities, 1):
                raise ConfigError(f"method.modalities must be an integer >= 1, got {self.modalities!r}")
            if not (_number(self.kmax) and 0 < self.kmax <= 1):
                raise ConfigError(f"method.kmax must be a number in (0, 1], got {self.kmax!r}")
            if not (_number(self.pool_dropout) and 0 <= self.pool_dropout < 1):
                raise ConfigError(f"method.pool_dropout must be a number in [0, 1), got {self.pool_dropout!r}")
            if not (_number(self.mask_w) and self.mask_w > 0):
                raise ConfigError(f"method.mask_w must be a number > 0, got {self.mask_w!r}")
            if not (_number(self.mask_sigma) and 0 <= self.mask_sigma <= 1):
                raise ConfigError(f"method.mask_sigma must be a number in [0, 1], got {self.mask_sigma!r}")
            if not isinstance(self.mask_gradient, bool):
                raise ConfigError(f"method.mask_gradient must be true or false, got {self.mask_gradient!r}")
            if not isinstance(self.split_bn, bool):
                raise ConfigError(f"method.split_bn must be true or false, got {self.split_bn!r}")

    def __init__(self, net: CamBackbone, objective: Objective, config: Config | None = None) -> None:
        super().__init__(net, objective, config)
        cfg = self.config
        self.localizer = WildcatHead(net.stages[-1].channels, net.num_classes, cfg.modalities, cfg.kmax,
                                     cfg.pool_dropout)
        # the localizer's passes (whole and erased images) keep the backbone's own statistics
        self.bn_stats = RoleStatistics(net, ("foreground", "background") if cfg.split_bn else ())

    def classifier(self, role: str) -> Callable[[Tensor], Tensor]:
        """The classifier ``f`` (the backbone with its head) under the BatchNorm statistics of ``role``
        (``"foreground"`` or ``"background"``)."""
        def f(images: Tensor) -> Tensor:
            with self.bn_stats.use(self.net, role):
                return self.net(images)
        return f

    def segment(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The localizer on ``x``: ``(M (B, H, W), scores (B, K), raw (B, h, w))``; ``M`` detached unless
        ``mask_gradient``; the pooling dropout only in training mode with a generator."""
        scores, maps = self.localizer(self.net.forward_features(x), generator)
        with _float32(x):
            raw = localizer_map(scores, maps)
            mask = pseudo_binary(raw, tuple(x.shape[-2:]), self.config.mask_w, self.config.mask_sigma)
        return (mask if self.config.mask_gradient else mask.detach()), scores, raw

    def erasing(self, epoch: int) -> bool:
        return self.config.erase_times > 0 and epoch >= self.config.erase_start_epoch

    def foreground_mask(self, batch: dict[str, Tensor], ctx: StepContext) -> tuple[Tensor, list[Tensor], int]:
        """``(M+, the localizer's loss of each pass, passes)`` for a training batch (recursive erasing)."""
        x, labels, target = batch["image"], batch["label"], batch["target"]
        if not self.erasing(ctx.epoch):
            mask, scores, _ = self.segment(x, ctx.generator)
            return mask, [self.objective(scores.float(), target)], 1
        image, losses = x, []
        accumulated = x.new_zeros(x.shape[0], *x.shape[-2:], dtype=torch.float32)
        history = x.new_ones(x.shape[0], dtype=torch.float32)
        ce_first = None
        for t in range(self.config.erase_times):
            if t > 0 and not bool(history.any()):
                break
            mask, scores, _ = self.segment(image, ctx.generator)
            losses.append(self.objective(scores.float(), target))
            with torch.no_grad():
                probs = torch.softmax(scores.float(), dim=1)
                ce = per_image_nll(scores, target)
            ce_first = ce if ce_first is None else ce_first
            accumulated, image, history = erase_step(image, accumulated, mask, probs, ce, ce_first, labels,
                                                     history, t, self.config.erase_sigma)
        return accumulated, losses, len(losses)

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        mask, losses, _ = self.foreground_mask(batch, ctx)
        fg, bg, logits = minmax_losses(self.classifier("foreground"), batch["image"], mask, batch["target"],
                                       self.objective, background=self.classifier("background"))
        parts = {"localizer": sum(losses), "foreground": fg, "background": bg}
        return {"loss": sum(parts.values()), **parts, "logits": logits}

    def classify(self, x: Tensor) -> Tensor:
        """The classifier's logits on the foreground ``x * M`` (the mask computed without gradient)."""
        with torch.no_grad():
            mask, _, _ = self.segment(x)
        return self.classifier("foreground")(x * mask.unsqueeze(1).to(x.dtype))

    def localization_maps(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits of x * M, the localizer's map (B, h, w))``; the map is class-agnostic (the localizer's
        softmax-weighted class maps), as the published mask."""
        mask, _, raw = self.segment(x)
        return self.classifier("foreground")(x * mask.unsqueeze(1).to(x.dtype)), raw


__all__ = ["MinMaxEntropy", "RoleStatistics", "WildcatHead", "batch_norms", "erase_step", "localizer_map",
           "minmax_losses", "per_image_nll", "pseudo_binary", "uniform_cross_entropy"]
