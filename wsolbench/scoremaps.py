"""Evaluate a folder of saved score maps (from any model) against a manifest or community metadata.

Score maps
----------
One ``.npy`` file per image, named ``<scoremaps>/<image_id>.npy`` where the
image id keeps its folders and extension (``test/001/x.jpg`` ->
``test/001/x.jpg.npy``, as the community's evaluation code names them). Each
map is a 2-D float32 or float64 array of shape ``(resolution, resolution)``
(224 by default), finite, in ``[0, 1]``; anything else raises
:class:`~wsolbench.errors.DataError` naming the image and the file. Maps are
read in batches (``batch_size``), never all at once.

For multi-class masks (``multiclass=True``) the maps are per class:
``<scoremaps>/<class>/<image_id>.npy`` with ``<class>`` the 0-based class index
(the label of ``class_labels.txt`` or of the manifest), e.g. ``14/2007_000129.jpg.npy``.

Ground truth
------------
Either a wsolbench manifest split (:func:`wsolbench.manifest.load_manifest`)
or a split folder of the community metadata format
(:mod:`wsolbench.data.sources.wsolevaluation`). Boxes are rescaled from the
original size to the resolution with
:func:`~wsolbench.metrics.protocol.rescale_boxes`; masks are nearest-resized.
The metrics follow :mod:`wsolbench.metrics.protocol` (8-bit quantisation,
+1 IoU, thresholds ``np.arange(0, 1, step)``).

Multi-class masks: the image-level label set
--------------------------------------------
Masks are class-index images (PASCAL VOC: value ``c + 1`` = class ``c``, 0
background, 255 void; palette PNGs are read as indices). Class ``c``'s map of
an image is scored only when ``c`` is in the image's label set (see
:mod:`wsolbench.metrics.multiclass` for positives, negatives and mPxAP):

* metadata: the labels of ``class_labels.txt`` (one ``id,label`` line per
  class of the image);
* manifest: the sample's ``label`` plus every class whose index appears in
  its mask (at the mask's own resolution), since a manifest line carries one
  label.

mPxAP averages PxAP over the classes with at least one positive pixel among
the images labelled with them, i.e. the classes present in the split's ground
truth. Pixels of a class missing from an image's label set are negatives for
that image's labelled classes; their number of (image, class) occurrences is
reported as ``n_unlabelled_mask_classes`` (0 for manifests).

Missing and extra maps
----------------------
Every image of the split (every labelled (image, class) pair with
``multiclass``) needs its map; a map whose image is not in the split is extra.
Either raises a one-line DataError listing the first few ids and the counts,
unless ``allow_missing``: then missing maps are skipped and extra ones ignored,
and both are counted (``n_missing``, ``n_extra``).

Top-1 Loc
---------
With ``predictions`` (``id,predicted_class`` lines), an image is top-1 correct
when its prediction equals its class label. Top-1 Loc and GT-known Loc are
read at IoU 50 with ``loc_contours`` (largest by default) at one CAM
threshold: ``loc_threshold`` when given (e.g. 0.15, or one chosen on a
validation split), else the threshold maximising GT-known Loc on the
evaluated split itself, which is optimistic on a test split; the report says
which (``loc_threshold.selected``).
"""

from __future__ import annotations

import abc
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolbench.config import EVAL_RESOLUTION
from wsolbench.data.sources.wsolevaluation import (
    LOCALIZATION,
    MetadataSplit,
    format_ids,
    read_grayscale_nonzero,
    read_metadata_split,
)
from wsolbench.data.sources.wsolevaluation import load_eval_mask as load_metadata_mask
from wsolbench.errors import ConfigError, DataError
from wsolbench.manifest import (
    IGNORE_VALUE,
    Manifest,
    load_eval_mask,
    load_manifest,
    read_index_mask,
)
from wsolbench.metrics import (
    BoxAccumulator,
    BoxResult,
    MaskAccumulator,
    MaskResult,
    cam_thresholds,
    rescale_boxes,
)
from wsolbench.metrics.multiclass import MultiClassMaskAccumulator
from wsolbench.progress import NullProgress, Progress

