"""The native CAM: head weights applied to the last feature map, batched, on the model's device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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


def scoremaps_for(feats: Tensor, head_weight: Tensor, classes: Tensor, resolution: int,
                  mode: str = "bicubic") -> Tensor:
    """Score maps in [0, 1] at ``resolution x resolution``, float32, ``(B, R, R)``.

    The CAM is computed in float32 (under autocast the features may be half
    precision), resized with ``mode`` and min-max normalized per image.
    """
    cams = cam_from_features(feats.float(), head_weight.float(), classes)
    if cams.shape[-2:] != (resolution, resolution):
        cams = F.interpolate(cams[:, None], size=(resolution, resolution), mode=mode,
                             align_corners=False)[:, 0]
    return normalize_minmax(cams)
