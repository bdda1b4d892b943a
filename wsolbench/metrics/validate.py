"""Input checks for the metric accumulators.

Each check raises :class:`~wsolbench.errors.MetricInputError` with a one-line
message naming the first offending image id, and returns the input converted to
the dtype the protocol computes with. Constructor arguments (thresholds) are
programming errors and raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from wsolbench.errors import MetricInputError
# The mask values are defined once, in wsolbench.structs; importing them from here keeps working.
from wsolbench.structs import MASK_BACKGROUND, MASK_FOREGROUND, MASK_IGNORE  # noqa: F401 (re-exported)

# Rows of a probability matrix may be off by float32 softmax rounding.
_PROB_SUM_TOLERANCE = 1e-3


def check_thresholds(thresholds: np.ndarray) -> np.ndarray:
    """CAM thresholds: 1-D, non-empty, finite, strictly increasing, in ``[0, 1)``.

    Returns a float64 copy.
    """
    arr = np.array(thresholds, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() >= 1:
        raise ValueError("thresholds must lie in [0, 1)")
    if arr.size > 1 and not (np.diff(arr) > 0).all():
        raise ValueError("thresholds must be strictly increasing")
    return arr


def check_iou_thresholds(iou_thresholds: Sequence[int]) -> tuple[int, ...]:
    """IoU thresholds in percent: non-empty, distinct integers in ``[0, 100]``."""
    values = tuple(iou_thresholds)
    if not values:
        raise ValueError("iou_thresholds must not be empty")
    out = []
    for value in values:
        if isinstance(value, bool) or int(value) != value or not 0 <= value <= 100:
            raise ValueError(f"IoU thresholds are integer percentages in [0, 100], got {value!r}")
        out.append(int(value))
    if len(set(out)) != len(out):
        raise ValueError(f"iou_thresholds must be distinct, got {values}")
    return tuple(out)


def check_image_ids(image_ids: Sequence[str], batch_size: int, what: str = "score maps") -> list[str]:
    """``len(image_ids) == batch_size``; returns the ids as a list of str."""
    if isinstance(image_ids, (str, bytes)):
        raise MetricInputError(f"image_ids must be a sequence of ids, got the single string {image_ids!r}")
    ids = [str(i) for i in image_ids]
    if len(ids) != batch_size:
        raise MetricInputError(f"got {len(ids)} image ids for {batch_size} {what}")
    return ids


def check_scoremaps(
    scoremaps: np.ndarray,
    image_ids: Sequence[str],
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Score maps: ``(B, H, W)`` float, finite, in ``[0, 1]``.

    Args:
        scoremaps: ``(B, H, W)`` floating-point array.
        image_ids: ``B`` ids, used in error messages.
        shape: expected ``(H, W)``, or None for any.

    Returns:
        The maps as float64 ``(B, H, W)``.
    """
    maps = np.asarray(scoremaps)
    if maps.ndim != 3:
        raise MetricInputError(f"score maps must be a 3-D array (B, H, W), got shape {maps.shape}")
    ids = check_image_ids(image_ids, maps.shape[0])
    if not np.issubdtype(maps.dtype, np.floating):
        raise MetricInputError(f"score maps must be floating point, got dtype {maps.dtype}")
    if maps.shape[0] == 0:
        return maps.astype(np.float64)
    height, width = maps.shape[1:]
    if height == 0 or width == 0:
        raise MetricInputError(f"score map for image {ids[0]!r} is empty, shape {(height, width)}")
    if shape is not None and (height, width) != tuple(shape):
        raise MetricInputError(
            f"score map for image {ids[0]!r} has shape {(height, width)}, expected {tuple(shape)}"
        )
    maps = maps.astype(np.float64)
    finite = np.isfinite(maps).all(axis=(1, 2))
    if not finite.all():
        bad = ids[int(np.argmin(finite))]
        raise MetricInputError(f"score map for image {bad!r} has NaN or inf values")
    low = maps.min(axis=(1, 2))
    high = maps.max(axis=(1, 2))
    outside = (low < 0) | (high > 1)
    if outside.any():
        i = int(np.argmax(outside))
        raise MetricInputError(
            f"score map for image {ids[i]!r} has values outside [0, 1] "
            f"(min {low[i]:.6g}, max {high[i]:.6g})"
        )
    return maps


