"""The backbone contract, its stages and taps, and the registry.

A :class:`Stage` names one point of a backbone's forward pass (the output of one
module) with its channels and output stride; ``net.stages`` lists them from input to
output and the last one is the map the native CAM reads (what ``forward_features``
returns). ``net.stage_module(name)`` is the module whose output is that stage's output
(Grad-CAM target layers resolve through it) and ``net.attach(name, module)`` applies a
module to it on every forward (ADL, attentive dropout, recorders), stored under
``net.taps`` so that the backbone's own state-dict keys never move.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from wsolbench._registry import Registry
from wsolbench.backbones.weights import WeightsInfo, load_weights, resolve_weights_file
from wsolbench.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    """One named point of a backbone's forward pass: the output of one of its modules.

    ``name``: the literature's address (``"conv4_3"``, ``"layer3.0"``, ``"Mixed_6e"``);
    ``channels``: C of the stage's output (B, C, h, w); ``stride``: the output stride of
    this instance (``large_feature_map`` changes it), so an H x W input gives
    (H / stride) x (W / stride) (exactly, for sizes divisible by the stride).
    """

    name: str
    channels: int
    stride: int


def tap_key(stage: str) -> str:
    """The key under ``net.taps`` of the module attached after ``stage``: ``"layer3.0"`` -> ``"layer3_0"``."""
    return stage.replace(".", "_")


class _Tap:
    """A forward hook that replaces a stage module's output by ``taps[key](output)``.

    It holds the ``taps`` ModuleDict, not a closure, so that ``copy.deepcopy`` and pickling
    of the backbone rebind it to the copy's own tap (the memo shares the copied dict).
    """

    def __init__(self, taps: nn.ModuleDict, key: str) -> None:
        self.taps = taps
        self.key = key

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        return self.taps[self.key](output)


class CamBackbone(nn.Module):
    """A classifier whose logit for class k is the spatial mean of its CAM for k (plus a bias).

    Subclasses build ``self.features`` (image -> (B, C, h, w)) and ``self.fc``
    (``nn.Linear(C, K)``); one that adds layers after ``features`` overrides
    :meth:`forward_features`. ``forward`` returns logits; CAMs are read from the same
    features with :func:`wsolbench.cams.cam_from_features`.

    ``new_modules`` names (dotted, relative to the backbone) the submodules trained at
    the new-layer learning rate (``lr * new_layer_lr_mult``, see
    :func:`wsolbench.engine.build_optimizer`): the head, and the layers the WSOL
    literature adapts or adds, and ``taps`` (every backbone lists it). ``weights_info`` is
    set when weights were loaded.

    Stages: every subclass declares its table in ``__init__`` with :meth:`_declare_stages`
    (see each backbone's module docstring for its names). ``stages`` runs from input to
    output, ``last_stage`` is ``stages[-1].name``, the map ``forward_features`` returns.

    Taps: :meth:`attach` registers a forward hook on ``stage_module(name)`` that returns
    ``module(output)``; hooks run in registration order, so a hook registered on that
    module later (a CAM extractor's) sees the tapped output. The attached module lives in
    ``self.taps`` (an ``nn.ModuleDict``, empty until something is attached; key
    :func:`tap_key`), so it moves with ``.to()``, follows ``train()`` / ``eval()``, is
    saved in the state dict as ``taps.<key>.*`` and trained at the new-layer rate; every
    other key stays where it was, so weights files load with or without taps. Stage
    modules are chosen so that nothing downstream modifies a stage's output in place
    (e.g. VGG's ``conv4_3`` is the output of its ReLU, not of the conv an in-place ReLU
    overwrites), so a tap may keep a reference to its input (a feature loss).
    """

    features: nn.Module
    fc: nn.Linear
    new_modules: tuple[str, ...] = ("fc", "taps")
    weights_info: WeightsInfo | None = None

    def __init__(self) -> None:
        super().__init__()
        self.taps = nn.ModuleDict()
        self._stages: tuple[Stage, ...] = ()
        self._stage_paths: dict[str, str] = {}

    def _declare_stages(self, table: Sequence[tuple[str, str, int, int]]) -> None:
        """Set the stage table: ``(name, module path relative to the backbone, channels, stride)`` rows,
        input to output; the last row must be the module whose output ``forward_features`` returns."""
        names = [row[0] for row in table]
        if not names or len(set(names)) != len(names) or len({tap_key(n) for n in names}) != len(names):
            raise ValueError(f"{type(self).__name__}: stage names must be non-empty and unique, got {names}")
        for _, path, _, _ in table:
            self.get_submodule(path)  # raises on a typo
        self._stages = tuple(Stage(name, channels, stride) for name, _, channels, stride in table)
        self._stage_paths = {name: path for name, path, _, _ in table}

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The named stages, from input to output; the last is the native CAM's feature map."""
        return self._stages

    @property
    def last_stage(self) -> str:
        """Name of ``stages[-1]``: the map ``forward_features`` returns (and the native CAM reads)."""
        if not self._stages:
            raise ConfigError(f"{type(self).__name__} declares no stages (call _declare_stages in __init__)")
        return self._stages[-1].name

    def stage(self, name: str) -> Stage:
        """The :class:`Stage` called ``name``; an unknown name raises ConfigError listing the known ones."""
        for stage in self._stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in self._stages) or "none"
        raise ConfigError(f"{type(self).__name__} has no stage {name!r} (stages: {known})")

    def stage_module(self, name: str) -> nn.Module:
        """The module whose output IS stage ``name``'s output (a Grad-CAM target layer)."""
        self.stage(name)
        return self.get_submodule(self._stage_paths[name])

    def attach(self, after: str, module: nn.Module) -> None:
        """Apply ``module`` to stage ``after``'s output on every forward (``out = module(out)``).

        ``module`` maps (B, C, h, w) to what the rest of the network reads there (the same
        shape, for every module in the WSOL literature). One module per stage: attaching a
        second one at the same stage raises ConfigError (compose them in an ``nn.Sequential``).
        There is no detach: a method attaches its modules once, when it is built.
        """
        target = self.stage_module(after)
        key = tap_key(after)
        if key in self.taps:
            raise ConfigError(f"{type(self).__name__}: stage {after!r} already has a module attached "
                              f"({type(self.taps[key]).__name__}); compose several in one nn.Sequential")
        self.taps[key] = module
        target.register_forward_hook(_Tap(self.taps, key))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, feats: Tensor) -> Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(feats, 1), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def head_weight(self) -> Tensor:
        """``(K, C)`` classifier weights: the CAM channel weights of each class."""
        return self.fc.weight

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``new_modules`` (trained at ``lr * new_layer_lr_mult``)."""
        return [p for n, p in self.named_parameters() if self._is_new(n)]

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """All other parameters: the (possibly pretrained) body, trained at the base ``lr``."""
        return [p for n, p in self.named_parameters() if not self._is_new(n)]

    def _is_new(self, param_name: str) -> bool:
        return any(param_name == m or param_name.startswith(m + ".") for m in self.new_modules)

    def map_weight_key(self, key: str) -> str:
        """A weights file's state-dict key (torchvision's naming) -> this backbone's key."""
        return key

    def init_weights_from(self, name: str, *, pretrained: bool = False,
                          weights: str | os.PathLike[str] | None = None, torchvision_weights: Any = None) -> None:
        """Load ``weights`` (a file) or, with ``pretrained``, torchvision's cached ImageNet weights.

        ``torchvision_weights`` is the pinned weight enum (None: torchvision has none). Called
        at the end of a registered constructor; see :mod:`wsolbench.backbones.weights`.
        """
        path = resolve_weights_file(name, pretrained=pretrained, weights=weights,
                                    torchvision_weights=torchvision_weights)
        if path is not None:
            self.weights_info = load_weights(self, path, self.map_weight_key)


BACKBONES: Registry[Any] = Registry("backbone")


def create_backbone(name: str, *, num_classes: int, **kwargs: Any) -> CamBackbone:
    """Build a registered backbone with a fresh ``num_classes``-way head.

    Every backbone accepts ``pretrained`` (bool), ``weights`` (a local file) and
    ``large_feature_map`` (bool; ignored by those without the option) besides its own
    keywords; unknown keywords are ignored.
    """
    return BACKBONES.get(name)(num_classes=num_classes, **kwargs)
