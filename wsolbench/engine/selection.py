"""Model selection on ``val``, reported on ``test``: the split roles of the community protocol.

The CAM threshold is chosen on ``val`` (the best GT-known Loc at IoU 0.5 with the
configured contour convention, as MaxBoxAcc picks it) and applied unchanged to
``test`` for GT-known Loc and Top-1 Loc. When ``eval.fixed_threshold`` is set
(e.g. 0.15, as many CUB papers use), both are also reported at that threshold.
MaxBoxAcc / MaxBoxAccV2 are, by their definition, the best over thresholds on the
split itself and are reported as such; PxAP has no threshold. Nothing here ever
looks at ``test`` to choose anything.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from wsolbench.config import EvalConfig
from wsolbench.engine.evaluate import SplitEvaluation
from wsolbench.metrics.outcomes import best_iou, gt_known_correct, to_arrays, top1_correct
from wsolbench.structs import LOC_IOU


def select_threshold(val: SplitEvaluation, cfg: EvalConfig) -> dict[str, Any] | None:
    """The CAM threshold chosen on ``val``; None when val has no boxes."""
    if val.boxes is None:
        return None
    index = val.boxes.best_index(LOC_IOU, cfg.loc_contours)
    return {"split": val.split, "index": int(index), "threshold": float(val.boxes.thresholds[index]),
            "criterion": f"GT-known Loc, IoU {LOC_IOU / 100:.1f}, {cfg.loc_contours} contour(s)"}


def split_summary(ev: SplitEvaluation, chosen: dict[str, Any] | None, cfg: EvalConfig) -> dict[str, float]:
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
            out["GT-known Loc"] = b.gt_known_loc(chosen["index"], iou=LOC_IOU, contours=cfg.loc_contours)
            out["Top-1 Loc"] = b.top1_loc(chosen["index"], iou=LOC_IOU, contours=cfg.loc_contours)
            out["threshold"] = chosen["threshold"]
        if cfg.fixed_threshold is not None:
            index = b.index_of(cfg.fixed_threshold)
            tag = f"{cfg.fixed_threshold:g}"
            out[f"GT-known Loc@{tag}"] = b.gt_known_loc(index, iou=LOC_IOU, contours=cfg.loc_contours)
            out[f"Top-1 Loc@{tag}"] = b.top1_loc(index, iou=LOC_IOU, contours=cfg.loc_contours)
    if ev.masks is not None:
        out["PxAP"] = ev.masks.pxap
        out["PIoU"] = ev.masks.piou
    if ev.multilabel is not None:
        out["mAP"] = ev.multilabel.map
    if ev.class_masks is not None:
        out["mPxAP"] = ev.class_masks.mpxap
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def split_details(ev: SplitEvaluation) -> dict[str, Any]:
    """Everything the accumulators computed for one split, curves included (JSON-ready)."""
    return {
        "classification": ev.classification.to_dict(),
        "boxes": ev.boxes.to_dict() if ev.boxes is not None else None,
        "masks": ev.masks.to_dict() if ev.masks is not None else None,
        **({"multilabel": ev.multilabel.to_dict()} if ev.multilabel is not None else {}),
        **({"class_masks": ev.class_masks.to_dict()} if ev.class_masks is not None else {}),
        "seconds": ev.seconds,
    }


def evaluation_block(val: SplitEvaluation | None, test: SplitEvaluation | None, cfg: EvalConfig) -> dict[str, Any]:
    """A record's selection, val and test sections: threshold chosen on val, applied to test.

    ``selection.conventions`` states the evaluation options papers disagree on.
    """
    chosen = select_threshold(val, cfg) if val is not None else None
    cam = next((ev.cam for ev in (val, test) if ev is not None and ev.cam is not None), None)
    conventions = {"threshold_step": cfg.threshold_step, "loc_contours": cfg.loc_contours,
                   "loc_iou": LOC_IOU, "fixed_threshold": cfg.fixed_threshold,
                   "maxboxacc_v2_contours": "all", "resolution": cfg.resolution, "cam_resize": cfg.cam_resize,
                   "cam": cfg.cam, "cam_stage": cam.get("target_stage") if cam else cfg.cam_stage,
                   "cam_extractor": cam}
    block: dict[str, Any] = {"selection": {"checkpoint": "last", "threshold": chosen, "conventions": conventions}}
    for ev in (val, test):
        if ev is not None:
            block[ev.split] = {"summary": split_summary(ev, chosen, cfg), **split_details(ev)}
    return block


def val_score(ev: SplitEvaluation, cfg: EvalConfig) -> float:
    """The best-on-val criterion: GT-known Loc at val's best threshold (MaxBoxAcc with the configured
    contours), else mPxAP (multi-label), else PxAP, else top-1."""
    if ev.boxes is not None:
        return float(ev.boxes.curve(iou=LOC_IOU, contours=cfg.loc_contours).max())
    if ev.class_masks is not None:
        return float(ev.class_masks.mpxap)
    if ev.masks is not None:
        return float(ev.masks.pxap)
    return float(ev.classification.top1)


def val_score_name(ev: SplitEvaluation, cfg: EvalConfig) -> str:
    """What :func:`val_score` measures on ``ev``, as a metric key of the table (percent)."""
    if ev.boxes is not None:
        return "MaxBoxAcc" if cfg.loc_contours == "largest" else "MaxBoxAcc (all contours)"
    if ev.class_masks is not None:
        return "mPxAP"
    return "PxAP" if ev.masks is not None else "top1"


def outcome_arrays(ev: SplitEvaluation, chosen: dict[str, Any] | None, cfg: EvalConfig) -> dict[str, np.ndarray]:
    """A split's per-image outcomes as flat arrays (the ``outcomes-<split>.npz`` beside a record).

    The accumulators' rows (:func:`wsolbench.metrics.outcomes.to_arrays`: ``classification.*``,
    ``boxes.*`` with every image's best IoU at every CAM threshold, ``masks.*`` with every image's
    PxAP histograms), and, at the CAM threshold chosen on val with the configured contours
    (``loc.*``): ``loc.threshold_index`` (), ``loc.iou_thresholds`` (n,), ``loc.gt_known`` and
    ``loc.top1`` bool (N, n) correct at each IoU threshold, ``loc.iou`` (N,) the image's best IoU at that
    threshold and ``loc.max_iou`` (N,) its best over all thresholds. Rows are in evaluation order and
    keyed by ``*.image_ids``.
    """
    if ev.outcomes is None:
        raise ValueError(f"split {ev.split} was evaluated without per-image outcomes")
    arrays: dict[str, np.ndarray] = {}
    for outcomes in ev.outcomes.values():
        if isinstance(outcomes, dict):  # already flat arrays (multi-label scores)
            arrays.update(outcomes)
        elif outcomes is not None:
            arrays.update(to_arrays(outcomes))
    boxes = ev.outcomes.get("boxes")
    if boxes is not None and chosen is not None:
        index, contours = chosen["index"], cfg.loc_contours
        arrays["loc.threshold_index"] = np.asarray(index, dtype=np.int64)
        arrays["loc.iou_thresholds"] = np.asarray(boxes.iou_thresholds, dtype=np.int64)
        arrays["loc.gt_known"] = np.stack([gt_known_correct(boxes.ious, index, iou, contours)
                                           for iou in boxes.iou_thresholds], axis=1)
        if boxes.cls_correct is not None:
            arrays["loc.top1"] = np.stack([top1_correct(boxes.ious, boxes.cls_correct, index, iou, contours)
                                           for iou in boxes.iou_thresholds], axis=1)
        arrays["loc.iou"] = best_iou(boxes.ious, index, contours)
        arrays["loc.max_iou"] = best_iou(boxes.ious, None, contours)
    return arrays
