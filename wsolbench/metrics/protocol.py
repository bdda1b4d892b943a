"""Pure functions of the community WSOL evaluation protocol.

Source: Choe et al., "Evaluating Weakly Supervised Object Localization Methods
Right", CVPR 2020, and its reference code (clovaai/wsolevaluation,
``evaluation.py``). wsolbench re-implements the protocol; every convention below
is chosen to reproduce the reference numbers exactly, quirks included.

Conventions
-----------
Resolution
    Score maps, boxes and masks all live at the map resolution (224 x 224 in the
    protocol). Ground-truth boxes given in original-image pixels are rescaled by
    :func:`rescale_boxes` as ``int(x0 * W / w)`` etc.: multiply, then divide, in
    float64, then truncate toward zero like Python's ``int()``.
Boxes
    ``(x0, y0, x1, y1)`` int64, inclusive pixel coordinates, ``x`` along the
    width. Arrays of boxes are ``(n, 4)``.
Score maps
    2-D ``(H, W)`` float in ``[0, 1]``, converted to float64 before any
    arithmetic (the reference requires float64; a float32 map is widened
    exactly, so its quantisation is what the reference gives for the same
    values).
CAM thresholds
    ``np.arange(0, 1, step)`` (:func:`cam_thresholds`), float64, ascending. The
    reference uses step 0.001 in training configs and 0.01 in its CLI.
Quantisation and thresholding (boxes only)
    ``q = (scoremap * 255).astype(np.uint8)`` (truncation). For threshold ``t``
    the 8-bit cut is ``int(t * q.max())`` and the foreground is ``q > cut``:
    strictly greater, exactly ``cv2.threshold(q, cut, 255, THRESH_BINARY)``. A
    pixel whose level equals the cut is background. An all-zero map therefore
    has no foreground at any threshold; a flat non-zero map is all foreground
    at every threshold below 1.
Contours and predicted boxes
    ``cv2.findContours(fg, RETR_TREE, CHAIN_APPROX_SIMPLE)``; contours are
    element ``[-2]`` of the return value (OpenCV 3 returns three values, 4+
    two). For each contour ``x, y, w, h = cv2.boundingRect(c)`` and the box is
    ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``: the right and bottom
    edges are the exclusive ones, one pixel past the blob, clipped to the map
    (the reference does this and the +1 IoU below counts them as inclusive).

    * "all" contours (MaxBoxAccV2, ``multi_contour_eval``): every contour
      RETR_TREE returns, hole (inner) contours included.
    * "largest" contour (MaxBoxAcc V1): ``max(contours, key=cv2.contourArea)``,
      the first one on ties.
    * No contour at all: the single box ``(0, 0, 0, 0)`` in both modes.
IoU
    +1 pixel convention: ``inter = max(0, min(x1) - max(x0) + 1) *
    max(0, min(y1) - max(y0) + 1)``, ``area = (x1 - x0 + 1) * (y1 - y0 + 1)``,
    ``iou = inter / (area_a + area_b - inter)``, and 0 where that denominator
    is <= 0.
Box correctness
    An image is correct at (threshold ``t``, IoU threshold ``delta`` in percent)
    when the maximum IoU over every predicted box at ``t`` and every
    ground-truth box is ``>= delta / 100`` (inclusive; any GT box counts).
    Accuracies are ``100 * correct / count``.
MaxBoxAcc
    V1: IoU 50, largest contour, maximum over thresholds. V2: all contours, the
    mean over ``delta`` in {30, 50, 70} of each delta's own maximum over
    thresholds. Both are GT-known: the map is computed for the GT class.
Top-1 localisation
    Not in the reference; wsolbench counts an image as top-1 correct at
    ``(t, delta)`` when it is box-correct and its top-1 class is correct.
PxAP (masks)
    Masks are uint8: 0 background, 1 foreground, 255 ignore (excluded). Maps
    are *not* quantised. Foreground and background score histograms use bin
    edges ``np.append(thresholds, [1.0, 2.0, 3.0])`` with ``np.histogram``
    semantics (bins ``[e_i, e_{i+1})``, the last one closed) and are pooled
    over every image of the split. With ``tp`` and ``fp`` the reverse
    cumulative sums of the two histograms (so entry ``j`` counts pixels with
    score ``>=`` the ``j``-th edge from the top: 2.0, 1.0, the last threshold,
    ..., the first threshold), ``fn = total_fg - tp``,
    ``precision = tp / (tp + fp)``, ``recall = tp / total_fg``, and
    ``PxAP = 100 * sum_{j >= 1} precision[j] * (recall[j] - recall[j - 1])``,
    leaving out terms where ``precision[j]`` is NaN (``tp + fp == 0``). No
    interpolation.
PIoU (masks)
    ``100 * max_t tp / (tp + fp + fn)`` over the CAM thresholds, with the
    threshold that attains it (the first on ties).
Entropy
    ``H(p) = -sum_k p_k log p_k`` in nats with ``0 log 0 = 0``; normalised
    entropy is ``H / log K``.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

#: Contour modes, in the order of the first axis of the box count arrays.
CONTOUR_MODES = ("all", "largest")

#: Extra right edges appended to the CAM thresholds for the PxAP histograms.
PXAP_EXTRA_EDGES = (1.0, 2.0, 3.0)

_NO_BOX = (0, 0, 0, 0)


def cam_thresholds(step: float = 0.01) -> np.ndarray:
    """CAM thresholds ``np.arange(0, 1, step)`` (float64, ascending)."""
    if not 0 < step < 1:
        raise ValueError(f"threshold step must be in (0, 1), got {step}")
    return np.arange(0, 1, step)


def rescale_boxes(
    boxes: np.ndarray,
    size: tuple[float, float],
    resolution: tuple[int, int],
) -> np.ndarray:
    """Rescale boxes from original pixels to the map resolution.

    Args:
        boxes: ``(n, 4)`` ``x0, y0, x1, y1`` in original-image pixels.
        size: original image ``(w, h)``.
        resolution: map ``(W, H)``.

    Returns:
        ``(n, 4)`` int64: ``int(x0 * W / w), int(y0 * H / h), int(x1 * W / w),
        int(y1 * H / h)`` (float64 arithmetic, truncation toward zero).
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4), got {arr.shape}")
    w, h = (float(v) for v in size)
    new_w, new_h = (float(v) for v in resolution)
    if not (w > 0 and h > 0 and new_w > 0 and new_h > 0):
        raise ValueError(f"sizes must be positive, got size={size} resolution={resolution}")
    numerator = np.array([new_w, new_h, new_w, new_h])
    denominator = np.array([w, h, w, h])
    # Multiply first, then divide, as int(x0 * W / w) evaluates left to right.
    return np.trunc(arr * numerator / denominator).astype(np.int64)


