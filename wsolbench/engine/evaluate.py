"""Evaluation of one split as a plain function: logits and CAMs from one forward pass.

For each batch: one forward pass gives the logits and the last feature map; the
CAM of the ground-truth class (GT-known, as the community protocol) is resized
to the evaluation resolution and min-max normalized on the model's device, then
handed to the streaming accumulators on the CPU. Top-1 correctness travels with
the maps so Top-1 Loc comes from the same pass.
"""

from __future__ import annotations

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


@torch.no_grad()
def evaluate(method: WsolMethod, loader: DataLoader, samples: Sequence[Sample], *, split: str,
             num_classes: int, cfg: EvalConfig, device: torch.device, amp: AmpPolicy,
             on_batch: Callable[[int], None] | None = None) -> SplitEvaluation:
    """Classification, box and mask metrics of ``method`` on one split (boxes/masks when annotated)."""
    method.eval()
    start = time.perf_counter()
    thresholds = cam_thresholds(cfg.threshold_step)
    res = cfg.resolution
    has_boxes = all(len(s.boxes) > 0 for s in samples)
    cls_acc = ClassificationAccumulator(num_classes)
    box_acc = BoxAccumulator(thresholds, iou_thresholds=cfg.iou_thresholds) if has_boxes else None
    mask_acc: MaskAccumulator | None = None
    non_blocking = device.type == "cuda"
    for batch in loader:
        x = batch["image"].to(device, non_blocking=non_blocking)
        y = batch["label"].to(device, non_blocking=non_blocking)
        with amp.autocast():
            logits, feats = method.infer(x)
        logits = logits.float()
        probs = torch.softmax(logits, dim=1)
        cls_correct = (logits.argmax(dim=1) == y).cpu().numpy()
        cls_acc.update(probs.cpu().numpy().astype(np.float64), y.cpu().numpy())
        indices = batch["index"].tolist()
        ids = [samples[i].image_id for i in indices]
        if box_acc is not None or "mask" in batch:
            maps = scoremaps_for(feats, method.net.head_weight, y, res, mode=cfg.cam_resize)
            maps_np = maps.cpu().numpy()
            if box_acc is not None:
                boxes = [rescale_boxes(np.asarray(samples[i].boxes, dtype=np.float64).reshape(-1, 4),
                                       (samples[i].width, samples[i].height), (res, res)) for i in indices]
                box_acc.update(maps_np, boxes, ids, cls_correct=cls_correct)
            if "mask" in batch:
                if mask_acc is None:
                    mask_acc = MaskAccumulator(thresholds)
                mask_acc.update(maps_np, batch["mask"].numpy(), ids)
        if on_batch is not None:
            on_batch(len(indices))
    return SplitEvaluation(split=split, classification=cls_acc.compute(),
                           boxes=box_acc.compute() if box_acc is not None else None,
                           masks=mask_acc.compute() if mask_acc is not None else None,
                           seconds=time.perf_counter() - start)
