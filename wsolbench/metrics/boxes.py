"""Box localisation accuracy: MaxBoxAcc (V1), MaxBoxAccV2, GT-known and top-1 Loc.

Reference: Choe et al., CVPR 2020, wsolevaluation ``BoxEvaluator``; the
conventions are listed in :mod:`wsolbench.metrics.protocol`. The state is a
fixed-size count array per (contour mode, IoU threshold, CAM threshold), so two
accumulators over disjoint halves of a split merge into the whole. With
``per_image=True`` it also keeps each image's best IoUs (:class:`BoxOutcomes`),
from which :mod:`wsolbench.metrics.outcomes` recomputes every number of any
subset of the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.base import Accumulator, Agreed, Outcomes, PerImage, Summed, concat, frozen
from wsolbench.metrics.fast_boxes import fast_best_ious_checked
from wsolbench.metrics.protocol import CONTOUR_MODES, best_ious, correct_at
from wsolbench.metrics.validate import (
    check_cls_correct,
    check_engine,
    check_gt_boxes,
    check_image_ids,
    check_iou_thresholds,
    check_scoremaps,
    check_thresholds,
)

DEFAULT_IOU_THRESHOLDS = (30, 50, 70)

#: Box engines: "fast" (every threshold in two union-find passes per map,
#: :mod:`wsolbench.metrics.fast_boxes`) and "exact" (findContours per distinct
#: cut, :func:`~wsolbench.metrics.protocol.best_ious`). Their counts are identical.


@dataclass(frozen=True, eq=False)
class BoxResult:
    """Box accuracy curves over CAM thresholds, in percent.

    Attributes:
        thresholds: ``(T,)`` CAM thresholds.
        iou_thresholds: IoU thresholds in percent, e.g. ``(30, 50, 70)``.
        count: number of images evaluated.
        has_top1: whether classification outcomes were given (top-1 curves).
        gt_known_curves: ``(2, len(iou_thresholds), T)`` float64 percent,
            indexed ``[mode, iou, threshold]`` with modes ``("all", "largest")``.
        top1_curves: same shape, or None without classification outcomes.
    """

    thresholds: np.ndarray
    iou_thresholds: tuple[int, ...]
    count: int
    has_top1: bool
    gt_known_curves: np.ndarray
    top1_curves: np.ndarray | None

    def _iou_index(self, iou: int) -> int:
        if iou not in self.iou_thresholds:
            raise ValueError(f"IoU threshold {iou} was not evaluated; have {self.iou_thresholds}")
        return self.iou_thresholds.index(iou)

    def curve(self, iou: int = 50, contours: str = "all", top1: bool = False) -> np.ndarray:
        """Accuracy (percent) at each CAM threshold, ``(T,)``.

        Args:
            iou: IoU threshold in percent.
            contours: "all" (every contour) or "largest" (largest contour).
            top1: top-1 Loc (box and class correct) instead of GT-known Loc.
        """
        if contours not in CONTOUR_MODES:
            raise ValueError(f"contours must be one of {CONTOUR_MODES}, got {contours!r}")
        curves = self.gt_known_curves
        if top1:
            if self.top1_curves is None:
                raise MetricInputError(
                    "top-1 localization is unavailable: the box metric was updated without cls_correct"
                )
            curves = self.top1_curves
        return curves[CONTOUR_MODES.index(contours), self._iou_index(iou)]

    def best_index(self, iou: int, contours: str) -> int:
        """Index of the best CAM threshold of the GT-known curve (first on ties)."""
        return int(np.argmax(self.curve(iou, contours)))

    def best_threshold(self, iou: int, contours: str) -> float:
        """The CAM threshold at :meth:`best_index`."""
        return float(self.thresholds[self.best_index(iou, contours)])

    @property
    def max_box_acc(self) -> float:
        """MaxBoxAcc (V1): IoU 50, largest contour, best over CAM thresholds."""
        return float(self.curve(50, "largest").max())

    def max_box_acc_v2_at(self, iou: int) -> float:
        """Best accuracy over CAM thresholds at one IoU threshold, all contours."""
        return float(self.curve(iou, "all").max())

    @property
    def max_box_acc_v2(self) -> float:
        """MaxBoxAccV2: mean over the IoU thresholds of each one's best, all contours."""
        return float(np.mean([self.max_box_acc_v2_at(iou) for iou in self.iou_thresholds]))

    def gt_known_loc(self, index: int, iou: int = 50, contours: str = "largest") -> float:
        """GT-known Loc (percent) at a given CAM threshold index (e.g. chosen on val)."""
        return float(self.curve(iou, contours)[index])

    def top1_loc(self, index: int, iou: int = 50, contours: str = "largest") -> float:
        """Top-1 Loc (percent) at a given CAM threshold index (e.g. chosen on val)."""
        return float(self.curve(iou, contours, top1=True)[index])

    def index_of(self, threshold: float) -> int:
        """Index of the CAM threshold nearest to ``threshold`` (first on ties)."""
        return int(np.argmin(np.abs(self.thresholds - float(threshold))))

    def to_dict(self) -> dict:
        """JSON-ready summary: counts, thresholds, all curves and the summary numbers."""

        def curves_dict(curves: np.ndarray) -> dict:
            return {
                mode: {str(iou): curves[m, k].tolist() for k, iou in enumerate(self.iou_thresholds)}
                for m, mode in enumerate(CONTOUR_MODES)
            }

        best = {
            mode: {
                str(iou): {
                    "index": self.best_index(iou, mode),
                    "threshold": self.best_threshold(iou, mode),
                    "accuracy": float(self.curve(iou, mode).max()),
                }
                for iou in self.iou_thresholds
            }
            for mode in CONTOUR_MODES
        }
        return {
            "count": int(self.count),
            "has_top1": bool(self.has_top1),
            "thresholds": self.thresholds.tolist(),
            "iou_thresholds": list(self.iou_thresholds),
            "max_box_acc": self.max_box_acc if 50 in self.iou_thresholds else None,
            "max_box_acc_v2": self.max_box_acc_v2,
            "max_box_acc_v2_at": {str(iou): self.max_box_acc_v2_at(iou) for iou in self.iou_thresholds},
            "best": best,
            "curves": {
                "gt_known": curves_dict(self.gt_known_curves),
                "top1": None if self.top1_curves is None else curves_dict(self.top1_curves),
            },
        }


