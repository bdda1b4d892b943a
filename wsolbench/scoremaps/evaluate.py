"""The evaluation drivers: a folder of score maps against a ground truth, one JSON-ready report.

:func:`evaluate_scoremaps` (box and/or mask metrics, one map per image),
:func:`evaluate_multiclass_scoremaps` (mPxAP of per-class maps against
class-index masks) and :func:`evaluate_cams`, which loads the ground truth
(:mod:`wsolbench.scoremaps.groundtruth`) and runs one of them. Maps are read
with :mod:`wsolbench.scoremaps.files`; the metrics follow
:mod:`wsolbench.metrics.protocol` (8-bit quantisation, +1 IoU, thresholds
``np.arange(0, 1, step)``). Report keys are the metric table's
(:mod:`wsolbench.metrics.table`), exactly as run records use them.

Speed
-----
The ground truth of a split is read once per resolution, masks decoded in
``workers`` threads, and cached (:mod:`wsolbench.scoremaps.cache`): a later
evaluation of the same ground truth neither parses the metadata nor decodes a
mask. Maps are read a batch ahead of the metric engines
(:func:`~wsolbench.scoremaps.files.iter_scoremap_batches`), the engines split
each batch over ``workers`` threads and check the maps' range in their own
pass, and the numba kernels load in the background meanwhile
(:mod:`wsolbench.metrics.jit`). None of it changes a number.

Missing and extra maps
----------------------
Every image of the split (every labelled (image, class) pair with
``multiclass``) needs its map; a map whose image is not in the split is extra.
Either raises a one-line DataError listing the first few ids and the counts,
unless ``allow_missing``: then missing maps are skipped; extra maps (no image of the
split) are always ignored with a warning; both are counted (``n_missing``, ``n_extra``).

Top-1 Loc
---------
With ``predictions`` (``id,predicted_class`` lines), an image is top-1 correct
when its prediction equals its class label. Top-1 Loc and GT-known Loc are
read at IoU :data:`~wsolbench.structs.LOC_IOU` (50) with ``loc_contours``
(largest by default) at one CAM threshold: ``loc_threshold`` when given (e.g.
0.15, or one chosen on a validation split), else the threshold maximising
GT-known Loc on the evaluated split itself, which is optimistic on a test
split; the report says which (``loc_threshold.selected``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsolbench.data.sources.wsolevaluation import format_ids
from wsolbench.errors import ConfigError, DataError, MetricInputError
from wsolbench.metrics import BoxAccumulator, BoxResult, MaskAccumulator, MaskResult, cam_thresholds
from wsolbench.metrics.jit import start_warm_up
from wsolbench.metrics.multiclass import MultiClassMaskAccumulator
from wsolbench.progress import NullProgress, Progress
from wsolbench.scoremaps.cache import (
    CacheSlot,
    GroundTruthArrays,
    GroundTruthCache,
    available_cpus,
    open_manifest,
    open_metadata,
    resolve_cache,
)
from wsolbench.scoremaps.files import (
    SUFFIX,
    check_scoremap_files,
    iter_scoremap_batches,
    load_scoremap,
    peek_dtype,
    read_predictions,
    scan_class_scoremaps,
    scan_scoremaps,
    scoremap_path,
    scoremap_root,
)
from wsolbench.scoremaps.groundtruth import (
    GroundTruth,
    ManifestGroundTruth,
    MetadataGroundTruth,
    check_ground_truth_options,
    load_ground_truth,
)
from wsolbench.structs import EVAL_RESOLUTION, LOC_IOU, MASK_IGNORE, check_threshold_step

DEFAULT_BATCH_SIZE = 64


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
    if missing and not allow_missing:
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
    if missing:
        log(f"--allow-missing: skipped {len(missing)} of {len(expected)} {what} without a map, "
            f"ignored {len(extra)} extra maps")
    elif extra:  # maps of images outside the split are not an error: counted, named, ignored
        log(f"warning: ignored {len(extra)} score maps in {root} that match no image of the split "
            f"({format_ids(extra)})")
    return _Match(present=present, missing=missing, extra=extra)


def _check_options(threshold_step: float, resolution: int, batch_size: int) -> np.ndarray:
    if not (isinstance(resolution, int) and resolution >= 2):
        raise ConfigError(f"--resolution must be an integer >= 2, got {resolution!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size!r}")
    return cam_thresholds(check_threshold_step(threshold_step, "--threshold-step"))


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return available_cpus()
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    return workers


def _floats(values: Any) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64).tolist()]


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
    best: dict[str, float | None] = {"MaxBoxAcc": boxes.best_threshold(LOC_IOU, "largest")}
    curves: dict[str, Any] = {"MaxBoxAcc": boxes.curve(LOC_IOU, "largest").tolist()}
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
    contours = {"MaxBoxAcc": "largest", "MaxBoxAccV2": "all", "GT-known Loc": loc_contours}
    out["GT-known Loc"] = boxes.gt_known_loc(loc_index, iou=LOC_IOU, contours=loc_contours)
    best["GT-known Loc"] = loc_t
    curves["GT-known Loc"] = boxes.curve(LOC_IOU, loc_contours).tolist()
    if boxes.has_top1:
        out["Top-1 Loc"] = boxes.top1_loc(loc_index, iou=LOC_IOU, contours=loc_contours)
        best["Top-1 Loc"] = loc_t
        curves["Top-1 Loc"] = boxes.curve(LOC_IOU, loc_contours, top1=True).tolist()
        contours["Top-1 Loc"] = loc_contours
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
    workers: int | None = None,
    cache_slot: CacheSlot | None = None,
    fast_start: bool = False,
) -> dict[str, Any]:
    """Box and/or mask metrics of the maps in ``scoremaps`` (one per image); a JSON-ready dict.

    ``workers`` threads (default: every CPU this process may use) decode the
    ground-truth masks and split each batch of maps in the metric engines. The
    ground truth is read into :class:`~wsolbench.scoremaps.cache.GroundTruthArrays`
    once (unless ``ground_truth`` already is one) and saved to ``cache_slot``
    when given. Maps are read a batch ahead of the engines, and the engines'
    kernels are loaded in a background thread meanwhile (:mod:`wsolbench.metrics.jit`;
    ``fast_start``, for a process of its own such as the CLI's, also skips
    numba's BLAS probe).

    Keys (percent): ``MaxBoxAcc``, ``MaxBoxAccV2``, ``MaxBoxAccV2@{30,50,70}``,
    ``GT-known Loc`` (boxes), ``Top-1 Loc`` (with ``predictions``), ``PxAP``,
    ``PIoU`` (masks); ``best_threshold`` and ``curves`` per metric,
    ``loc_threshold`` (value, index and how it was chosen), and the options:
    ``threshold_step``, ``contours``, ``iou_convention``, ``resolution``,
    ``n_images``, ``n_missing``, ``n_extra``, ``ground_truth``, ``source``,
    ``scoremaps`` (and ``n_unused_predictions`` with ``predictions``).
    """
    thresholds = _check_options(threshold_step, resolution, batch_size)
    workers = _check_workers(workers)
    if loc_contours not in ("largest", "all"):
        raise ConfigError(f"--loc-contours must be largest or all, got {loc_contours!r}")
    gt = ground_truth
    if not (gt.has_boxes or gt.has_masks):
        raise DataError(f"{gt.describe()} has neither boxes nor masks to evaluate")
    if not gt.has_boxes and (predictions is not None or loc_threshold is not None):
        raise ConfigError("--predictions and --loc-threshold are for Top-1 / GT-known Loc, which needs "
                          "ground-truth boxes; this split has masks only")
    loc_index = None if loc_threshold is None else _fixed_loc_index(thresholds, loc_threshold, threshold_step)
    root = scoremap_root(scoremaps)
    progress = progress or NullProgress()

    ids = list(gt.image_ids)
    start_warm_up(boxes=gt.has_boxes, masks=gt.has_masks, dtype=peek_dtype(scoremap_path(root, ids[0]), resolution),
                  skip_blas=fast_start)
    available = scan_scoremaps(root)
    match = _match(ids, available, sorted(available - set(ids)), ids, root=root, what="images",
                   allow_missing=allow_missing, log=progress.log)
    present: list[str] = match.present
    cls_correct, n_unused_predictions = (None, None) if predictions is None else \
        _top1_outcomes(gt, predictions, present)

    box_acc = BoxAccumulator(thresholds, workers=workers) if gt.has_boxes else None
    mask_acc = MaskAccumulator(thresholds, workers=workers) if gt.has_masks else None
    arrays = GroundTruthArrays.build(gt, resolution, workers=workers, progress=progress)
    if arrays is not None and arrays is not gt and cache_slot is not None:
        cache_slot.save(arrays, progress)
    source: GroundTruth = gt if arrays is None else arrays
    base = os.fspath(root)
    paths = [os.path.join(base, i + SUFFIX) for i in present]  # scoremap_path, without a Path per map
    with progress.phase("score maps", len(present)) as advance:
        for lo, hi, maps in iter_scoremap_batches(paths, present, resolution, batch_size):
            batch = present[lo:hi]
            try:
                if box_acc is not None:
                    flags = None if cls_correct is None else np.array([cls_correct[i] for i in batch], dtype=bool)
                    box_acc.update(maps, source.boxes_batch(batch, resolution), batch, cls_correct=flags)
                if mask_acc is not None:
                    mask_acc.update(maps, source.masks_batch(batch, resolution), batch)
            except MetricInputError:
                check_scoremap_files(paths[lo:hi], batch, resolution)  # the file's own message, if it is a map
                raise
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
    root = scoremap_root(scoremaps)
    progress = progress or NullProgress()

    ids = list(gt.image_ids)
    id_set = set(ids)
    label_sets: dict[str, tuple[int, ...]] = {}
    with progress.phase("image labels", len(ids)) as advance:
        for image_id in ids:
            label_sets[image_id] = gt.class_labels(image_id)
            advance(1)
    found = scan_class_scoremaps(root)
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
            in_mask = {int(v) - 1 for v in values if 1 <= v < MASK_IGNORE}
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
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    fast_start: bool = False,
) -> dict[str, Any]:
    """Load the ground truth and run :func:`evaluate_scoremaps` or :func:`evaluate_multiclass_scoremaps`.

    The ground truth at ``resolution`` comes from the cache
    (:mod:`wsolbench.scoremaps.cache`; ``cache_dir``, default
    :func:`~wsolbench.scoremaps.cache.default_cache_dir`) when an entry for it
    exists, and is cached once read otherwise; ``use_cache=False`` neither
    reads nor writes it. Multi-class evaluation reads its class-index masks
    from the source every time. ``fast_start``: see :func:`evaluate_scoremaps`.
    """
    if multiclass:
        if predictions is not None or loc_threshold is not None:
            raise ConfigError("--predictions and --loc-threshold apply to boxes, not to --multiclass")
        gt = load_ground_truth(manifest=manifest, split=split, metadata=metadata, mask_root=mask_root)
        return evaluate_multiclass_scoremaps(scoremaps, gt, threshold_step=threshold_step, resolution=resolution,
                                             allow_missing=allow_missing, batch_size=batch_size, progress=progress)
    _check_workers(workers)
    gt, slot = _open_ground_truth(manifest=manifest, split=split, metadata=metadata, mask_root=mask_root,
                                  resolution=resolution, cache=resolve_cache(cache_dir, use_cache))
    return evaluate_scoremaps(scoremaps, gt, predictions=predictions, threshold_step=threshold_step,
                              resolution=resolution, loc_threshold=loc_threshold, loc_contours=loc_contours,
                              allow_missing=allow_missing, batch_size=batch_size, progress=progress,
                              workers=workers, cache_slot=slot, fast_start=fast_start)


def _open_ground_truth(*, manifest: str | Path | None, split: str | None, metadata: str | Path | None,
                       mask_root: str | Path | None, resolution: int,
                       cache: GroundTruthCache | None) -> tuple[GroundTruth, CacheSlot | None]:
    """The ground truth from the cache (no metadata parsed) when it holds it; else from the source, and its slot."""
    check_ground_truth_options(manifest=manifest, split=split, metadata=metadata, mask_root=mask_root)
    if not (isinstance(resolution, int) and resolution >= 2):
        raise ConfigError(f"--resolution must be an integer >= 2, got {resolution!r}")
    if metadata is not None:
        hit, slot = open_metadata(metadata, mask_root, resolution, cache)
        if hit is not None:
            return hit, None
        return load_ground_truth(metadata=metadata, mask_root=mask_root), slot
    gt = load_ground_truth(manifest=manifest, split=split)
    assert isinstance(gt, ManifestGroundTruth)
    hit, slot = open_manifest(gt.manifest, split or "test", resolution, cache)
    return (hit, None) if hit is not None else (gt, slot)
