"""Multi-class pixel average precision (mPxAP) for class-index masks (PASCAL VOC style).

Definition
----------
Classes are 0-based indices ``c`` in ``[0, K)`` (as in ``class_labels.txt``
and manifest labels). Masks are class-index maps: pixel value ``c + 1`` labels
class ``c``, 0 is background, 255 is void (excluded everywhere); any other
value is an ordinary labelled pixel (of a class not being scored).

An update adds ``(image, class)`` pairs: the image's score map for class ``c``
and the image's class-index mask. The caller adds one pair per class of the
image's *image-level label set* (``wsolbench.scoremaps.groundtruth`` documents how that
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
accumulators over disjoint parts of a split merge into the whole. With
``per_image=True`` the accumulator also keeps each pair's histograms
(:class:`MultiClassMaskOutcomes`), from which the mPxAP of any subset of pairs
is recomputed exactly (:mod:`wsolbench.metrics.outcomes`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.base import Accumulator, Outcomes, PerImage, Summed, concat, frozen
from wsolbench.metrics.masks import check_histogram_rows, fast_score_histograms, histogram_row_dtype
from wsolbench.metrics.protocol import pixel_curves, pxap, score_histograms
from wsolbench.metrics.validate import check_mask_layout, check_scoremaps, check_thresholds
from wsolbench.structs import MASK_IGNORE


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


def multiclass_result(
    thresholds: np.ndarray, num_classes: int, pairs: int, images: np.ndarray, fg_hist: np.ndarray, bg_hist: np.ndarray
) -> MultiClassMaskResult:
    """Per-class PxAP and mPxAP from pooled histograms (pure; shared with the outcomes).

    Args:
        thresholds: ``(T,)`` CAM thresholds.
        num_classes: ``K``.
        pairs: ``(image, class)`` pairs pooled.
        images: ``(K,)`` int, pairs per class.
        fg_hist, bg_hist: int ``(K, T + 2)`` pooled score histograms.
    """
    if pairs == 0:
        raise MetricInputError("no (image, class) pairs were evaluated")
    fg_total = fg_hist.sum(axis=1)
    present = fg_total > 0
    if not present.any():
        raise MetricInputError(
            f"no labelled pixel of an evaluated class in the {pairs} (image, class) pairs: "
            "mPxAP is undefined"
        )
    k, t = num_classes, len(thresholds)
    values = np.full(k, np.nan)
    precision = np.full((k, t), np.nan)
    recall = np.full((k, t), np.nan)
    for c in np.flatnonzero(present):
        values[c] = pxap(fg_hist[c], bg_hist[c])
        curves = pixel_curves(fg_hist[c], bg_hist[c])
        precision[c] = curves.precision
        recall[c] = curves.recall
    return MultiClassMaskResult(
        thresholds=frozen(thresholds),
        num_classes=k,
        pairs=int(pairs),
        images=frozen(images),
        foreground_pixels=frozen(fg_total),
        background_pixels=frozen(bg_hist.sum(axis=1)),
        pxap=frozen(values),
        present=frozen(present),
        mpxap=float(values[present].mean()),
        precision=frozen(precision),
        recall=frozen(recall),
    )


@dataclass(frozen=True, eq=False)
class MultiClassMaskOutcomes(Outcomes):
    """Per-pair outcomes, one row per ``(image, class)`` pair in update order.

    Attributes:
        thresholds: ``(T,)`` float64 CAM thresholds.
        num_classes: ``K``.
        image_ids: ``(P,)`` str, the pair's image (an image appears once per class of its label set).
        classes: ``(P,)`` int64 0-based class of the pair.
        fg_hist, bg_hist: ``(P, T + 2)`` int32 (int64 for maps of 2^31 pixels
            or more): the pair's positive / negative score histograms; summed
            per class they are the accumulator's pooled histograms.
    """

    kind: ClassVar[str] = "multiclass"
    rows: ClassVar[tuple[str, ...]] = ("image_ids", "classes", "fg_hist", "bg_hist")

    thresholds: np.ndarray
    num_classes: int
    image_ids: np.ndarray
    classes: np.ndarray
    fg_hist: np.ndarray
    bg_hist: np.ndarray

    def _check(self) -> None:
        object.__setattr__(self, "thresholds", frozen(self.thresholds, dtype=np.float64))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        check_histogram_rows(self.kind, self.fg_hist, self.bg_hist, len(self), len(self.thresholds))
        c = self.classes
        if not np.issubdtype(c.dtype, np.integer) or (c.size and (c.min() < 0 or c.max() >= self.num_classes)):
            raise MetricInputError(f"multiclass outcomes: classes must be integers in [0, {self.num_classes})")


class MultiClassMaskAccumulator(Accumulator):
    """Per-class foreground/background score histograms over ``(image, class)`` pairs.

    Args:
        thresholds: ``(T,)`` CAM thresholds.
        num_classes: ``K``; classes are ``0 .. K - 1``, labelled ``c + 1`` in masks.
        per_image: also keep each pair's histograms (:meth:`outcomes`).

    State (fixed size):
        pairs: pairs seen.
        images: int64 ``(K,)`` pairs per class.
        fg_hist, bg_hist: int64 ``(K, T + 2)`` pooled score histograms.

    Per-pair state (``per_image=True``): image id, class and the two histograms of every pair.
    """

    label: ClassVar[str] = "multi-class mask accumulators"
    config: ClassVar[dict[str, str]] = {"thresholds": "thresholds", "num_classes": "numbers of classes"}
    state: ClassVar[dict] = {
        "pairs": Summed(lambda acc: 0),
        "images": Summed(lambda acc: np.zeros(acc.num_classes, dtype=np.int64)),
        "fg_hist": Summed(lambda acc: np.zeros((acc.num_classes, len(acc.thresholds) + 2), dtype=np.int64)),
        "bg_hist": Summed(lambda acc: np.zeros((acc.num_classes, len(acc.thresholds) + 2), dtype=np.int64)),
        "_image_ids": PerImage(),
        "_classes": PerImage(),
        "_fg_rows": PerImage(),
        "_bg_rows": PerImage(),
    }

    def __init__(self, thresholds: np.ndarray, num_classes: int, per_image: bool = False):
        self.thresholds = check_thresholds(thresholds)
        self.thresholds.setflags(write=False)
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.per_image = bool(per_image)
        self.reset()

    def update(
        self, scoremaps: np.ndarray, masks: np.ndarray, classes: Sequence[int], image_ids: Sequence[str]
    ) -> None:
        """Add a batch of ``(image, class)`` pairs.

        Args:
            scoremaps: ``(B, H, W)`` float in ``[0, 1]``, pair ``i``'s map for class ``classes[i]``.
            masks: ``(B, H, W)`` integer class-index masks (``c + 1`` = class ``c``, 255 void).
            classes: ``B`` 0-based classes in ``[0, K)``.
            image_ids: ``B`` ids, named in error messages (and kept with ``per_image``).
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
        if self.per_image:
            # One histogram per pair (the fast pass, same counts as np.histogram), summed per class.
            fg_rows, bg_rows = fast_score_histograms(maps, binary, self.thresholds, per_image=True)
            cls = cls.astype(np.int64)
            np.add.at(self.fg_hist, cls, fg_rows)
            np.add.at(self.bg_hist, cls, bg_rows)
            np.add.at(self.images, cls, 1)
            dtype = histogram_row_dtype(maps.shape[1] * maps.shape[2])
            self._image_ids.extend(str(i) for i in image_ids)
            self._classes.append(cls)
            self._fg_rows.append(fg_rows.astype(dtype))
            self._bg_rows.append(bg_rows.astype(dtype))
        else:
            for c in np.unique(cls):
                sel = cls == c
                fg, bg = score_histograms(maps[sel], binary[sel], self.thresholds)
                self.fg_hist[c] += fg
                self.bg_hist[c] += bg
                self.images[c] += int(sel.sum())
        self.pairs += maps.shape[0]

    def merge(self, other: MultiClassMaskAccumulator) -> MultiClassMaskAccumulator:
        """Add the state (and per-pair outcomes) of ``other``, same thresholds and classes; returns self."""
        return super().merge(other)

    def compute(self) -> MultiClassMaskResult:
        """Per-class PxAP and mPxAP from the pooled histograms."""
        return multiclass_result(self.thresholds, self.num_classes, self.pairs, self.images, self.fg_hist, self.bg_hist)

    def outcomes(self) -> MultiClassMaskOutcomes:
        """Every pair's outcomes, in update order (needs ``per_image=True``)."""
        self._require_per_image()
        empty = np.zeros((0, len(self.thresholds) + 2), dtype=np.int32)
        return MultiClassMaskOutcomes(
            thresholds=self.thresholds,
            num_classes=self.num_classes,
            image_ids=np.array(self._image_ids, dtype=str),
            classes=concat(self._classes, np.zeros(0, dtype=np.int64)),
            fg_hist=concat(self._fg_rows, empty),
            bg_hist=concat(self._bg_rows, empty),
        )
