"""Evaluation of one split as a plain function: logits and localization maps, then the accumulators.

For each batch the configured CAM extractor (``eval.cam``, :data:`wsolbench.cams.CAMS`)
gives the logits and the raw maps of the ground-truth class (GT-known, as the
community protocol); the native ``cam`` reads both from one forward pass
(:meth:`~wsolbench.methods.WsolMethod.localization_maps`). Maps are resized to the
evaluation resolution and min-max normalized on the model's device
(:func:`~wsolbench.cams.to_scoremaps`), then handed to the streaming accumulators
on the CPU. Top-1 correctness travels with the maps so Top-1 Loc comes from the
same pass. With ``per_image`` the accumulators also keep per-image outcomes.
Binary masks come from the ground-truth cache (:mod:`wsolbench.scoremaps.cache`,
keyed by the manifest's content hash, the split and the resolution), so a run
that evaluates val every epoch decodes its mask files once, and later runs and
``evaluate-cams`` not at all; ``WSOLBENCH_CACHE_DIR=off`` leaves them to the loader.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from wsolbench.cams import CAMS, CamExtractor, to_scoremaps
from wsolbench.config import EvalConfig, RunConfig
from wsolbench.data.dataset import ManifestDataset, eval_transform
from wsolbench.engine import distributed as ddp
from wsolbench.engine.device import AmpPolicy
from wsolbench.manifest import Manifest, Sample
from wsolbench.methods import WsolMethod
from wsolbench.metrics import (BoxAccumulator, BoxResult, ClassificationAccumulator, ClassificationResult,
                               MaskAccumulator, MaskResult, cam_thresholds, rescale_boxes)
from wsolbench.metrics.multiclass import MultiClassMaskAccumulator, MultiClassMaskResult
from wsolbench.metrics.multilabel import MultiLabelAccumulator, MultiLabelResult
from wsolbench.progress import Progress
from wsolbench.scoremaps.cache import GroundTruthArrays, GroundTruthCache, manifest_split_arrays
from wsolbench.structs import MASK_IGNORE, mix_seed


@dataclass(frozen=True)
class SplitEvaluation:
    split: str
    classification: ClassificationResult
    boxes: BoxResult | None
    masks: MaskResult | None
    seconds: float
    outcomes: dict[str, Any] | None = None  # per-image outcomes of each accumulator (per_image=True)
    cam: dict[str, Any] | None = None  # the extractor's describe()
    multilabel: MultiLabelResult | None = None  # mAP (multi-label datasets)
    class_masks: MultiClassMaskResult | None = None  # mPxAP (multi-label datasets with class-index masks)


@dataclass
class SplitAccumulators:
    """The streaming state of one split's evaluation; shards merge into the whole (distributed runs)."""

    classification: ClassificationAccumulator
    boxes: BoxAccumulator | None
    masks: MaskAccumulator | None
    per_image: bool = False
    multilabel: MultiLabelAccumulator | None = None
    class_masks: MultiClassMaskAccumulator | None = None

    def _parts(self) -> dict[str, Any]:
        return {"classification": self.classification, "boxes": self.boxes, "masks": self.masks,
                "multilabel": self.multilabel, "class_masks": self.class_masks}

    def merge(self, other: SplitAccumulators) -> SplitAccumulators:
        theirs = other._parts()
        for name, mine in self._parts().items():
            if mine is not None and theirs[name] is not None:
                mine.merge(theirs[name])
        return self

    def compute(self, split: str, seconds: float, cam: dict[str, Any] | None = None) -> SplitEvaluation:
        parts = self._parts()
        outcomes = None
        if self.per_image:
            outcomes = {name: acc.outcomes() for name, acc in parts.items()
                        if acc is not None and name != "multilabel"}
            if self.multilabel is not None:
                outcomes["multilabel"] = self.multilabel.arrays()
        done = {name: acc.compute() if acc is not None else None for name, acc in parts.items()}
        return SplitEvaluation(split=split, seconds=seconds, outcomes=outcomes, cam=cam, **done)