def quantize_scoremap(scoremap: np.ndarray) -> np.ndarray:
    """``(scoremap * 255).astype(np.uint8)`` in float64 (truncation); ``(H, W)``."""
    return (np.asarray(scoremap, dtype=np.float64) * 255).astype(np.uint8)


def threshold_cuts(thresholds: np.ndarray, max_level: int) -> np.ndarray:
    """8-bit cuts ``int(t * max_level)`` for each threshold ``t``; int64 ``(T,)``."""
    scaled = np.asarray(thresholds, dtype=np.float64) * float(int(max_level))
    return np.trunc(scaled).astype(np.int64)


def contour_boxes(foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the contours of a binary ``(H, W)`` foreground.

    Returns:
        ``(all_boxes, largest)``: ``(n, 4)`` int64 boxes of every RETR_TREE
        contour (holes included) and the ``(4,)`` box of the contour with the
        largest ``cv2.contourArea`` (first on ties). Without any contour both
        are ``(0, 0, 0, 0)``.
    """
    fg = np.ascontiguousarray(foreground != 0, dtype=np.uint8)
    height, width = fg.shape
    contours = cv2.findContours(fg, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
        empty = np.array([_NO_BOX], dtype=np.int64)
        return empty, empty[0].copy()
    rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64)
    x, y, w, h = rects.T
    boxes = np.stack(
        [x, y, np.minimum(x + w, width - 1), np.minimum(y + h, height - 1)], axis=1
    )
    # Python's max returns the first maximal item, as the reference's
    # max(contours, key=cv2.contourArea) does.
    largest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
    return boxes, boxes[largest].copy()


def _boxes_per_cut(
    scoremap: np.ndarray, thresholds: np.ndarray
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Contour boxes once per distinct 8-bit cut, and each threshold's cut index."""
    quantized = quantize_scoremap(scoremap)
    cuts = threshold_cuts(thresholds, quantized.max())
    unique_cuts, inverse = np.unique(cuts, return_inverse=True)
    per_cut = [contour_boxes(quantized > cut) for cut in unique_cuts]
    return per_cut, inverse.reshape(-1)


def boxes_at_thresholds(
    scoremap: np.ndarray, thresholds: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Predicted boxes of a score map at each CAM threshold.

    Args:
        scoremap: ``(H, W)`` float in ``[0, 1]``.
        thresholds: ``(T,)`` CAM thresholds.

    Returns:
        ``(all_boxes, largest)``: a list of ``T`` int64 ``(n_t, 4)`` arrays
        (every contour) and an int64 ``(T, 4)`` array (largest contour).
    """
    per_cut, inverse = _boxes_per_cut(scoremap, thresholds)
    all_boxes = [per_cut[k][0].copy() for k in inverse]
    largest = np.array([per_cut[k][1] for k in inverse], dtype=np.int64).reshape(-1, 4)
    return all_boxes, largest


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU with the +1 pixel convention.

    Args:
        boxes_a: ``(na, 4)`` ``x0, y0, x1, y1``, inclusive pixels.
        boxes_b: ``(nb, 4)``.

    Returns:
        ``(na, nb)`` float64; 0 where ``area_a + area_b - inter <= 0``.
    """
    a = np.asarray(boxes_a, dtype=np.float64)
    b = np.asarray(boxes_b, dtype=np.float64)
    for name, arr in (("boxes_a", a), ("boxes_b", b)):
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"{name} must have shape (n, 4), got {arr.shape}")
    a = a[:, None, :]
    b = b[None, :, :]
    inter_w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denominator = area_a + area_b - inter
    out = np.zeros(denominator.shape, dtype=np.float64)
    np.divide(inter, denominator, out=out, where=denominator > 0)
    return out


def best_ious(
    scoremap: np.ndarray, gt_boxes: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU with the ground truth at each CAM threshold.

    Args:
        scoremap: ``(H, W)`` float in ``[0, 1]``.
        gt_boxes: ``(n, 4)`` int boxes at map resolution, ``n >= 1``.
        thresholds: ``(T,)`` CAM thresholds.

    Returns:
        ``(iou_all, iou_largest)``, float64 ``(T,)`` each: the maximum IoU over
        every (predicted box, GT box) pair, with the boxes of all contours and
        with the box of the largest contour.
    """
    gt = np.asarray(gt_boxes)
    per_cut, inverse = _boxes_per_cut(scoremap, thresholds)
    iou_all = np.empty(len(per_cut), dtype=np.float64)
    iou_largest = np.empty(len(per_cut), dtype=np.float64)
    for k, (boxes, largest) in enumerate(per_cut):
        iou_all[k] = box_iou(boxes, gt).max()
        iou_largest[k] = box_iou(largest[None, :], gt).max()
    return iou_all[inverse], iou_largest[inverse]


def correct_at(ious: np.ndarray, iou_thresholds: tuple[int, ...]) -> np.ndarray:
    """Correctness ``ious >= delta / 100`` for each IoU threshold ``delta`` (percent).

    Args:
        ious: any shape ``S``.

    Returns:
        bool ``(len(iou_thresholds),) + S``.
    """
    deltas = np.array([d / 100 for d in iou_thresholds], dtype=np.float64)
    ious = np.asarray(ious, dtype=np.float64)
    return ious[None, ...] >= deltas.reshape((-1,) + (1,) * ious.ndim)


def pxap_edges(thresholds: np.ndarray) -> np.ndarray:
    """PxAP histogram bin edges ``np.append(thresholds, [1.0, 2.0, 3.0])``; ``(T + 3,)``."""
    return np.append(np.asarray(thresholds, dtype=np.float64), PXAP_EXTRA_EDGES)


def score_histograms(
    scoremaps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background score histograms for PxAP.

    Args:
        scoremaps: ``(..., H, W)`` float in ``[0, 1]`` (not quantised).
        masks: same shape, uint8 0 background / 1 foreground / 255 ignore.
        thresholds: ``(T,)`` CAM thresholds.

    Returns:
        ``(fg_hist, bg_hist)``, int64 ``(T + 2,)`` each, pooled over all pixels,
        with the bins of :func:`pxap_edges` (ascending).
    """
    maps = np.asarray(scoremaps, dtype=np.float64)
    masks = np.asarray(masks)
    edges = pxap_edges(thresholds)
    fg_hist, _ = np.histogram(maps[masks == 1], bins=edges)
    bg_hist, _ = np.histogram(maps[masks == 0], bins=edges)
    return fg_hist.astype(np.int64), bg_hist.astype(np.int64)


class PixelCounts(NamedTuple):
    """Pixel confusion counts in descending edge order (2.0, 1.0, t_{T-1}, ..., t_0)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray


def pixel_counts(fg_hist: np.ndarray, bg_hist: np.ndarray) -> PixelCounts:
    """tp, fp, fn (float64, ``(T + 2,)``) by reverse cumulative sums of the histograms."""
    fg = np.asarray(fg_hist, dtype=np.float64)
    bg = np.asarray(bg_hist, dtype=np.float64)
    tp = fg[::-1].cumsum()
    fp = bg[::-1].cumsum()
    return PixelCounts(tp=tp, fp=fp, fn=fg.sum() - tp)


def pxap(fg_hist: np.ndarray, bg_hist: np.ndarray) -> float:
    """Pixel average precision in percent (see the module docstring).

    Raises:
        ValueError: the histograms hold no foreground pixel.
    """
    tp, fp, fn = pixel_counts(fg_hist, bg_hist)
    total_fg = tp[-1] + fn[-1]
    if total_fg <= 0:
        raise ValueError("no foreground pixel: PxAP is undefined")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / total_fg
    terms = precision[1:] * np.diff(recall)
    return float(terms[~np.isnan(precision[1:])].sum() * 100)


class PixelCurves(NamedTuple):
    """Per-threshold pixel curves, index ``i`` <-> ``thresholds[i]`` (ascending).

    Each value is for the pixels scoring ``>= thresholds[i]``. ``precision`` is
    NaN where no pixel does; ``recall`` and ``iou`` are fractions in [0, 1].
    """

    precision: np.ndarray
    recall: np.ndarray
    iou: np.ndarray


def pixel_curves(fg_hist: np.ndarray, bg_hist: np.ndarray) -> PixelCurves:
    """Precision, recall and IoU at each CAM threshold, ``(T,)`` float64 each.

    Raises:
        ValueError: the histograms hold no foreground pixel.
    """
    tp, fp, fn = pixel_counts(fg_hist, bg_hist)
    total_fg = tp[-1] + fn[-1]
    if total_fg <= 0:
        raise ValueError("no foreground pixel: pixel curves are undefined")
    # Drop the two extra edges (2.0, 1.0) and return to ascending order.
    tp, fp, fn = tp[2:][::-1], fp[2:][::-1], fn[2:][::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    return PixelCurves(
        precision=precision,
        recall=tp / total_fg,
        iou=tp / (tp + fp + fn),
    )


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``(B, K)`` probabilities; ``(B,)``.

    ``0 log 0 = 0``.
    """
    p = np.asarray(probs, dtype=np.float64)
    log_p = np.zeros_like(p)
    np.log(p, out=log_p, where=p > 0)
    return -(p * log_p).sum(axis=-1)