SUFFIX = ".npy"
DEFAULT_BATCH_SIZE = 64
#: Top-1 Loc and GT-known Loc count a box as correct at IoU >= 0.5.
LOC_IOU = 50


# --------------------------------------------------------------------------- ground truth


class GroundTruth(abc.ABC):
    """One evaluated split, whatever its source. Subclasses read a manifest or metadata.

    Attributes:
        source: JSON-ready description (kind, path, split).
        image_ids: the split's ids, in order.
        has_boxes / has_masks: every image has boxes / a mask.
        has_labels: every image has at least one class label.
    """

    source: dict[str, Any]
    image_ids: tuple[str, ...]
    has_boxes: bool
    has_masks: bool
    has_labels: bool

    def describe(self) -> str:
        return " ".join(f"{k} {v}" for k, v in self.source.items())

    @abc.abstractmethod
    def labels(self, image_id: str) -> tuple[int, ...]:
        """The image's class labels (one for single-label data)."""

    @abc.abstractmethod
    def boxes(self, image_id: str, resolution: int) -> np.ndarray:
        """``(n, 4)`` int64 ground-truth boxes at ``(resolution, resolution)``."""

    @abc.abstractmethod
    def mask(self, image_id: str, resolution: int) -> np.ndarray:
        """``(R, R)`` uint8 0 background / 1 foreground / 255 ignore."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """``K``: class indices are ``0 .. K - 1``."""

    @abc.abstractmethod
    def class_labels(self, image_id: str) -> tuple[int, ...]:
        """The image-level label set used by multi-class evaluation (module docstring)."""

    @abc.abstractmethod
    def class_mask(self, image_id: str, resolution: int) -> np.ndarray:
        """``(R, R)`` uint8 class-index mask (``c + 1`` = class ``c``, 0 background, 255 void)."""


class MetadataGroundTruth(GroundTruth):
    """A split folder of the community metadata format."""

    def __init__(self, split: MetadataSplit) -> None:
        self.split = split
        self.source = {"metadata": str(split.directory)}
        self.image_ids = split.image_ids
        if not self.image_ids:
            raise DataError(f"metadata {split.directory} lists no images")
        if split.kind is None:
            raise DataError(f"metadata {split.directory} has no {LOCALIZATION} with boxes or masks to evaluate")
        self.has_boxes = split.kind == "boxes"
        self.has_masks = split.kind == "masks"
        self.has_labels = split.has_labels
        self._samples = {s.image_id: s for s in split.samples}

    def labels(self, image_id: str) -> tuple[int, ...]:
        return self._samples[image_id].labels

    def boxes(self, image_id: str, resolution: int) -> np.ndarray:
        sample = self._samples[image_id]
        assert sample.size is not None  # read_metadata_split checks box splits have sizes
        return rescale_boxes(np.array(sample.boxes, dtype=np.float64), sample.size, (resolution, resolution))

    def mask(self, image_id: str, resolution: int) -> np.ndarray:
        return load_metadata_mask(self.split, self._samples[image_id], resolution)

    @property
    def num_classes(self) -> int:
        return self.split.num_classes

    def class_labels(self, image_id: str) -> tuple[int, ...]:
        return self._samples[image_id].labels

    def class_mask(self, image_id: str, resolution: int) -> np.ndarray:
        sample = self._samples[image_id]
        paths = self.split.mask_paths(sample)
        if len(paths) != 1:
            raise DataError(f"{self.split.directory / LOCALIZATION}: image {image_id!r} has {len(paths)} mask "
                            "lines; multi-class evaluation takes one class-index mask per image")
        return _class_mask(paths[0], self.split.ignore_path(sample), resolution)


class ManifestGroundTruth(GroundTruth):
    """One split of a wsolbench manifest."""

    def __init__(self, manifest: Manifest, split: str) -> None:
        self.manifest = manifest
        samples = manifest.split(split)
        self.source = {"manifest": str(manifest.directory), "split": split}
        if not samples:
            raise DataError(f"manifest {manifest.directory} split {split!r} has no images")
        self.image_ids = tuple(s.image_id for s in samples)
        self._samples = {s.image_id: s for s in samples}
        self.has_boxes = self._all_or_none([s.image_id for s in samples if not s.boxes], "boxes", len(samples))
        self.has_masks = self._all_or_none([s.image_id for s in samples if s.mask is None], "a mask", len(samples))
        self.has_labels = True
        self._class_labels: dict[str, tuple[int, ...]] | None = None

    def _all_or_none(self, lacking: list[str], what: str, total: int) -> bool:
        if lacking and len(lacking) < total:
            raise DataError(f"{self.describe()}: {len(lacking)} of {total} images have no {what} "
                            f"({format_ids(lacking)}); evaluate a split where all or none do")
        return not lacking

    def labels(self, image_id: str) -> tuple[int, ...]:
        return (self._samples[image_id].label,)

    def boxes(self, image_id: str, resolution: int) -> np.ndarray:
        s = self._samples[image_id]
        return rescale_boxes(np.array(s.boxes, dtype=np.float64), (s.width, s.height), (resolution, resolution))

    def mask(self, image_id: str, resolution: int) -> np.ndarray:
        return load_eval_mask(self.manifest, self._samples[image_id], resolution)

    @property
    def num_classes(self) -> int:
        return self.manifest.num_classes

    def class_labels(self, image_id: str) -> tuple[int, ...]:
        sample = self._samples[image_id]
        path = self.manifest.mask_path(sample)
        if path is None:
            raise DataError(f"image {image_id!r} has no mask in manifest {self.manifest.directory}")
        values = np.unique(read_class_index_mask(path))
        classes = values[(values >= 1) & (values != IGNORE_VALUE)] - 1
        beyond = classes[classes >= self.num_classes]
        if beyond.size:
            raise DataError(f"class-index mask {path} (image {image_id!r}) has value {int(beyond[0]) + 1}, but "
                            f"manifest {self.manifest.directory} has {self.num_classes} classes (values 1.."
                            f"{self.num_classes}, 0 background, {IGNORE_VALUE} void)")
        return tuple(sorted({sample.label, *(int(c) for c in classes)}))

    def class_mask(self, image_id: str, resolution: int) -> np.ndarray:
        sample = self._samples[image_id]
        path = self.manifest.mask_path(sample)
        if path is None:
            raise DataError(f"image {image_id!r} has no mask in manifest {self.manifest.directory}")
        return _class_mask(path, self.manifest.ignore_path(sample), resolution)


def load_ground_truth(
    *,
    manifest: str | Path | None = None,
    split: str | None = None,
    metadata: str | Path | None = None,
    mask_root: str | Path | None = None,
) -> GroundTruth:
    """The ground truth of a manifest split (``manifest``, ``split`` default test) or a metadata folder."""
    if (manifest is None) == (metadata is None):
        raise ConfigError("give exactly one of --manifest DIR or --metadata DIR")
    if metadata is not None:
        if split is not None:
            raise ConfigError("--split applies to --manifest; --metadata takes the split folder itself "
                              "(e.g. metadata/CUB/test)")
        return MetadataGroundTruth(read_metadata_split(metadata, mask_root=mask_root))
    if mask_root is not None:
        raise ConfigError("--mask-root applies to --metadata; a manifest's mask paths are relative to its root")
    return ManifestGroundTruth(load_manifest(manifest), split or "test")


# --------------------------------------------------------------------------- files


def read_class_index_mask(path: str | Path) -> np.ndarray:
    """``(H, W)`` uint8 class indices of a VOC-style mask (palette indices kept; see ``manifest.read_index_mask``)."""
    return read_index_mask(path)


def _class_mask(path: Path, ignore_path: Path | None, resolution: int) -> np.ndarray:
    size = (int(resolution), int(resolution))
    mask = cv2.resize(read_class_index_mask(path), size, interpolation=cv2.INTER_NEAREST)
    if ignore_path is not None:
        ignore = cv2.resize(read_grayscale_nonzero(ignore_path, "ignore map").astype(np.uint8), size,
                            interpolation=cv2.INTER_NEAREST)
        mask[(ignore != 0) & (mask == 0)] = IGNORE_VALUE
    return mask


def scoremap_path(root: str | Path, image_id: str, class_index: int | None = None) -> Path:
    """``root/<image_id>.npy``, or ``root/<class>/<image_id>.npy`` for a per-class map."""
    base = Path(root) if class_index is None else Path(root) / str(class_index)
    return base / (image_id + SUFFIX)


def scan_scoremaps(root: str | Path) -> set[str]:
    """Image ids of every ``*.npy`` under ``root`` (POSIX relative path without ``.npy``)."""
    root = Path(root)
    found: set[str] = set()
    for folder, _, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        for name in files:
            if name.endswith(SUFFIX) and len(name) > len(SUFFIX):
                found.add((rel / name[: -len(SUFFIX)]).as_posix())
    return found


def load_scoremap(path: str | Path, image_id: str, resolution: int) -> np.ndarray:
    """Read and check one map: 2-D ``(R, R)`` float32/float64, finite, in ``[0, 1]``; returns float64."""
    where = f"score map of image {image_id!r} ({path})"
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{where} does not exist") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{where} cannot be read as a .npy array: {exc}") from None
    if not isinstance(array, np.ndarray):
        if hasattr(array, "close"):
            array.close()
        raise DataError(f"{where} is not a single .npy array")
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):  # either byte order
        raise DataError(f"{where} has dtype {array.dtype}; expected float32 or float64")
    if array.shape != (resolution, resolution):
        raise DataError(f"{where} has shape {array.shape}; expected ({resolution}, {resolution}) "
                        "(see --resolution)")
    if not np.isfinite(array).all():
        raise DataError(f"{where} has NaN or inf values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise DataError(f"{where} has values outside [0, 1] (min {low:.6g}, max {high:.6g}); "
                        "normalise each map to [0, 1] (min-max) first")
    return array.astype(np.float64)


def read_predictions(path: str | Path) -> dict[str, int]:
    """``{image_id: predicted class}`` from ``id,predicted_class`` lines (blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"predictions file {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"predictions file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"predictions file {path}: not UTF-8 text") from None
    out: dict[str, int] = {}
    first: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        parts = line.rsplit(",", 1)
        if len(parts) != 2 or not parts[0].strip():
            raise DataError(f"{where}: expected id,predicted_class")
        image_id, value = parts[0].strip(), parts[1].strip()
        try:
            number = float(value)
            if not number.is_integer() or number < 0:
                raise ValueError(value)
        except ValueError:
            raise DataError(f"{where}: predicted class {value!r} is not a non-negative integer") from None
        if image_id in out:
            raise DataError(f"{where}: duplicate prediction for image {image_id!r} (first at line {first[image_id]})")
        out[image_id] = int(number)
        first[image_id] = lineno
    return out


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Match:
    present: list[Any]
    missing: list[Any]
    extra: list[str]


