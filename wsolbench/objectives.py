"""Training objectives: one small registered class each, with its own frozen ``Config``.

With ``p = softmax(logits)``, ``q`` the target distribution (one-hot of the label,
CutMix's area-mixed labels, or a normalized multi-hot vector), ``C`` classes and
``u`` uniform:

- ``ce``: ``CE(q, p) = -sum_c q_c log p_c``
- ``label_smoothing`` (eps): ``CE((1 - eps) q + eps u, p)`` (Szegedy et al., CVPR 2016)
- ``confidence_penalty`` (beta): ``CE(q, p) - beta H(p)`` (Pereyra et al., arXiv:1701.06548)
- ``kl_uniform`` (lam), "entropy regularization" (Hwang et al., Pattern Recognition
  Letters 2023): ``CE(q, p) + lam KL(u || p)`` with ``KL(u || p) = -log C - mean_c log p_c``

A fact a fair benchmark must show: ``CE + lam KL(u || p)`` equals
``(1 + lam) * LS(eps = lam / (1 + lam)) - lam log C`` for any target ``q`` (both
sides are linear in ``q``). KL-uniform *is* label smoothing with its loss, hence
its SGD step, scaled by ``1 + lam``. :meth:`Objective.effective_smoothing` and
:meth:`Objective.loss_scale` report this for every run, and
``kl_uniform.normalize_loss_scale`` divides the loss by the scale so that the two
can be compared at equal step size.

Every objective takes logits ``(B, C)`` and a target that is either class indices
``(B,)`` (long) or distributions ``(B, C)`` (float, rows summing to 1), and returns
the batch mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from wsolbench._registry import Registry
from wsolbench.config import AxisConfig, axis_label, build_axis, register_schema
from wsolbench.errors import ConfigError


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _full(logits: Tensor) -> Tensor:
    """Losses are computed in at least float32 (logits may be half precision under autocast)."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _nll(logp: Tensor, target: Tensor) -> Tensor:
    """``-sum_c q_c log p_c`` per row: ``target`` is class indices ``(B,)`` or distributions ``(B, C)``."""
    if target.ndim == 1:
        return -logp.gather(1, target[:, None].long()).squeeze(1)
    if target.shape != logp.shape:
        raise ValueError(f"soft targets must have the logits' shape {tuple(logp.shape)}, got {tuple(target.shape)}")
    return -(target.to(logp.dtype) * logp).sum(dim=1)


def soft_targets(labels: Tensor, num_classes: int) -> Tensor:
    """One-hot distributions ``(B, C)`` float32 from class indices ``(B,)``; distributions pass through."""
    if labels.ndim == 2:
        return labels.float()
    return F.one_hot(labels.long(), num_classes).float()


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``-sum_c q_c log p_c``, batch mean."""
    return _nll(F.log_softmax(_full(logits), dim=1), target).mean()


def label_smoothing(logits: Tensor, target: Tensor, eps: float) -> Tensor:
    """CE against ``(1 - eps) * q + eps / C``, batch mean."""
    logp = F.log_softmax(_full(logits), dim=1)
    return ((1.0 - eps) * _nll(logp, target) - eps * logp.mean(dim=1)).mean()


def confidence_penalty(logits: Tensor, target: Tensor, beta: float) -> Tensor:
    """``CE - beta * H(p)``, batch mean."""
    logp = F.log_softmax(_full(logits), dim=1)
    entropy = -(logp.exp() * logp).sum(dim=1)
    return (_nll(logp, target) - beta * entropy).mean()


def kl_uniform(logits: Tensor, target: Tensor, lam: float) -> Tensor:
    """``CE + lam * KL(u || p)`` with ``KL(u || p) = -log C - mean_c log p_c``, batch mean."""
    logp = F.log_softmax(_full(logits), dim=1)
    kl = -math.log(logits.shape[1]) - logp.mean(dim=1)
    return (_nll(logp, target) + lam * kl).mean()


def predictive_entropy(logits: Tensor) -> Tensor:
    """``H(softmax(logits))`` per row, in nats, ``(B,)``."""
    logp = F.log_softmax(_full(logits), dim=1)
    return -(logp.exp() * logp).sum(dim=1)


class Objective:
    """A training loss: ``objective(logits, target) -> scalar``; subclasses declare ``Config`` and ``loss``."""

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.loss(logits, target) / self.applied_scale()

    def effective_smoothing(self) -> float:
        """The label-smoothing eps this objective equals up to a loss scale (0 when none)."""
        return 0.0

    def loss_scale(self) -> float:
        """The factor by which this loss exceeds label smoothing at :meth:`effective_smoothing`."""
        return 1.0

    def applied_scale(self) -> float:
        """What the loss is divided by when it is applied (1 unless the scale is normalized away)."""
        return 1.0


OBJECTIVES: Registry[type[Objective]] = Registry(
    "objective", on_register=lambda name, cls: register_schema("objective", name, cls.Config))


@OBJECTIVES.register("ce")
class CrossEntropy(Objective):
    """``CE(q, p)``: the baseline every regularizer is compared with."""

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target)


@OBJECTIVES.register("label_smoothing")
class LabelSmoothing(Objective):
    """``CE((1 - eps) q + eps u, p)`` (Szegedy et al., CVPR 2016); eps 0.1 as in Inception-v2/v3."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "eps"
        eps: float = 0.1

        def __post_init__(self) -> None:
            _check(isinstance(self.eps, (int, float)) and 0.0 <= self.eps < 1.0,
                   f"objective.eps must be in [0, 1), got {self.eps}")

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing(logits, target, self.config.eps)

    def effective_smoothing(self) -> float:
        return float(self.config.eps)


