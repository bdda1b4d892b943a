"""Metrics speed: wsolbench's box and mask evaluation against a straightforward implementation, in one run.

The straightforward side is the protocol as the community's reference code runs
it: per map, in a Python loop, check the map, quantise it, and for each of the
CAM thresholds ``cv2.threshold`` + ``cv2.findContours`` + a box per contour (and
the largest by ``cv2.contourArea``) + IoU with numpy; for PxAP, two
``np.histogram`` calls per map. The wsolbench side is ``BoxAccumulator`` and
``MaskAccumulator`` with their default fast engines (union-find over the 8-bit
levels; one O(n) binning pass), fed batches of maps, with 1 worker and with 2.
Both sides see the same maps, and the run checks that their counts, hence every
curve, are identical.

Workloads, 224 x 224:
    typical: smooth CAMs, a few Gaussian blobs on a low-resolution grid (7 x 7
             or 14 x 14) plus noise, upsampled bicubically, rectified, min-max
             normalised.
    hard:    speckle (sparse random dots) and white noise, thousands of
             components and holes per threshold.

    python benchmarks/metrics_speed.py                  # both workloads (~2-3 min on 2 cores)
    python benchmarks/metrics_speed.py --typical 100 --hard 10   # quicker
    python benchmarks/metrics_speed.py --memory         # 50,000 maps streamed through the accumulators

On CUDA the PxAP histograms of tensors are also timed (``score_histograms_torch``
on batches already on the GPU); without CUDA that line says it was skipped.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import cv2
import numpy as np

from wsolbench.metrics import (
    BoxAccumulator,
    MaskAccumulator,
    cam_thresholds,
    pxap_edges,
)

SIZE = 224
IOU_THRESHOLDS = (30, 50, 70)
BATCH = 64


# ---------------------------------------------------------------- workloads


def typical_maps(rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    """Smooth CAM-like maps: Gaussian blobs on a coarse grid, upsampled, float32 in [0, 1]."""
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        grid = int(rng.choice([7, 14]))
        yy, xx = np.mgrid[0:grid, 0:grid] / (grid - 1)
        low = 0.15 * rng.random((grid, grid))
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.random(2)
            sigma = rng.uniform(0.08, 0.3)
            low += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        up = np.maximum(cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC), 0)
        up -= up.min()
        out[i] = up / up.max()
    return out


def hard_maps(rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    """Speckle (about a third of the pixels lit) and white noise, alternating; float32."""
    out = rng.random((n, size, size), dtype=np.float32)
    out[::2] *= rng.random((len(out[::2]), size, size)) < 0.3
    return out


def annotations(rng: np.random.Generator, maps: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """A GT box around the brightest region (plus, sometimes, a random one) and a mask per map."""
    boxes = []
    for m in maps:
        ys, xs = np.nonzero(m > 0.6)
        if len(xs) == 0:
            ys, xs = np.nonzero(m >= m.max())
        own = [xs.min(), ys.min(), xs.max(), ys.max()]
        extra = sorted(rng.integers(0, SIZE, 2)), sorted(rng.integers(0, SIZE, 2))
        more = [[extra[0][0], extra[1][0], extra[0][1], extra[1][1]]] if rng.random() < 0.3 else []
        boxes.append(np.array([own] + more, dtype=np.int64))
    masks = (maps + 0.2 * rng.standard_normal(maps.shape, dtype=np.float32) > 0.5).astype(np.uint8)
    masks[rng.random(maps.shape) < 0.05] = 255
    return boxes, masks


# ---------------------------------------------------------------- the straightforward side


def _check(scoremap: np.ndarray) -> None:
    if np.isnan(scoremap).any() or scoremap.min() < 0 or scoremap.max() > 1:
        raise ValueError("score map must be finite and in [0, 1]")


def _iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    a = boxes_a[:, None, :].astype(np.float64)
    b = boxes_b[None, :, :].astype(np.float64)
    inter_w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def reference_box_counts(maps, gt_boxes, thresholds) -> np.ndarray:
    """Correct-image counts ``[mode (all, largest), iou, threshold]``, per map and threshold."""
    deltas = np.array(IOU_THRESHOLDS) / 100
    counts = np.zeros((2, len(IOU_THRESHOLDS), len(thresholds)), dtype=np.int64)
    for scoremap, gt in zip(maps, gt_boxes):
        scoremap = scoremap.astype(np.float64)
        _check(scoremap)
        height, width = scoremap.shape
        gray = (scoremap * 255).astype(np.uint8)
        for t, threshold in enumerate(thresholds):
            _, binary = cv2.threshold(gray, int(threshold * np.max(gray)), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
            if len(contours) == 0:
                every = largest = np.zeros((1, 4), dtype=np.int64)
            else:
                rects = []
                for contour in contours:
                    x, y, w, h = cv2.boundingRect(contour)
                    rects.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
                every = np.array(rects)
                biggest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
                largest = every[biggest : biggest + 1]
            for mode, boxes in enumerate((every, largest)):
                counts[mode, :, t] += _iou(boxes, gt).max() >= deltas
    return counts


def reference_histograms(maps, masks, thresholds) -> tuple[np.ndarray, np.ndarray]:
    edges = pxap_edges(thresholds)
    fg = np.zeros(len(edges) - 1, dtype=np.int64)
    bg = np.zeros(len(edges) - 1, dtype=np.int64)
    for scoremap, mask in zip(maps, masks):
        scoremap = scoremap.astype(np.float64)
        _check(scoremap)
        fg += np.histogram(scoremap[mask == 1], bins=edges)[0]
        bg += np.histogram(scoremap[mask == 0], bins=edges)[0]
    return fg, bg


# ---------------------------------------------------------------- the wsolbench side


def wsolbench_boxes(maps, gt_boxes, thresholds, workers: int) -> BoxAccumulator:
    acc = BoxAccumulator(thresholds, IOU_THRESHOLDS, workers=workers)
    for lo in range(0, len(maps), BATCH):
        ids = [str(i) for i in range(lo, min(lo + BATCH, len(maps)))]
        acc.update(maps[lo : lo + BATCH], gt_boxes[lo : lo + BATCH], ids)
    return acc


def wsolbench_masks(maps, masks, thresholds, workers: int) -> MaskAccumulator:
    acc = MaskAccumulator(thresholds, workers=workers)
    for lo in range(0, len(maps), BATCH):
        ids = [str(i) for i in range(lo, min(lo + BATCH, len(maps)))]
        acc.update(maps[lo : lo + BATCH], masks[lo : lo + BATCH], ids)
    return acc


def timed(fn, repeats: int = 1):
    """(result, best seconds) over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def compare(name: str, n: int, reference_s: float, sides: list[tuple[str, float, bool]]) -> None:
    ref_rate = n / reference_s
    print(f"  {name:<9} straightforward {ref_rate:10.1f} maps/s")
    for label, seconds, equal in sides:
        rate = n / seconds
        print(f"  {'':<9} {label:<14} {rate:10.1f} maps/s  x{rate / ref_rate:6.1f}   identical: {'yes' if equal else 'NO'}")


