"""Model selection on ``val``, reported on ``test``: the split roles of the community protocol.

The CAM threshold is chosen on ``val`` (the best GT-known Loc at IoU 0.5, largest
contour, as MaxBoxAcc picks it) and applied unchanged to ``test`` for GT-known
Loc and Top-1 Loc. MaxBoxAcc / MaxBoxAccV2 are, by their definition, the best
over thresholds on the split itself and are reported as such; PxAP has no
threshold. Nothing here ever looks at ``test`` to choose anything.
"""

from __future__ import annotations

import math
from typing import Any

from wsolbench.engine.evaluate import SplitEvaluation

#: Top-1 Loc / GT-known Loc use one box per image: the largest contour, IoU >= 0.5.
LOC_IOU = 50
LOC_CONTOURS = "largest"


def select_threshold(val: SplitEvaluation) -> dict[str, Any] | None:
    """The CAM threshold chosen on ``val``; None when val has no boxes."""
    if val.boxes is None:
        return None
    index = val.boxes.best_index(LOC_IOU, LOC_CONTOURS)
    return {"split": val.split, "index": int(index), "threshold": float(val.boxes.thresholds[index]),
            "criterion": f"GT-known Loc, IoU {LOC_IOU / 100:.1f}, {LOC_CONTOURS} contour"}


def split_summary(ev: SplitEvaluation, chosen: dict[str, Any] | None) -> dict[str, float]:
    """Flat headline numbers (percent, entropy in nats) of one split at the chosen threshold."""
    cls = ev.classification
    out: dict[str, float] = {"top1": cls.top1, "entropy": cls.mean_entropy,
                             "entropy_norm": cls.mean_normalized_entropy, "images": float(cls.count)}
    if ev.boxes is not None:
        b = ev.boxes
        out["MaxBoxAcc"] = b.max_box_acc
        out["MaxBoxAccV2"] = b.max_box_acc_v2
        for iou in b.iou_thresholds:
            out[f"MaxBoxAccV2@{iou}"] = b.max_box_acc_v2_at(iou)
        if chosen is not None:
            out["GT-known Loc"] = b.gt_known_loc(chosen["index"], iou=LOC_IOU, contours=LOC_CONTOURS)
            out["Top-1 Loc"] = b.top1_loc(chosen["index"], iou=LOC_IOU, contours=LOC_CONTOURS)
            out["threshold"] = chosen["threshold"]
    if ev.masks is not None:
        out["PxAP"] = ev.masks.pxap
        out["PIoU"] = ev.masks.piou
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def split_details(ev: SplitEvaluation) -> dict[str, Any]:
    """Everything the accumulators computed for one split, curves included (JSON-ready)."""
    return {
        "classification": ev.classification.to_dict(),
        "boxes": ev.boxes.to_dict() if ev.boxes is not None else None,
        "masks": ev.masks.to_dict() if ev.masks is not None else None,
        "seconds": ev.seconds,
    }
