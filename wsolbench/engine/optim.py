"""Optimizer and learning-rate schedule from the config.

Two parameter groups, as the community protocol (wsolevaluation's ``lr_classifier_ratio``):
the backbone body at ``lr`` and the new layers at ``lr * new_layer_lr_mult``. The new
layers are each backbone's ``new_parameters()`` (the head, adapted layers and attached taps,
see :class:`wsolbench.backbones.CamBackbone`) plus any parameter a method adds outside the
backbone; the body is the backbones' ``pretrained_parameters()``. A method with several
phases gets one optimizer per phase (:meth:`~wsolbench.methods.WsolMethod.param_groups`). Each group records its
``lr_mult`` so that every schedule keeps the ratio (one-cycle gets one ``max_lr`` per group).
"""

from __future__ import annotations

import torch
from torch import nn

from wsolbench.config import OptimConfig
from wsolbench.engine.train import Phase
from wsolbench.methods import WsolMethod
from wsolbench.methods.base import param_groups


def build_optimizer(model: nn.Module, cfg: OptimConfig, *, new_layer_lr_mult: float | None = None,
                    phase: str = "main") -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum 0.9 and Nesterov (the community protocol's optimizer), over the groups
    of ``phase`` (a method's :meth:`~wsolbench.methods.WsolMethod.param_groups`, or :func:`param_groups`
    for any other module); ``new_layer_lr_mult`` defaults to ``cfg.new_layer_lr_mult``."""
    mult = cfg.new_layer_lr_mult if new_layer_lr_mult is None else new_layer_lr_mult
    groups = (model.param_groups(cfg.lr, mult, phase) if isinstance(model, WsolMethod)
              else param_groups(model, cfg.lr, mult))
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch: one-cycle, x0.1 every ``step_every`` epochs, or constant.

    Every schedule scales each group's learning rate by the same factor, so the new
    layers stay at ``lr_mult`` times the body's throughout.
    """
    if cfg.schedule == "onecycle":
        max_lr = [cfg.lr * g.get("lr_mult", 1.0) for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, pct_start=cfg.warmup,
                                                   total_steps=cfg.epochs * steps_per_epoch)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_every * steps_per_epoch, gamma=0.1)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def build_phases(method: WsolMethod, cfg: OptimConfig, steps_per_epoch: int) -> list[Phase]:
    """One optimizer and schedule per phase of ``method`` (``method.phases``, in order)."""
    phases = []
    for name in method.phases:
        optimizer = build_optimizer(method, cfg, phase=name)
        phases.append(Phase(name, optimizer, build_scheduler(optimizer, cfg, steps_per_epoch=steps_per_epoch)))
    return phases
