"""A method for tests only: it owns parameters, draws random masks and alternates two phases.

Registered as ``test_aux_masks`` when imported. It exercises every part of the
method contract a real WSOL method may use: parameters outside the backbone (an
auxiliary classifier and a gate), a random input mask drawn from ``ctx.generator``,
two optimization phases with their own parameter groups, and its own
localization maps (the sum of the two classifiers' CAMs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wsolbench.cams.native import cam_from_features
from wsolbench.methods import METHODS, StepContext, WsolMethod
from wsolbench.methods.base import param_groups

NAME = "test_aux_masks"


def _gap(feats: Tensor) -> Tensor:
    return feats.mean(dim=(2, 3))


if NAME not in METHODS:

    @METHODS.register(NAME)
    class AuxMasks(WsolMethod):
        @dataclass(frozen=True)
        class Config:
            drop: float = 0.25  # fraction of input pixels zeroed at train time
            aux_weight: float = 0.5

        phases = ("main", "aux")

        def __init__(self, net, objective, config=None) -> None:
            super().__init__(net, objective, config)
            channels = net.head_weight.shape[1]
            self.aux = nn.Linear(channels, net.num_classes)
            self.gate = nn.Parameter(torch.ones(1))

        def _masked(self, x: Tensor, ctx: StepContext) -> Tensor:
            keep = torch.rand(x.shape[0], 1, *x.shape[2:], generator=ctx.generator) >= self.config.drop
            return x * keep.to(x.device, x.dtype)

        def training_step(self, batch, ctx):
            x = self._masked(batch["image"], ctx)
            feats = self.net.forward_features(x)
            logits = self.net.forward_head(feats)
            if ctx.phase == "main":
                parts = {"objective": self.objective(logits, batch["target"])}
            else:
                aux = self.aux(_gap(feats.detach())) * self.gate
                parts = {"aux": self.config.aux_weight * self.objective(aux, batch["target"])}
            return {"loss": sum(parts.values()), **parts, "logits": logits}

        def localization_maps(self, x, classes):
            feats = self.net.forward_features(x)
            logits = self.net.forward_head(feats)
            with torch.autocast(device_type=x.device.type, enabled=False):  # float32 maps (the contract)
                feats = feats.float()
                maps = (cam_from_features(feats, self.net.head_weight.float(), classes)
                        + cam_from_features(feats, (self.aux.weight * self.gate).float(), classes))
            return logits, maps

        def param_groups(self, lr, new_layer_lr_mult, phase="main"):
            if phase == "main":
                return param_groups(self.net, lr, new_layer_lr_mult)
            return [{"name": "new", "params": [*self.aux.parameters(), self.gate], "lr": lr * new_layer_lr_mult,
                     "lr_mult": new_layer_lr_mult}]
