"""Pixel-level localisation: PxAP and PIoU from score histograms pooled over a split.

Reference: Choe et al., CVPR 2020, wsolevaluation ``MaskEvaluator``; the
conventions are listed in :mod:`wsolbench.metrics.protocol`. The state is two
fixed-size histograms, so accumulators over disjoint halves merge into the whole.

The histograms are those of ``np.histogram`` with the PxAP edges
(:func:`~wsolbench.metrics.protocol.score_histograms`), computed three ways
with identical counts: :func:`fast_score_histograms` (one O(n) pass in numba,
the default), :func:`score_histograms_torch` (torch, on the tensors' device,
e.g. CUDA), and ``np.histogram`` itself (``engine="exact"``, which sorts).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.fast_boxes import run_split, split_count
from wsolbench.metrics.protocol import pixel_curves, pxap, pxap_edges, score_histograms
from wsolbench.metrics.validate import (
    MASK_BACKGROUND,
    MASK_FOREGROUND,
    MASK_IGNORE,
    check_engine,
    check_image_ids,
    check_masks,
    check_scoremaps,
    check_thresholds,
)


def _cell_table(edges: np.ndarray) -> np.ndarray:
    """Bin of each of ``R`` equal cells of ``[0, 1]``, and of 1.0; -1 where an edge splits the cell, -2 below the first.

    ``R`` is a power of two, so ``x * R`` is exact (in float32 as in float64)
    and a score ``x`` in ``[0, 1)`` falls in cell ``int(x * R)``, the interval
    ``[g / R, (g + 1) / R)``. A cell that holds no edge lies inside one bin, the
    bin of its centre; a cell that holds one, the last cell, and the extra
    entry ``R`` where 1.0 lands (the left edge of the next-to-last bin) are
    settled by comparing ``x`` with the edges.
    """
    n_bins = len(edges) - 1
    n_cells = 1 << int(np.clip(np.ceil(np.log2(64 * n_bins)), 12, 16))
    centres = (np.arange(n_cells) + 0.5) / n_cells
    table = np.searchsorted(edges, centres, side="right") - 1
    table[table < 0] = -2
    # An edge at 0 splits nothing: scores below 0 never reach the table.
    inside = edges[(edges > 0.0) & (edges < 1.0)]
    table[np.floor(inside * n_cells).astype(np.int64)] = -1
    table[-1] = -1
    table = np.append(table, -1)
    return table.astype(np.int16 if n_bins < np.iinfo(np.int16).max else np.int32)


@numba.njit(cache=True, nogil=True)
def _histogram_maps(maps, masks, edges, table, counts, invalid, lo, hi):
    """Add maps ``lo .. hi - 1`` to ``counts[mask, bin]`` with np.histogram's bins.

    Bin ``i`` is ``edges[i] <= x < edges[i + 1]``, the last bin also holding
    ``x == edges[-1]``; scores outside the edges, NaN, and masks other than 0
    and 1 are not counted. ``invalid[b]`` counts the scores outside ``[0, 1]``
    (NaN included) and the mask values other than 0, 1, 255 of map ``b``.

    The range check and the cell number stay in the maps' dtype (both exact:
    widening float32 changes no comparison, and the scale is a power of two);
    only the scores near an edge are widened and compared with the edges.
    """
    n_edges = edges.shape[0]
    n_bins = n_edges - 1
    bins = np.uint64(n_bins)
    low = edges[0]
    high = edges[n_edges - 1]
    step = 1.0 / (edges[1] - edges[0])
    scale = np.float32(table.shape[0] - 1)  # a power of two; 1.0 lands on the last entry
    zero = np.float32(0.0)
    one = np.float32(1.0)
    # offset in flat of each mask value's row: background, foreground, anything else (ignored)
    row = np.full(256, 2 * n_bins, np.uint64)
    row[0] = 0
    row[1] = n_bins
    flat = np.zeros(3 * n_bins, np.int64)
    for image in range(lo, hi):
        scores = maps[image].reshape(-1)
        labels = masks[image].reshape(-1)
        bad = 0
        for i in range(labels.shape[0]):  # a separate loop vectorises
            bad += (labels[i] > 1) & (labels[i] != 255)
        for i in range(scores.shape[0]):
            s = scores[i]
            if zero <= s <= one:
                v = table[np.uint64(np.int64(s * scale))]
                if v >= 0:
                    flat[row[labels[i]] + np.uint64(v)] += 1
                    continue
            else:  # NaN included; counted all the same if within the edges
                bad += 1
                v = -1
            x = np.float64(s)
            if v == -2 or not low <= x <= high:
                continue
            elif x == high:
                b = bins - np.uint64(1)
            else:
                k = min(max(np.int64((x - low) * step), 0), n_bins - 1)
                while edges[k + 1] <= x:
                    k += 1
                while edges[k] > x:
                    k -= 1
                b = np.uint64(k)
            flat[row[labels[i]] + b] += 1
        invalid[image] = bad
    for i in range(2 * n_bins):
        counts[i // n_bins, i % n_bins] += flat[i]


@functools.lru_cache(maxsize=8)
def _binning(thresholds: bytes) -> tuple[np.ndarray, np.ndarray]:
    """PxAP edges and cell table of the thresholds (float64 bytes), computed once."""
    edges = pxap_edges(np.frombuffer(thresholds, dtype=np.float64))
    return edges, _cell_table(edges)


def _histogram_counts(maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray, workers: int):
    """``(counts (2, T + 2), invalid (B,))`` of ``(B, H, W)`` maps and uint8 masks."""
    edges, table = _binning(np.asarray(thresholds, dtype=np.float64).tobytes())
    counts = np.zeros((2, len(edges) - 1), dtype=np.int64)
    invalid = np.zeros(maps.shape[0], dtype=np.int64)
    n = maps.shape[0]
    parts = np.zeros((split_count(n, workers),) + counts.shape, dtype=np.int64)

    def kernel(part, lo, hi):
        _histogram_maps(maps, masks, edges, table, parts[part], invalid, lo, hi)

    run_split(kernel, n, workers)
    counts += parts.sum(axis=0)
    return counts, invalid


def fast_score_histograms(
    scoremaps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~wsolbench.metrics.protocol.score_histograms` in one O(n) pass, same counts.

    No sort: each score's bin comes from a table over 2^12 to 2^16 equal cells
    of ``[0, 1]``, and from comparisons with the edges for scores in the cells
    next to an edge, so the counts equal ``np.histogram``'s exactly.

    Args:
        scoremaps: ``(..., H, W)`` float (float32 is widened exactly).
        masks: same shape, uint8 0 background / 1 foreground / 255 ignore.
        thresholds: ``(T,)`` CAM thresholds.
        workers: threads splitting the maps.

    Returns:
        ``(fg_hist, bg_hist)``, int64 ``(T + 2,)`` each.
    """
    maps = np.asarray(scoremaps)
    labels = np.asarray(masks)
    if maps.shape != labels.shape:
        raise ValueError(f"score maps and masks differ in shape: {maps.shape} vs {labels.shape}")
    if maps.dtype not in (np.float32, np.float64):
        maps = maps.astype(np.float64)
    shape = (1, 1, -1) if maps.ndim < 2 else (-1,) + maps.shape[-2:]
    maps = np.ascontiguousarray(maps).reshape(shape)
    labels = np.ascontiguousarray(labels, dtype=np.uint8).reshape(maps.shape)
    counts, _ = _histogram_counts(maps, labels, thresholds, workers)
    return counts[MASK_FOREGROUND].copy(), counts[MASK_BACKGROUND].copy()


