"""WSOL metrics: fixed-size, mergeable accumulators over pure protocol functions.

numpy, OpenCV and numba; torch only for maps handed over as tensors
(:func:`score_histograms_torch`, imported when called); no I/O. The evaluation
conventions (those of wsolevaluation, Choe et al. CVPR 2020) are documented in
:mod:`wsolbench.metrics.protocol`; the fast engines (:mod:`~wsolbench.metrics.fast_boxes`,
:func:`fast_score_histograms`) give the same numbers as the exact ones.
"""

from wsolbench.metrics.boxes import DEFAULT_IOU_THRESHOLDS, BoxAccumulator, BoxResult
from wsolbench.metrics.classification import (
    ClassificationAccumulator,
    ClassificationResult,
)
from wsolbench.metrics.fast_boxes import fast_best_ious
from wsolbench.metrics.masks import (
    MaskAccumulator,
    MaskResult,
    fast_score_histograms,
    score_histograms_torch,
)
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
    "fast_best_ious",
    "fast_score_histograms",
    "pixel_counts",
    "pixel_curves",
    "pxap",
    "pxap_edges",
    "quantize_scoremap",
    "rescale_boxes",
    "score_histograms",
    "score_histograms_torch",
    "threshold_cuts",
]