def check_mask_layout(masks: Any, image_ids: Sequence[str], shape: tuple[int, ...], *, allow_bool: bool,
                      dtype_error: str) -> tuple[np.ndarray, list[str]]:
    """Masks as an array of score-map ``shape`` ``(B, H, W)`` with an integer dtype, and the ids as str.

    Shared by the binary (0/1/255) and class-index mask checks; ``dtype_error`` opens
    the message for a non-integer dtype.
    """
    arr = np.asarray(masks)
    ids = [str(i) for i in image_ids]
    if arr.ndim != 3 or arr.shape[0] != shape[0]:
        raise MetricInputError(f"masks must be a (B, H, W) array with B = {shape[0]}, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or (allow_bool and arr.dtype == np.bool_)):
        raise MetricInputError(f"{dtype_error}, got dtype {arr.dtype}")
    if arr.shape[0] and arr.shape != tuple(shape):
        raise MetricInputError(
            f"mask for image {ids[0]!r} has shape {arr.shape[1:]}, "
            f"expected {tuple(shape[1:])} like its score map"
        )
    return arr, ids


def check_masks(masks: np.ndarray, image_ids: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
    """Masks: shape ``shape`` (that of the score maps), values in {0, 1, 255}.

    Returns:
        The masks as uint8 ``(B, H, W)``.
    """
    arr, ids = check_mask_layout(masks, image_ids, shape, allow_bool=True,
                                 dtype_error="masks must be an integer (uint8) array")
    if arr.shape[0] == 0:
        return arr.astype(np.uint8)
    valid = (arr == MASK_BACKGROUND) | (arr == MASK_FOREGROUND) | (arr == MASK_IGNORE)
    per_image = valid.all(axis=(1, 2))
    if not per_image.all():
        i = int(np.argmin(per_image))
        value = arr[i][~valid[i]].flat[0]
        raise MetricInputError(
            f"mask for image {ids[i]!r} has value {value}; expected "
            f"{MASK_BACKGROUND} (background), {MASK_FOREGROUND} (foreground) or {MASK_IGNORE} (ignore)"
        )
    return arr.astype(np.uint8)


def check_gt_boxes(gt_boxes: Sequence[np.ndarray], image_ids: Sequence[str]) -> list[np.ndarray]:
    """Ground-truth boxes: one ``(n, 4)`` array per image, ``n >= 1``.

    Boxes are integer ``x0, y0, x1, y1`` at map resolution with ``x1 >= x0``
    and ``y1 >= y0``.

    Returns:
        A list of int64 ``(n_i, 4)`` arrays.
    """
    ids = [str(i) for i in image_ids]
    if len(gt_boxes) != len(ids):
        raise MetricInputError(f"got {len(gt_boxes)} ground-truth box arrays for {len(ids)} images")
    out = []
    for image_id, boxes in zip(ids, gt_boxes):
        arr = np.asarray(boxes)
        where = f"ground-truth boxes for image {image_id!r}"
        if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] < 1:
            raise MetricInputError(f"{where} must have shape (n, 4) with n >= 1, got {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise MetricInputError(f"{where} must be numeric, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
                raise MetricInputError(
                    f"{where} must be integer pixel coordinates at map resolution "
                    "(see rescale_boxes)"
                )
        arr = arr.astype(np.int64)
        bad = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
        if bad.any():
            box = tuple(int(v) for v in arr[int(np.argmax(bad))])
            raise MetricInputError(f"{where}: box {box} has x1 < x0 or y1 < y0")
        out.append(arr)
    return out


def check_cls_correct(cls_correct: np.ndarray, image_ids: Sequence[str]) -> np.ndarray:
    """Per-image top-1 classification outcome: bool ``(B,)``."""
    arr = np.asarray(cls_correct)
    if arr.shape != (len(image_ids),):
        raise MetricInputError(f"cls_correct must have shape ({len(image_ids)},), got {arr.shape}")
    if arr.dtype != np.bool_:
        raise MetricInputError(f"cls_correct must be a bool array, got dtype {arr.dtype}")
    return arr


def check_probs(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(B, K)`` (rows sum to 1) and labels ``(B,)`` in ``[0, K)``.

    Errors name the first bad row (there are no image ids here).

    Returns:
        ``(probs float64, labels int64)``.
    """
    p = np.asarray(probs)
    y = np.asarray(labels)
    if p.ndim != 2 or p.shape[1] != num_classes:
        raise MetricInputError(f"probabilities must have shape (B, {num_classes}), got {p.shape}")
    if y.shape != (p.shape[0],):
        raise MetricInputError(f"labels must have shape ({p.shape[0]},), got {y.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise MetricInputError(f"probabilities must be floating point, got dtype {p.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        raise MetricInputError(f"labels must be integers, got dtype {y.dtype}")
    p = p.astype(np.float64)
    y = y.astype(np.int64)
    if p.shape[0] == 0:
        return p, y
    row_ok = np.isfinite(p).all(axis=1)
    row_ok &= (p >= 0).all(axis=1) & (p <= 1).all(axis=1)
    row_ok &= np.abs(p.sum(axis=1) - 1) <= _PROB_SUM_TOLERANCE
    if not row_ok.all():
        i = int(np.argmin(row_ok))
        raise MetricInputError(
            f"probabilities of row {i} are not a distribution (values in [0, 1] summing to 1); "
            "pass softmax outputs, not logits"
        )
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise MetricInputError(f"label {int(y[i])} of row {i} is outside [0, {num_classes})")
    return p, y


#: The two ways the box and mask accumulators compute the same numbers.
ENGINES = ("fast", "exact")


def check_engine(engine: str, workers: int) -> tuple[str, int]:
    """``engine`` in :data:`ENGINES` and ``workers >= 1`` (ValueError otherwise)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return engine, int(workers)
