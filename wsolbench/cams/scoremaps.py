"""Raw maps -> score maps: the one shared resize + per-image min-max step."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from wsolbench.cams.native import cam_from_features, normalize_minmax


def to_scoremaps(maps: Tensor, resolution: int, mode: str = "bicubic") -> Tensor:
    """Score maps ``(B, R, R)`` float32 in [0, 1] from raw maps ``(B, h, w)`` (any float dtype).

    Resized to ``resolution x resolution`` with ``F.interpolate(mode, align_corners=False)``
    (bicubic by default, as ``cv2.INTER_CUBIC`` in the community protocol; skipped when
    already that size), in float32, then min-max normalized per image
    (:func:`normalize_minmax`: a constant or non-finite map becomes all zeros).
    """
    maps = maps.float()
    if maps.shape[-2:] != (resolution, resolution):
        maps = F.interpolate(maps[:, None], size=(resolution, resolution), mode=mode,
                             align_corners=False)[:, 0]
    return normalize_minmax(maps)


def scoremaps_for(feats: Tensor, head_weight: Tensor, classes: Tensor, resolution: int,
                  mode: str = "bicubic") -> Tensor:
    """Native-CAM score maps in [0, 1], float32, ``(B, R, R)``: :func:`cam_from_features` + :func:`to_scoremaps`.

    The CAM is computed in float32 (under autocast the features may be half precision).
    """
    return to_scoremaps(cam_from_features(feats.float(), head_weight.float(), classes), resolution, mode)