def box_result(
    thresholds: np.ndarray,
    iou_thresholds: tuple[int, ...],
    count: int,
    correct: np.ndarray,
    correct_top1: np.ndarray | None,
) -> BoxResult:
    """Curves in percent, ``100 * correct / count``, from the counts (pure; shared with the outcomes).

    Args:
        thresholds: ``(T,)`` CAM thresholds.
        iou_thresholds: IoU thresholds in percent.
        count: images counted, ``> 0``.
        correct: int ``(2, len(iou_thresholds), T)`` box-correct images, ``[mode, iou, threshold]``.
        correct_top1: same, box- and class-correct images, or None without classification outcomes.
    """
    if count == 0:
        raise MetricInputError("no images were evaluated")
    return BoxResult(
        thresholds=frozen(thresholds),
        iou_thresholds=tuple(iou_thresholds),
        count=int(count),
        has_top1=correct_top1 is not None,
        gt_known_curves=frozen(correct * 100.0 / count),
        top1_curves=frozen(correct_top1 * 100.0 / count) if correct_top1 is not None else None,
    )


def ious_float32(ious: np.ndarray) -> np.ndarray:
    """float32 copy of float64 IoUs that every integer-percent IoU threshold judges as the float64 ones do.

    Rounding to float32 moves an IoU by at most half a float32 step (< 6e-8),
    which could flip ``iou >= delta / 100`` for an IoU that close to a threshold
    (e.g. exactly 0.7, whose float32 lies below the float64 0.7). Such values are
    moved to the float32 threshold itself (when the float64 comparison holds) or
    one step below it (when it does not), so :func:`iou_hits` on the copy equals
    :func:`~wsolbench.metrics.protocol.correct_at` on the original, for every
    IoU threshold in 0, 1, ..., 100 percent. Each value stays within one float32
    step of the float64 IoU.
    """
    ious = np.asarray(ious, dtype=np.float64)
    out = ious.astype(np.float32)
    # Only the nearest integer percent can be misjudged (thresholds are 0.01 apart).
    cut64 = np.rint(ious * 100) / 100
    cut32 = cut64.astype(np.float32)
    want = ious >= cut64
    wrong = want != (out >= cut32)
    if wrong.any():
        raise_to = wrong & want
        out[raise_to] = cut32[raise_to]
        lower = wrong & ~want
        out[lower] = np.nextafter(cut32[lower], np.float32(-np.inf))
    return out


