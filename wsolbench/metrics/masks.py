"""Pixel-level localisation: PxAP and PIoU from score histograms pooled over a split.

Reference: Choe et al., CVPR 2020, wsolevaluation ``MaskEvaluator``; the
conventions are listed in :mod:`wsolbench.metrics.protocol`. The state is two
fixed-size histograms, so accumulators over disjoint halves merge into the whole.
With ``per_image=True`` the accumulator also keeps each image's histograms
(:class:`MaskOutcomes`), whose sums over any subset of the images give that
subset's PxAP exactly (:mod:`wsolbench.metrics.outcomes`).

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
from typing import ClassVar

import numba
import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.base import Accumulator, Outcomes, PerImage, Summed, concat, frozen
from wsolbench.metrics.fast_boxes import run_split, split_count
from wsolbench.metrics.protocol import pixel_curves, pxap, pxap_edges, score_histograms
from wsolbench.metrics.validate import (
    check_engine,
    check_image_ids,
    check_masks,
    check_scoremaps,
    check_thresholds,
)
from wsolbench.structs import MASK_BACKGROUND, MASK_FOREGROUND, MASK_IGNORE


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
def _histogram_maps(maps, masks, edges, table, counts, invalid, lo, hi, per_image):
    """Add maps ``lo .. hi - 1`` to ``counts[mask, bin]`` with np.histogram's bins.

    Bin ``i`` is ``edges[i] <= x < edges[i + 1]``, the last bin also holding
    ``x == edges[-1]``; scores outside the edges, NaN, and masks other than 0
    and 1 are not counted. ``invalid[b]`` counts the scores outside ``[0, 1]``
    (NaN included) and the mask values other than 0, 1, 255 of map ``b``.
    ``per_image`` is ``(B, 2 * n_bins)`` (row ``b``: map ``b``'s background
    then foreground counts) or ``(0, 0)`` not to keep them.

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
    keep = per_image.shape[0] > 0
    seen = np.zeros(2 * n_bins, np.int64)  # flat before the current map (per_image)
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
        if keep:
            for i in range(2 * n_bins):
                per_image[image, i] = flat[i] - seen[i]
                seen[i] = flat[i]
    for i in range(2 * n_bins):
        counts[i // n_bins, i % n_bins] += flat[i]


@functools.lru_cache(maxsize=8)
def _binning(thresholds: bytes) -> tuple[np.ndarray, np.ndarray]:
    """PxAP edges and cell table of the thresholds (float64 bytes), computed once."""
    edges = pxap_edges(np.frombuffer(thresholds, dtype=np.float64))
    return edges, _cell_table(edges)


def _histogram_counts(maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray, workers: int,
                      per_image: bool = False):
    """``(counts (2, T + 2), invalid (B,), per-image (B, 2, T + 2) or None)`` of ``(B, H, W)`` maps, uint8 masks.

    Row ``[mask]`` of the counts is 0 background, 1 foreground; int64 all.
    """
    edges, table = _binning(np.asarray(thresholds, dtype=np.float64).tobytes())
    n_bins = len(edges) - 1
    counts = np.zeros((2, n_bins), dtype=np.int64)
    n = maps.shape[0]
    invalid = np.zeros(n, dtype=np.int64)
    rows = np.zeros((n, 2 * n_bins) if per_image else (0, 0), dtype=np.int64)
    parts = np.zeros((split_count(n, workers),) + counts.shape, dtype=np.int64)

    def kernel(part, lo, hi):
        _histogram_maps(maps, masks, edges, table, parts[part], invalid, lo, hi, rows)

    run_split(kernel, n, workers)
    counts += parts.sum(axis=0)
    return counts, invalid, rows.reshape(n, 2, n_bins) if per_image else None


def histogram_row_dtype(pixels: int) -> type:
    """int32 for per-image histograms of maps under 2^31 pixels, else int64."""
    return np.int32 if pixels < np.iinfo(np.int32).max else np.int64


def fast_score_histograms(
    scoremaps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray, workers: int = 1, per_image: bool = False
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
        per_image: histograms of each ``(H, W)`` map instead of pooled ones.

    Returns:
        ``(fg_hist, bg_hist)``, int64 ``(T + 2,)`` each, or ``(B, T + 2)`` with
        ``per_image`` (``B`` the maps, leading axes flattened).
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
    counts, _, rows = _histogram_counts(maps, labels, thresholds, workers, per_image=per_image)
    if per_image:
        return rows[:, MASK_FOREGROUND].copy(), rows[:, MASK_BACKGROUND].copy()
    return counts[MASK_FOREGROUND].copy(), counts[MASK_BACKGROUND].copy()


def score_histograms_torch(scoremaps, masks, thresholds: np.ndarray,
                           per_image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~wsolbench.metrics.protocol.score_histograms` on torch tensors, same counts.

    Runs on the tensors' device (a batch of CUDA maps stays on the GPU; only the
    ``2 (T + 2)`` counts come back). Scores are widened to float64, exactly, as
    the protocol does, and binned by comparison with the float64 edges
    (``torch.bucketize``), so the counts equal numpy's bit for bit.

    Args:
        scoremaps: ``(..., H, W)`` float tensor in ``[0, 1]``.
        masks: integer tensor of the same shape, 0 background / 1 foreground / 255 ignore.
        thresholds: ``(T,)`` CAM thresholds.
        per_image: histograms of each ``(H, W)`` map instead of pooled ones.

    Returns:
        ``(fg_hist, bg_hist)``, numpy int64 ``(T + 2,)`` each, or ``(B, T + 2)``
        with ``per_image`` (``B`` the maps, leading axes flattened).
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
    flat = bins + n_bins * labels
    if not per_image:
        counts = torch.bincount(flat[keep], minlength=2 * n_bins).cpu().numpy().astype(np.int64)
        return counts[n_bins:].copy(), counts[:n_bins].copy()
    n_maps = math.prod(scores.shape[:-2]) if scores.ndim > 2 else 1
    image = torch.arange(n_maps, device=scores.device).reshape(scores.shape[:-2] + (1, 1)) if scores.ndim >= 2 else 0
    flat = (flat + 2 * n_bins * image)[keep]
    counts = torch.bincount(flat, minlength=2 * n_bins * n_maps).cpu().numpy().astype(np.int64)
    counts = counts.reshape(n_maps, 2, n_bins)
    return counts[:, 1].copy(), counts[:, 0].copy()


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


def mask_result(thresholds: np.ndarray, count: int, fg_hist: np.ndarray, bg_hist: np.ndarray) -> MaskResult:
    """PxAP, PIoU and curves from pooled histograms (pure; shared with the outcomes).

    Args:
        thresholds: ``(T,)`` CAM thresholds.
        count: images pooled.
        fg_hist, bg_hist: int ``(T + 2,)`` pooled score histograms.
    """
    if count == 0:
        raise MetricInputError("no images were evaluated")
    if fg_hist.sum() == 0:
        raise MetricInputError(
            f"no foreground pixel (mask value 1) was counted in the {count} evaluated images: "
            "PxAP is undefined"
        )
    curves = pixel_curves(fg_hist, bg_hist)
    best = int(np.argmax(curves.iou))
    return MaskResult(
        thresholds=frozen(thresholds),
        count=int(count),
        foreground_pixels=int(fg_hist.sum()),
        background_pixels=int(bg_hist.sum()),
        pxap=pxap(fg_hist, bg_hist),
        piou=float(curves.iou[best] * 100),
        piou_threshold=float(thresholds[best]),
        precision=frozen(curves.precision),
        recall=frozen(curves.recall),
        iou=frozen(curves.iou),
    )


@dataclass(frozen=True, eq=False)
class MaskOutcomes(Outcomes):
    """Per-image pixel outcomes, one row per image in update order (``MaskAccumulator(per_image=True)``).

    Attributes:
        thresholds: ``(T,)`` float64 CAM thresholds.
        image_ids: ``(N,)`` str.
        fg_hist, bg_hist: ``(N, T + 2)`` int32 (int64 for maps of 2^31 pixels
            or more): each image's foreground / background score histogram, the
            PxAP bins; their column sums are the accumulator's pooled histograms.
    """

    kind: ClassVar[str] = "masks"
    rows: ClassVar[tuple[str, ...]] = ("image_ids", "fg_hist", "bg_hist")

    thresholds: np.ndarray
    image_ids: np.ndarray
    fg_hist: np.ndarray
    bg_hist: np.ndarray

    def _check(self) -> None:
        object.__setattr__(self, "thresholds", frozen(self.thresholds, dtype=np.float64))
        check_histogram_rows(self.kind, self.fg_hist, self.bg_hist, len(self), len(self.thresholds))


def check_histogram_rows(kind: str, fg_hist: np.ndarray, bg_hist: np.ndarray, n: int, n_thresholds: int) -> None:
    """Per-image histograms: integer ``(n, T + 2)`` each (MetricInputError otherwise)."""
    for name, hist in (("fg_hist", fg_hist), ("bg_hist", bg_hist)):
        if hist.shape != (n, n_thresholds + 2) or not np.issubdtype(hist.dtype, np.integer):
            raise MetricInputError(
                f"{kind} outcomes: {name} must be integer {(n, n_thresholds + 2)}, got {hist.dtype} {hist.shape}"
            )


def _hist_zeros(acc: MaskAccumulator) -> np.ndarray:
    return np.zeros(len(acc.thresholds) + 2, dtype=np.int64)


class MaskAccumulator(Accumulator):
    """Foreground/background score histograms pooled over every image.

    Args:
        thresholds: ``(T,)`` CAM thresholds; the histogram bin edges are
            ``np.append(thresholds, [1.0, 2.0, 3.0])``.
        engine: "fast" (one O(n) pass, :func:`fast_score_histograms`) or
            "exact" (``np.histogram``); the counts are identical. Torch tensors
            are always binned on their device by :func:`score_histograms_torch`.
        workers: threads splitting each batch's maps (fast engine).
        per_image: also keep each image's histograms (:meth:`outcomes`).

    State (fixed size):
        count: images seen.
        fg_hist, bg_hist: int64 ``(T + 2,)`` score histograms of foreground and
            background pixels (ignore pixels excluded).

    Per-image state (``per_image=True``; 8 x (T + 2) bytes per image):
        image ids and each image's two histograms.
    """

    label: ClassVar[str] = "mask accumulators"
    config: ClassVar[dict[str, str]] = {"thresholds": "thresholds"}
    state: ClassVar[dict] = {
        "count": Summed(lambda acc: 0),
        "fg_hist": Summed(_hist_zeros),
        "bg_hist": Summed(_hist_zeros),
        "_image_ids": PerImage(),
        "_fg_rows": PerImage(),
        "_bg_rows": PerImage(),
    }

    def __init__(self, thresholds: np.ndarray, engine: str = "fast", workers: int = 1, per_image: bool = False):
        self.thresholds = check_thresholds(thresholds)
        self.thresholds.setflags(write=False)
        self.engine, self.workers = check_engine(engine, workers)
        self.per_image = bool(per_image)
        self.reset()

    def update(self, scoremaps: np.ndarray, masks: np.ndarray, image_ids: Sequence[str]) -> None:
        """Add a batch.

        Args:
            scoremaps: ``(B, H, W)`` float in ``[0, 1]`` (not quantised): a numpy
                array, or a torch tensor on any device (binned there).
            masks: ``(B, H, W)`` uint8, 0 background, 1 foreground, 255 ignore
                (a tensor or an array).
            image_ids: ``B`` ids, named in error messages (and kept with ``per_image``).
        """
        keep = self.per_image
        if _is_tensor(scoremaps):
            maps, masks = _check_tensors(scoremaps, masks, image_ids)
            fg_hist, bg_hist = score_histograms_torch(maps, masks, self.thresholds, per_image=keep)
        elif self.engine == "exact":
            maps = check_scoremaps(scoremaps, image_ids)
            masks = check_masks(masks, image_ids, maps.shape)
            if keep:
                rows = [score_histograms(m, k, self.thresholds) for m, k in zip(maps, masks)]
                empty = np.zeros((0, len(self.thresholds) + 2), dtype=np.int64)
                fg_hist = np.stack([r[0] for r in rows]) if rows else empty
                bg_hist = np.stack([r[1] for r in rows]) if rows else empty
            else:
                fg_hist, bg_hist = score_histograms(maps, masks, self.thresholds)
        else:
            maps, fg_hist, bg_hist = self._fast_histograms(scoremaps, masks, image_ids)
        if keep:
            if maps.shape[0] == 0:
                return
            dtype = histogram_row_dtype(maps.shape[1] * maps.shape[2])
            self._image_ids.extend(str(i) for i in image_ids)
            self._fg_rows.append(fg_hist.astype(dtype))
            self._bg_rows.append(bg_hist.astype(dtype))
            fg_hist, bg_hist = fg_hist.sum(axis=0), bg_hist.sum(axis=0)
        self.fg_hist += fg_hist
        self.bg_hist += bg_hist
        self.count += maps.shape[0]

    def _fast_histograms(self, scoremaps, masks, image_ids):
        """Histograms with the value checks done in the same pass over the pixels.

        Anything the pass flags (or any input not already float maps with uint8
        masks of the same shape) goes through the validators, which raise the
        usual errors naming the image. With ``per_image``, ``(B, T + 2)`` rows.
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
        counts, invalid, rows = _histogram_counts(
            np.ascontiguousarray(maps), np.ascontiguousarray(labels), self.thresholds, self.workers,
            per_image=self.per_image,
        )
        if invalid.any():
            check_scoremaps(maps, image_ids)
            check_masks(labels, image_ids, maps.shape)
            raise RuntimeError("the histogram pass flagged a map that the validators accept")
        if self.per_image:
            return maps, rows[:, MASK_FOREGROUND], rows[:, MASK_BACKGROUND]
        return maps, counts[MASK_FOREGROUND], counts[MASK_BACKGROUND]

    def merge(self, other: MaskAccumulator) -> MaskAccumulator:
        """Add the histograms (and per-image outcomes) of ``other``, same thresholds; returns self."""
        return super().merge(other)

    def compute(self) -> MaskResult:
        """PxAP, PIoU and curves from the pooled histograms."""
        return mask_result(self.thresholds, self.count, self.fg_hist, self.bg_hist)

    def outcomes(self) -> MaskOutcomes:
        """Every image's histograms, in update order (needs ``per_image=True``)."""
        self._require_per_image()
        empty = np.zeros((0, len(self.thresholds) + 2), dtype=np.int32)
        return MaskOutcomes(
            thresholds=self.thresholds,
            image_ids=np.array(self._image_ids, dtype=str),
            fg_hist=concat(self._fg_rows, empty),
            bg_hist=concat(self._bg_rows, empty),
        )
