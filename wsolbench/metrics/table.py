"""The one table of every metric wsolbench reports: key, name, unit, direction.

Keys are the exact strings of records' summaries, leaderboard columns and the
regression check; everything that names a metric reads it from here. A key
``"<base>@<x>"`` names a variant of a base metric that allows one (its
``variant`` says what ``x`` is): ``"GT-known Loc@0.15"`` is GT-known Loc at
the fixed CAM threshold 0.15, ``"MaxBoxAccV2@40"`` MaxBoxAccV2's best at IoU
40 %; :func:`metric` resolves it to the base's unit and direction.

Definitions follow Choe et al., CVPR 2020 (boxes, PxAP) and
:mod:`wsolbench.metrics.protocol`; stdlib only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from wsolbench.errors import ConfigError

#: Units: percent, nats, a plain number, a count.
UNITS = ("%", "nats", "", "count")

#: What the ``x`` of a ``"<base>@<x>"`` key is.
CAM_THRESHOLD = "CAM threshold"
IOU_PERCENT = "IoU threshold (%)"


@dataclass(frozen=True)
class Metric:
    """One reported number.

    Attributes:
        key: the exact string used in summaries and leaderboards.
        name: a human-readable name (plot axes, report headers).
        unit: one of :data:`UNITS`.
        higher_is_better: True / False, or None where neither (entropy, counts, thresholds).
        description: one or two sentences: what it is and where it comes from.
        variant: what ``x`` means in ``"<key>@<x>"`` (:data:`CAM_THRESHOLD`,
            :data:`IOU_PERCENT`), or None when the metric has no variants.
    """

    key: str
    name: str
    unit: str
    higher_is_better: bool | None
    description: str
    variant: str | None = None

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"metric {self.key!r}: unit must be one of {UNITS}, got {self.unit!r}")


_LOC = (
    "Images with a box (largest contour, or all contours per eval.loc_contours) at IoU >= 0.5 with a "
    "ground-truth box, at the CAM threshold chosen on val"
)

METRICS: tuple[Metric, ...] = (
    Metric("top1", "Top-1 accuracy", "%", True,
           "Images whose argmax class is the label (first on ties)."),
    Metric("mAP", "mAP", "%", True,
           "Multi-label classification: mean over classes of the average precision of each class's scores."),
    Metric("entropy", "Entropy", "nats", None,
           "Mean Shannon entropy H(p) of the predicted class distribution."),
    Metric("entropy_norm", "Normalized entropy", "", None,
           "Mean entropy divided by log K: 0 for one-hot predictions, 1 for uniform ones."),
    Metric("MaxBoxAcc", "MaxBoxAcc", "%", True,
           "Box accuracy at IoU 0.5 with the largest contour's box, best over CAM thresholds, GT-known "
           "(Choe et al., CVPR 2020; V1)."),
    Metric("MaxBoxAccV2", "MaxBoxAccV2", "%", True,
           "Mean over IoU 0.3, 0.5, 0.7 of the box accuracy with all contours' boxes, each best over CAM "
           "thresholds, GT-known (Choe et al., CVPR 2020).", variant=IOU_PERCENT),
    *(
        Metric(f"MaxBoxAccV2@{iou}", f"MaxBoxAccV2 @ IoU {iou / 100:.1f}", "%", True,
               f"Box accuracy at IoU {iou / 100:.1f} with all contours' boxes, best over CAM thresholds, "
               "GT-known (one term of MaxBoxAccV2).")
        for iou in (30, 50, 70)
    ),
    Metric("GT-known Loc", "GT-known Loc", "%", True,
           f"{_LOC}, with the ground-truth class's map.", variant=CAM_THRESHOLD),
    Metric("Top-1 Loc", "Top-1 Loc", "%", True,
           f"{_LOC} and whose top-1 class is right.", variant=CAM_THRESHOLD),
    Metric("threshold", "CAM threshold", "", None,
           "The CAM threshold chosen on val (the best GT-known Loc there), applied unchanged to test."),
    Metric("PxAP", "PxAP", "%", True,
           "Area under the pixel precision-recall curve over the CAM thresholds, pixels pooled over the "
           "split, ignore pixels excluded (Choe et al., CVPR 2020)."),
    Metric("PIoU", "PIoU", "%", True,
           "Best pixel IoU tp / (tp + fp + fn) over the CAM thresholds, pixels pooled over the split."),
    Metric("mPxAP", "mPxAP", "%", True,
           "Mean over the classes with a labelled pixel of each class's PxAP (class-index masks, PASCAL VOC)."),
    Metric("images", "Images", "count", None, "Images evaluated."),
)

_BY_KEY = {m.key: m for m in METRICS}
if len(_BY_KEY) != len(METRICS):
    raise RuntimeError("duplicate metric keys in METRICS")

#: Every key of :data:`METRICS`, in table order.
METRIC_KEYS: tuple[str, ...] = tuple(_BY_KEY)


def _variant_value(base: Metric, text: str, key: str) -> str:
    """The ``x`` of ``"<base>@<x>"``, checked against the base's variant kind; its display form."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if base.variant == CAM_THRESHOLD and 0 <= value < 1:
        return f"{value:g}"
    if base.variant == IOU_PERCENT and 0 <= value <= 100 and value == round(value):
        return f"{round(value)}"
    what = "a CAM threshold in [0, 1)" if base.variant == CAM_THRESHOLD else "an integer IoU percentage in [0, 100]"
    raise ConfigError(f"metric {key!r}: {text!r} is not {what}")


def metric(key: str) -> Metric:
    """The table entry of ``key``, or of a ``"<base>@<x>"`` variant (the base's unit and direction).

    Raises:
        ConfigError: an unknown key, a base without variants, or a malformed ``x``.
    """
    if key in _BY_KEY:
        return _BY_KEY[key]
    base_key, at, text = key.rpartition("@")
    base = _BY_KEY.get(base_key) if at else None
    if base is None:
        raise ConfigError(f"unknown metric {key!r}; known: {', '.join(METRIC_KEYS)} (and '<key>@<x>' variants)")
    if base.variant is None:
        raise ConfigError(f"metric {base.key!r} has no '@' variants, got {key!r}")
    shown = _variant_value(base, text, key)
    if base.variant == CAM_THRESHOLD:
        name = f"{base.name} @ {shown}"
        where = f"Variant: at the fixed CAM threshold {shown} instead of the one chosen on val."
    else:
        name = f"{base.name} @ IoU {int(shown) / 100:g}"
        where = f"Variant: only the term at IoU {int(shown) / 100:g}."
    return dataclasses.replace(base, key=key, name=name, description=f"{base.description} {where}", variant=None)