def iou_hits(ious: np.ndarray, iou: int) -> np.ndarray:
    """``ious >= iou / 100`` in the dtype of ``ious`` (the threshold rounded to float32 for float32 IoUs).

    On IoUs stored by :func:`ious_float32` this equals the float64 comparison
    the accumulator counts with; bool, the shape of ``ious``.
    """
    ious = np.asarray(ious)
    cut = iou / 100
    return ious >= (np.float32(cut) if ious.dtype == np.float32 else cut)


@dataclass(frozen=True, eq=False)
class BoxOutcomes(Outcomes):
    """Per-image box outcomes, one row per image in update order (``BoxAccumulator(per_image=True)``).

    Attributes:
        thresholds: ``(T,)`` float64 CAM thresholds.
        iou_thresholds: IoU thresholds in percent the accumulator counted.
        image_ids: ``(N,)`` str.
        ious: float32 ``(N, 2, T)``, ``[image, mode, threshold]`` with modes
            ``("all", "largest")``: the best IoU of the image's predicted boxes
            with its ground-truth boxes at each CAM threshold (see
            :func:`ious_float32`; compare with :func:`iou_hits`).
        cls_correct: ``(N,)`` bool top-1 classification outcome, or None when
            the accumulator was updated without it.
    """

    kind: ClassVar[str] = "boxes"
    rows: ClassVar[tuple[str, ...]] = ("image_ids", "ious", "cls_correct")
    optional: ClassVar[tuple[str, ...]] = ("cls_correct",)

    thresholds: np.ndarray
    iou_thresholds: tuple[int, ...]
    image_ids: np.ndarray
    ious: np.ndarray
    cls_correct: np.ndarray | None

    def _check(self) -> None:
        object.__setattr__(self, "thresholds", frozen(self.thresholds, dtype=np.float64))
        object.__setattr__(self, "iou_thresholds", tuple(int(i) for i in self.iou_thresholds))
        expected = (len(self), len(CONTOUR_MODES), len(self.thresholds))
        if self.ious.shape != expected or self.ious.dtype != np.float32:
            raise MetricInputError(
                f"boxes outcomes: ious must be float32 {expected}, got {self.ious.dtype} {self.ious.shape}"
            )
        if self.cls_correct is not None and self.cls_correct.dtype != np.bool_:
            raise MetricInputError(f"boxes outcomes: cls_correct must be bool, got {self.cls_correct.dtype}")


def _box_zeros(acc: BoxAccumulator) -> np.ndarray:
    return np.zeros((len(CONTOUR_MODES), len(acc.iou_thresholds), len(acc.thresholds)), dtype=np.int64)


