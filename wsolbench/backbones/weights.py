"""Pretrained weights from local files only: the torch cache or a given file; nothing is downloaded.

``pretrained=True`` reads torchvision's pinned ImageNet file from the torch hub
cache, ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``), where
torchvision itself would have stored it; ``weights=FILE`` reads a state dict from
``FILE`` (and wins over the cache). When the file is not there a
:class:`~wsolbench.errors.ConfigError` says, in one line, where to put it and the
URL it comes from. Files are read with ``torch.load(..., weights_only=True)``.

Loading copies every tensor whose (mapped) name and shape match the backbone,
except the classifier ``fc``: the head is task-specific and stays as initialised,
as do layers the file does not have (VGG's conv6, Inception's added convs). A
tensor with a matching name but another shape means the file is for another
architecture and raises. What was loaded is returned as :class:`WeightsInfo`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wsolbench.errors import ConfigError

#: State-dict prefixes never loaded from a file: the task's classifier.
HEAD_PREFIXES = ("fc.",)


@dataclass(frozen=True)
class WeightsInfo:
    """What loading a weights file did to a backbone (state-dict keys, in the backbone's naming).

    ``loaded``: set from the file; ``missing``: left as initialised (the head, new
    layers, anything the file lacks; BatchNorm's ``num_batches_tracked`` counters
    are not listed); ``unused``: the file's keys that went nowhere (e.g.
    torchvision's ``classifier.*`` or Inception's ``Mixed_7*``), in the file's naming.
    """

    source: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unused: tuple[str, ...]

    def summary(self) -> str:
        return (f"{len(self.loaded)} tensors loaded from {self.source}, {len(self.missing)} left as initialised, "
                f"{len(self.unused)} unused")


def cache_file(url: str) -> Path:
    """Where torch.hub keeps the file downloaded from ``url``: ``<torch.hub.get_dir()>/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def resolve_weights_file(name: str, *, pretrained: bool, weights: str | os.PathLike[str] | None,
                         torchvision_weights: Any | None) -> Path | None:
    """The local file to load for backbone ``name``, or None when it starts from its initialisation.

    ``torchvision_weights`` is the pinned torchvision weight enum (``None`` when torchvision
    has none for this architecture). Never downloads: a missing file raises ConfigError.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"{name}: weights file {path} does not exist")
        return path
    if not pretrained:
        return None
    if torchvision_weights is None:
        raise ConfigError(f"{name} has no torchvision ImageNet weights: pass weights=FILE (model.weights), "
                          f"a state dict with torchvision-style names")
    url = torchvision_weights.url
    path = cache_file(url)
    if not path.is_file():
        raise ConfigError(f"{name}: pretrained weights {torchvision_weights} not found: download {url} to {path} "
                          f"(or pass weights=FILE); wsolbench never downloads")
    return path


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A tensor dict from ``path``: a bare state dict, or a checkpoint holding one under ``state_dict``
    or ``model`` (wsolbench's own checkpoints); a ``module.`` prefix (DataParallel) is removed."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many types for a corrupt or unsafe file)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"weights file {path} cannot be loaded: {first}") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise ConfigError(f"weights file {path} holds a {type(obj).__name__}, not a state dict")
    out = {}
    for key, value in obj.items():
        if isinstance(value, Tensor):
            out[key.removeprefix("module.")] = value
    return out


def load_weights(net: nn.Module, path: Path, map_key: Callable[[str], str] = lambda k: k) -> WeightsInfo:
    """Copy the matching tensors of ``path`` into ``net``; ``map_key`` maps the file's names to ``net``'s."""
    state = read_state_dict(path)
    own = net.state_dict()
    take: dict[str, Tensor] = {}
    unused = []
    for key, value in state.items():
        target = map_key(key)
        if target not in own or target.startswith(HEAD_PREFIXES):
            unused.append(key)
            continue
        if own[target].shape != value.shape:
            raise ConfigError(f"weights file {path} does not fit this backbone: {key} has shape "
                              f"{tuple(value.shape)}, the backbone's {target} has {tuple(own[target].shape)}")
        take[target] = value
    if not any(k in take for k in own if not k.endswith("num_batches_tracked")):
        raise ConfigError(f"weights file {path}: none of its {len(state)} tensors match this backbone's names")
    net.load_state_dict(take, strict=False)
    missing = tuple(k for k in own if k not in take and not k.endswith("num_batches_tracked"))
    return WeightsInfo(source=str(path), loaded=tuple(take), missing=missing, unused=tuple(unused))
