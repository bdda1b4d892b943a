"""Box localisation accuracy: MaxBoxAcc (V1), MaxBoxAccV2, GT-known and top-1 Loc.

Reference: Choe et al., CVPR 2020, wsolevaluation ``BoxEvaluator``; the
conventions are listed in :mod:`wsolbench.metrics.protocol`. The state is a
fixed-size count array per (contour mode, IoU threshold, CAM threshold), so two
accumulators over disjoint halves of a split merge into the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wsolbench.errors import MetricInputError
from wsolbench.metrics.fast_boxes import fast_best_ious, maps_in_unit_interval
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


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.setflags(write=False)
    return array


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


class BoxAccumulator:
    """Counts of box-correct images per (contour mode, IoU threshold, CAM threshold).

    Args:
        thresholds: ``(T,)`` CAM thresholds, see :func:`~wsolbench.metrics.protocol.cam_thresholds`.
        iou_thresholds: IoU thresholds in percent.
        engine: "fast" (default) or "exact", see :data:`ENGINES`; same counts.
        workers: threads splitting each batch's maps (fast engine).

    State (fixed size):
        count: images seen.
        correct: int64 ``(2, len(iou_thresholds), T)``, ``[mode, iou, threshold]``,
            modes ``("all", "largest")``.
        correct_top1: same, counting only images whose top-1 class is correct.
    """

    def __init__(
        self,
        thresholds: np.ndarray,
        iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
        engine: str = "fast",
        workers: int = 1,
    ):
        self.thresholds = check_thresholds(thresholds)
        self.thresholds.setflags(write=False)
        self.iou_thresholds = check_iou_thresholds(iou_thresholds)
        self.engine, self.workers = check_engine(engine, workers)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        shape = (len(CONTOUR_MODES), len(self.iou_thresholds), len(self.thresholds))
        self.count = 0
        self.correct = np.zeros(shape, dtype=np.int64)
        self.correct_top1 = np.zeros(shape, dtype=np.int64)
        # None until the first non-empty update; then whether cls_correct was given.
        self._has_top1: bool | None = None

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
            image_ids: ``B`` ids, named in error messages.
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
            ious = fast_best_ious(maps, boxes, self.thresholds, workers=self.workers)
        else:
            ious = np.stack([np.stack(best_ious(m, b, self.thresholds)) for m, b in zip(maps, boxes)])
        # ious: (B, mode, T) -> hits: (iou, B, mode, T) -> (B, mode, iou, T)
        hits = correct_at(ious, self.iou_thresholds).transpose(1, 2, 0, 3)
        self.correct += hits.sum(axis=0)
        if cls_correct is not None:
            self.correct_top1 += hits[cls_correct].sum(axis=0)
        self.count += maps.shape[0]

    def _checked_maps(self, scoremaps, image_ids) -> np.ndarray:
        """:func:`check_scoremaps`, without its float64 copy for the fast engine."""
        maps = np.asarray(scoremaps)
        plain = maps.ndim == 3 and maps.dtype in (np.float32, np.float64) and 0 not in maps.shape
        if self.engine == "exact" or not plain:
            return check_scoremaps(maps, image_ids)
        check_image_ids(image_ids, maps.shape[0])
        if not maps_in_unit_interval(maps).all():
            check_scoremaps(maps, image_ids)  # raises, naming the image
            raise RuntimeError("the range check flagged a map that check_scoremaps accepts")
        return maps

    def merge(self, other: BoxAccumulator) -> BoxAccumulator:
        """Add the counts of ``other`` (same thresholds and IoU thresholds); returns self."""
        if not isinstance(other, BoxAccumulator):
            raise ValueError(f"cannot merge a BoxAccumulator with {type(other).__name__}")
        if not np.array_equal(self.thresholds, other.thresholds) or self.iou_thresholds != other.iou_thresholds:
            raise ValueError("cannot merge box accumulators with different thresholds or IoU thresholds")
        if other._has_top1 is not None:
            if self._has_top1 is not None and self._has_top1 != other._has_top1:
                raise ValueError("cannot merge a box accumulator with top-1 counts with one without")
            self._has_top1 = other._has_top1
        self.count += other.count
        self.correct += other.correct
        self.correct_top1 += other.correct_top1
        return self

    def compute(self) -> BoxResult:
        """Curves in percent, ``100 * correct / count``."""
        if self.count == 0:
            raise MetricInputError("no images were evaluated")
        has_top1 = bool(self._has_top1)
        return BoxResult(
            thresholds=_frozen(self.thresholds),
            iou_thresholds=self.iou_thresholds,
            count=self.count,
            has_top1=has_top1,
            gt_known_curves=_frozen(self.correct * 100.0 / self.count),
            top1_curves=_frozen(self.correct_top1 * 100.0 / self.count) if has_top1 else None,
        )
