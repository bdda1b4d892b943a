"""The ``WsolMethod`` base class and the method registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from wsolbench._registry import Registry
from wsolbench.backbones import CamBackbone

LossFn = Callable[[Tensor, Tensor], Tensor]


class WsolMethod(nn.Module):
    """Wraps a backbone and an objective; subclasses override :meth:`training_step`.

    ``training_step(x, y)`` returns ``{"loss": total, <named parts>..., "logits": logits}``.
    ``infer(x)`` returns ``(logits, feats)`` from one forward pass, for evaluation.
    """

    def __init__(self, net: CamBackbone, objective: LossFn) -> None:
        super().__init__()
        self.net = net
        self.objective = objective

    def training_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The training step, as ``forward`` so DistributedDataParallel can wrap the method."""
        return self.training_step(x, y)

    def infer(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.net.forward_features(x)
        return self.net.forward_head(feats), feats


METHODS: Registry[Any] = Registry("method")


def create_method(name: str, *, net: CamBackbone, objective: LossFn) -> WsolMethod:
    return METHODS.get(name)(net=net, objective=objective)
