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

The two sides take turns, chunk by chunk (``--chunk`` maps), so that a change
in the machine's load hits both alike; each side's time is summed over its
turns. On CUDA the PxAP histograms of tensors are also timed
(``score_histograms_torch`` on batches already on the GPU); without CUDA that
line says it was skipped.
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


def feed_boxes(acc: BoxAccumulator, maps, gt_boxes) -> None:
    for lo in range(0, len(maps), BATCH):
        ids = [str(i) for i in range(lo, min(lo + BATCH, len(maps)))]
        acc.update(maps[lo : lo + BATCH], gt_boxes[lo : lo + BATCH], ids)


def feed_masks(acc: MaskAccumulator, maps, masks) -> None:
    for lo in range(0, len(maps), BATCH):
        ids = [str(i) for i in range(lo, min(lo + BATCH, len(maps)))]
        acc.update(maps[lo : lo + BATCH], masks[lo : lo + BATCH], ids)


class Clock:
    """Seconds per side, summed over the chunks."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def time(self, side: str, fn):
        start = time.perf_counter()
        result = fn()
        self.seconds[side] = self.seconds.get(side, 0.0) + time.perf_counter() - start
        return result


def run_workload(name: str, maps: np.ndarray, boxes, masks, thresholds, chunk: int) -> dict:
    """Both sides, chunk by chunk in turn, so that a change in the machine's load hits both alike."""
    n = len(maps)
    print(f"\n{name}: {n} maps of {maps.shape[1]} x {maps.shape[2]}, {len(thresholds)} thresholds")
    clock = Clock()
    ref_counts = np.zeros((2, len(IOU_THRESHOLDS), len(thresholds)), dtype=np.int64)
    ref_fg = ref_bg = 0
    box_accs = {w: BoxAccumulator(thresholds, IOU_THRESHOLDS, workers=w) for w in (1, 2)}
    mask_accs = {w: MaskAccumulator(thresholds, workers=w) for w in (1, 2)}
    cuda = CudaMasks(thresholds)
    for lo in range(0, n, chunk):
        m, b, k = maps[lo : lo + chunk], boxes[lo : lo + chunk], masks[lo : lo + chunk]
        ref_counts += clock.time("boxes ref", lambda: reference_box_counts(m, b, thresholds))  # noqa: B023
        for w, acc in box_accs.items():
            clock.time(f"boxes w={w}", lambda acc=acc: feed_boxes(acc, m, b))  # noqa: B023
        fg, bg = clock.time("pxap ref", lambda: reference_histograms(m, k, thresholds))  # noqa: B023
        ref_fg, ref_bg = ref_fg + fg, ref_bg + bg
        for w, acc in mask_accs.items():
            clock.time(f"pxap w={w}", lambda acc=acc: feed_masks(acc, m, k))  # noqa: B023
        if cuda.available:
            cuda.stage(m, k)
            clock.time("pxap cuda", cuda.feed)
    ratios = {}
    for key, label in (("boxes", "boxes"), ("pxap", "PxAP")):
        ref_s = clock.seconds[f"{key} ref"]
        print(f"  {label:<9} straightforward {n / ref_s:10.1f} maps/s")
        sides = [f"w={w}" for w in (1, 2)] + (["cuda"] if key == "pxap" and cuda.available else [])
        for side in sides:
            if key == "boxes":
                equal = np.array_equal(box_accs[int(side[2:])].correct, ref_counts)
            else:
                acc = cuda.acc if side == "cuda" else mask_accs[int(side[2:])]
                equal = np.array_equal(acc.fg_hist, ref_fg) and np.array_equal(acc.bg_hist, ref_bg)
            seconds = clock.seconds[f"{key} {side}"]
            ratio = ref_s / seconds
            ratios[f"{key} {side}"] = (ratio, equal)
            who = "torch CUDA" if side == "cuda" else f"wsolbench {side}"
            print(
                f"  {'':<9} {who:<14} {n / seconds:10.1f} maps/s  x{ratio:6.1f}   "
                f"identical: {'yes' if equal else 'NO'}"
            )
    return ratios


class CudaMasks:
    """PxAP of batches already on the GPU (the copies are not timed); inert without CUDA."""

    def __init__(self, thresholds):
        try:
            import torch
        except ImportError:
            torch = None
        self.available = torch is not None and torch.cuda.is_available()
        if not self.available:
            return
        self.torch = torch
        self.acc = MaskAccumulator(thresholds)
        warm = torch.zeros((2, 8, 8), device="cuda")  # CUDA context and kernels, outside the clock
        MaskAccumulator(thresholds).update(warm, torch.ones_like(warm, dtype=torch.uint8), ["a", "b"])
        self.batches = []

    def stage(self, maps, masks) -> None:
        """Copy a chunk to the GPU, in batches."""
        cuda = self.torch.device("cuda")
        self.batches = [
            (self.torch.from_numpy(maps[lo : lo + BATCH]).to(cuda), self.torch.from_numpy(masks[lo : lo + BATCH]).to(cuda))
            for lo in range(0, len(maps), BATCH)
        ]
        self.torch.cuda.synchronize()

    def feed(self) -> None:
        for m, k in self.batches:
            self.acc.update(m, k, [str(i) for i in range(len(m))])
        self.torch.cuda.synchronize()


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
    parser.add_argument("--chunk", type=int, default=50, help="maps per turn (the sides take turns)")
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
        feed_boxes(BoxAccumulator(thresholds, IOU_THRESHOLDS, workers=workers), warm, warm_boxes)
        feed_masks(MaskAccumulator(thresholds, workers=workers), warm, warm_masks)

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
        chunk = args.chunk if name == "typical" else max(1, args.chunk // 5)
        results[name] = run_workload(name, maps, boxes, masks, thresholds, chunk)

    if "typical" in results:
        print("\ntargets (typical CAMs, identical numbers):")
        for key, label, target in (("boxes", "MaxBoxAccV2 curves", 10), ("pxap", "PxAP histograms", 20)):
            for side in ("w=1", "w=2", "cuda"):
                if f"{key} {side}" not in results["typical"]:
                    continue
                ratio, equal = results["typical"][f"{key} {side}"]
                met = "met" if ratio >= target and equal else "NOT met"
                print(f"  {label:<19} {side:<5} x{ratio:5.1f} (target x{target}) {met}")
        if "pxap cuda" not in results["typical"]:
            print("  torch CUDA PxAP: skipped (no CUDA device)")


if __name__ == "__main__":
    main()
