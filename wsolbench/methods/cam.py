"""Vanilla CAM (Zhou et al., CVPR 2016): train the GAP classifier with the objective alone."""

from __future__ import annotations

from torch import Tensor

from wsolbench.methods.base import METHODS, WsolMethod


@METHODS.register("cam")
class VanillaCam(WsolMethod):
    """No extra loss or input change: the baseline every WSOL method is compared with."""

    def training_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        logits = self.net(x)
        parts = {"objective": self.objective(logits, y)}
        return {"loss": sum(parts.values()), **parts, "logits": logits}