@OBJECTIVES.register("confidence_penalty")
class ConfidencePenalty(Objective):
    """``CE(q, p) - beta H(p)`` (Pereyra et al., 2017). No label-smoothing equivalent: the penalty pulls
    p towards u through KL(p || u). beta 0.5 is our default (the paper sweeps 0.1 to 4)."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "beta"
        beta: float = 0.5

        def __post_init__(self) -> None:
            _check(isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0,
                   f"objective.beta must be a finite number >= 0, got {self.beta!r}")

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return confidence_penalty(logits, target, self.config.beta)


@OBJECTIVES.register("kl_uniform")
class KLUniform(Objective):
    """``CE(q, p) + lam KL(u || p)``, "entropy regularization" (Hwang et al., PRL 2023).

    ``normalize_loss_scale`` divides the loss by ``1 + lam``, so it takes exactly the
    steps of label smoothing with ``eps = lam / (1 + lam)``.
    """

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "lam"
        lam: float = 0.3
        normalize_loss_scale: bool = False

        def __post_init__(self) -> None:
            _check(isinstance(self.lam, (int, float)) and math.isfinite(self.lam) and self.lam >= 0,
                   f"objective.lam must be a finite number >= 0, got {self.lam!r}")

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return kl_uniform(logits, target, self.config.lam)

    def effective_smoothing(self) -> float:
        return self.config.lam / (1.0 + self.config.lam)

    def loss_scale(self) -> float:
        return 1.0 + self.config.lam

    def applied_scale(self) -> float:
        return self.loss_scale() if self.config.normalize_loss_scale else 1.0


def build_objective(cfg: AxisConfig | str | dict) -> Objective:
    """The objective of an ``objective`` section (or a name); an unknown name raises ConfigError."""
    axis = build_axis("objective", cfg)
    return OBJECTIVES.get(axis.name)(axis.params)


def describe(cfg: AxisConfig) -> dict[str, Any]:
    """The record's ``objective`` block: name, label, parameters and the relation to label smoothing."""
    objective = build_objective(cfg)
    return {"name": cfg.name, "label": axis_label(cfg), "params": cfg.to_dict(),
            "effective_smoothing": objective.effective_smoothing(), "loss_scale": objective.loss_scale(),
            "applied_loss_scale": objective.loss_scale() / objective.applied_scale()}


__all__ = [
    "OBJECTIVES", "CrossEntropy", "ConfidencePenalty", "KLUniform", "LabelSmoothing", "Objective",
    "build_objective", "confidence_penalty", "cross_entropy", "describe", "kl_uniform", "label_smoothing",
    "predictive_entropy", "soft_targets",
]
