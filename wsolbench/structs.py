"""Constants shared across the package, defined once (stdlib only).

Every module that needs the evaluation resolution, the mask values, the IoU of
Top-1 / GT-known Loc or the input normalization imports them from here.
"""

from __future__ import annotations

#: The community protocol's evaluation resolution (Choe et al., CVPR 2020): score maps are scored at 224 x 224.
EVAL_RESOLUTION = 224

#: Binary mask values: 0 background, 1 foreground, 255 ignore (excluded from PxAP everywhere).
MASK_BACKGROUND = 0
MASK_FOREGROUND = 1
MASK_IGNORE = 255

#: Top-1 Loc / GT-known Loc (and MaxBoxAcc V1) count a box as correct at IoU >= 0.5, in percent.
LOC_IOU = 50

#: ImageNet normalization used by torchvision's pretrained backbones.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: An odd 64-bit constant that spreads (seed, epoch, index, ...) over the seed space.
_MIX = 0x9E3779B97F4A7C15


def mix_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (no Python ``hash``: it is salted per process)."""
    value = 0
    for part in parts:
        value = ((value ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * _MIX + 1) & 0xFFFFFFFFFFFFFFFF
    return value >> 1
