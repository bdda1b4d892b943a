"""WSOL metrics: fixed-size, mergeable accumulators over pure protocol functions.

Pure numpy and OpenCV; no torch, no I/O. The evaluation conventions (those of
wsolevaluation, Choe et al. CVPR 2020) are documented in
:mod:`wsolbench.metrics.protocol`.
"""

from wsolbench.metrics.boxes import DEFAULT_IOU_THRESHOLDS, BoxAccumulator, BoxResult
from wsolbench.metrics.classification import ClassificationAccumulator, ClassificationResult
from wsolbench.metrics.masks import MaskAccumulator, MaskResult
from wsolbench.metrics.protocol import (
    CONTOUR_MODES,
    PixelCounts,
    PixelCurves,
    best_ious,
    box_iou,
    boxes_at_thresholds,
    cam_thresholds,
    contour_boxes,
    correct_at,
    entropy,
    pixel_counts,
    pixel_curves,
    pxap,
    pxap_edges,
    quantize_scoremap,
    rescale_boxes,
    score_histograms,
    threshold_cuts,
)
from wsolbench.metrics.validate import (
    MASK_BACKGROUND,
    MASK_FOREGROUND,
    MASK_IGNORE,
    check_cls_correct,
    check_gt_boxes,
    check_masks,
    check_probs,
    check_scoremaps,
)

__all__ = [
    "CONTOUR_MODES",
    "DEFAULT_IOU_THRESHOLDS",
    "MASK_BACKGROUND",
    "MASK_FOREGROUND",
    "MASK_IGNORE",
    "BoxAccumulator",
    "BoxResult",
    "ClassificationAccumulator",
    "ClassificationResult",
    "MaskAccumulator",
    "MaskResult",
    "PixelCounts",
    "PixelCurves",
    "best_ious",
    "box_iou",
    "boxes_at_thresholds",
    "cam_thresholds",
    "check_cls_correct",
    "check_gt_boxes",
    "check_masks",
    "check_probs",
    "check_scoremaps",
    "contour_boxes",
    "correct_at",
    "entropy",
    "pixel_counts",
    "pixel_curves",
    "pxap",
    "pxap_edges",
    "quantize_scoremap",
    "rescale_boxes",
    "score_histograms",
    "threshold_cuts",
]