def run_workload(name: str, maps: np.ndarray, boxes, masks, thresholds, repeats: int) -> dict:
    n = len(maps)
    print(f"\n{name}: {n} maps of {maps.shape[1]} x {maps.shape[2]}, {len(thresholds)} thresholds")
    ref_counts, ref_box_s = timed(lambda: reference_box_counts(maps, boxes, thresholds))
    sides = []
    ratios = {}
    for workers in (1, 2):
        acc, seconds = timed(lambda w=workers: wsolbench_boxes(maps, boxes, thresholds, w), repeats)
        equal = np.array_equal(acc.correct, ref_counts)
        sides.append((f"wsolbench w={workers}", seconds, equal))
        ratios[f"boxes_w{workers}"] = (ref_box_s / seconds, equal)
    compare("boxes", n, ref_box_s, sides)
    (ref_fg, ref_bg), ref_px_s = timed(lambda: reference_histograms(maps, masks, thresholds), repeats)
    sides = []
    for workers in (1, 2):
        acc, seconds = timed(lambda w=workers: wsolbench_masks(maps, masks, thresholds, w), repeats)
        equal = np.array_equal(acc.fg_hist, ref_fg) and np.array_equal(acc.bg_hist, ref_bg)
        sides.append((f"wsolbench w={workers}", seconds, equal))
        ratios[f"pxap_w{workers}"] = (ref_px_s / seconds, equal)
    cuda = cuda_histograms(maps, masks, thresholds, repeats, (ref_fg, ref_bg))
    if cuda is not None:
        seconds, equal = cuda
        sides.append(("torch CUDA", seconds, equal))
        ratios["pxap_cuda"] = (ref_px_s / seconds, equal)
    compare("PxAP", n, ref_px_s, sides)
    return ratios


