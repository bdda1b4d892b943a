"""Pure functions over per-image outcomes: any number of any subset of images, exactly.

An accumulator created with ``per_image=True`` keeps, besides its fixed-size
state, one row per image (:class:`~wsolbench.metrics.boxes.BoxOutcomes`,
:class:`~wsolbench.metrics.masks.MaskOutcomes`,
:class:`~wsolbench.metrics.classification.ClassificationOutcomes`,
:class:`~wsolbench.metrics.multiclass.MultiClassMaskOutcomes`), returned by
``accumulator.outcomes()``. The functions here recompute from those rows what
the accumulator computes, for the whole split or any subset (int positions,
repeats allowed as in a bootstrap resample, or a bool mask), and the numbers are
*equal*, not close, to those of a fresh accumulator fed only that subset: box
counts come from the same comparisons (:func:`~wsolbench.metrics.boxes.iou_hits`),
pixel histograms and counts are integers summed, and entropies are summed
exactly.

:func:`to_arrays` / :func:`from_arrays` turn outcome records into a flat dict of
numpy arrays and back (what a record writes to ``.npz``; no file I/O here).
Keys are ``<prefix><kind>.<field>``:

========================== ============ ==========================================
key                        dtype        shape and meaning
========================== ============ ==========================================
boxes.thresholds           float64      (T,) CAM thresholds
boxes.iou_thresholds       int64        (n,) IoU thresholds (percent) counted
boxes.image_ids            str          (N,)
boxes.ious                 float32      (N, 2, T) best IoU, [image, mode, threshold],
                                        modes ("all", "largest")
boxes.cls_correct          bool         (N,) top-1 class right; absent if not given
masks.thresholds           float64      (T,)
masks.image_ids            str          (N,)
masks.fg_hist, bg_hist     int32/int64  (N, T + 2) per-image PxAP histograms
classification.num_classes int64        () K
classification.image_ids   str          (N,)
classification.label       int64        (N,) ground-truth class
classification.predicted   int64        (N,) argmax class
classification.entropy     float64      (N,) H(p), nats
multiclass.thresholds      float64      (T,)
multiclass.num_classes     int64        () K
multiclass.image_ids       str          (P,) one row per (image, class) pair
multiclass.classes         int64        (P,) the pair's class
multiclass.fg_hist, bg_hist int32/int64 (P, T + 2) the pair's histograms
========================== ============ ==========================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.base import Outcomes
from wsolbench.metrics.boxes import BoxOutcomes, BoxResult, box_result, iou_hits
from wsolbench.metrics.classification import ClassificationOutcomes, ClassificationResult, classification_result
from wsolbench.metrics.masks import MaskOutcomes, MaskResult, mask_result
from wsolbench.metrics.multiclass import MultiClassMaskOutcomes, MultiClassMaskResult, multiclass_result
from wsolbench.metrics.protocol import CONTOUR_MODES, pxap
from wsolbench.structs import LOC_IOU

#: Outcome record classes by kind (the key prefix of :func:`to_arrays`).
OUTCOME_KINDS: dict[str, type[Outcomes]] = {
    cls.kind: cls for cls in (BoxOutcomes, MaskOutcomes, ClassificationOutcomes, MultiClassMaskOutcomes)
}


def _mode(contours: str) -> int:
    if contours not in CONTOUR_MODES:
        raise ValueError(f"contours must be one of {CONTOUR_MODES}, got {contours!r}")
    return CONTOUR_MODES.index(contours)


def _subset(outcomes: Outcomes, subset: Any) -> Outcomes:
    return outcomes if subset is None else outcomes.select(subset)


# ---------------------------------------------------------------- boxes


def gt_known_correct(ious: np.ndarray, index: int, iou: int = LOC_IOU, contours: str = "largest") -> np.ndarray:
    """Per image, whether it is box-correct at one CAM threshold (GT-known); bool ``(N,)``.

    Args:
        ious: ``(N, 2, T)`` best IoUs (:attr:`BoxOutcomes.ious`).
        index: CAM threshold index, e.g. the one chosen on val.
        iou: IoU threshold in percent.
        contours: "all" or "largest".
    """
    return iou_hits(np.asarray(ious)[:, _mode(contours), index], iou)


def top1_correct(
    ious: np.ndarray, cls_correct: np.ndarray, index: int, iou: int = LOC_IOU, contours: str = "largest"
) -> np.ndarray:
    """Per image, box-correct and class-correct at one CAM threshold (top-1 Loc); bool ``(N,)``."""
    return gt_known_correct(ious, index, iou, contours) & np.asarray(cls_correct, dtype=np.bool_)


def _percent(hits: np.ndarray) -> float:
    """``100 * hits / N`` in the accumulator's operations; needs N > 0."""
    if hits.shape[0] == 0:
        raise MetricInputError("no images were evaluated")
    return float(np.int64(hits.sum()) * 100.0 / hits.shape[0])