def new_accumulators(samples: Sequence[Sample], *, num_classes: int, cfg: EvalConfig, has_masks: bool,
                     per_image: bool = False, multi_label: bool = False,
                     has_class_masks: bool = False) -> SplitAccumulators:
    """The accumulators a split needs: classification always; boxes when every image has boxes; PxAP when
    every image has a mask; with ``multi_label`` mAP, and mPxAP when the masks are class-index masks."""
    thresholds = cam_thresholds(cfg.threshold_step)
    has_boxes = len(samples) > 0 and all(len(s.boxes) > 0 for s in samples)
    workers = cfg.workers or min(8, os.cpu_count() or 1)
    return SplitAccumulators(
        classification=ClassificationAccumulator(num_classes, per_image=per_image),
        boxes=(BoxAccumulator(thresholds, iou_thresholds=cfg.iou_thresholds, workers=workers, per_image=per_image)
               if has_boxes else None),
        masks=MaskAccumulator(thresholds, workers=workers, per_image=per_image) if has_masks else None,
        per_image=per_image,
        multilabel=MultiLabelAccumulator(num_classes) if multi_label else None,
        class_masks=(MultiClassMaskAccumulator(thresholds, num_classes, per_image=per_image)
                     if multi_label and has_class_masks else None))


def is_multi_label(cfg: RunConfig, manifest: Manifest) -> bool:
    """``data.multi_label``: on, off, or auto (on when some training image has more than one label)."""
    if cfg.data.multi_label != "auto":
        return cfg.data.multi_label == "on"
    train = manifest.splits.get("train", ())
    return any(len(s.label_set) > 1 for s in train)


def new_extractor(method: WsolMethod, cfg: EvalConfig) -> CamExtractor:
    """The ``eval.cam`` extractor on ``method`` (target layer ``eval.cam_stage``, default the last stage)."""
    return CAMS.get(cfg.cam)(method, target_stage=cfg.cam_stage)


def accumulate(method: WsolMethod, loader: DataLoader, samples: Sequence[Sample], acc: SplitAccumulators, *,
               cfg: EvalConfig, device: torch.device, amp: AmpPolicy, extractor: CamExtractor | None = None,
               on_batch: Callable[[int], None] | None = None,
               gt_masks: GroundTruthArrays | None = None) -> SplitAccumulators:
    """Feed every batch of ``loader`` through ``method`` into ``acc``; maps from ``extractor``
    (default: a new ``eval.cam`` extractor, closed at the end). Masks come from ``gt_masks`` (the split's
    cached ground truth at ``cfg.resolution``) when given, else from the batches."""
    method.eval()
    own = extractor is None
    extractor = extractor or new_extractor(method, cfg)
    res = cfg.resolution
    non_blocking = device.type == "cuda"
    try:
        for batch in loader:
            x = batch["image"].to(device, non_blocking=non_blocking)
            y = batch["label"].to(device, non_blocking=non_blocking)
            need_maps = acc.boxes is not None or acc.masks is not None
            with amp.autocast():
                if need_maps:
                    logits, raw = extractor(x, y)
                else:
                    with torch.no_grad():
                        logits = method.classify(x)
            with torch.no_grad():
                logits = logits.float()
                probs = torch.softmax(logits, dim=1)
                cls_correct = (logits.argmax(dim=1) == y).cpu().numpy()
                indices = batch["index"].tolist()
                ids = [samples[i].image_id for i in indices]
                acc.classification.update(probs.cpu().numpy().astype(np.float64), y.cpu().numpy(), ids)
                if need_maps:
                    maps_np = to_scoremaps(raw, res, mode=cfg.cam_resize).cpu().numpy()
                    if acc.boxes is not None:
                        boxes = [rescale_boxes(np.asarray(samples[i].boxes, dtype=np.float64).reshape(-1, 4),
                                               (samples[i].width, samples[i].height), (res, res)) for i in indices]
                        acc.boxes.update(maps_np, boxes, ids, cls_correct=cls_correct)
                    if acc.masks is not None:
                        masks = gt_masks.masks_batch(ids, res) if gt_masks is not None else batch["mask"].numpy()
                        acc.masks.update(maps_np, masks, ids)
                if acc.multilabel is not None:
                    acc.multilabel.update(probs.cpu().numpy(), batch["labels"].numpy(), ids)
            if acc.class_masks is not None:
                _class_pairs(extractor, x, batch, ids, acc.class_masks, cfg, amp)
            if on_batch is not None:
                on_batch(len(indices))
    finally:
        if own:
            extractor.close()
    return acc