def score_histograms_torch(scoremaps, masks, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~wsolbench.metrics.protocol.score_histograms` on torch tensors, same counts.

    Runs on the tensors' device (a batch of CUDA maps stays on the GPU; only the
    ``2 (T + 2)`` counts come back). Scores are widened to float64, exactly, as
    the protocol does, and binned by comparison with the float64 edges
    (``torch.bucketize``), so the counts equal numpy's bit for bit.

    Args:
        scoremaps: ``(..., H, W)`` float tensor in ``[0, 1]``.
        masks: integer tensor of the same shape, 0 background / 1 foreground / 255 ignore.
        thresholds: ``(T,)`` CAM thresholds.

    Returns:
        ``(fg_hist, bg_hist)``, numpy int64 ``(T + 2,)`` each.
    """
    import torch

    scores = scoremaps.detach().to(torch.float64)
    labels = masks.detach().to(device=scores.device, dtype=torch.int64)
    edges = torch.as_tensor(pxap_edges(thresholds), dtype=torch.float64, device=scores.device)
    n_bins = edges.numel() - 1
    # bucketize(right=True) counts the edges <= x; the last edge closes the last bin.
    bins = torch.bucketize(scores, edges, right=True) - 1
    bins = torch.where(scores == edges[-1], n_bins - 1, bins)
    keep = (bins >= 0) & (bins < n_bins) & (labels <= MASK_FOREGROUND) & (labels >= MASK_BACKGROUND)
    flat = (bins + n_bins * labels)[keep]
    counts = torch.bincount(flat, minlength=2 * n_bins).cpu().numpy().astype(np.int64)
    return counts[n_bins:].copy(), counts[:n_bins].copy()


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
    return torch is not None and isinstance(value, torch.Tensor)


def _check_tensors(scoremaps, masks, image_ids: Sequence[str]):
    """:func:`check_scoremaps` and :func:`check_masks` for torch tensors, on their device."""
    import torch

    if scoremaps.ndim != 3:
        raise MetricInputError(f"score maps must be a 3-D array (B, H, W), got shape {tuple(scoremaps.shape)}")
    ids = check_image_ids(image_ids, scoremaps.shape[0])
    if not torch.is_floating_point(scoremaps):
        raise MetricInputError(f"score maps must be floating point, got dtype {scoremaps.dtype}")
    if not _is_tensor(masks):
        masks = torch.as_tensor(np.asarray(masks), device=scoremaps.device)
    if masks.ndim != 3 or masks.shape[0] != scoremaps.shape[0]:
        raise MetricInputError(
            f"masks must be a (B, H, W) array with B = {scoremaps.shape[0]}, got shape {tuple(masks.shape)}"
        )
    if torch.is_floating_point(masks) or torch.is_complex(masks):
        raise MetricInputError(f"masks must be an integer (uint8) array, got dtype {masks.dtype}")
    if scoremaps.shape[0] == 0:
        return scoremaps, masks
    if scoremaps.shape[1] == 0 or scoremaps.shape[2] == 0:
        raise MetricInputError(f"score map for image {ids[0]!r} is empty, shape {tuple(scoremaps.shape[1:])}")
    if masks.shape != scoremaps.shape:
        raise MetricInputError(
            f"mask for image {ids[0]!r} has shape {tuple(masks.shape[1:])}, "
            f"expected {tuple(scoremaps.shape[1:])} like its score map"
        )
    flat = scoremaps.detach().reshape(scoremaps.shape[0], -1)
    finite = torch.isfinite(flat).all(dim=1).cpu().numpy()
    if not finite.all():
        raise MetricInputError(f"score map for image {ids[int(np.argmin(finite))]!r} has NaN or inf values")
    low = flat.amin(dim=1).double().cpu().numpy()
    high = flat.amax(dim=1).double().cpu().numpy()
    outside = (low < 0) | (high > 1)
    if outside.any():
        i = int(np.argmax(outside))
        raise MetricInputError(
            f"score map for image {ids[i]!r} has values outside [0, 1] (min {low[i]:.6g}, max {high[i]:.6g})"
        )
    labels = masks.reshape(masks.shape[0], -1)
    valid = (labels == MASK_BACKGROUND) | (labels == MASK_FOREGROUND) | (labels == MASK_IGNORE)
    per_image = valid.all(dim=1).cpu().numpy()
    if not per_image.all():
        i = int(np.argmin(per_image))
        value = int(labels[i][~valid[i]][0])
        raise MetricInputError(
            f"mask for image {ids[i]!r} has value {value}; expected "
            f"{MASK_BACKGROUND} (background), {MASK_FOREGROUND} (foreground) or {MASK_IGNORE} (ignore)"
        )
    return scoremaps, masks


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.setflags(write=False)
    return array


def _json_list(array: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in array.tolist()]


@dataclass(frozen=True, eq=False)
class MaskResult:
    """PxAP, PIoU and the pixel precision/recall curves.

    Attributes:
        thresholds: ``(T,)`` CAM thresholds, ascending.
        count: number of images evaluated.
        foreground_pixels: foreground pixels pooled over the split.
        background_pixels: background pixels (ignore pixels excluded).
        pxap: pixel average precision, percent.
        piou: best pixel IoU over the CAM thresholds, percent.
        piou_threshold: the CAM threshold attaining ``piou`` (first on ties).
        precision: ``(T,)`` precision of pixels scoring ``>= thresholds[i]``
            (NaN where no pixel does), fraction in [0, 1].
        recall: ``(T,)`` recall of pixels scoring ``>= thresholds[i]``, fraction.
        iou: ``(T,)`` pixel IoU ``tp / (tp + fp + fn)``, fraction.
    """

    thresholds: np.ndarray
    count: int
    foreground_pixels: int
    background_pixels: int
    pxap: float
    piou: float
    piou_threshold: float
    precision: np.ndarray
    recall: np.ndarray
    iou: np.ndarray

    def to_dict(self) -> dict:
        """JSON-ready summary (NaN precision values become None)."""
        return {
            "count": int(self.count),
            "foreground_pixels": int(self.foreground_pixels),
            "background_pixels": int(self.background_pixels),
            "pxap": float(self.pxap),
            "piou": float(self.piou),
            "piou_threshold": float(self.piou_threshold),
            "thresholds": self.thresholds.tolist(),
            "precision": _json_list(self.precision),
            "recall": _json_list(self.recall),
            "iou": _json_list(self.iou),
        }


class MaskAccumulator:
    """Foreground/background score histograms pooled over every image.

    Args:
        thresholds: ``(T,)`` CAM thresholds; the histogram bin edges are
            ``np.append(thresholds, [1.0, 2.0, 3.0])``.
        engine: "fast" (one O(n) pass, :func:`fast_score_histograms`) or
            "exact" (``np.histogram``); the counts are identical. Torch tensors
            are always binned on their device by :func:`score_histograms_torch`.
        workers: threads splitting each batch's maps (fast engine).

    State (fixed size):
        count: images seen.
        fg_hist, bg_hist: int64 ``(T + 2,)`` score histograms of foreground and
            background pixels (ignore pixels excluded).
    """

    def __init__(self, thresholds: np.ndarray, engine: str = "fast", workers: int = 1):
        self.thresholds = check_thresholds(thresholds)
        self.thresholds.setflags(write=False)
        self.engine, self.workers = check_engine(engine, workers)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self.count = 0
        self.fg_hist = np.zeros(len(self.thresholds) + 2, dtype=np.int64)
        self.bg_hist = np.zeros(len(self.thresholds) + 2, dtype=np.int64)

    def update(self, scoremaps: np.ndarray, masks: np.ndarray, image_ids: Sequence[str]) -> None:
        """Add a batch.

        Args:
            scoremaps: ``(B, H, W)`` float in ``[0, 1]`` (not quantised): a numpy
                array, or a torch tensor on any device (binned there).
            masks: ``(B, H, W)`` uint8, 0 background, 1 foreground, 255 ignore
                (a tensor or an array).
            image_ids: ``B`` ids, named in error messages.
        """
        if _is_tensor(scoremaps):
            maps, masks = _check_tensors(scoremaps, masks, image_ids)
            fg_hist, bg_hist = score_histograms_torch(maps, masks, self.thresholds)
        elif self.engine == "exact":
            maps = check_scoremaps(scoremaps, image_ids)
            masks = check_masks(masks, image_ids, maps.shape)
            fg_hist, bg_hist = score_histograms(maps, masks, self.thresholds)
        else:
            maps, fg_hist, bg_hist = self._fast_histograms(scoremaps, masks, image_ids)
        self.fg_hist += fg_hist
        self.bg_hist += bg_hist
        self.count += maps.shape[0]

    def _fast_histograms(self, scoremaps, masks, image_ids):
        """Histograms with the value checks done in the same pass over the pixels.

        Anything the pass flags (or any input not already float maps with uint8
        masks of the same shape) goes through the validators, which raise the
        usual errors naming the image.
        """
        maps = np.asarray(scoremaps)
        labels = np.asarray(masks)
        plain = (
            maps.ndim == 3
            and maps.dtype in (np.float32, np.float64)
            and labels.dtype == np.uint8
            and labels.shape == maps.shape
            and 0 not in maps.shape
        )
        if not plain:
            maps = check_scoremaps(maps, image_ids)
            labels = check_masks(labels, image_ids, maps.shape)
        check_image_ids(image_ids, maps.shape[0])
        counts, invalid = _histogram_counts(
            np.ascontiguousarray(maps), np.ascontiguousarray(labels), self.thresholds, self.workers
        )
        if invalid.any():
            check_scoremaps(maps, image_ids)
            check_masks(labels, image_ids, maps.shape)
            raise RuntimeError("the histogram pass flagged a map that the validators accept")
        return maps, counts[MASK_FOREGROUND], counts[MASK_BACKGROUND]

    def merge(self, other: MaskAccumulator) -> MaskAccumulator:
        """Add the histograms of ``other`` (same thresholds); returns self."""
        if not isinstance(other, MaskAccumulator):
            raise ValueError(f"cannot merge a MaskAccumulator with {type(other).__name__}")
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("cannot merge mask accumulators with different thresholds")
        self.count += other.count
        self.fg_hist += other.fg_hist
        self.bg_hist += other.bg_hist
        return self

    def compute(self) -> MaskResult:
        """PxAP, PIoU and curves from the pooled histograms."""
        if self.count == 0:
            raise MetricInputError("no images were evaluated")
        if self.fg_hist.sum() == 0:
            raise MetricInputError(
                f"no foreground pixel (mask value 1) was counted in the {self.count} evaluated images: "
                "PxAP is undefined"
            )
        curves = pixel_curves(self.fg_hist, self.bg_hist)
        best = int(np.argmax(curves.iou))
        return MaskResult(
            thresholds=_frozen(self.thresholds),
            count=self.count,
            foreground_pixels=int(self.fg_hist.sum()),
            background_pixels=int(self.bg_hist.sum()),
            pxap=pxap(self.fg_hist, self.bg_hist),
            piou=float(curves.iou[best] * 100),
            piou_threshold=float(self.thresholds[best]),
            precision=_frozen(curves.precision),
            recall=_frozen(curves.recall),
            iou=_frozen(curves.iou),
        )
