"""``wsolbench data show``: a PNG grid of manifest images with their boxes and masks drawn.

Each tile is one image, letterboxed into a square: mask foreground tinted green,
ignore pixels (void, trimap boundary, ignore maps) tinted magenta, boxes in red,
and a caption with the class name and image id. An image that cannot be read is
shown as a grey tile saying so (``data verify`` lists such files). The grid is
written atomically. Torch-free (OpenCV and numpy).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from wsolbench._io import atomic_write_bytes
from wsolbench.errors import ConfigError, DataError, OutputError
from wsolbench.imageio import load_eval_mask, read_image
from wsolbench.manifest import Manifest, Sample, load_manifest
from wsolbench.structs import MASK_IGNORE

FOREGROUND_RGB = (0, 210, 0)
IGNORE_RGB = (230, 0, 230)
BOX_RGB = (255, 30, 30)
_ALPHA = 0.45
_CAPTION = 18  # caption strip height in pixels


def _annotated(manifest: Manifest, sample: Sample) -> np.ndarray:
    """The image (RGB uint8) with mask and boxes drawn at its own size."""
    image = read_image(manifest.image_path(sample)).copy()
    if sample.mask is not None:
        try:
            gt = load_eval_mask(manifest, sample, None)
        except DataError:
            gt = None
        if gt is not None and gt.shape == image.shape[:2]:
            for value, colour in ((1, FOREGROUND_RGB), (MASK_IGNORE, IGNORE_RGB)):
                where = gt == value
                image[where] = (image[where] * (1 - _ALPHA) + np.array(colour) * _ALPHA).astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 200))
    for x0, y0, x1, y1 in sample.boxes:
        cv2.rectangle(image, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), BOX_RGB,
                      thickness)
    return image


def _tile(manifest: Manifest, sample: Sample, size: int) -> np.ndarray:
    tile = np.full((size + _CAPTION, size, 3), 32, np.uint8)
    try:
        image = _annotated(manifest, sample)
    except DataError:
        tile[_CAPTION:] = 96
        cv2.putText(tile, "unreadable image", (6, _CAPTION + size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    else:
        height, width = image.shape[:2]
        scale = size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        top, left = _CAPTION + (size - new_h) // 2, (size - new_w) // 2
        tile[top:top + new_h, left:left + new_w] = resized
    name = manifest.classes[sample.label]
    extra = f" +{len(sample.label_set) - 1}" if len(sample.label_set) > 1 else ""
    caption = f"{name}{extra} | {sample.image_id}"
    max_chars = max(8, size // 7)
    if len(caption) > max_chars:
        caption = caption[:max_chars - 3] + "..."
    cv2.putText(tile, caption, (4, _CAPTION - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def render_grid(directory: str | Path, *, out: str | Path, n: int = 16, split: str | None = None, seed: int = 0,
                tile: int = 256) -> Path:
    """Draw ``n`` images of ``split`` (default: val, else the first non-empty split) into a grid PNG.

    The images are a seeded random choice (``seed``), shown in manifest order.
    Returns ``out``.
    """
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if tile < 32:
        raise ConfigError(f"tile size must be >= 32, got {tile}")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out} must be a .png file")
    manifest = load_manifest(directory)
    if split is None:
        candidates = (["val"] if manifest.splits.get("val") else []) + [s for s, v in manifest.splits.items() if v]
        if not candidates:
            raise DataError(f"manifest {manifest.directory} has no images")
        split = candidates[0]
    samples = manifest.split(split)
    if not samples:
        raise DataError(f"manifest {manifest.directory} split {split!r} has no images")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(samples), size=min(n, len(samples)), replace=False).tolist())
    tiles = [_tile(manifest, samples[i], tile) for i in chosen]
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    gap = 4
    th, tw = tiles[0].shape[:2]
    canvas = np.full((rows * th + (rows + 1) * gap, cols * tw + (cols + 1) * gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = gap + r * (th + gap), gap + c * (tw + gap)
        canvas[y:y + th, x:x + tw] = t
    ok, data = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"cannot encode {out}")
    return atomic_write_bytes(out, data.tobytes())