def _class_pairs(extractor: CamExtractor, x: torch.Tensor, batch: dict[str, Any], ids: Sequence[str],
                 acc: MultiClassMaskAccumulator, cfg: EvalConfig, amp: AmpPolicy) -> None:
    """mPxAP's (image, class) pairs, as ``evaluate-cams --multiclass`` reads a manifest: each image's label
    plus every class present in its class-index mask (at the evaluation resolution); maps from the extractor."""
    masks = batch["class_mask"].numpy()
    labels = batch["label"].tolist()
    image, cls = [], []
    for i, mask in enumerate(masks):
        values = np.unique(mask)
        present = {int(v) - 1 for v in values if 1 <= v < MASK_IGNORE}
        for c in sorted(present | {labels[i]}):
            image.append(i)
            cls.append(c)
    if not image:
        return
    index = torch.tensor(image, device=x.device)
    with amp.autocast():
        _, raw = extractor(x[index], torch.tensor(cls, device=x.device))
    with torch.no_grad():
        maps = to_scoremaps(raw, cfg.resolution, mode=cfg.cam_resize).cpu().numpy()
    acc.update(maps, masks[image], np.asarray(cls, dtype=np.int64), [ids[i] for i in image])


def _cached_masks(manifest: Manifest, split: str, cfg: RunConfig, multi_label: bool,
                  progress: Progress) -> GroundTruthArrays | None:
    """The split's binary evaluation masks from the ground-truth cache (read and cached on a miss), so that an
    evaluation every epoch decodes the mask files once; None where the data loader reads them instead (no
    masks, class-index masks of multi-label data, caching off, or masks the cache cannot hold)."""
    samples = manifest.split(split)
    if not samples or not all(s.mask for s in samples):
        return None
    if multi_label and all(s.mask_kind == "class_index" for s in samples):
        return None
    return manifest_split_arrays(manifest, split, cfg.eval.resolution, cache=GroundTruthCache.default(),
                                 workers=cfg.eval.workers or min(8, os.cpu_count() or 1), progress=progress)


def evaluate_split(method: WsolMethod, manifest: Manifest, split: str, cfg: RunConfig, *, device: torch.device,
                   amp: AmpPolicy, progress: Progress, info: ddp.DistInfo = ddp.DistInfo(),
                   per_image: bool = False) -> SplitEvaluation:
    """Evaluate ``split`` of ``manifest``: this rank's shard, accumulators merged across ranks."""
    start = time.perf_counter()
    multi_label = is_multi_label(cfg, manifest)
    gt_masks = _cached_masks(manifest, split, cfg, multi_label, progress)
    dataset = ManifestDataset(manifest, split, eval_transform(cfg.data),
                              mask_resolution=None if gt_masks is not None else cfg.eval.resolution,
                              multi_label=multi_label)
    shard = list(range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(dataset, batch_size=cfg.data.eval_batch_size, sampler=shard,
                        num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
                        collate_fn=dataset.collate)
    acc = new_accumulators(dataset.samples, num_classes=manifest.num_classes, cfg=cfg.eval,
                           has_masks=dataset.has_masks or gt_masks is not None, per_image=per_image,
                           multi_label=multi_label,
                           has_class_masks=dataset.has_class_masks)
    with new_extractor(method, cfg.eval) as extractor, \
            progress.phase(f"{cfg.name}: evaluating {split}", len(shard)) as advance:
        if extractor.stochastic:  # noise from torch's global generator: the same maps on every evaluation
            torch.manual_seed(mix_seed(cfg.seed, zlib.crc32(split.encode()), info.rank))
        accumulate(method, loader, dataset.samples, acc, cfg=cfg.eval, device=device, amp=amp,
                   extractor=extractor, on_batch=advance, gt_masks=gt_masks)
        cam = extractor.describe()
    acc = ddp.merge_across_ranks(info, acc)
    return acc.compute(split, time.perf_counter() - start, cam=cam)
