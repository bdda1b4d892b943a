"""Multi-class pixel average precision (mPxAP) for class-index masks (PASCAL VOC style).

Definition
----------
Classes are 0-based indices ``c`` in ``[0, K)`` (as in ``class_labels.txt``
and manifest labels). Masks are class-index maps: pixel value ``c + 1`` labels
class ``c``, 0 is background, 255 is void (excluded everywhere); any other
value is an ordinary labelled pixel (of a class not being scored).

An update adds ``(image, class)`` pairs: the image's score map for class ``c``
and the image's class-index mask. The caller adds one pair per class of the
image's *image-level label set* (``wsolbench.scoremaps`` documents how that
set is read). For a pair, positive pixels are those labelled ``c``
(``mask == c + 1``) and negative pixels every other non-void pixel
(``mask != c + 1`` and ``mask != 255``); the pair's score histograms (the PxAP
bins of :mod:`wsolbench.metrics.protocol`, maps not quantised) are pooled into
class ``c``'s histograms. So class ``c``'s map is scored on the images labelled
``c`` only, against every other pixel of those images, background and other
classes alike.

``PxAP_c`` is the PxAP of class ``c``'s pooled histograms (same formula as the
binary PxAP). Class ``c`` is *present* when its pooled histograms count at
least one positive pixel; ``mPxAP`` is the mean of ``PxAP_c`` over the present
classes. A class never evaluated, or evaluated but without a positive pixel,
has no PxAP (NaN, ``None`` in JSON) and does not enter the mean.

The state is fixed-size (two ``(K, T + 2)`` histograms and counts), so
accumulators over disjoint parts of a split merge into the whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.protocol import pixel_curves, pxap, score_histograms
from wsolbench.metrics.validate import MASK_IGNORE, check_mask_layout, check_scoremaps, check_thresholds


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.setflags(write=False)
    return array


def _json_list(array: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in np.asarray(array, dtype=np.float64).tolist()]


def check_class_masks(masks: np.ndarray, image_ids: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
    """Class-index masks: shape ``shape`` (the score maps'), integer values in ``[0, 255]``.

    Returns:
        uint8 ``(B, H, W)``.
    """
    arr, ids = check_mask_layout(masks, image_ids, shape, allow_bool=False,
                                 dtype_error="class-index masks must be an integer array")
    if arr.shape[0] == 0:
        return arr.astype(np.uint8)
    bad = ((arr < 0) | (arr > 255)).any(axis=(1, 2))
    if bad.any():
        i = int(np.argmax(bad))
        raise MetricInputError(f"mask for image {ids[i]!r} has values outside [0, 255]")
    return arr.astype(np.uint8)


def class_pair_masks(masks: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Binary 0 / 1 / 255 masks of each ``(image, class)`` pair.

    Args:
        masks: ``(B, H, W)`` uint8 class-index masks.
        classes: ``(B,)`` 0-based class of each pair.

    Returns:
        uint8 ``(B, H, W)``: 1 where ``mask == c + 1``, 255 where void, else 0.
    """
    target = (np.asarray(classes, dtype=np.int64) + 1).reshape(-1, 1, 1)
    out = (masks == target).astype(np.uint8)
    out[masks == MASK_IGNORE] = MASK_IGNORE
    return out


@dataclass(frozen=True, eq=False)
class MultiClassMaskResult:
    """Per-class PxAP and their mean over the present classes.

    Attributes:
        thresholds: ``(T,)`` CAM thresholds.
        num_classes: ``K``.
        pairs: ``(image, class)`` pairs evaluated.
        images: ``(K,)`` int, pairs per class (images labelled with the class).
        foreground_pixels: ``(K,)`` int, positive pixels pooled per class.
        background_pixels: ``(K,)`` int, negative pixels pooled per class.
        pxap: ``(K,)`` float64 percent, NaN for classes that are not present.
        present: ``(K,)`` bool, at least one positive pixel.
        mpxap: mean of ``pxap`` over present classes, percent.
        precision: ``(K, T)`` precision at each threshold (NaN where undefined).
        recall: ``(K, T)`` recall at each threshold (NaN for absent classes).
    """

    thresholds: np.ndarray
    num_classes: int
    pairs: int
    images: np.ndarray
    foreground_pixels: np.ndarray
    background_pixels: np.ndarray
    pxap: np.ndarray
    present: np.ndarray
    mpxap: float
    precision: np.ndarray
    recall: np.ndarray

    def per_class(self) -> dict[int, float]:
        """``{class: PxAP}`` of the present classes."""
        return {int(c): float(self.pxap[c]) for c in np.flatnonzero(self.present)}

    def to_dict(self) -> dict:
        """JSON-ready summary; classes keyed by their 0-based index as a string."""
        return {
            "mpxap": float(self.mpxap),
            "num_classes": int(self.num_classes),
            "pairs": int(self.pairs),
            "present_classes": [int(c) for c in np.flatnonzero(self.present)],
            "pxap": {str(c): (float(v) if self.present[c] else None) for c, v in enumerate(self.pxap)},
            "images": {str(c): int(v) for c, v in enumerate(self.images)},
            "foreground_pixels": {str(c): int(v) for c, v in enumerate(self.foreground_pixels)},
            "background_pixels": {str(c): int(v) for c, v in enumerate(self.background_pixels)},
            "thresholds": self.thresholds.tolist(),
            "precision": {str(c): _json_list(self.precision[c]) for c in np.flatnonzero(self.present)},
            "recall": {str(c): _json_list(self.recall[c]) for c in np.flatnonzero(self.present)},
        }


class MultiClassMaskAccumulator:
    """Per-class foreground/background score histograms over ``(image, class)`` pairs.

    Args:
        thresholds: ``(T,)`` CAM thresholds.
        num_classes: ``K``; classes are ``0 .. K - 1``, labelled ``c + 1`` in masks.

    State (fixed size):
        pairs: pairs seen.
        images: int64 ``(K,)`` pairs per class.
        fg_hist, bg_hist: int64 ``(K, T + 2)`` pooled score histograms.
    """

    def __init__(self, thresholds: np.ndarray, num_classes: int):
        self.thresholds = check_thresholds(thresholds)
        self.thresholds.setflags(write=False)
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.reset()

    def reset(self) -> None:
        """Forget every pair."""
        bins = len(self.thresholds) + 2
        self.pairs = 0
        self.images = np.zeros(self.num_classes, dtype=np.int64)
        self.fg_hist = np.zeros((self.num_classes, bins), dtype=np.int64)
        self.bg_hist = np.zeros((self.num_classes, bins), dtype=np.int64)

    def update(
        self, scoremaps: np.ndarray, masks: np.ndarray, classes: Sequence[int], image_ids: Sequence[str]
    ) -> None:
        """Add a batch of ``(image, class)`` pairs.

        Args:
            scoremaps: ``(B, H, W)`` float in ``[0, 1]``, pair ``i``'s map for class ``classes[i]``.
            masks: ``(B, H, W)`` integer class-index masks (``c + 1`` = class ``c``, 255 void).
            classes: ``B`` 0-based classes in ``[0, K)``.
            image_ids: ``B`` ids, named in error messages.
        """
        maps = check_scoremaps(scoremaps, image_ids)
        masks = check_class_masks(masks, image_ids, maps.shape)
        cls = np.asarray(classes)
        if cls.shape != (maps.shape[0],) or not (cls.size == 0 or np.issubdtype(cls.dtype, np.integer)):
            raise MetricInputError(f"classes must be {maps.shape[0]} integers, got {cls.dtype} {cls.shape}")
        if maps.shape[0] == 0:
            return
        out = (cls < 0) | (cls >= self.num_classes)
        if out.any():
            i = int(np.argmax(out))
            raise MetricInputError(
                f"class {int(cls[i])} of image {list(image_ids)[i]!r} is outside [0, {self.num_classes})"
            )
        binary = class_pair_masks(masks, cls)
        for c in np.unique(cls):
            sel = cls == c
            fg, bg = score_histograms(maps[sel], binary[sel], self.thresholds)
            self.fg_hist[c] += fg
            self.bg_hist[c] += bg
            self.images[c] += int(sel.sum())
        self.pairs += maps.shape[0]

    def merge(self, other: MultiClassMaskAccumulator) -> MultiClassMaskAccumulator:
        """Add the state of ``other`` (same thresholds and classes); returns self."""
        if not isinstance(other, MultiClassMaskAccumulator):
            raise ValueError(f"cannot merge a MultiClassMaskAccumulator with {type(other).__name__}")
        if not np.array_equal(self.thresholds, other.thresholds) or self.num_classes != other.num_classes:
            raise ValueError("cannot merge multi-class mask accumulators with different thresholds or classes")
        self.pairs += other.pairs
        self.images += other.images
        self.fg_hist += other.fg_hist
        self.bg_hist += other.bg_hist
        return self

    def compute(self) -> MultiClassMaskResult:
        """Per-class PxAP and mPxAP from the pooled histograms."""
        if self.pairs == 0:
            raise MetricInputError("no (image, class) pairs were evaluated")
        fg_total = self.fg_hist.sum(axis=1)
        present = fg_total > 0
        if not present.any():
            raise MetricInputError(
                f"no labelled pixel of an evaluated class in the {self.pairs} (image, class) pairs: "
                "mPxAP is undefined"
            )
        k, t = self.num_classes, len(self.thresholds)
        values = np.full(k, np.nan)
        precision = np.full((k, t), np.nan)
        recall = np.full((k, t), np.nan)
        for c in np.flatnonzero(present):
            values[c] = pxap(self.fg_hist[c], self.bg_hist[c])
            curves = pixel_curves(self.fg_hist[c], self.bg_hist[c])
            precision[c] = curves.precision
            recall[c] = curves.recall
        return MultiClassMaskResult(
            thresholds=_frozen(self.thresholds),
            num_classes=k,
            pairs=self.pairs,
            images=_frozen(self.images),
            foreground_pixels=_frozen(fg_total),
            background_pixels=_frozen(self.bg_hist.sum(axis=1)),
            pxap=_frozen(values),
            present=_frozen(present),
            mpxap=float(values[present].mean()),
            precision=_frozen(precision),
            recall=_frozen(recall),
        )
