"""Vanilla CAM (Zhou et al., CVPR 2016): train the GAP classifier with the objective alone."""

from __future__ import annotations

from torch import Tensor

from wsolbench.methods.base import METHODS, StepContext, WsolMethod


@METHODS.register("cam")
class VanillaCam(WsolMethod):
    """Vanilla CAM (Zhou et al., CVPR 2016): the objective alone, no extra loss or input change.

    The baseline every WSOL method is compared with; no parameters; every backbone.
    """

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        logits = self.net(batch["image"])
        parts = {"objective": self.objective(logits, batch["target"])}
        return {"loss": sum(parts.values()), **parts, "logits": logits}