def cuda_histograms(maps, masks, thresholds, repeats: int, expected):
    """(seconds, identical to ``expected``) for PxAP of tensors already on the GPU; None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    device = torch.device("cuda")
    batches = [
        (torch.from_numpy(maps[lo : lo + BATCH]).to(device), torch.from_numpy(masks[lo : lo + BATCH]).to(device))
        for lo in range(0, len(maps), BATCH)
    ]

    def run():
        acc = MaskAccumulator(thresholds)
        for m, k in batches:
            acc.update(m, k, [str(j) for j in range(len(m))])
        torch.cuda.synchronize()
        return acc

    run()  # warm-up: CUDA context and kernels
    acc, seconds = timed(run, repeats)
    return seconds, np.array_equal(acc.fg_hist, expected[0]) and np.array_equal(acc.bg_hist, expected[1])


# ---------------------------------------------------------------- memory


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_run(total: int, batch: int, workers: int, thresholds) -> None:
    """Stream ``total`` generated maps through both accumulators; print memory as it goes."""
    print(
        f"\nmemory: {total} typical maps streamed in batches of {batch} through BoxAccumulator "
        f"(fast, {len(thresholds)} thresholds, workers={workers}) and MaskAccumulator (fast); "
        "each batch is generated, evaluated and dropped"
    )
    print("  RSS: resident memory of the process (numpy, numba and OpenCV alike); tracemalloc: Python/numpy heap")
    rng = np.random.default_rng(0)
    boxes_acc = BoxAccumulator(thresholds, IOU_THRESHOLDS, workers=workers)
    masks_acc = MaskAccumulator(thresholds, workers=workers)
    checkpoints = {5_000, 25_000, total}
    tracemalloc.start()
    start = time.perf_counter()
    done = 0
    while done < total:
        n = min(batch, total - done)
        maps = typical_maps(rng, n)
        gt_boxes, masks = annotations(rng, maps)
        ids = [str(i) for i in range(done, done + n)]
        boxes_acc.update(maps, gt_boxes, ids)
        masks_acc.update(maps, masks, ids)
        del maps, gt_boxes, masks
        done += n
        if done in checkpoints:
            current, peak = tracemalloc.get_traced_memory()
            peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  {done:>6} maps  RSS {rss_mib():7.1f} MiB  peak RSS {peak_rss:7.1f} MiB  "
                f"tracemalloc {current / 2**20:6.1f} MiB (peak {peak / 2**20:6.1f})  "
                f"{done / (time.perf_counter() - start):6.0f} maps/s"
            )
    tracemalloc.stop()
    state = sum(a.nbytes for a in (boxes_acc.correct, boxes_acc.correct_top1, masks_acc.fg_hist, masks_acc.bg_hist))
    boxes = boxes_acc.compute()
    masks = masks_acc.compute()
    print(
        f"  accumulator state: {state} bytes, whatever the number of maps; "
        f"MaxBoxAccV2 {boxes.max_box_acc_v2:.2f}, PxAP {masks.pxap:.2f} over {boxes.count} maps"
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--typical", type=int, default=500, help="typical maps (both sides)")
    parser.add_argument("--hard", type=int, default=100, help="hard maps (both sides)")
    parser.add_argument("--threshold-step", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3, help="wsolbench timings: best of this many runs")
    parser.add_argument("--memory", action="store_true", help="stream maps through the accumulators instead")
    parser.add_argument("--memory-maps", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2, help="workers in --memory mode")
    args = parser.parse_args()

    thresholds = cam_thresholds(args.threshold_step)
    print(f"{os.cpu_count()} CPUs; {len(thresholds)} CAM thresholds, IoU {IOU_THRESHOLDS}")
    # Compile (or load from numba's cache) before timing anything.
    warm = typical_maps(np.random.default_rng(1), 2)
    warm_boxes, warm_masks = annotations(np.random.default_rng(1), warm)
    for workers in (1, 2):
        wsolbench_boxes(warm, warm_boxes, thresholds, workers)
        wsolbench_masks(warm, warm_masks, thresholds, workers)

    if args.memory:
        memory_run(args.memory_maps, 250, args.workers, thresholds)
        return

    rng = np.random.default_rng(0)
    results = {}
    for name, maker, n in (("typical", typical_maps, args.typical), ("hard", hard_maps, args.hard)):
        if n <= 0:
            continue
        maps = maker(rng, n)
        boxes, masks = annotations(rng, maps)
        results[name] = run_workload(name, maps, boxes, masks, thresholds, args.repeats)

    if "typical" in results:
        print("\ntargets (typical CAMs, identical numbers):")
        for key, label, target in (("boxes", "MaxBoxAccV2 curves", 10), ("pxap", "PxAP histograms", 20)):
            for workers in (1, 2):
                ratio, equal = results["typical"][f"{key}_w{workers}"]
                met = "met" if ratio >= target and equal else "NOT met"
                print(f"  {label:<19} workers={workers}: x{ratio:5.1f} (target x{target}) {met}")
        if "pxap_cuda" not in results["typical"]:
            print("  torch CUDA PxAP: skipped (no CUDA device)")


if __name__ == "__main__":
    main()
