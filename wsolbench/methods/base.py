"""The ``WsolMethod`` contract and the method registry.

A method is an ``nn.Module`` that owns the backbone (``self.net``) and any module of
its own (a second classifier, an attention layer attached to a backbone stage, a
localizer), so ``method.state_dict()`` is the whole trained state. It is built
from the backbone, the objective and its own frozen ``Config`` (published
defaults, validated on construction, part of the config hash)::

    @METHODS.register("hide_and_seek")
    class HideAndSeek(WsolMethod):
        @dataclass(frozen=True)
        class Config:
            grid: int = 4

        def training_step(self, batch, ctx):
            x = hide(batch["image"], self.config.grid, generator=ctx.generator)
            logits = self.net(x)
            parts = {"objective": self.objective(logits, batch["target"])}
            return {"loss": sum(parts.values()), **parts, "logits": logits}

``batch`` holds ``image`` ``(B, 3, H, W)``, ``label`` ``(B,)`` long (the class used
for top-1 and for GT-known maps) and ``target``: class indices ``(B,)`` or
distributions ``(B, K)`` (multi-label images); a method that mixes images
(CutMix) builds its own soft targets. ``ctx`` (:class:`StepContext`) gives the
epoch, the step, the phase and a ``torch.Generator`` seeded from (seed, epoch,
step, phase), so random masks are reproducible and survive kill -9 + resume.

A method with alternating updates declares several ``phases``: the engine builds
one optimizer and schedule per phase from :meth:`param_groups` and, for every
batch, runs ``training_step`` once per phase, each followed by that phase's step.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from wsolbench._registry import Registry
from wsolbench.backbones import CamBackbone
from wsolbench.cams.native import cam_from_features
from wsolbench.config import AxisConfig, build_axis, register_schema
from wsolbench.objectives import Objective
from wsolbench.structs import mix_seed


@dataclass(frozen=True)
class StepContext:
    """Where a training step is: 1-based ``epoch``, 0-based ``step`` within the epoch, the ``phase``, and
    ``generator``, a CPU ``torch.Generator`` seeded from (seed, epoch, step, phase) only."""

    epoch: int
    step: int
    phase: str
    generator: torch.Generator
    num_classes: int


def step_seed(seed: int, epoch: int, step: int, phase: str, rank: int = 0) -> int:
    """A 63-bit seed from (seed, epoch, step, phase) and, in a distributed run, the rank: a function of the
    position only, not of history (each rank draws its own masks for its own images)."""
    return mix_seed(seed, epoch, step, zlib.crc32(phase.encode()), *((rank,) if rank else ()))


def step_context(*, seed: int, epoch: int, step: int, phase: str, num_classes: int, rank: int = 0) -> StepContext:
    generator = torch.Generator().manual_seed(step_seed(seed, epoch, step, phase, rank))
    return StepContext(epoch=epoch, step=step, phase=phase, generator=generator, num_classes=num_classes)


class WsolMethod(nn.Module):
    """Backbone + objective + the method's own modules; subclasses override :meth:`training_step`.

    - ``training_step(batch, ctx)`` returns ``{"loss": total, <named parts>..., "logits": logits}``;
      the parts are logged, the trainer never branches on their names.
    - ``localization_maps(x, classes)`` returns ``(logits (B, K), maps (B, h, w))``, raw (not resized or
      normalized); the default is the native CAM of ``classes`` from the same forward pass.
    - ``param_groups(lr, new_layer_lr_mult, phase)``: the optimizer groups of a phase; by default the
      backbone's body at ``lr`` and everything else (head, adapted layers, attached taps, the method's
      own modules) at ``lr * new_layer_lr_mult``.
    """

    @dataclass(frozen=True)
    class Config:
        pass

    #: Names of the optimization phases, in the order they run for every batch.
    phases: tuple[str, ...] = ("main",)
    #: Some parameters get no gradient in some steps (a branch used only sometimes): DistributedDataParallel
    #: must then look for unused parameters (always on for methods with several phases).
    find_unused_parameters: bool = False

    def __init__(self, net: CamBackbone, objective: Objective, config: Any = None) -> None:
        super().__init__()
        self.net = net
        self.objective = objective
        self.config = config if config is not None else self.Config()

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        """The training step, as ``forward`` so DistributedDataParallel can wrap the method."""
        return self.training_step(batch, ctx)

    def localization_maps(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits (B, K), maps (B, h, w))``: the native CAM (Zhou et al., CVPR 2016) of ``classes``."""
        feats = self.net.forward_features(x)
        with torch.autocast(device_type=x.device.type, enabled=False):  # float32 maps under AMP too
            maps = cam_from_features(feats.float(), self.net.head_weight.float(), classes)
        return self.net.forward_head(feats), maps

    def classify(self, x: Tensor) -> Tensor:
        """Logits ``(B, K)`` as the Grad-CAM family sees the model (the backbone's forward)."""
        return self.net(x)

    def param_groups(self, lr: float, new_layer_lr_mult: float, phase: str = "main") -> list[dict[str, Any]]:
        """The optimizer groups of ``phase``: by default :func:`param_groups` over the whole method.
        Override to split parameters between phases (each parameter in exactly one phase)."""
        return param_groups(self, lr, new_layer_lr_mult)


def param_groups(module: nn.Module, lr: float, new_layer_lr_mult: float) -> list[dict[str, Any]]:
    """``[{"name": "body", ...}, {"name": "new", ...}]`` over the trainable parameters of ``module`` (a
    backbone, or a method holding one): the backbones' ``pretrained_parameters()`` at ``lr``, everything
    else (head, adapted layers, attached taps, a method's own modules) at ``lr * new_layer_lr_mult``. Every
    parameter is in exactly one group; empty groups are left out. Each group has ``params``, ``lr``,
    ``lr_mult`` and ``name``."""
    body_ids = {id(p) for m in module.modules() if isinstance(m, CamBackbone) for p in m.pretrained_parameters()}
    body, new = [], []
    for p in module.parameters():  # deduplicated by nn.Module, in registration order
        if p.requires_grad:
            (body if id(p) in body_ids else new).append(p)
    groups = [{"name": "body", "params": body, "lr": lr, "lr_mult": 1.0},
              {"name": "new", "params": new, "lr": lr * new_layer_lr_mult, "lr_mult": new_layer_lr_mult}]
    return [g for g in groups if g["params"]]


METHODS: Registry[type[WsolMethod]] = Registry(
    "method", on_register=lambda name, cls: register_schema("method", name, cls.Config))


def create_method(cfg: AxisConfig | str | dict, *, net: CamBackbone, objective: Objective) -> WsolMethod:
    """The method of a ``method`` section (or a name) around ``net`` and ``objective``."""
    axis = build_axis("method", cfg)
    return METHODS.get(axis.name)(net=net, objective=objective, config=axis.params)