def gt_known_loc(ious: np.ndarray, index: int, iou: int = LOC_IOU, contours: str = "largest") -> float:
    """GT-known Loc (percent) at a CAM threshold index; equals :meth:`BoxResult.gt_known_loc`."""
    return _percent(gt_known_correct(ious, index, iou, contours))


def top1_loc(
    ious: np.ndarray, cls_correct: np.ndarray, index: int, iou: int = LOC_IOU, contours: str = "largest"
) -> float:
    """Top-1 Loc (percent) at a CAM threshold index; equals :meth:`BoxResult.top1_loc`."""
    return _percent(top1_correct(ious, cls_correct, index, iou, contours))


def box_counts(
    ious: np.ndarray, iou_thresholds: tuple[int, ...], cls_correct: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The accumulator's counts from per-image IoUs.

    Returns:
        ``(correct, correct_top1)``, int64 ``(2, len(iou_thresholds), T)``
        ``[mode, iou, threshold]``; ``correct_top1`` is None without ``cls_correct``.
    """
    ious = np.asarray(ious)
    hits = np.stack([iou_hits(ious, iou) for iou in iou_thresholds], axis=2)  # (N, mode, iou, T)
    correct = hits.sum(axis=0, dtype=np.int64)
    if cls_correct is None:
        return correct, None
    return correct, hits[np.asarray(cls_correct, dtype=np.bool_)].sum(axis=0, dtype=np.int64)


def box_result_of(outcomes: BoxOutcomes, subset: Any = None) -> BoxResult:
    """The :class:`BoxResult` (all curves, MaxBoxAcc, MaxBoxAccV2, Loc at any index) of a subset of images."""
    out = _subset(outcomes, subset)
    correct, correct_top1 = box_counts(out.ious, out.iou_thresholds, out.cls_correct)
    return box_result(out.thresholds, out.iou_thresholds, len(out), correct, correct_top1)


def best_iou(ious: np.ndarray, index: int | None = None, contours: str = "all") -> np.ndarray:
    """Per-image best IoU, float32 ``(N,)``: at a CAM threshold index, or the best over thresholds (None)."""
    per_mode = np.asarray(ious)[:, _mode(contours)]
    return per_mode.max(axis=1) if index is None else per_mode[:, index].copy()


def best_threshold_index(ious: np.ndarray, contours: str = "all") -> np.ndarray:
    """Per image, the first CAM threshold index of its best IoU; int64 ``(N,)``."""
    return np.argmax(np.asarray(ious)[:, _mode(contours)], axis=1).astype(np.int64)


# ---------------------------------------------------------------- masks


def pooled_histograms(fg_hist: np.ndarray, bg_hist: np.ndarray, subset: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-image histograms ``(N, T + 2)`` summed over the images (or a subset); int64 ``(T + 2,)`` each."""
    fg, bg = np.asarray(fg_hist), np.asarray(bg_hist)
    if subset is not None:
        fg, bg = fg[np.asarray(subset)], bg[np.asarray(subset)]
    return fg.sum(axis=0, dtype=np.int64), bg.sum(axis=0, dtype=np.int64)


def pxap_of(fg_hist: np.ndarray, bg_hist: np.ndarray, subset: Any = None) -> float:
    """PxAP (percent) of the pixels of a subset of images, from per-image histograms."""
    fg, bg = pooled_histograms(fg_hist, bg_hist, subset)
    if fg.sum() == 0:
        raise MetricInputError("no foreground pixel in the selected images: PxAP is undefined")
    return pxap(fg, bg)


def mask_result_of(outcomes: MaskOutcomes, subset: Any = None) -> MaskResult:
    """The :class:`MaskResult` (PxAP, PIoU, curves) of a subset of images."""
    out = _subset(outcomes, subset)
    fg, bg = pooled_histograms(out.fg_hist, out.bg_hist)
    return mask_result(out.thresholds, len(out), fg, bg)


# ---------------------------------------------------------------- classification, multi-class


def classification_result_of(outcomes: ClassificationOutcomes, subset: Any = None) -> ClassificationResult:
    """The :class:`ClassificationResult` (top-1, mean entropies) of a subset of images."""
    out = _subset(outcomes, subset)
    correct = int((out.predicted == out.label).sum())
    return classification_result(out.num_classes, len(out), correct, math.fsum(out.entropy.tolist()))


def multiclass_result_of(outcomes: MultiClassMaskOutcomes, subset: Any = None) -> MultiClassMaskResult:
    """The :class:`MultiClassMaskResult` (per-class PxAP, mPxAP) of a subset of ``(image, class)`` pairs."""
    out = _subset(outcomes, subset)
    k, bins = out.num_classes, len(out.thresholds) + 2
    fg = np.zeros((k, bins), dtype=np.int64)
    bg = np.zeros((k, bins), dtype=np.int64)
    np.add.at(fg, out.classes, out.fg_hist.astype(np.int64))
    np.add.at(bg, out.classes, out.bg_hist.astype(np.int64))
    images = np.bincount(out.classes, minlength=k).astype(np.int64)
    return multiclass_result(out.thresholds, k, len(out), images, fg, bg)


_RESULT_OF = {
    BoxOutcomes: box_result_of,
    MaskOutcomes: mask_result_of,
    ClassificationOutcomes: classification_result_of,
    MultiClassMaskOutcomes: multiclass_result_of,
}


def result_of(outcomes: Outcomes, subset: Any = None):
    """The result an accumulator of the outcomes' kind computes, for a subset (dispatch on the type)."""
    return _RESULT_OF[type(outcomes)](outcomes, subset)


# ---------------------------------------------------------------- flat arrays


def to_arrays(outcomes: Outcomes, prefix: str = "") -> dict[str, np.ndarray]:
    """A flat dict of numpy arrays, keys ``<prefix><kind>.<field>`` (see the module docstring).

    Fields that are None (no ``cls_correct``) are left out; ids are a str array
    (``np.savez`` writes it without pickling).
    """
    out: dict[str, np.ndarray] = {}
    for field in dataclasses.fields(outcomes):
        value = getattr(outcomes, field.name)
        if value is None:
            continue
        if isinstance(value, (int, tuple)):
            value = np.asarray(value, dtype=np.int64)
        out[f"{prefix}{outcomes.kind}.{field.name}"] = np.asarray(value)
    return out


def from_arrays(arrays: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, Outcomes]:
    """The outcome records held in ``arrays`` (keys ``<prefix><kind>.<field>``), by kind.

    The inverse of :func:`to_arrays`; keys of other prefixes are ignored.

    Raises:
        MetricInputError: a field missing or of the wrong shape or dtype.
    """
    found: dict[str, dict[str, Any]] = {}
    for key, value in arrays.items():
        if not key.startswith(prefix):
            continue
        kind, dot, name = key[len(prefix):].partition(".")
        if dot and kind in OUTCOME_KINDS:
            found.setdefault(kind, {})[name] = np.asarray(value)
    records: dict[str, Outcomes] = {}
    for kind, fields in found.items():
        cls = OUTCOME_KINDS[kind]
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = fields.get(field.name)
            if value is None:
                if field.name in cls.optional:
                    kwargs[field.name] = None
                    continue
                raise MetricInputError(f"outcome arrays: {prefix}{kind}.{field.name} is missing")
            if field.name == "iou_thresholds":
                value = tuple(int(v) for v in value.reshape(-1))
            elif field.name == "num_classes":
                value = int(value)
            kwargs[field.name] = value
        records[kind] = cls(**kwargs)
    return records
