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

    python benchmarks/metrics_speed.py                  # end to end, then in-process (~10 min on 2 cores)
    python benchmarks/metrics_speed.py --quick          # the same with small counts (~1-2 min)
    python benchmarks/metrics_speed.py --no-end-to-end --typical 100 --hard 10   # in-process only
    python benchmarks/metrics_speed.py --memory         # 50,000 maps streamed through the accumulators

End to end (first, unless ``--no-end-to-end``): what a user meets. Score maps
(``.npy``, float32) and community metadata (and, for PxAP, OpenImages-style
instance and ignore PNGs) are written to a temporary folder; then, in turns,
``benchmarks/reference_evaluator.py`` (the straightforward evaluator of the
community protocol, its own process) and ``wsolbench evaluate-cams --metadata``
(its own process, default options) evaluate them, and each side's whole
process is timed: Python start-up, imports, JIT (loaded from numba's cache),
reading the files, the ground truth, the metric. PxAP is timed on a first
evaluation (an empty ground-truth cache: the masks are decoded) and on a
second one (the cache written by an earlier run). Every run's numbers are
checked against the reference's (box counts per IoU and CAM threshold, PxAP).
Memory is the peak resident set of the ``evaluate-cams`` process (boxes) at two
sizes.

The two sides take turns, chunk by chunk (``--chunk`` maps), so that a change
in the machine's load hits both alike; each side's time is summed over its
turns. On CUDA the PxAP histograms of tensors are also timed
(``score_histograms_torch`` on batches already on the GPU); without CUDA that
line says it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

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


# ---------------------------------------------------------------- end to end


REFERENCE = Path(__file__).with_name("reference_evaluator.py")


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))  # no final newline, like the community's files


