"""Constants shared across the package, defined once (stdlib only).

Every module that needs the evaluation resolution, the mask values, the IoU of
Top-1 / GT-known Loc, the CAM threshold step's range or the input normalization
imports them from here.
"""

from __future__ import annotations

from wsolbench.errors import ConfigError

#: The community protocol's evaluation resolution (Choe et al., CVPR 2020): score maps are scored at 224 x 224.
EVAL_RESOLUTION = 224

#: Binary mask values: 0 background, 1 foreground, 255 ignore (excluded from PxAP everywhere).
MASK_BACKGROUND = 0
MASK_FOREGROUND = 1
MASK_IGNORE = 255

#: Top-1 Loc / GT-known Loc (and MaxBoxAcc V1) count a box as correct at IoU >= 0.5, in percent.
LOC_IOU = 50

#: The largest CAM threshold step: thresholds are 0, step, 2 * step, ... < 1, so at least two of them.
MAX_THRESHOLD_STEP = 0.5


def check_threshold_step(step: object, name: str) -> float:
    """``step`` as a float when it is in (0, :data:`MAX_THRESHOLD_STEP`]; ConfigError naming ``name`` (the option or
    config key it came from: ``--threshold-step``, ``eval.threshold_step``) otherwise."""
    ok = isinstance(step, (int, float)) and not isinstance(step, bool) and 0 < step <= MAX_THRESHOLD_STEP
    if not ok:
        raise ConfigError(f"{name} must be in (0, {MAX_THRESHOLD_STEP:g}] (CAM thresholds 0, step, 2*step, ... < 1: "
                          f"at least two), got {step!r}")
    return float(step)


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
