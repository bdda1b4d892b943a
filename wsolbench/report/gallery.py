"""CAM gallery tiles of the HTML report, drawn from a run's saved gallery (no model, no GPU).

A tile is one test image at the evaluation resolution R x R (``gallery-test.npz``, read by
:func:`wsolbench.records.load_gallery`), enlarged by an integer factor without interpolation so that
every map pixel stays a square block, with:

- the score map laid over it (the inferno colormap, :data:`ALPHA` opaque); the plain-image tile has none;
- the ground-truth boxes (green) and, when the split has masks, the mask's outline (green, thin) and the
  ignore region's outline (grey);
- the predicted boxes (white) at the run's val-chosen CAM threshold, exactly as GT-known Loc takes them
  (:func:`predicted_boxes`: the protocol's own 8-bit quantization, cut and contours).

Boxes are ``(x0, y0, x1, y1)`` in inclusive pixels at R x R; a box covers the enlarged pixels
``x0 * k .. (x1 + 1) * k - 1``. Colours are RGB.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolbench._io import atomic_write_bytes
from wsolbench.metrics.protocol import box_iou, boxes_at_thresholds

#: Opacity of the score map over the image.
ALPHA = 0.55
GT_COLOR = (0, 230, 64)
PRED_COLOR = (255, 255, 255)
HALO_COLOR = (20, 20, 20)  # a dark edge around each box line, so that it shows on any background
LINE_WIDTH = 2
IGNORE_COLOR = (170, 170, 170)
#: Tiles are enlarged to at least this many pixels a side (an integer factor of R).
MIN_SIDE = 192


@dataclass(frozen=True)
class TileInfo:
    """What a tile's caption says: the image, its classes, the predicted boxes at ``threshold`` (``(n, 4)``
    int64 at R x R; none without a threshold) and their best IoU with the ground truth (None without
    ground-truth boxes or a threshold)."""

    image_id: str
    role: str
    label: int
    predicted: int
    threshold: float
    boxes: np.ndarray
    iou: float | None


def predicted_boxes(scoremap: np.ndarray, threshold: float, *, contours: str = "largest") -> np.ndarray:
    """The boxes GT-known Loc predicts from ``scoremap`` at CAM ``threshold`` (the protocol's
    :func:`~wsolbench.metrics.protocol.boxes_at_thresholds`: 8-bit map, foreground ``q > int(t * q.max())``,
    contour boxes); ``contours`` "largest" gives the largest contour's box, "all" every contour's.

    Args:
        scoremap: ``(R, R)`` float in [0, 1].
        threshold: the CAM threshold; NaN (no threshold was chosen) gives no box.
    Returns:
        ``(n, 4)`` int64, inclusive pixels (``(0, 0, 0, 0)`` when nothing is foreground, as in the protocol).
    """
    if not math.isfinite(threshold):
        return np.zeros((0, 4), dtype=np.int64)
    every, largest = boxes_at_thresholds(scoremap, np.asarray([threshold], dtype=np.float64))
    if contours == "largest":
        return largest.reshape(1, 4)
    if contours == "all":
        return every[0]
    raise ValueError(f"contours must be 'largest' or 'all', got {contours!r}")


def best_iou(boxes: np.ndarray, gt_boxes: np.ndarray) -> float | None:
    """The best IoU over every (predicted, ground-truth) pair (+1 pixel convention); None when either is empty."""
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return None
    return float(box_iou(np.asarray(boxes), np.asarray(gt_boxes)).max())


def tile_info(item: Mapping[str, Any], *, contours: str = "largest") -> TileInfo:
    """The caption facts of one gallery item (a dict of :func:`wsolbench.records.load_gallery`)."""
    boxes = predicted_boxes(item["map"], float(item["threshold"]), contours=contours)
    return TileInfo(image_id=str(item["image_id"]), role=str(item["role"]), label=int(item["label"]),
                    predicted=int(item["predicted"]), threshold=float(item["threshold"]), boxes=boxes,
                    iou=best_iou(boxes, item["boxes"]))


def extremes(items: Sequence[Mapping[str, Any]], infos: Sequence[TileInfo], k: int,
             outcome_iou: Mapping[str, float] | None = None) -> tuple[list[int], list[int]]:
    """Positions (into ``items``) of the ``k`` best and ``k`` worst images by IoU at the chosen threshold,
    ties by image id (as :func:`wsolbench.engine.gallery.extreme_positions` picks them).

    The gallery keeps a run's best and worst test images with role ``best`` / ``worst`` unless they are in
    the sample, where they keep ``sample``; ranking every kept image gives back the run's true extremes.
    ``outcome_iou`` (image id -> ``loc.iou`` of the per-image outcomes) ranks by the protocol's own numbers;
    without it the IoU of the drawn boxes ranks. Images without an IoU are left out.
    """
    scored = []
    for i, (item, info) in enumerate(zip(items, infos)):
        iou = outcome_iou.get(info.image_id) if outcome_iou is not None else info.iou
        if iou is not None and math.isfinite(iou):
            scored.append((float(iou), info.image_id, i))
    k = min(k, len(scored) // 2)
    if k <= 0:
        return [], []
    ranked = sorted(scored, key=lambda s: (-s[0], s[1]))
    return [s[2] for s in ranked[:k]], [s[2] for s in ranked[::-1][:k]]


def scale_of(resolution: int) -> int:
    """The integer enlargement of an R x R tile: the smallest with at least :data:`MIN_SIDE` pixels a side."""
    return max(1, math.ceil(MIN_SIDE / max(1, resolution)))


def _inferno(scoremap: np.ndarray) -> np.ndarray:
    levels = np.floor(np.clip(scoremap, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def _enlarge(array: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(array, k, axis=0), k, axis=1)


def _draw_boxes(canvas: np.ndarray, boxes: np.ndarray, k: int, color: tuple[int, int, int]) -> None:
    corners = [((int(x0) * k, int(y0) * k), ((int(x1) + 1) * k - 1, (int(y1) + 1) * k - 1))
               for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.int64).reshape(-1, 4)]
    for width, shade in ((LINE_WIDTH + 2, HALO_COLOR), (LINE_WIDTH, color)):
        for top_left, bottom_right in corners:
            cv2.rectangle(canvas, top_left, bottom_right, shade, width)


def _draw_outline(canvas: np.ndarray, region: np.ndarray, k: int, color: tuple[int, int, int]) -> None:
    big = np.ascontiguousarray(_enlarge(region.astype(np.uint8), k))
    outlines = cv2.findContours(big, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)[-2]
    cv2.drawContours(canvas, outlines, -1, color, 1)


def draw_tile(item: Mapping[str, Any], boxes: np.ndarray | None = None, *, overlay: bool = True) -> np.ndarray:
    """One tile as an ``(R k, R k, 3)`` uint8 RGB array (:func:`scale_of`): the image, the score map over it
    (with ``overlay``), the ground truth, and ``boxes`` (the predicted ones; None: none drawn)."""
    image = np.asarray(item["image"], dtype=np.uint8)
    k = scale_of(image.shape[0])
    canvas = _enlarge(image, k).astype(np.float32)
    if overlay:
        canvas = (1.0 - ALPHA) * canvas + ALPHA * _enlarge(_inferno(item["map"]), k).astype(np.float32)
    canvas = np.ascontiguousarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    if item.get("ignore") is not None and np.any(item["ignore"]):
        _draw_outline(canvas, item["ignore"], k, IGNORE_COLOR)
    if item.get("mask") is not None and np.any(item["mask"]):
        _draw_outline(canvas, item["mask"], k, GT_COLOR)
    _draw_boxes(canvas, item["boxes"], k, GT_COLOR)
    if boxes is not None:
        _draw_boxes(canvas, boxes, k, PRED_COLOR)
    return canvas


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 array as a PNG atomically; returns ``path``."""
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding of {path} failed")
    return atomic_write_bytes(path, buffer.tobytes())
