"""The gallery of a run: score maps of a few test images, kept so a report draws them without a model.

Which images: a fixed sample of ``eval.gallery`` test images (seed :data:`GALLERY_SEED`, drawn from the
sorted image ids, so every run on the same manifest keeps the *same* images and a report can show them
side by side across settings), plus the ``eval.gallery_extremes`` best and worst images of this run by
their IoU at the val-chosen CAM threshold (``loc.iou`` of the per-image outcomes). After the test
evaluation, those images go through the run's CAM extractor once more (one small batch).

``gallery-test.npz`` beside the record (:func:`wsolbench.records.write_gallery`; read back, torch-free, by
:func:`wsolbench.records.load_gallery`) holds, for each kept image (row ``i``):

=================== ========= ================================================================
key                 dtype     shape and meaning
=================== ========= ================================================================
image_ids           str       (n,)
role                str       (n,) ``sample``, ``best`` or ``worst`` (an image in the sample keeps
                              ``sample``)
label, predicted    int64     (n,) ground-truth and top-1 class
maps                uint8     (n, R, R) the score map at the evaluation resolution, quantized to
                              8 bits as the box protocol quantizes it (``floor(255 * s)``)
images              uint8     (bytes,) the images at R x R (what the map is laid over), JPEG-encoded
                              and concatenated; ``image_offsets`` (n + 1,) int64 bounds each one
boxes               float64   (b, 4) ground-truth boxes at R x R, ``(x0, y0, x1, y1)``;
                              ``box_offsets`` (n + 1,) int64 gives each image's rows
masks               uint8     (n, ceil(R * R / 8)) ``np.packbits`` of the foreground mask at R x R
                              (absent when the split has no masks); ``mask_ignore`` likewise for
                              ignored pixels
resolution          int64     () R
threshold           float64   () the val-chosen CAM threshold (NaN when none)
=================== ========= ================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from wsolbench.config import RunConfig
from wsolbench.data.dataset import ManifestDataset, eval_transform
from wsolbench.engine.device import AmpPolicy
from wsolbench.engine.evaluate import is_multi_label, new_extractor
from wsolbench.imageio import read_image
from wsolbench.manifest import Manifest
from wsolbench.metrics import rescale_boxes
from wsolbench.methods import WsolMethod
from wsolbench.cams import to_scoremaps
from wsolbench.structs import MASK_IGNORE, mix_seed

#: The sample's seed: fixed, not the run's, so that every setting keeps the same images.
GALLERY_SEED = 0
JPEG_QUALITY = 90


def sample_positions(image_ids: Sequence[str], n: int, seed: int = GALLERY_SEED) -> list[int]:
    """Positions (into ``image_ids``) of ``n`` images drawn without replacement, a function of the set of
    ids and ``seed`` only (not of their order), in sorted-id order."""
    order = sorted(range(len(image_ids)), key=lambda i: image_ids[i])
    n = min(n, len(order))
    picked = np.random.default_rng(seed).choice(len(order), size=n, replace=False) if n else []
    return [order[i] for i in sorted(int(p) for p in picked)]


def extreme_positions(image_ids: Sequence[str], outcome_ids: Sequence[str], iou: np.ndarray,
                      k: int) -> tuple[list[int], list[int]]:
    """The ``k`` best and ``k`` worst images by ``iou`` (ties: by image id), as positions into ``image_ids``."""
    if k <= 0 or len(iou) == 0:
        return [], []
    where = {image_id: i for i, image_id in enumerate(image_ids)}
    ranked = sorted(range(len(iou)), key=lambda j: (-float(iou[j]), outcome_ids[j]))
    k = min(k, len(ranked) // 2)
    best = [where[outcome_ids[j]] for j in ranked[:k]]
    worst = [where[outcome_ids[j]] for j in ranked[::-1][:k]]
    return best, worst


def _jpeg(image: np.ndarray, resolution: int) -> np.ndarray:
    resized = cv2.resize(image, (resolution, resolution), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(resized, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding of a gallery image failed")
    return buffer.reshape(-1)


def gallery_arrays(method: WsolMethod, manifest: Manifest, cfg: RunConfig, *, device: torch.device,
                   amp: AmpPolicy, outcomes: dict[str, np.ndarray] | None,
                   threshold: float | None) -> dict[str, np.ndarray] | None:
    """The test split's gallery (the module docstring's arrays), or None when ``eval.gallery`` and
    ``eval.gallery_extremes`` are 0 or the split is empty."""
    split = "test"
    dataset = ManifestDataset(manifest, split, eval_transform(cfg.data), mask_resolution=cfg.eval.resolution,
                              multi_label=is_multi_label(cfg, manifest))
    ids = [s.image_id for s in dataset.samples]
    roles: dict[int, str] = {p: "sample" for p in sample_positions(ids, cfg.eval.gallery)}
    if outcomes is not None and "loc.iou" in outcomes:
        best, worst = extreme_positions(ids, [str(i) for i in outcomes["boxes.image_ids"]], outcomes["loc.iou"],
                                        cfg.eval.gallery_extremes)
        for role, positions in (("best", best), ("worst", worst)):
            for p in positions:
                roles.setdefault(p, role)
    if not roles:
        return None
    positions = sorted(roles)
    items = [dataset[p] for p in positions]
    batch = dataset.collate(items)
    res = cfg.eval.resolution
    method.eval()
    x = batch["image"].to(device)
    y = batch["label"].to(device)
    with new_extractor(method, cfg.eval) as extractor:
        if extractor.stochastic:
            torch.manual_seed(mix_seed(cfg.seed, 0x6A11E27))
        with amp.autocast():
            logits, raw = extractor(x, y)
        with torch.no_grad():
            maps = to_scoremaps(raw, res, mode=cfg.eval.cam_resize).cpu().numpy()
            predicted = logits.float().argmax(dim=1).cpu().numpy()
    samples = [dataset.samples[p] for p in positions]
    jpegs = [_jpeg(read_image(manifest.root / s.path), res) for s in samples]
    boxes = [rescale_boxes(np.asarray(s.boxes, dtype=np.float64).reshape(-1, 4), (s.width, s.height), (res, res))
             for s in samples]
    arrays: dict[str, Any] = {
        "image_ids": np.asarray([s.image_id for s in samples]),
        "role": np.asarray([roles[p] for p in positions]),
        "label": batch["label"].numpy().astype(np.int64),
        "predicted": predicted.astype(np.int64),
        "maps": np.floor(np.clip(maps, 0.0, 1.0) * 255).astype(np.uint8),
        "images": np.concatenate(jpegs),
        "image_offsets": np.cumsum([0, *(len(j) for j in jpegs)]).astype(np.int64),
        "boxes": np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        "box_offsets": np.cumsum([0, *(len(b) for b in boxes)]).astype(np.int64),
        "resolution": np.asarray(res, dtype=np.int64),
        "threshold": np.asarray(math.nan if threshold is None else threshold, dtype=np.float64),
    }
    if dataset.has_masks:
        masks = batch["mask"].numpy()
        arrays["masks"] = np.packbits((masks == 1).reshape(len(samples), -1), axis=1)
        arrays["mask_ignore"] = np.packbits((masks == MASK_IGNORE).reshape(len(samples), -1), axis=1)
    return arrays