def write_box_workload(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` typical maps as ``<root>/maps/<image_id>.npy`` and CUB-style metadata (sizes 300-500 px)."""
    rng = np.random.default_rng(seed)
    maps_dir, meta = root / "maps", root / "metadata" / "CUB" / "test"
    ids, sizes, labels, loc = [], [], [], []
    for lo in range(0, n, 250):
        for k, m in enumerate(typical_maps(rng, min(250, n - lo))):
            i = lo + k
            image_id = f"test/{i % 200:03d}.class/image_{i:06d}.jpg"
            w, h = int(rng.integers(300, 500)), int(rng.integers(250, 500))
            ys, xs = np.nonzero(m > 0.6)
            box = [xs.min() * w / SIZE, ys.min() * h / SIZE,
                   (xs.max() + 1) * w / SIZE - 1, (ys.max() + 1) * h / SIZE - 1]
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            ids.append(image_id)
            sizes.append(f"{image_id},{w},{h}")
            labels.append(f"{image_id},{i % 200}")
            loc.append(f"{image_id},{x0},{y0},{x1},{y1}")
            if rng.random() < 0.3:  # a second object
                (a, b), (c, d) = sorted(rng.integers(0, w, 2)), sorted(rng.integers(0, h, 2))
                loc.append(f"{image_id},{a},{c},{b},{d}")
            path = maps_dir / (image_id + ".npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, m)
    for name, lines in (("image_ids.txt", ids), ("image_sizes.txt", sizes), ("class_labels.txt", labels),
                        ("localization.txt", loc)):
        write_lines(meta / name, lines)
    return maps_dir, meta


def write_mask_workload(root: Path, n: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """``n`` typical maps, OpenImages-style metadata and PNG masks at the images' own sizes.

    Images are 500-1024 px wide (aspect 0.6-1); 60% have one instance mask,
    40% two; instances are 1-bit PNGs (70%), RGB (15%) or RGBA (15%); every
    image has an 8-bit ignore map (a random box), as OpenImages30k's do.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    maps_dir, meta, mask_root = root / "maps", root / "metadata" / "OpenImages" / "test", root / "OpenImages"
    ids, labels, loc = [], [], []
    for i, m in enumerate(typical_maps(rng, n)):
        mid = f"0c{i % 100:03d}"
        stem = f"test/{mid}/{i:016x}"
        image_id = stem + ".jpg"
        w = int(rng.integers(500, 1025))
        h = int(w * rng.uniform(0.6, 1.0))
        noise = cv2.resize(rng.standard_normal((14, 14)).astype(np.float32), (w, h))
        fg = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) + 0.15 * noise > 0.55
        left = np.arange(w)[None] < w // 2
        instances = [fg] if rng.random() < 0.6 else [fg & left, fg & ~left]
        (mask_root / "test" / mid).mkdir(parents=True, exist_ok=True)
        for k, inst in enumerate(instances):
            name = f"{stem}_m{mid}_{k:08x}.png"
            kind = rng.random()
            if kind < 0.7:
                Image.fromarray(inst).convert("1").save(mask_root / name)
            else:
                channels = 3 if kind < 0.85 else 4
                Image.fromarray(np.repeat(inst[..., None] * np.uint8(255), channels, axis=2)).save(mask_root / name)
            ignore_name = ""
            if k == 0:
                ignore = np.zeros((h, w), np.uint8)
                (a, b), (c, d) = sorted(rng.integers(0, w, 2)), sorted(rng.integers(0, h, 2))
                ignore[c:d, a:b] = 255
                ignore_name = f"{stem}_ignore.png"
                Image.fromarray(ignore, "L").save(mask_root / ignore_name)
            loc.append(f"{image_id},{name},{ignore_name}")
        ids.append(image_id)
        labels.append(f"{image_id},{i % 100}")
        path = maps_dir / (image_id + ".npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, m)
    for name, lines in (("image_ids.txt", ids), ("image_sizes.txt", []), ("class_labels.txt", labels),
                        ("localization.txt", loc)):
        write_lines(meta / name, lines)
    return maps_dir, meta, mask_root


@dataclass
class Run:
    wall: float  # seconds, the whole process
    cpu: float  # user + system seconds
    out: dict


def run_timed(cmd: list[str], out: Path | None = None, env: dict | None = None) -> Run:
    """Run ``cmd`` to the end: its wall time, its own CPU time (``os.wait4``) and its JSON result (stdout,
    or the file ``out``)."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            command = " ".join(map(str, cmd))
            raise RuntimeError(f"{command} failed ({proc.returncode}): {stderr.read().decode()[-2000:]}")
        result = json.loads(out.read_text() if out is not None else stdout.read())
    return Run(wall=wall, cpu=usage.ru_utime + usage.ru_stime, out=result)


# A child forked from this (large) process starts with its peak RSS: Linux keeps the high-water mark across
# exec. So the memory runs go through a small launcher that starts the command itself and writes the
# command's own peak (KiB) to a file.
_LAUNCH = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, status, usage = os.wait4(p.pid, 0); "
           "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(status))")


def peak_rss_mib(cmd: list[str], scratch: Path) -> float:
    """The peak resident set of ``cmd`` alone, in MiB (through the launcher)."""
    where = scratch / "peak-rss.txt"
    subprocess.run([sys.executable, "-c", _LAUNCH, str(where), *cmd], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return int(where.read_text()) / 1024


def wsolbench_command() -> list[str]:
    script = Path(sys.executable).with_name("wsolbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "wsolbench.cli"]


def box_counts_of(report: dict) -> np.ndarray:
    """Correct-image counts ``(iou, threshold)`` from an evaluate-cams report's MaxBoxAccV2 curves."""
    n = report["n_images"]
    return np.rint(np.array([report["curves"][f"MaxBoxAccV2@{iou}"] for iou in IOU_THRESHOLDS]) * n / 100).astype(int)


def jit_cache_state(cmd: list[str]) -> str:
    """Whether ``cmd`` (an evaluate-cams run) loads its numba kernels from the cache or compiles them."""
    env = dict(os.environ, NUMBA_DEBUG_CACHE="1")
    proc = subprocess.run(cmd, capture_output=True, env=env, text=True)
    loaded = proc.stdout.count("[cache] data loaded") + proc.stderr.count("[cache] data loaded")
    saved = proc.stdout.count("[cache] data saved") + proc.stderr.count("[cache] data saved")
    if saved:
        return f"compiled {saved} kernel(s) (numba's cache was cold or stale; later runs load them)"
    return f"{loaded} kernel(s) loaded from numba's cache, none compiled"


def summarize(times: list[float]) -> float:
    """The median of the runs (robust to a load spike on the shared machine)."""
    return float(np.median(times))


def end_to_end(n_boxes: int, n_masks: int, memory_sizes: tuple[int, int], reps: int) -> dict:
    """The end-to-end figures; returns ``{name: (ratio, identical)}``."""
    python = sys.executable
    wsolbench = wsolbench_command()
    results: dict[str, tuple[float, bool]] = {}
    with tempfile.TemporaryDirectory(prefix="wsolbench-speed-") as tmp:
        tmp = Path(tmp)
        print(f"\nend to end: writing the workloads to {tmp} ...", flush=True)
        start = time.perf_counter()
        box_maps, box_meta = write_box_workload(tmp / "boxes", n_boxes)
        mask_maps, mask_meta, mask_root = write_mask_workload(tmp / "masks", n_masks, seed=1)
        small_maps, small_meta = write_box_workload(tmp / "small", memory_sizes[0], seed=2)
        one_maps, one_meta = write_box_workload(tmp / "one", 1, seed=3)
        print(f"  written in {time.perf_counter() - start:.0f} s; {reps} run(s) per side, in turns; "
              f"median wall time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)

        def ws_boxes(maps, meta) -> list[str]:
            return wsolbench + ["evaluate-cams", "--scoremaps", str(maps), "--metadata", str(meta), "--json",
                                "--no-progress", "--cache-dir", str(tmp / "cache-boxes")]

        def ws_masks(cache: Path) -> list[str]:
            return wsolbench + ["evaluate-cams", "--scoremaps", str(mask_maps), "--metadata", str(mask_meta),
                                "--mask-root", str(mask_root), "--json", "--no-progress", "--cache-dir", str(cache)]

        ref_out = tmp / "ref.json"
        ref_boxes = [python, str(REFERENCE), "--scoremaps", str(box_maps), "--metadata", str(box_meta),
                     "--kind", "boxes", "--out", str(ref_out)]
        ref_masks = [python, str(REFERENCE), "--scoremaps", str(mask_maps), "--metadata", str(mask_meta),
                     "--mask-root", str(mask_root), "--kind", "masks", "--out", str(ref_out)]
        print(f"  JIT: {jit_cache_state(ws_boxes(small_maps, small_meta))}", flush=True)
        # not timed: numba's cache and the OS file cache warm for every side alike
        run_timed(ws_boxes(box_maps, box_meta))
        run_timed(ws_masks(tmp / "cache-second"))

        sides: dict[str, list[Run]] = {k: [] for k in ("ref boxes", "ws boxes", "ref masks", "ws first", "ws second",
                                                      "ref one", "ws one")}
        ref_one = [python, str(REFERENCE), "--scoremaps", str(one_maps), "--metadata", str(one_meta),
                   "--kind", "boxes", "--out", str(ref_out)]
        for rep in range(reps):
            sides["ref boxes"].append(run_timed(ref_boxes, out=ref_out))
            sides["ws boxes"].append(run_timed(ws_boxes(box_maps, box_meta)))
            sides["ref masks"].append(run_timed(ref_masks, out=ref_out))
            sides["ws first"].append(run_timed(ws_masks(tmp / f"cache-first-{rep}")))
            sides["ws second"].append(run_timed(ws_masks(tmp / "cache-second")))
            sides["ref one"].append(run_timed(ref_one, out=ref_out))
            sides["ws one"].append(run_timed(ws_boxes(one_maps, one_meta)))
            print(f"  turn {rep + 1}/{reps} done (load average {os.getloadavg()[0]:.1f})", flush=True)
        peaks = {"small": peak_rss_mib(ws_boxes(small_maps, small_meta), tmp),
                 "large": peak_rss_mib(ws_boxes(box_maps, box_meta), tmp)}

        ref_counts = np.array(sides["ref boxes"][0].out["correct"])
        ref_pxap = sides["ref masks"][0].out["PxAP"]
        rows = [("MaxBoxAccV2", n_boxes, "ref boxes", "ws boxes", "boxes"),
                ("PxAP, first evaluation", n_masks, "ref masks", "ws first", "pxap first"),
                ("PxAP, second evaluation", n_masks, "ref masks", "ws second", "pxap second")]
        print(f"\n  {'':<25} {'maps':>5} {'reference':>14} {'wsolbench CLI':>17} {'ratio':>7} "
              f"{'CPU-time ratio':>15}  identical")
        for label, n, ref_key, ws_key, name in rows:
            ref_wall = summarize([r.wall for r in sides[ref_key]])
            ws_wall = summarize([r.wall for r in sides[ws_key]])
            ref_cpu = summarize([r.cpu for r in sides[ref_key]])
            ws_cpu = summarize([r.cpu for r in sides[ws_key]])
            if name == "boxes":
                same = all(np.array_equal(box_counts_of(r.out), ref_counts) for r in sides[ws_key])
                same = same and all(np.array_equal(r.out["correct"], ref_counts) for r in sides[ref_key])
            else:
                same = all(r.out["PxAP"] == ref_pxap for r in sides[ws_key] + sides[ref_key])
            ratio = ref_wall / ws_wall
            results[name] = (ratio, same)
            print(f"  {label:<25} {n:>5} {n / ref_wall:8.0f} maps/s {n / ws_wall:10.0f} maps/s x{ratio:6.1f} "
                  f"x{ref_cpu / ws_cpu:14.1f}  {'yes' if same else 'NO'}")
        for label, key in (("reference", "ref boxes"), ("wsolbench", "ws boxes")):
            walls = ", ".join(f"{r.wall:.2f}" for r in sides[key])
            print(f"  boxes {label} wall times: {walls} s")
        ref_start = summarize([r.wall for r in sides["ref one"]])
        print(f"  start-up (a split of one image, boxes): reference {ref_start:.2f} s, "
              f"wsolbench {summarize([r.wall for r in sides['ws one']]):.2f} s wall "
              f"({summarize([r.cpu for r in sides['ws one']]):.2f} s CPU: Python, imports, numba's kernels loaded)")
        small, large = peaks["small"], peaks["large"]
        print(f"\n  memory, evaluate-cams boxes (peak RSS): {memory_sizes[0]} maps {small:.0f} MiB, "
              f"{n_boxes} maps {large:.0f} MiB")
        results["memory"] = (large / small, True)
        print(f"  load average at the end {os.getloadavg()[0]:.1f}")
    return results


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
    parser.add_argument("--quick", action="store_true", help="small counts for a fast check")
    parser.add_argument("--end-to-end", action=argparse.BooleanOptionalAction, default=True,
                        help="time the whole evaluate-cams process against the reference process first")
    parser.add_argument("--e2e-boxes", type=int, default=4000, help="maps of the end-to-end box figure")
    parser.add_argument("--e2e-masks", type=int, default=600, help="maps of the end-to-end PxAP figures")
    parser.add_argument("--e2e-small", type=int, default=500, help="maps of the smaller memory figure")
    parser.add_argument("--reps", type=int, default=3, help="end-to-end runs per side")
    args = parser.parse_args()
    if args.quick:
        args.typical, args.hard, args.reps = min(args.typical, 100), min(args.hard, 10), 1
        args.e2e_boxes, args.e2e_masks, args.e2e_small = 400, 80, 100

    thresholds = cam_thresholds(args.threshold_step)
    print(f"{os.cpu_count()} CPUs; {len(thresholds)} CAM thresholds, IoU {IOU_THRESHOLDS}")
    e2e = {}
    if args.end_to_end and not args.memory:
        if abs(args.threshold_step - 0.01) > 1e-12:
            parser.error("the end-to-end figures use the protocol's 100 thresholds (--threshold-step 0.01)")
        e2e = end_to_end(args.e2e_boxes, args.e2e_masks, (args.e2e_small, args.e2e_boxes), args.reps)
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
    if e2e:
        print("\ntargets end to end (whole evaluate-cams process vs the reference process, identical numbers):")
        for key, label, target in (("boxes", "MaxBoxAccV2", 20), ("pxap first", "PxAP first evaluation", 20),
                                   ("pxap second", "PxAP second evaluation", 50)):
            ratio, equal = e2e[key]
            print(f"  {label:<23} x{ratio:5.1f} (target x{target}) {'met' if ratio >= target and equal else 'NOT met'}")
        growth, _ = e2e["memory"]
        print(f"  memory {args.e2e_small} -> {args.e2e_boxes} maps: x{growth:.2f} "
              f"({'flat' if growth < 1.15 else 'NOT flat'})")


if __name__ == "__main__":
    main()
