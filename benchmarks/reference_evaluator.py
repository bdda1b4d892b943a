"""A straightforward evaluator of saved score maps, written the way the community protocol's own code runs it.

The reference side of the end-to-end figures of ``metrics_speed.py``: its own
process, numpy and OpenCV only (no wsolbench import), over the same ``.npy``
files and community metadata folder (``image_ids.txt``, ``image_sizes.txt``,
``localization.txt``) that ``wsolbench evaluate-cams --metadata`` reads.

It follows clovaai/wsolevaluation's ``evaluate_wsol`` (``evaluation.py``) at
224 x 224: boxes rescaled with ``int()``; per map, in a Python loop, the map
read with ``np.load`` and widened to float64, checked, quantised with
``(map * 255).astype(uint8)``; per CAM threshold ``np.arange(0, 1, interval)``,
``cv2.threshold`` at ``int(t * max)``, ``cv2.findContours(RETR_TREE)``, a box
per contour (multi-contour, MaxBoxAccV2) and the +1-pixel IoU with numpy; an
image is correct at IoU delta when its best IoU is >= delta. For masks (PxAP),
each instance and the ignore map read with ``cv2.imread(IMREAD_GRAYSCALE)``,
nearest-resized, > 0.5, instances OR-ed, ignore minus foreground coded 255,
and two ``np.histogram`` calls per map over the thresholds + [1, 2, 3].
Score maps are read one by one (the reference reads them through a torch
DataLoader; leaving torch out makes this side start faster, not slower).

    python benchmarks/reference_evaluator.py --scoremaps maps --metadata metadata/CUB/test \\
        --kind boxes --out counts.json

Writes the counts (boxes: correct images per IoU threshold and CAM threshold;
masks: the two histograms) and the headline metric as JSON.
"""

from __future__ import annotations

import argparse
import json
import os

import cv2
import numpy as np

RESIZE = 224
IOU_THRESHOLDS = (30, 50, 70)


def read_lines(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip()]


def load_map(root: str, image_id: str) -> np.ndarray:
    scoremap = np.load(os.path.join(root, image_id + ".npy")).astype(np.float64)
    if scoremap.ndim != 2 or np.isnan(scoremap).any() or (scoremap > 1).any() or (scoremap < 0).any():
        raise ValueError(f"bad score map for {image_id}")
    return scoremap


def resized_boxes(metadata: str) -> dict[str, list[tuple[int, int, int, int]]]:
    sizes = {}
    for line in read_lines(os.path.join(metadata, "image_sizes.txt")):
        image_id, w, h = line.split(",")
        sizes[image_id] = (float(w), float(h))
    boxes: dict[str, list[tuple[int, int, int, int]]] = {}
    for line in read_lines(os.path.join(metadata, "localization.txt")):
        image_id, x0, y0, x1, y1 = line.split(",")
        w, h = sizes[image_id]
        box = (int(float(x0) * RESIZE / w), int(float(y0) * RESIZE / h),
               int(float(x1) * RESIZE / w), int(float(y1) * RESIZE / h))
        boxes.setdefault(image_id, []).append(box)
    return boxes


def boxes_at_thresholds(scoremap: np.ndarray, thresholds) -> tuple[np.ndarray, list[int]]:
    """Every contour's box at every threshold, stacked, and the number per threshold."""
    height, width = scoremap.shape
    gray = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    stacked, counts = [], []
    for threshold in thresholds:
        _, binary = cv2.threshold(gray, int(threshold * np.max(gray)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            stacked.append([0, 0, 0, 0])
            counts.append(1)
            continue
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            stacked.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        counts.append(len(contours))
    return np.asarray(stacked), counts


def multiple_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoUs, +1-pixel convention, 0 for degenerate unions."""
    a = a[:, None, :]
    b = b[None, :, :]
    inter = (np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
             * np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1))
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    degenerate = union <= 0
    union[degenerate] = 1
    ious = inter / union
    ious[degenerate] = 0
    return ious


def evaluate_boxes(scoremaps: str, metadata: str, thresholds) -> dict:
    image_ids = read_lines(os.path.join(metadata, "image_ids.txt"))
    gt = resized_boxes(metadata)
    correct = np.zeros((len(IOU_THRESHOLDS), len(thresholds)))
    for image_id in image_ids:
        boxes, counts = boxes_at_thresholds(load_map(scoremaps, image_id), thresholds)
        best_per_box = multiple_iou(boxes, np.array(gt[image_id])).max(1)
        best, start = [], 0
        for n in counts:
            best.append(best_per_box[start:start + n].max())
            start += n
        for k, delta in enumerate(IOU_THRESHOLDS):
            correct[k][np.where(np.asarray(best) >= delta / 100)[0]] += 1
    accuracy = correct * 100.0 / len(image_ids)
    return {"n": len(image_ids), "correct": correct.astype(int).tolist(),
            "MaxBoxAccV2": float(np.mean(accuracy.max(axis=1)))}


def load_mask(path: str) -> np.ndarray:
    mask = np.float32(cv2.imread(path, cv2.IMREAD_GRAYSCALE))
    return cv2.resize(mask, (RESIZE, RESIZE), interpolation=cv2.INTER_NEAREST)


def evaluate_masks(scoremaps: str, metadata: str, mask_root: str, thresholds) -> dict:
    image_ids = read_lines(os.path.join(metadata, "image_ids.txt"))
    masks: dict[str, list[str]] = {}
    ignores: dict[str, str] = {}
    for line in read_lines(os.path.join(metadata, "localization.txt")):
        image_id, mask, ignore = line.split(",")
        masks.setdefault(image_id, []).append(mask)
        if ignore:
            ignores[image_id] = ignore
    edges = np.append(thresholds, [1.0, 2.0, 3.0])
    fg_hist = np.zeros(len(edges) - 1)
    bg_hist = np.zeros(len(edges) - 1)
    for image_id in image_ids:
        scoremap = load_map(scoremaps, image_id)
        foreground = np.stack([load_mask(os.path.join(mask_root, m)) > 0.5 for m in masks[image_id]]).any(axis=0)
        ignore = np.zeros_like(foreground)
        if image_id in ignores:
            ignore = (load_mask(os.path.join(mask_root, ignores[image_id])) > 0.5) & ~foreground
        gt = foreground.astype(np.uint8) + 255 * ignore.astype(np.uint8)
        fg_hist += np.histogram(scoremap[gt == 1], bins=edges)[0]
        bg_hist += np.histogram(scoremap[gt == 0], bins=edges)[0]
    tp = fg_hist[::-1].cumsum()
    fp = bg_hist[::-1].cumsum()
    fn = fg_hist.sum() - tp
    nonzero = (tp + fp) != 0
    precision = tp / np.where(nonzero, tp + fp, 1)
    recall = tp / (tp + fn)
    pxap = float((precision[1:] * np.diff(recall))[nonzero[1:]].sum() * 100)
    return {"n": len(image_ids), "fg_hist": fg_hist.astype(int).tolist(), "bg_hist": bg_hist.astype(int).tolist(),
            "PxAP": pxap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scoremaps", required=True)
    parser.add_argument("--metadata", required=True)
    parser.add_argument("--mask-root", default="")
    parser.add_argument("--kind", choices=("boxes", "masks"), required=True)
    parser.add_argument("--interval", type=float, default=0.01, help="cam_curve_interval")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    thresholds = list(np.arange(0, 1, args.interval))
    if args.kind == "boxes":
        result = evaluate_boxes(args.scoremaps, args.metadata, thresholds)
    else:
        result = evaluate_masks(args.scoremaps, args.metadata, args.mask_root, thresholds)
    with open(args.out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
