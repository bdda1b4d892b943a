"""The built-in "digits" dataset: real handwriting in clutter, with exact masks and boxes.

The source is scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``:
1797 8 x 8 images, intensities 0..16, the UCI "optdigits" test set; it ships inside
scikit-learn, nothing is downloaded). Classes are the digits ``0..K-1``. Each ``S x S`` RGB
image is drawn in layers (back to front):

1. background: a dark flat colour U(0.05, 0.45)^3 plus low-frequency noise (a 6 x 6
   Gaussian field, bicubic-upsampled, amplitude 0.10 per channel);
2. clutter: ``U{clutter}`` strokes, each a line segment (length 10-30 % of S) or an arc
   (radius 5-14 % of S, 60-270 degrees), 2-3 px thick at S = 64, in a random colour
   U(0, 1)^3, under the digit so it is never hidden;
3. the digit: its 8 x 8 grid, padded with one zero pixel on each side, upscaled (bicubic)
   so the grid's side is ``U(digit_size) * S`` px (30-40 px at S = 64), intensity clipped
   to [0, 1] and used as the alpha of a bright flat colour U(0.6, 1)^3, at a random
   position with the whole padded patch inside the image;
4. pixel noise N(0, 0.03) over everything, then 8-bit quantization.

Ground truth: the mask is the upscaled digit intensity ``> mask_threshold`` (0.3: about
where the blended digit is brighter than the background midway between the two colours);
the box is the tight box of the mask in inclusive pixels (as the shapes set). The one-pixel
zero padding keeps every mask at least two pixels off the image border.

Split: the 1797 source digits are divided once and for all (a fixed seed, not the data
seed, stratified by class) into disjoint pools: 15 % of each class's digits for val, 15 %
for test, the rest for train (:func:`source_pools`). Image ``i`` takes a uniformly random
digit of its class from its split's pool, so no val or test image shows a digit seen in
train, and val and test share none either. The sklearn index of each image's source digit
is kept in ``sources.json`` beside the manifest (:func:`source_indices`).

Determinism: as the shapes set (:mod:`wsolbench.data.builtin`), image ``i`` of split ``s``
is drawn from its own generator, ``SeedSequence(seed, spawn_key=(crc32(s), 0, i))``, with
labels in balanced blocks of K, so image ``i`` is the same whatever the split sizes are.
Inside an image the source pick, background, clutter, digit and noise each draw from their
own sub-stream. Design evidence: ``notes/synthetic.md``, section 2.2 (only K = 5 trained on
a short CPU schedule; with it, KL-uniform raised localization over CE).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from wsolbench.config.sections import DigitsConfig
from wsolbench.data import builtin
from wsolbench.data.builtin import SPLITS, smooth_noise, sub_streams
from wsolbench.errors import ConfigError, DataError

#: Bump when the images a config produces change; cached datasets are then rebuilt.
GENERATOR_VERSION = 1
#: Beside the manifest: ``{split: [sklearn index of each image's source digit]}``.
SOURCES_FILE = "sources.json"
#: The seed of the fixed split of the source digits into pools (never the data seed).
POOL_SEED = 20240612
#: Share of each class's source digits in the val and test pools (train keeps the rest).
POOL_FRACTIONS = {"val": 0.15, "test": 0.15}
NUM_SOURCE_DIGITS = 1797

_BG_RANGE = (0.05, 0.45)
_BG_NOISE = 0.10
_DIGIT_RANGE = (0.6, 1.0)
_PIXEL_NOISE = 0.03
_STROKE_LENGTH = (0.10, 0.30)  # line segments, fraction of S
_ARC_RADIUS = (0.05, 0.14)  # arcs, fraction of S
_SUBPIXEL = 4  # fixed-point bits for the OpenCV drawing calls
_LAYERS = 5  # source pick, background, clutter, digit, noise


def class_names(num_classes: int) -> tuple[str, ...]:
    """The class names of a K-class digits dataset: ``"0"``, ``"1"``, ..."""
    if not 2 <= num_classes <= 10:
        raise ConfigError(f"digits.num_classes must be in [2, 10], got {num_classes}")
    return tuple(str(d) for d in range(num_classes))


@lru_cache(maxsize=1)
def load_source() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: ``(1797, 8, 8)`` float32 intensities in [0, 1] and ``(1797,)`` int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # a declared dependency; say what is missing rather than a traceback
        raise DataError(f"the digits dataset needs scikit-learn ({exc})") from None
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0)
    targets = np.asarray(bunch.target, dtype=np.int64)
    if images.shape != (NUM_SOURCE_DIGITS, 8, 8):
        raise DataError(f"sklearn.datasets.load_digits returned images of shape {images.shape}, "
                        f"expected ({NUM_SOURCE_DIGITS}, 8, 8)")
    images.setflags(write=False)
    targets.setflags(write=False)
    return images, targets


@lru_cache(maxsize=1)
def source_pools() -> dict[str, dict[int, np.ndarray]]:
    """The fixed split of the source digits: ``{split: {digit: sorted sklearn indices}}``, disjoint.

    For each digit class, a permutation seeded by :data:`POOL_SEED` gives the first
    ``round(0.15 n)`` indices to val, the next ``round(0.15 n)`` to test and the rest to train.
    """
    _, targets = load_source()
    pools: dict[str, dict[int, np.ndarray]] = {s: {} for s in SPLITS}
    for digit in range(10):
        members = np.flatnonzero(targets == digit)
        order = np.random.default_rng(np.random.SeedSequence(POOL_SEED, spawn_key=(digit,))).permutation(members)
        n_val = int(round(POOL_FRACTIONS["val"] * len(members)))
        n_test = int(round(POOL_FRACTIONS["test"] * len(members)))
        parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
        for split, part in parts.items():
            chosen = np.sort(part)
            chosen.setflags(write=False)
            pools[split][digit] = chosen
    return pools


def _line_points(rng: np.random.Generator, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    cx, cy = rng.uniform(0.0, size - 1, 2)
    half = rng.uniform(*_STROKE_LENGTH) * size / 2.0
    angle = rng.uniform(0.0, math.pi)
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    scale = 1 << _SUBPIXEL
    return ((round((cx - dx) * scale), round((cy - dy) * scale)),
            (round((cx + dx) * scale), round((cy + dy) * scale)))


def _draw_clutter(rng: np.random.Generator, image: np.ndarray, cfg: DigitsConfig) -> None:
    """Random line segments and arcs in random colours, drawn straight into the float image."""
    size = cfg.image_size
    lo, hi = cfg.clutter
    scale = 1 << _SUBPIXEL
    for _ in range(int(rng.integers(lo, hi + 1))):
        colour = tuple(float(v) for v in rng.uniform(0.0, 1.0, 3))
        thickness = max(1, int(round(rng.integers(2, 4) * size / 64)))
        if rng.random() < 0.5:
            p0, p1 = _line_points(rng, size)
            cv2.line(image, p0, p1, colour, thickness, cv2.LINE_8, _SUBPIXEL)
        else:
            cx, cy = rng.uniform(0.0, size - 1, 2)
            radius = rng.uniform(*_ARC_RADIUS) * size
            axes = (round(radius * scale), round(radius * rng.uniform(0.6, 1.0) * scale))
            start = rng.uniform(0.0, 360.0)
            sweep = rng.uniform(60.0, 270.0)
            cv2.ellipse(image, (round(cx * scale), round(cy * scale)), axes, rng.uniform(0.0, 180.0),
                        start, start + sweep, colour, thickness, cv2.LINE_8, _SUBPIXEL)


def _render(rng: np.random.Generator, split: str, label: int,
            cfg: DigitsConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One image: float32 (S, S, 3) RGB, bool (S, S) mask, float32 (S, S) digit alpha, the source index."""
    size, k_classes = cfg.image_size, cfg.num_classes
    if not 0 <= label < k_classes:
        raise ValueError(f"label {label} is out of range [0, {k_classes - 1}]")
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    pick_rng, bg_rng, clutter_rng, digit_rng, noise_rng = sub_streams(rng, _LAYERS)
    images, _ = load_source()
    pool = source_pools()[split][label]
    source = int(pool[int(pick_rng.integers(len(pool)))])

    # 1. background
    image = smooth_noise(bg_rng, 6, size, 3) * _BG_NOISE + bg_rng.uniform(*_BG_RANGE, 3).astype(np.float32)

    # 2. clutter strokes, under the digit
    _draw_clutter(clutter_rng, image, cfg)

    # 3. the digit: padded 10 x 10 grid upscaled so that its inner 8 x 8 spans U(digit_size) * S px
    side = digit_rng.uniform(*cfg.digit_size) * size
    colour = digit_rng.uniform(*_DIGIT_RANGE, 3).astype(np.float32)
    patch = min(max(10, int(round(side * 10.0 / 8.0))), size)
    x0, y0 = (int(v) for v in digit_rng.integers(0, size - patch + 1, 2))
    grid = np.pad(images[source], 1)
    alpha_patch = np.clip(cv2.resize(grid, (patch, patch), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    alpha = np.zeros((size, size), np.float32)
    alpha[y0:y0 + patch, x0:x0 + patch] = alpha_patch
    image = image * (1.0 - alpha[:, :, None]) + colour * alpha[:, :, None]
    mask = alpha > np.float32(cfg.mask_threshold)
    if not mask.any():  # every sklearn digit reaches intensity 16, but never return an empty mask
        mask[np.unravel_index(int(np.argmax(alpha)), alpha.shape)] = True

    # 4. pixel noise
    image += noise_rng.standard_normal(image.shape, dtype=np.float32) * _PIXEL_NOISE
    return image, mask, alpha, source


def generate_sample(rng: np.random.Generator, split: str, label: int,
                    cfg: DigitsConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """One image of digit ``label`` from ``split``'s pool: ``(S, S, 3)`` uint8 RGB, ``(S, S)`` uint8 mask in
    {0, 1}, and the sklearn index of the source digit. Deterministic given the generator's state."""
    image, mask, _, source = _render(rng, split, label, cfg)
    pixels = np.clip(image * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return pixels, mask.astype(np.uint8), source


def image_rng(cfg: DigitsConfig, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split`` (independent of the split's size)."""
    return builtin.image_rng(cfg.seed, split, index)


def split_labels(cfg: DigitsConfig, split: str, n: int) -> np.ndarray:
    """Labels of the first ``n`` images of ``split``: balanced blocks of K (class counts differ by at most one)."""
    return builtin.split_labels(cfg.seed, cfg.num_classes, split, n)


def pool_sizes(num_classes: int) -> dict[str, int]:
    """Source digits per split pool over the classes ``0..num_classes-1``."""
    return {split: int(sum(len(pools[d]) for d in range(num_classes))) for split, pools in source_pools().items()}


def source_indices(directory: str | Path) -> dict[str, list[int]]:
    """The sklearn index of each image's source digit, per split, in manifest order (from ``sources.json``)."""
    path = Path(directory) / SOURCES_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return {split: [int(v) for v in values] for split, values in data.items()}


def _spec(cfg: DigitsConfig) -> builtin.GeneratedSet:
    def render(split: str, index: int, label: int) -> tuple[np.ndarray, np.ndarray, int]:
        return generate_sample(image_rng(cfg, split, index), split, label, cfg)

    info = {"generator": "wsolbench.data.digits", "generator_version": GENERATOR_VERSION,
            "source": "sklearn.datasets.load_digits (1797 8x8 handwritten digits, UCI optdigits)",
            "pools": pool_sizes(cfg.num_classes), "pool_seed": POOL_SEED,
            "sources_file": SOURCES_FILE, "mask_threshold": cfg.mask_threshold}
    return builtin.GeneratedSet(kind="digits", config=cfg, version=GENERATOR_VERSION,
                                classes=class_names(cfg.num_classes), render=render,
                                extras_file=SOURCES_FILE, manifest_info=info)


def build_digits(cfg: DigitsConfig, out_dir: str | Path,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate (or reuse) the digits dataset of ``cfg`` under ``out_dir``; return its manifest directory.

    The dataset lives in ``out_dir / f"digits-{stable_hash(to_dict(cfg))}"``: ``images/<split>/``,
    ``masks/{val,test}/`` (0 / 255 PNGs), the manifest (root ``"."``), ``digits.json`` (generator
    version and config) and ``sources.json``. Caching, atomic publication and ``progress`` work as
    for the shapes set (:func:`wsolbench.data.builtin.build_generated`).
    """
    class_names(cfg.num_classes)
    return builtin.build_generated(_spec(cfg), out_dir, progress)
