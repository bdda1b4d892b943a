"""The native CAM: head weights applied to the last feature map, batched, on the model's device."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import wsolbench
from wsolbench.cams.base import CAMS, CamExtractor
from wsolbench.errors import ConfigError


def cam_from_features(feats: Tensor, head_weight: Tensor, classes: Tensor) -> Tensor:
    """CAMs ``(B, h, w)`` for one class per image.

    feats: ``(B, C, h, w)``; head_weight: ``(K, C)``; classes: ``(B,)`` long.
    """
    weights = head_weight[classes].to(feats.dtype)  # (B, C)
    return torch.einsum("bchw,bc->bhw", feats, weights)


def normalize_minmax(maps: Tensor) -> Tensor:
    """Per-map min-max to [0, 1]; a constant map or one with NaN/inf becomes zeros. ``(B, H, W)``."""
    flat = maps.flatten(1)
    finite = torch.isfinite(flat).all(dim=1)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat))
    lo = safe.min(dim=1, keepdim=True).values
    hi = safe.max(dim=1, keepdim=True).values
    span = hi - lo
    ok = finite & (span.squeeze(1) > 0)
    out = (safe - lo) / torch.where(span > 0, span, torch.ones_like(span))
    out = torch.where(ok[:, None], out, torch.zeros_like(out))
    return out.clamp_(0.0, 1.0).view_as(maps)


@CAMS.register("cam")
class NativeCam(CamExtractor):
    """CAM (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016).

    ``M_c(x, y) = sum_k W[c, k] * A_k(x, y)`` with ``A`` the last feature map
    (``model.net.last_stage``, what ``forward_features`` returns) and ``W`` the
    classifier weights (``head_weight``): no bias, **no ReLU**, not normalized, as
    the community protocol (wsolevaluation) computes it.

    It is ``model.localization_maps(x, classes)`` under ``torch.no_grad()``: the
    method's own maps from the forward pass that gives the logits, with no hooks
    (a method that changes how its maps are made, changes them here). No library.
    ``target_stage`` must be None or the last stage: the head's weights only apply there.
    """

    def __init__(self, model: Any, target_stage: str | None = None) -> None:
        super().__init__(model, target_stage)
        last = getattr(self.net, "last_stage", None)
        if target_stage is not None and target_stage != last:
            raise ConfigError(f"cam: the native CAM reads the last stage ({last}) only, got target_stage "
                              f"{target_stage!r}; use a gradient method (e.g. gradcam) for other stages")
        self.target_stage = last

    def _extract(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            return self.model.localization_maps(x, classes)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "library": "wsolbench", "library_version": wsolbench.__version__,
                "normalized_by_library": False}
