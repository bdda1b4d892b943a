"""Training objectives: one small function each, registered by name.

With ``p = softmax(logits)``, ``y`` the label, ``C`` classes and ``u`` uniform:

- ``ce``: ``CE(y, p) = -log p_y``
- ``label_smoothing`` (eps): ``CE((1 - eps) y + eps u, p)`` (Szegedy et al., CVPR 2016)
- ``confidence_penalty`` (beta): ``CE(y, p) - beta H(p)`` (Pereyra et al., arXiv:1701.06548)
- ``kl_uniform`` (lam), "entropy regularization" (Hwang et al., Pattern Recognition
  Letters 2023): ``CE(y, p) + lam KL(u || p)`` with ``KL(u || p) = -log C - mean_c log p_c``

A fact a fair benchmark must show: ``CE + lam KL(u || p)`` equals
``(1 + lam) * LS(eps = lam / (1 + lam)) - lam log C``. KL-uniform *is* label
smoothing with its loss, hence its SGD step, scaled by ``1 + lam``.
:func:`effective_smoothing` and :func:`loss_scale` report this for every run, and
``normalize_loss_scale`` divides the loss by the scale so that the two can be
compared at equal step size.

All losses take logits ``(B, C)`` and integer labels ``(B,)`` and return the batch mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from wsolbench._registry import Registry
from wsolbench.config import ObjectiveConfig

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ObjectiveSpec:
    """How to build a loss from an :class:`ObjectiveConfig`, and its relation to label smoothing."""

    build: Callable[[ObjectiveConfig], LossFn]
    effective_smoothing: Callable[[ObjectiveConfig], float]
    loss_scale: Callable[[ObjectiveConfig], float]


OBJECTIVES: Registry[ObjectiveSpec] = Registry("objective")


def _full(logits: Tensor) -> Tensor:
    """Losses are computed in at least float32 (logits may be half precision under autocast)."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``-log p_y``, batch mean."""
    return F.cross_entropy(_full(logits), target)


def label_smoothing(logits: Tensor, target: Tensor, eps: float) -> Tensor:
    """CE against ``(1 - eps) * onehot(y) + eps / C``, batch mean."""
    logp = F.log_softmax(_full(logits), dim=1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    return ((1.0 - eps) * nll - eps * logp.mean(dim=1)).mean()


def confidence_penalty(logits: Tensor, target: Tensor, beta: float) -> Tensor:
    """``CE - beta * H(p)``, batch mean."""
    logp = F.log_softmax(_full(logits), dim=1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    entropy = -(logp.exp() * logp).sum(dim=1)
    return (nll - beta * entropy).mean()


def kl_uniform(logits: Tensor, target: Tensor, lam: float) -> Tensor:
    """``CE + lam * KL(u || p)`` with ``KL(u || p) = -log C - mean_c log p_c``, batch mean."""
    logp = F.log_softmax(_full(logits), dim=1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    kl = -math.log(logits.shape[1]) - logp.mean(dim=1)
    return (nll + lam * kl).mean()


def _scaled(fn: LossFn, scale: float) -> LossFn:
    if scale == 1.0:
        return fn
    return lambda logits, target: fn(logits, target) / scale


OBJECTIVES.register("ce")(ObjectiveSpec(
    build=lambda cfg: cross_entropy,
    effective_smoothing=lambda cfg: 0.0,
    loss_scale=lambda cfg: 1.0,
))
OBJECTIVES.register("label_smoothing")(ObjectiveSpec(
    build=lambda cfg: lambda logits, target: label_smoothing(logits, target, cfg.eps),
    effective_smoothing=lambda cfg: cfg.eps,
    loss_scale=lambda cfg: 1.0,
))
OBJECTIVES.register("confidence_penalty")(ObjectiveSpec(
    # No label-smoothing equivalent: the penalty pulls p towards u through KL(p || u).
    build=lambda cfg: lambda logits, target: confidence_penalty(logits, target, cfg.beta),
    effective_smoothing=lambda cfg: 0.0,
    loss_scale=lambda cfg: 1.0,
))
OBJECTIVES.register("kl_uniform")(ObjectiveSpec(
    build=lambda cfg: _scaled(lambda logits, target: kl_uniform(logits, target, cfg.lam),
                              (1.0 + cfg.lam) if cfg.normalize_loss_scale else 1.0),
    effective_smoothing=lambda cfg: cfg.lam / (1.0 + cfg.lam),
    loss_scale=lambda cfg: 1.0 + cfg.lam,
))


def build_objective(cfg: ObjectiveConfig) -> LossFn:
    """The loss function for ``cfg``; an unknown name raises ConfigError."""
    return OBJECTIVES.get(cfg.name).build(cfg)


def effective_smoothing(cfg: ObjectiveConfig) -> float:
    """The label-smoothing eps this objective equals up to a loss scale (0 when none)."""
    return OBJECTIVES.get(cfg.name).effective_smoothing(cfg)


def loss_scale(cfg: ObjectiveConfig) -> float:
    """The factor by which this objective's loss exceeds label smoothing at its effective eps.

    With ``normalize_loss_scale`` the training loss is divided by it, so the applied
    scale is 1.
    """
    return OBJECTIVES.get(cfg.name).loss_scale(cfg)


def predictive_entropy(logits: Tensor) -> Tensor:
    """``H(softmax(logits))`` per row, in nats, ``(B,)``."""
    logp = F.log_softmax(_full(logits), dim=1)
    return -(logp.exp() * logp).sum(dim=1)


__all__ = [
    "OBJECTIVES", "build_objective", "confidence_penalty", "cross_entropy", "effective_smoothing",
    "kl_uniform", "label_smoothing", "loss_scale", "predictive_entropy",
]
