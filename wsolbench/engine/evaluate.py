"""Evaluation of one split as a plain function: logits and CAMs from one forward pass.

For each batch: one forward pass gives the logits and the last feature map; the
CAM of the ground-truth class (GT-known, as the community protocol) is resized
to the evaluation resolution and min-max normalized on the model's device, then
handed to the streaming accumulators on the CPU. Top-1 correctness travels with
the maps so Top-1 Loc comes from the same pass.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from wsolbench.cams import scoremaps_for
from wsolbench.config import EvalConfig
from wsolbench.engine.device import AmpPolicy
from wsolbench.manifest import Sample
from wsolbench.methods import WsolMethod
from wsolbench.metrics import (BoxAccumulator, BoxResult, ClassificationAccumulator, ClassificationResult,
                               MaskAccumulator, MaskResult, cam_thresholds, rescale_boxes)


@dataclass(frozen=True)
class SplitEvaluation:
    split: str
    classification: ClassificationResult
    boxes: BoxResult | None
    masks: MaskResult | None
    seconds: float


@dataclass
class SplitAccumulators:
    """The streaming state of one split's evaluation; shards merge into the whole (distributed runs)."""

    classification: ClassificationAccumulator
    boxes: BoxAccumulator | None
    masks: MaskAccumulator | None

    def merge(self, other: SplitAccumulators) -> SplitAccumulators:
        self.classification.merge(other.classification)
        if self.boxes is not None and other.boxes is not None:
            self.boxes.merge(other.boxes)
        if self.masks is not None and other.masks is not None:
            self.masks.merge(other.masks)
        return self

    def compute(self, split: str, seconds: float) -> SplitEvaluation:
        return SplitEvaluation(split=split, classification=self.classification.compute(),
                               boxes=self.boxes.compute() if self.boxes is not None else None,
                               masks=self.masks.compute() if self.masks is not None else None,
                               seconds=seconds)


def new_accumulators(samples: Sequence[Sample], *, num_classes: int, cfg: EvalConfig,
                     has_masks: bool) -> SplitAccumulators:
    thresholds = cam_thresholds(cfg.threshold_step)
    has_boxes = len(samples) > 0 and all(len(s.boxes) > 0 for s in samples)
    workers = cfg.workers or min(8, os.cpu_count() or 1)
    return SplitAccumulators(
        classification=ClassificationAccumulator(num_classes),
        boxes=BoxAccumulator(thresholds, iou_thresholds=cfg.iou_thresholds, workers=workers) if has_boxes else None,
        masks=MaskAccumulator(thresholds, workers=workers) if has_masks else None)


@torch.no_grad()
def accumulate(method: WsolMethod, loader: DataLoader, samples: Sequence[Sample], acc: SplitAccumulators, *,
               cfg: EvalConfig, device: torch.device, amp: AmpPolicy,
               on_batch: Callable[[int], None] | None = None) -> SplitAccumulators:
    """Feed every batch of ``loader`` through ``method`` into ``acc`` (one forward pass per batch)."""
    method.eval()
    res = cfg.resolution
    non_blocking = device.type == "cuda"
    for batch in loader:
        x = batch["image"].to(device, non_blocking=non_blocking)
        y = batch["label"].to(device, non_blocking=non_blocking)
        with amp.autocast():
            logits, feats = method.infer(x)
        logits = logits.float()
        probs = torch.softmax(logits, dim=1)
        cls_correct = (logits.argmax(dim=1) == y).cpu().numpy()
        acc.classification.update(probs.cpu().numpy().astype(np.float64), y.cpu().numpy())
        indices = batch["index"].tolist()
        ids = [samples[i].image_id for i in indices]
        if acc.boxes is not None or acc.masks is not None:
            maps = scoremaps_for(feats, method.net.head_weight, y, res, mode=cfg.cam_resize)
            maps_np = maps.cpu().numpy()
            if acc.boxes is not None:
                boxes = [rescale_boxes(np.asarray(samples[i].boxes, dtype=np.float64).reshape(-1, 4),
                                       (samples[i].width, samples[i].height), (res, res)) for i in indices]
                acc.boxes.update(maps_np, boxes, ids, cls_correct=cls_correct)
            if acc.masks is not None:
                acc.masks.update(maps_np, batch["mask"].numpy(), ids)
        if on_batch is not None:
            on_batch(len(indices))
    return acc


def evaluate(method: WsolMethod, loader: DataLoader, samples: Sequence[Sample], *, split: str,
             num_classes: int, cfg: EvalConfig, device: torch.device, amp: AmpPolicy, has_masks: bool,
             on_batch: Callable[[int], None] | None = None) -> SplitEvaluation:
    """Classification, box and mask metrics of ``method`` on one split (boxes/masks when annotated)."""
    start = time.perf_counter()
    acc = new_accumulators(samples, num_classes=num_classes, cfg=cfg, has_masks=has_masks)
    accumulate(method, loader, samples, acc, cfg=cfg, device=device, amp=amp, on_batch=on_batch)
    return acc.compute(split, time.perf_counter() - start)