class BoxAccumulator(Accumulator):
    """Counts of box-correct images per (contour mode, IoU threshold, CAM threshold).

    Args:
        thresholds: ``(T,)`` CAM thresholds, see :func:`~wsolbench.metrics.protocol.cam_thresholds`.
        iou_thresholds: IoU thresholds in percent.
        engine: "fast" (default) or "exact", see :data:`ENGINES`; same counts.
        workers: threads splitting each batch's maps (fast engine).
        per_image: also keep each image's outcomes (:meth:`outcomes`).

    State (fixed size):
        count: images seen.
        correct: int64 ``(2, len(iou_thresholds), T)``, ``[mode, iou, threshold]``,
            modes ``("all", "largest")``.
        correct_top1: same, counting only images whose top-1 class is correct.

    Per-image state (``per_image=True``; grows with the images, 4 x 2 x T bytes each):
        image ids, best IoUs float32 ``(B, 2, T)`` and cls_correct of every batch.
    """

    label: ClassVar[str] = "box accumulators"
    config: ClassVar[dict[str, str]] = {"thresholds": "thresholds", "iou_thresholds": "IoU thresholds"}
    state: ClassVar[dict] = {
        "count": Summed(lambda acc: 0),
        "correct": Summed(_box_zeros),
        "correct_top1": Summed(_box_zeros),
        # None until the first non-empty update; then whether cls_correct was given.
        "_has_top1": Agreed("cannot merge a box accumulator with top-1 counts with one without"),
        "_image_ids": PerImage(),
        "_ious": PerImage(),
        "_cls_correct": PerImage(),
    }

    def __init__(
        self,
        thresholds: np.ndarray,
        iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
        engine: str = "fast",
        workers: int = 1,
        per_image: bool = False,
    ):
        self.thresholds = check_thresholds(thresholds)
        self.thresholds.setflags(write=False)
        self.iou_thresholds = check_iou_thresholds(iou_thresholds)
        self.engine, self.workers = check_engine(engine, workers)
        self.per_image = bool(per_image)
        self.reset()

    def _note_top1(self, has_top1: bool) -> None:
        if self._has_top1 is not None and self._has_top1 != has_top1:
            raise MetricInputError(
                "cls_correct must be given for every batch or for none "
                "(top-1 counts would otherwise be incomplete)"
            )
        self._has_top1 = has_top1

    def update(
        self,
        scoremaps: np.ndarray,
        gt_boxes: Sequence[np.ndarray],
        image_ids: Sequence[str],
        cls_correct: np.ndarray | None = None,
    ) -> None:
        """Add a batch.

        Args:
            scoremaps: ``(B, H, W)`` float in ``[0, 1]``.
            gt_boxes: ``B`` int arrays ``(n_i, 4)`` ``x0, y0, x1, y1`` already at map
                resolution (see :func:`~wsolbench.metrics.protocol.rescale_boxes`).
            image_ids: ``B`` ids, named in error messages (and kept with ``per_image``).
            cls_correct: ``(B,)`` bool top-1 classification outcome, or None.
        """
        maps = self._checked_maps(scoremaps, image_ids)
        boxes = check_gt_boxes(gt_boxes, image_ids)
        if cls_correct is not None:
            cls_correct = check_cls_correct(cls_correct, image_ids)
        if maps.shape[0] == 0:
            return
        self._note_top1(cls_correct is not None)
        if self.engine == "fast":
            ious, valid = fast_best_ious_checked(maps, boxes, self.thresholds, workers=self.workers)
            if not valid.all():  # raises, naming the image, before any count changes
                check_scoremaps(maps, image_ids)
                raise RuntimeError("the quantisation pass flagged a map that check_scoremaps accepts")
        else:
            ious = np.stack([np.stack(best_ious(m, b, self.thresholds)) for m, b in zip(maps, boxes)])
        # ious: (B, mode, T) -> hits: (iou, B, mode, T) -> (B, mode, iou, T)
        hits = correct_at(ious, self.iou_thresholds).transpose(1, 2, 0, 3)
        self.correct += hits.sum(axis=0)
        if cls_correct is not None:
            self.correct_top1 += hits[cls_correct].sum(axis=0)
        self.count += maps.shape[0]
        if self.per_image:
            self._image_ids.extend(str(i) for i in image_ids)
            self._ious.append(ious_float32(ious))
            if cls_correct is not None:
                self._cls_correct.append(cls_correct.copy())

    def _checked_maps(self, scoremaps, image_ids) -> np.ndarray:
        """:func:`check_scoremaps`, without its float64 copy for the fast engine.

        The fast engine checks the range in its own pass over the pixels (see
        :meth:`update`), so plain float maps are not read here.
        """
        maps = np.asarray(scoremaps)
        plain = maps.ndim == 3 and maps.dtype in (np.float32, np.float64) and 0 not in maps.shape
        if self.engine == "exact" or not plain:
            return check_scoremaps(maps, image_ids)
        check_image_ids(image_ids, maps.shape[0])
        return maps

    def merge(self, other: BoxAccumulator) -> BoxAccumulator:
        """Add the counts (and per-image outcomes) of ``other``, same thresholds and IoU thresholds; returns self."""
        return super().merge(other)

    def compute(self) -> BoxResult:
        """Curves in percent, ``100 * correct / count``."""
        return box_result(
            self.thresholds, self.iou_thresholds, self.count, self.correct,
            self.correct_top1 if self._has_top1 else None,
        )

    def outcomes(self) -> BoxOutcomes:
        """Every image's outcomes, in update order (needs ``per_image=True``)."""
        self._require_per_image()
        return BoxOutcomes(
            thresholds=self.thresholds,
            iou_thresholds=self.iou_thresholds,
            image_ids=np.array(self._image_ids, dtype=str),
            ious=concat(self._ious, np.zeros((0, len(CONTOUR_MODES), len(self.thresholds)), np.float32)),
            cls_correct=concat(self._cls_correct, np.zeros(0, np.bool_)) if self._has_top1 else None,
        )