def _match(expected: Sequence[Any], available: set[Any], extra: list[str], names: Sequence[str], *,
           root: Path, what: str, allow_missing: bool, log: Any) -> _Match:
    present = [e for e in expected if e in available]
    missing = [e for e in expected if e not in available]
    missing_names = [n for e, n in zip(expected, names, strict=True) if e not in available]
    if (missing or extra) and not allow_missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(expected)} {what} have no map ({format_ids(missing_names)})")
        if extra:
            parts.append(f"{len(extra)} maps have no image in the split ({format_ids(extra)})")
        raise DataError(f"score maps in {root} do not match the ground truth: " + "; ".join(parts)
                        + "; pass --allow-missing to skip missing maps and ignore extra ones")
    if not present:
        raise DataError(f"no score map in {root} matches any of the {len(expected)} {what} "
                        f"(expected e.g. {scoremap_path(root, names[0]) if names else root})")
    if missing or extra:
        log(f"--allow-missing: skipped {len(missing)} of {len(expected)} {what} without a map, "
            f"ignored {len(extra)} extra maps")
    return _Match(present=present, missing=missing, extra=extra)


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _check_options(threshold_step: float, resolution: int, batch_size: int) -> np.ndarray:
    if not (isinstance(resolution, int) and resolution >= 2):
        raise ConfigError(f"--resolution must be an integer >= 2, got {resolution!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if not (isinstance(threshold_step, (int, float)) and 0 < threshold_step < 1):
        raise ConfigError(f"--threshold-step must be in (0, 1), got {threshold_step!r}")
    return cam_thresholds(threshold_step)


def _floats(values: Any) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _scoremap_root(scoremaps: str | Path) -> Path:
    root = Path(scoremaps)
    if not root.is_dir():
        raise DataError(f"score map folder {root} does not exist")
    return root


def _fixed_loc_index(thresholds: np.ndarray, loc_threshold: float, threshold_step: float) -> int:
    index = int(np.argmin(np.abs(thresholds - loc_threshold)))
    if abs(thresholds[index] - loc_threshold) > 1e-9:
        raise ConfigError(f"--loc-threshold {loc_threshold:g} is not one of the CAM thresholds "
                          f"(multiples of --threshold-step {threshold_step:g} in [0, 1))")
    return index


def _top1_outcomes(gt: GroundTruth, predictions: str | Path, image_ids: Sequence[str]) -> tuple[dict[str, bool], int]:
    """``({image_id: predicted == label}, number of predictions for other images)``."""
    if not gt.has_labels:
        raise ConfigError(f"--predictions needs class labels; {gt.describe()} has none (class_labels.txt)")
    predicted = read_predictions(predictions)
    lacking = [i for i in image_ids if i not in predicted]
    if lacking:
        raise DataError(f"predictions file {predictions} has no line for {len(lacking)} of the {len(image_ids)} "
                        f"evaluated images: {format_ids(lacking)}")
    several = [i for i in image_ids if len(gt.labels(i)) != 1]
    if several:
        raise DataError(f"{gt.describe()}: {len(several)} images have several class labels "
                        f"({format_ids(several)}); Top-1 Loc needs exactly one per image")
    outcomes = {i: predicted[i] == gt.labels(i)[0] for i in image_ids}
    return outcomes, len(set(predicted) - set(image_ids))


def _box_report(boxes: BoxResult, loc_index: int | None, loc_contours: str) -> dict[str, Any]:
    """Headline box metrics plus their ``best_threshold``, ``curves`` and ``contours`` entries."""
    out: dict[str, Any] = {"MaxBoxAcc": boxes.max_box_acc, "MaxBoxAccV2": boxes.max_box_acc_v2}
    best: dict[str, float | None] = {"MaxBoxAcc": boxes.best_threshold(50, "largest")}
    curves: dict[str, Any] = {"MaxBoxAcc": boxes.curve(50, "largest").tolist()}
    for iou in boxes.iou_thresholds:
        key = f"MaxBoxAccV2@{iou}"
        out[key] = boxes.max_box_acc_v2_at(iou)
        best[key] = boxes.best_threshold(iou, "all")
        curves[key] = boxes.curve(iou, "all").tolist()
    best["MaxBoxAccV2"] = None  # a mean of per-IoU maxima, each at its own threshold (above)
    selected = "fixed (--loc-threshold)"
    if loc_index is None:
        loc_index = boxes.best_index(LOC_IOU, loc_contours)
        selected = "max GT-known Loc on this split"
    loc_t = float(boxes.thresholds[loc_index])
    contours = {"MaxBoxAcc": "largest", "MaxBoxAccV2": "all", "GTKnownLoc": loc_contours}
    out["GTKnownLoc"] = boxes.gt_known_loc(loc_index, iou=LOC_IOU, contours=loc_contours)
    best["GTKnownLoc"] = loc_t
    curves["GTKnownLoc"] = boxes.curve(LOC_IOU, loc_contours).tolist()
    if boxes.has_top1:
        out["Top1Loc"] = boxes.top1_loc(loc_index, iou=LOC_IOU, contours=loc_contours)
        best["Top1Loc"] = loc_t
        curves["Top1Loc"] = boxes.curve(LOC_IOU, loc_contours, top1=True).tolist()
        contours["Top1Loc"] = loc_contours
    out["loc_threshold"] = {"threshold": loc_t, "index": int(loc_index), "selected": selected,
                            "iou": LOC_IOU, "contours": loc_contours}
    return {**out, "best_threshold": best, "curves": curves, "contours": contours}


def _mask_report(masks: MaskResult) -> dict[str, Any]:
    """PxAP and PIoU plus their ``best_threshold`` and ``curves`` entries."""
    return {
        "PxAP": masks.pxap,
        "PIoU": masks.piou,
        # PxAP is an area under the precision-recall curve: no single threshold.
        "best_threshold": {"PxAP": None, "PIoU": masks.piou_threshold},
        "curves": {"PxAP": {"precision": _floats(masks.precision), "recall": _floats(masks.recall)},
                   "PIoU": _floats(np.asarray(masks.iou) * 100)},
    }


def evaluate_scoremaps(
    scoremaps: str | Path,
    ground_truth: GroundTruth,
    *,
    predictions: str | Path | None = None,
    threshold_step: float = 0.01,
    resolution: int = EVAL_RESOLUTION,
    loc_threshold: float | None = None,
    loc_contours: str = "largest",
    allow_missing: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Box and/or mask metrics of the maps in ``scoremaps`` (one per image); a JSON-ready dict.

    Keys (percent): ``MaxBoxAcc``, ``MaxBoxAccV2``, ``MaxBoxAccV2@{30,50,70}``,
    ``GTKnownLoc`` (boxes), ``Top1Loc`` (with ``predictions``), ``PxAP``,
    ``PIoU`` (masks); ``best_threshold`` and ``curves`` per metric,
    ``loc_threshold`` (value, index and how it was chosen), and the options:
    ``threshold_step``, ``contours``, ``iou_convention``, ``resolution``,
    ``n_images``, ``n_missing``, ``n_extra``, ``ground_truth``, ``source``,
    ``scoremaps`` (and ``n_unused_predictions`` with ``predictions``).
    """
    thresholds = _check_options(threshold_step, resolution, batch_size)
    if loc_contours not in ("largest", "all"):
        raise ConfigError(f"--loc-contours must be largest or all, got {loc_contours!r}")
    gt = ground_truth
    if not (gt.has_boxes or gt.has_masks):
        raise DataError(f"{gt.describe()} has neither boxes nor masks to evaluate")
    if not gt.has_boxes and (predictions is not None or loc_threshold is not None):
        raise ConfigError("--predictions and --loc-threshold are for Top-1 / GT-known Loc, which needs "
                          "ground-truth boxes; this split has masks only")
    loc_index = None if loc_threshold is None else _fixed_loc_index(thresholds, loc_threshold, threshold_step)
    root = _scoremap_root(scoremaps)
    progress = progress or NullProgress()

    ids = list(gt.image_ids)
    available = scan_scoremaps(root)
    match = _match(ids, available, sorted(available - set(ids)), ids, root=root, what="images",
                   allow_missing=allow_missing, log=progress.log)
    present: list[str] = match.present
    cls_correct, n_unused_predictions = (None, None) if predictions is None else \
        _top1_outcomes(gt, predictions, present)

    box_acc = BoxAccumulator(thresholds) if gt.has_boxes else None
    mask_acc = MaskAccumulator(thresholds) if gt.has_masks else None
    with progress.phase("score maps", len(present)) as advance:
        for batch in _batches(present, batch_size):
            maps = np.stack([load_scoremap(scoremap_path(root, i), i, resolution) for i in batch])
            if box_acc is not None:
                flags = None if cls_correct is None else np.array([cls_correct[i] for i in batch], dtype=bool)
                box_acc.update(maps, [gt.boxes(i, resolution) for i in batch], list(batch), cls_correct=flags)
            if mask_acc is not None:
                mask_acc.update(maps, np.stack([gt.mask(i, resolution) for i in batch]), list(batch))
            advance(len(batch))

    report: dict[str, Any] = {"best_threshold": {}, "curves": {"thresholds": thresholds.tolist()}, "contours": {}}
    for part in ((_box_report(box_acc.compute(), loc_index, loc_contours) if box_acc is not None else {}),
                 (_mask_report(mask_acc.compute()) if mask_acc is not None else {})):
        for key, value in part.items():
            if key in ("best_threshold", "curves", "contours"):
                report[key].update(value)
            else:
                report[key] = value
    report.update({
        "threshold_step": float(threshold_step),
        "iou_convention": "+1 (inclusive pixels)",
        "resolution": resolution,
        "n_images": len(present),
        "n_missing": len(match.missing),
        "n_extra": len(match.extra),
        "ground_truth": [k for k, v in (("boxes", gt.has_boxes), ("masks", gt.has_masks)) if v],
        "source": gt.source,
        "scoremaps": str(root),
    })
    if n_unused_predictions is not None:
        report["n_unused_predictions"] = n_unused_predictions
    return report


def _scan_class_folders(root: Path) -> dict[int, set[str]]:
    """``{class: image ids}`` of ``root/<class>/**/*.npy``; other entries of ``root`` are errors."""
    found: dict[int, set[str]] = {}
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        if not entry.name.isdigit():
            raise DataError(f"multi-class score maps live in {root}/<class>/, with <class> the 0-based class "
                            f"index; {entry} is not a class index")
        found[int(entry.name)] = scan_scoremaps(entry)
    return found


def evaluate_multiclass_scoremaps(
    scoremaps: str | Path,
    ground_truth: GroundTruth,
    *,
    threshold_step: float = 0.01,
    resolution: int = EVAL_RESOLUTION,
    allow_missing: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """mPxAP of per-class maps ``scoremaps/<class>/<image_id>.npy`` against class-index masks.

    Keys: ``mPxAP`` and ``PxAP_per_class`` (percent, ``None`` for classes not
    present), ``present_classes``, ``class_names`` (manifests), ``curves``
    (per-class precision and recall), ``best_threshold``, and the options:
    ``threshold_step``, ``resolution``, ``n_images``, ``n_pairs``,
    ``n_missing`` (pairs), ``n_extra``, ``n_unused`` (maps of a split image
    for a class outside its label set, not scored), ``n_unlabelled_mask_classes``,
    ``label_set``, ``source``, ``scoremaps``.
    """
    thresholds = _check_options(threshold_step, resolution, batch_size)
    gt = ground_truth
    if not gt.has_masks:
        raise ConfigError(f"--multiclass needs class-index masks; {gt.describe()} has boxes")
    if not gt.has_labels:
        raise ConfigError(f"--multiclass needs image-level labels; {gt.describe()} has no class_labels.txt")
    num_classes = gt.num_classes
    root = _scoremap_root(scoremaps)
    progress = progress or NullProgress()

    ids = list(gt.image_ids)
    id_set = set(ids)
    label_sets: dict[str, tuple[int, ...]] = {}
    with progress.phase("image labels", len(ids)) as advance:
        for image_id in ids:
            label_sets[image_id] = gt.class_labels(image_id)
            advance(1)
    found = _scan_class_folders(root)
    expected = [(i, c) for i in ids for c in label_sets[i]]
    available = {(i, c) for c, found_ids in found.items() for i in found_ids}
    extra = sorted({f"{c}/{i}" for c, found_ids in found.items() for i in found_ids if i not in id_set})
    labelled = set(expected)
    n_unused = sum(1 for pair in available if pair[0] in id_set and pair not in labelled)
    match = _match(expected, available, extra, [f"{c}/{i}" for i, c in expected], root=root,
                   what="labelled (image, class) pairs", allow_missing=allow_missing, log=progress.log)

    acc = MultiClassMaskAccumulator(thresholds, num_classes)
    n_unlabelled = 0
    by_image: dict[str, list[int]] = {}
    for image_id, c in match.present:
        by_image.setdefault(image_id, []).append(c)
    maps: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    classes: list[int] = []
    names: list[str] = []

    def flush() -> None:
        if maps:
            acc.update(np.stack(maps), np.stack(masks), np.array(classes, dtype=np.int64), names)
            for buffer in (maps, masks, classes, names):
                buffer.clear()

    with progress.phase("score maps", len(match.present)) as advance:
        for image_id, image_classes in by_image.items():
            mask = gt.class_mask(image_id, resolution)
            values = np.unique(mask)
            in_mask = {int(v) - 1 for v in values if 1 <= v < IGNORE_VALUE}
            n_unlabelled += len(in_mask - set(label_sets[image_id]))
            for c in image_classes:
                maps.append(load_scoremap(scoremap_path(root, image_id, c), f"{c}/{image_id}", resolution))
                masks.append(mask)
                classes.append(c)
                names.append(f"{c}/{image_id}")
            if len(maps) >= batch_size:
                flush()
            advance(len(image_classes))
        flush()

    result = acc.compute()
    present_classes = [int(c) for c in np.flatnonzero(result.present)]
    class_names = getattr(getattr(gt, "manifest", None), "classes", None)
    report: dict[str, Any] = {
        "mPxAP": result.mpxap,
        "PxAP_per_class": {str(c): (float(result.pxap[c]) if result.present[c] else None)
                           for c in range(num_classes)},
        "present_classes": present_classes,
        "best_threshold": {"mPxAP": None},  # areas under precision-recall curves: no single threshold
        "curves": {
            "thresholds": thresholds.tolist(),
            "precision": {str(c): _floats(result.precision[c]) for c in present_classes},
            "recall": {str(c): _floats(result.recall[c]) for c in present_classes},
        },
        "threshold_step": float(threshold_step),
        "resolution": resolution,
        "n_images": len(by_image),
        "n_pairs": result.pairs,
        "n_missing": len(match.missing),
        "n_extra": len(match.extra),
        "n_unused": n_unused,
        "n_unlabelled_mask_classes": n_unlabelled,
        "label_set": ("class_labels.txt" if isinstance(gt, MetadataGroundTruth)
                      else "manifest label plus the classes in the mask"),
        "source": gt.source,
        "scoremaps": str(root),
    }
    if class_names is not None:
        report["class_names"] = list(class_names)
    return report


def evaluate_cams(
    *,
    scoremaps: str | Path,
    manifest: str | Path | None = None,
    split: str | None = None,
    metadata: str | Path | None = None,
    mask_root: str | Path | None = None,
    predictions: str | Path | None = None,
    multiclass: bool = False,
    threshold_step: float = 0.01,
    resolution: int = EVAL_RESOLUTION,
    loc_threshold: float | None = None,
    loc_contours: str = "largest",
    allow_missing: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Load the ground truth and run :func:`evaluate_scoremaps` or :func:`evaluate_multiclass_scoremaps`."""
    gt = load_ground_truth(manifest=manifest, split=split, metadata=metadata, mask_root=mask_root)
    if multiclass:
        if predictions is not None or loc_threshold is not None:
            raise ConfigError("--predictions and --loc-threshold apply to boxes, not to --multiclass")
        return evaluate_multiclass_scoremaps(scoremaps, gt, threshold_step=threshold_step, resolution=resolution,
                                             allow_missing=allow_missing, batch_size=batch_size, progress=progress)
    return evaluate_scoremaps(scoremaps, gt, predictions=predictions, threshold_step=threshold_step,
                              resolution=resolution, loc_threshold=loc_threshold, loc_contours=loc_contours,
                              allow_missing=allow_missing, batch_size=batch_size, progress=progress)


_HEADLINE = ("MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV2@30", "MaxBoxAccV2@50", "MaxBoxAccV2@70",
             "GTKnownLoc", "Top1Loc", "PxAP", "PIoU", "mPxAP")


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, value %, best threshold)`` rows for a table, headline metrics then per-class PxAP."""
    rows = []
    best = report.get("best_threshold", {})
    for key in _HEADLINE:
        if key in report:
            t = best.get(key)
            rows.append((key, f"{report[key]:.2f}", "-" if t is None else f"{t:.3f}"))
    names = report.get("class_names")
    for c, value in report.get("PxAP_per_class", {}).items():
        if value is not None:
            label = f"PxAP class {c}" + (f" ({names[int(c)]})" if names else "")
            rows.append((label, f"{value:.2f}", "-"))
    return rows


def summary_footer(report: dict[str, Any]) -> str:
    """One line of the options that produced ``report``."""
    parts = [f"images {report['n_images']}", f"missing {report['n_missing']}", f"extra {report['n_extra']}",
             f"resolution {report['resolution']}", f"threshold step {report['threshold_step']:g}"]
    if "n_pairs" in report:
        parts.insert(1, f"(image, class) pairs {report['n_pairs']}")
    loc = report.get("loc_threshold")
    if loc:
        parts.append(f"Loc at threshold {loc['threshold']:.3f} ({loc['selected']}; IoU {loc['iou']}, "
                     f"{loc['contours']} contour)")
    return ", ".join(parts)
