"""The built-in "part-on-body" dataset: procedural images with exact masks and boxes.

Each ``S x S`` RGB image holds one object, drawn in layers (back to front):

1. background: a random flat colour U(0.25, 0.6)^3 plus low-frequency noise
   (a 6 x 6 Gaussian field, bicubic-upsampled, amplitude 0.08);
2. context stripes: a sinusoidal grating (5-8 cycles per image, amplitude 0.12)
   whose orientation is ``theta_k = k * pi / K``, with ``k`` the class with
   probability ``rho`` and a uniformly random class otherwise (co-occurring
   background, the "context" shortcut);
3. clutter: 0..``max_distractors`` random ellipses, polygons or blobs
   (radius 5-12 % of S, random colours), under the object;
4. the object body: a random ellipse, polygon or smooth blob of radius
   ``U(body_radius) * S``, fully inside the image. Colour: a shared base
   (0.62, 0.56, 0.50) + N(0, 0.04) jitter + ``body_cue`` x a fixed per-class
   tint (a unit RGB direction), plus low-frequency texture and linear shading.
   The body is the localization target and carries only a weak class cue;
5. the discriminative part: a disk of radius ``part_frac * R`` in the class's
   colour (:data:`PART_COLORS`, scaled by U(0.85, 1)), fully inside the body;
6. pixel noise N(0, 0.02) over everything, then 8-bit quantization.

The ground truth is the whole body (part included) as a pixel mask; its box is
the tight box of the mask in inclusive pixels: ``x0`` = first column,
``y0`` = first row, ``x1`` = last column, ``y1`` = last row, which is what the
protocol's +1 IoU convention expects (box area = ``(x1-x0+1) * (y1-y0+1)``).

Design evidence: ``notes/synthetic.md`` (a prototype on a 2-core CPU): with CE
the CAM peaks on the part and under-covers the body, and the strength of that
effect is steered by ``body_cue``, ``part_frac`` and ``rho``.

Determinism: image ``i`` of split ``s`` is drawn from its own generator, seeded by
``SeedSequence(cfg.seed, spawn_key=(crc32(s), 0, i))``, and the labels come in
balanced blocks of ``K`` (each block a permutation of the classes, seeded by
``spawn_key=(crc32(s), 1, block)``). Image ``i`` is therefore the same whatever
``n_train`` / ``n_val`` / ``n_test`` are. Inside an image, each layer has its own
sub-stream, so changing one knob (say ``rho``) leaves the other layers unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from wsolbench.config import SyntheticConfig
from wsolbench.data import builtin
from wsolbench.data.builtin import SPLITS, smooth_noise, sub_streams, tight_box
from wsolbench.errors import ConfigError

__all__ = ["GENERATOR_VERSION", "INFO_FILE", "PART_COLORS", "SPLITS", "build_synthetic", "class_names",
           "generate_sample", "image_rng", "split_labels", "tight_box"]

#: Bump when the images a config produces change; cached datasets are then rebuilt.
GENERATOR_VERSION = 1
#: Sidecar file in a built dataset: generator version and the config it was made from.
INFO_FILE = "synthetic.json"

#: Class k's part colour (RGB in [0, 1]); the class names are these colour names.
#: The first entries are the most distinct, so small K gets well-separated classes.
PART_COLORS: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("red", (0.92, 0.10, 0.10)),
    ("green", (0.10, 0.78, 0.15)),
    ("blue", (0.15, 0.25, 0.95)),
    ("yellow", (0.95, 0.90, 0.10)),
    ("magenta", (0.90, 0.10, 0.85)),
    ("cyan", (0.10, 0.85, 0.90)),
    ("orange", (1.00, 0.55, 0.00)),
    ("purple", (0.45, 0.10, 0.70)),
    ("white", (0.98, 0.98, 0.98)),
    ("black", (0.05, 0.05, 0.05)),
    ("pink", (1.00, 0.60, 0.75)),
    ("teal", (0.00, 0.45, 0.45)),
)
BODY_BASE = np.array([0.62, 0.56, 0.50], dtype=np.float32)
# Fixed per-class tint directions (unit RGB vectors), independent of K and of the seed.
BODY_TINTS = np.random.default_rng(20240517).standard_normal((len(PART_COLORS), 3)).astype(np.float32)
BODY_TINTS /= np.linalg.norm(BODY_TINTS, axis=1, keepdims=True)

_BG_NOISE = 0.08
_CTX_AMP = 0.12
_BODY_JITTER = 0.04
_TEXTURE_AMP = 0.04
_PIXEL_NOISE = 0.02
_SUBPIXEL = 4  # fixed-point bits for cv2.fillPoly
_LAYERS = 6  # background, context, clutter, body, part, noise


def class_names(num_classes: int) -> tuple[str, ...]:
    """The class names of a K-class synthetic dataset (the part colours)."""
    if not 1 <= num_classes <= len(PART_COLORS):
        raise ConfigError(f"synthetic.num_classes must be in [1, {len(PART_COLORS)}], got {num_classes}")
    return tuple(name for name, _ in PART_COLORS[:num_classes])


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy


def _shape_points(rng: np.random.Generator, cx: float, cy: float, radius: float) -> np.ndarray:
    """Outline (N, 2) of a random ellipse, polygon or blob, within ``radius`` of (cx, cy)."""
    kind = rng.integers(3)
    turn = rng.uniform(0.0, 2.0 * math.pi)
    if kind == 0:  # ellipse
        t = np.linspace(0.0, 2.0 * math.pi, 48, endpoint=False)
        a, b = radius, radius * rng.uniform(0.55, 1.0)
        x, y = a * np.cos(t), b * np.sin(t)
        c, s = math.cos(turn), math.sin(turn)
        x, y = c * x - s * y, s * x + c * y
    elif kind == 1:  # polygon, 5 to 8 jittered vertices
        n = int(rng.integers(5, 9))
        t = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * (2.0 * math.pi / n) + turn
        r = radius * rng.uniform(0.65, 1.0, n)
        x, y = r * np.cos(t), r * np.sin(t)
    else:  # smooth blob: a few low harmonics on the radius
        t = np.linspace(0.0, 2.0 * math.pi, 48, endpoint=False)
        amps = rng.uniform(0.0, 0.25, 3) / np.array([1.0, 1.5, 2.0])
        phases = rng.uniform(0.0, 2.0 * math.pi, 3)
        r = 1.0 + sum(a * np.cos(k * t + p) for k, a, p in zip((2, 3, 4), amps, phases))
        r = radius * r / r.max()
        x, y = r * np.cos(t + turn), r * np.sin(t + turn)
    return np.stack([x + cx, y + cy], axis=1)


def _fixed_point(points: np.ndarray) -> list[np.ndarray]:
    return [np.round(points * (1 << _SUBPIXEL)).astype(np.int32)]


def _render(rng: np.random.Generator, label: int, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one image: float32 (S, S, 3) RGB in [0, 1], body mask and part mask, both bool (S, S)."""
    size, k_classes = cfg.image_size, cfg.num_classes
    if not 0 <= label < k_classes:
        raise ValueError(f"label {label} is out of range [0, {k_classes - 1}]")
    xx, yy = _grid(size)
    bg_rng, ctx_rng, clutter_rng, body_rng, part_rng, noise_rng = sub_streams(rng, _LAYERS)

    # 1. background
    image = smooth_noise(bg_rng, 6, size, 3) * _BG_NOISE + bg_rng.uniform(0.25, 0.6, 3).astype(np.float32)

    # 2. context stripes (all draws made whatever rho is, so rho changes only the orientation)
    follows = ctx_rng.random() < cfg.rho
    other = int(ctx_rng.integers(k_classes))
    freq, phase = ctx_rng.uniform(5.0, 8.0), ctx_rng.uniform(0.0, 2.0 * math.pi)
    theta = (label if follows else other) * math.pi / k_classes
    wave = (math.cos(theta) * xx + math.sin(theta) * yy) * np.float32(2.0 * math.pi * freq / size) + np.float32(phase)
    image += (_CTX_AMP * np.sin(wave))[:, :, None]

    # 3. clutter, drawn straight into the float image
    for _ in range(int(clutter_rng.integers(0, cfg.max_distractors + 1))):
        radius = clutter_rng.uniform(0.05, 0.12) * size
        cx, cy = clutter_rng.uniform(0.0, size - 1, 2)
        colour = tuple(float(v) for v in clutter_rng.uniform(0.0, 1.0, 3))
        cv2.fillPoly(image, _fixed_point(_shape_points(clutter_rng, cx, cy, radius)), colour,
                     lineType=cv2.LINE_8, shift=_SUBPIXEL)

    # 4. body: its outline stays within radius R of the centre, the centre at least R + 1 px from the border
    lo, hi = cfg.body_radius
    radius = min(body_rng.uniform(lo, hi) * size, (size - 3) / 2.0)
    cx, cy = body_rng.uniform(radius + 1.0, size - 2.0 - radius, 2)
    mask_u8 = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask_u8, _fixed_point(_shape_points(body_rng, cx, cy, radius)), 1,
                 lineType=cv2.LINE_8, shift=_SUBPIXEL)
    if not mask_u8.any():  # a sub-pixel sliver cannot happen at S >= 32, but never return an empty mask
        mask_u8[int(round(cy)), int(round(cx))] = 1
    colour = (BODY_BASE + body_rng.normal(0.0, _BODY_JITTER, 3).astype(np.float32)
              + np.float32(cfg.body_cue) * BODY_TINTS[label])
    shade_dir = body_rng.uniform(0.0, 2.0 * math.pi)
    shade_amp = body_rng.uniform(0.02, 0.08)
    shade = ((xx - cx) * math.cos(shade_dir) + (yy - cy) * math.sin(shade_dir)) * np.float32(shade_amp / radius)
    texture = smooth_noise(body_rng, 16, size, 1)[:, :, 0] * _TEXTURE_AMP
    body = colour + (texture + shade)[:, :, None]
    mask = mask_u8.astype(bool)
    image[mask] = body[mask]

    # 5. part: a disk whose centre is farther than its radius from any background pixel
    scale = part_rng.uniform(0.85, 1.0)
    pick = part_rng.random()
    dist = cv2.distanceTransform(mask_u8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    part_radius = cfg.part_frac * radius
    if dist.max() <= part_radius:  # thin body: shrink the part to the largest disk that fits
        part_radius = max(float(dist.max()) - 1.0, 0.5)
    candidates = np.flatnonzero(dist > part_radius)
    centre = candidates[min(int(pick * len(candidates)), len(candidates) - 1)]
    py, px = divmod(int(centre), size)
    part = ((xx - px) ** 2 + (yy - py) ** 2 <= part_radius**2) & mask
    image[part] = np.asarray(PART_COLORS[label][1], np.float32) * np.float32(scale)

    # 6. pixel noise
    image += noise_rng.standard_normal(image.shape, dtype=np.float32) * _PIXEL_NOISE
    return image, mask, part


def generate_sample(rng: np.random.Generator, label: int, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """One image of class ``label``: ``(S, S, 3)`` uint8 RGB and its ``(S, S)`` uint8 body mask in {0, 1}.

    Deterministic given the generator's state; see the module docstring for the layers.
    """
    image, mask, _ = _render(rng, label, cfg)
    pixels = np.clip(image * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return pixels, mask.astype(np.uint8)


def image_rng(cfg: SyntheticConfig, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split`` (independent of the split's size)."""
    return builtin.image_rng(cfg.seed, split, index)


def split_labels(cfg: SyntheticConfig, split: str, n: int) -> np.ndarray:
    """Labels of the first ``n`` images of ``split``: blocks of K, each a seeded permutation of the classes.

    Label ``i`` does not depend on ``n``; class counts differ by at most one.
    """
    return builtin.split_labels(cfg.seed, cfg.num_classes, split, n)


def _spec(cfg: SyntheticConfig) -> builtin.GeneratedSet:
    def render(split: str, index: int, label: int) -> tuple[np.ndarray, np.ndarray, None]:
        return (*generate_sample(image_rng(cfg, split, index), label, cfg), None)

    return builtin.GeneratedSet(kind="synthetic", config=cfg, version=GENERATOR_VERSION,
                                classes=class_names(cfg.num_classes), render=render)


def build_synthetic(cfg: SyntheticConfig, out_dir: str | Path,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate (or reuse) the dataset of ``cfg`` under ``out_dir``; return its manifest directory.

    The dataset lives in ``out_dir / f"synthetic-{stable_hash(to_dict(cfg))}"``: ``images/<split>/``,
    ``masks/{val,test}/`` (0 / 255 PNGs), the manifest (root ``"."``) and ``synthetic.json``. A
    complete build of the same config and generator version is reused as is. A new build is written
    to a temporary sibling directory and renamed into place at the end, so an interrupted build
    never leaves a loadable half dataset. ``train`` has labels only (no boxes, no masks); ``val``
    and ``test`` have one box (inclusive pixels) and a mask per image. ``progress(done, total)``
    is called after each image of a new build (never for a reused one). The machinery is shared
    with the digits set (:mod:`wsolbench.data.builtin`).
    """
    if cfg.seed < 0:
        raise ConfigError(f"synthetic.seed must be >= 0, got {cfg.seed}")
    class_names(cfg.num_classes)
    return builtin.build_generated(_spec(cfg), out_dir, progress)
