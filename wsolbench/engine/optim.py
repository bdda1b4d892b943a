"""Optimizer and learning-rate schedule from the config.

Two parameter groups, as the community protocol (wsolevaluation's ``lr_classifier_ratio``):
the backbone body at ``lr`` and the new layers at ``lr * new_layer_lr_mult``. The new
layers are each backbone's ``new_parameters()`` (the head and adapted layers, see
:class:`wsolbench.backbones.CamBackbone`) plus any parameter a method adds outside the
backbone; the body is the backbones' ``pretrained_parameters()``. Each group records its
``lr_mult`` so that every schedule keeps the ratio (one-cycle gets one ``max_lr`` per group).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wsolbench.backbones import CamBackbone
from wsolbench.config import OptimConfig


def param_groups(model: nn.Module, lr: float, new_layer_lr_mult: float) -> list[dict[str, Any]]:
    """``[{"name": "body", ...}, {"name": "new", ...}]`` over the trainable parameters of ``model``
    (a backbone, or a method holding one); every parameter is in exactly one group, empty groups
    are left out. Each group has ``params``, ``lr``, ``lr_mult`` and ``name``."""
    body_ids = {id(p) for m in model.modules() if isinstance(m, CamBackbone) for p in m.pretrained_parameters()}
    body, new = [], []
    for p in model.parameters():  # deduplicated by nn.Module, in registration order
        if p.requires_grad:
            (body if id(p) in body_ids else new).append(p)
    groups = [{"name": "body", "params": body, "lr": lr, "lr_mult": 1.0},
              {"name": "new", "params": new, "lr": lr * new_layer_lr_mult, "lr_mult": new_layer_lr_mult}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig, *,
                    new_layer_lr_mult: float | None = None) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum 0.9 and Nesterov (the community protocol's optimizer), over
    :func:`param_groups`; ``new_layer_lr_mult`` defaults to ``cfg.new_layer_lr_mult``."""
    mult = cfg.new_layer_lr_mult if new_layer_lr_mult is None else new_layer_lr_mult
    groups = param_groups(model, cfg.lr, mult)
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
