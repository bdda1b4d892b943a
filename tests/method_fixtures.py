"""Tiny fixtures shared by the method tests: a small_cnn method, a batch and a step context."""

from __future__ import annotations

import torch

from wsolbench.backbones import create_backbone
from wsolbench.methods import create_method, step_context
from wsolbench.objectives import build_objective

K = 3


def tiny_method(name: str, seed: int = 0, objective: str = "ce", **params):
    """Method ``name`` around a width-4 small_cnn with K classes, initialised from ``seed``."""
    torch.manual_seed(seed)
    net = create_backbone("small_cnn", num_classes=K, width=4)
    return create_method({"name": name, **params}, net=net, objective=build_objective(objective))


def tiny_batch(n: int = 2):
    """``n`` random 32 x 32 images with labels 0, 1, ..., as a training batch (indices as targets)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.arange(n) % K
    return {"image": x, "label": y, "target": y}


def main_ctx(step: int = 0, epoch: int = 1):
    return step_context(seed=0, epoch=epoch, step=step, phase="main", num_classes=K)
