"""WSOL metrics: fixed-size, mergeable accumulators over pure protocol functions.

numpy, OpenCV and numba; torch only for maps handed over as tensors
(:func:`score_histograms_torch`, imported when called); no I/O. The evaluation
conventions (those of wsolevaluation, Choe et al. CVPR 2020) are documented in
:mod:`wsolbench.metrics.protocol`; the fast engines (:mod:`~wsolbench.metrics.fast_boxes`,
:func:`fast_score_histograms`) give the same numbers as the exact ones. Every
accumulator shares :class:`~wsolbench.metrics.base.Accumulator` (declared,
mergeable state) and, with ``per_image=True``, keeps per-image outcomes from
which :mod:`wsolbench.metrics.outcomes` recomputes any subset's numbers exactly.
:mod:`wsolbench.metrics.table` names every reported metric.
"""

from wsolbench.metrics.base import Accumulator, Outcomes
from wsolbench.metrics.boxes import (
    DEFAULT_IOU_THRESHOLDS,
    BoxAccumulator,
    BoxOutcomes,
    BoxResult,
    iou_hits,
    ious_float32,
)
from wsolbench.metrics.classification import (
    ClassificationAccumulator,
    ClassificationOutcomes,
    ClassificationResult,
)
from wsolbench.metrics.fast_boxes import fast_best_ious
from wsolbench.metrics.masks import (
    MaskAccumulator,
    MaskOutcomes,
    MaskResult,
    fast_score_histograms,
    score_histograms_torch,
)
from wsolbench.metrics.multiclass import (
    MultiClassMaskAccumulator,
    MultiClassMaskOutcomes,
    MultiClassMaskResult,
)
from wsolbench.metrics.outcomes import (
    OUTCOME_KINDS,
    best_iou,
    best_threshold_index,
    box_counts,
    box_result_of,
    classification_result_of,
    from_arrays,
    gt_known_correct,
    gt_known_loc,
    mask_result_of,
    multiclass_result_of,
    pooled_histograms,
    pxap_of,
    result_of,
    to_arrays,
    top1_correct,
    top1_loc,
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
from wsolbench.metrics.table import METRIC_KEYS, METRICS, Metric, metric
from wsolbench.metrics.validate import (
    check_cls_correct,
    check_gt_boxes,
    check_masks,
    check_probs,
    check_scoremaps,
)
from wsolbench.structs import MASK_BACKGROUND, MASK_FOREGROUND, MASK_IGNORE

__all__ = [
    "CONTOUR_MODES",
    "DEFAULT_IOU_THRESHOLDS",
    "MASK_BACKGROUND",
    "MASK_FOREGROUND",
    "MASK_IGNORE",
    "METRICS",
    "METRIC_KEYS",
    "OUTCOME_KINDS",
    "Accumulator",
    "BoxAccumulator",
    "BoxOutcomes",
    "BoxResult",
    "ClassificationAccumulator",
    "ClassificationOutcomes",
    "ClassificationResult",
    "MaskAccumulator",
    "MaskOutcomes",
    "MaskResult",
    "Metric",
    "MultiClassMaskAccumulator",
    "MultiClassMaskOutcomes",
    "MultiClassMaskResult",
    "Outcomes",
    "PixelCounts",
    "PixelCurves",
    "best_iou",
    "best_ious",
    "best_threshold_index",
    "box_counts",
    "box_iou",
    "box_result_of",
    "boxes_at_thresholds",
    "cam_thresholds",
    "check_cls_correct",
    "check_gt_boxes",
    "check_masks",
    "check_probs",
    "check_scoremaps",
    "classification_result_of",
    "contour_boxes",
    "correct_at",
    "entropy",
    "fast_best_ious",
    "fast_score_histograms",
    "from_arrays",
    "gt_known_correct",
    "gt_known_loc",
    "iou_hits",
    "ious_float32",
    "mask_result_of",
    "metric",
    "multiclass_result_of",
    "pixel_counts",
    "pixel_curves",
    "pooled_histograms",
    "pxap",
    "pxap_edges",
    "pxap_of",
    "quantize_scoremap",
    "rescale_boxes",
    "result_of",
    "score_histograms",
    "score_histograms_torch",
    "threshold_cuts",
    "to_arrays",
    "top1_correct",
    "top1_loc",
]
