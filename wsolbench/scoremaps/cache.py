"""The ground truth of a split at the evaluation resolution, held in arrays and cached on disk.

Decoding mask PNGs is most of the time of a PxAP evaluation (and parsing the
metadata a tenth of a box evaluation), so the ground truth is read once per
(split, resolution) into a :class:`GroundTruthArrays` and stored; later
evaluations of the same ground truth (another model's maps, every epoch's val
evaluation of a training run, another command) load it instead.

What is stored
--------------
Per image of the split, in ``image_ids`` order: the class labels, the boxes
already rescaled to the resolution (int64 ``x0, y0, x1, y1``) and the mask at
the resolution as two bit planes (``np.packbits`` of foreground == 1 and of
ignore == 255, ``ceil(R * R / 8)`` bytes each: 12.5 kB an image at 224).

The key
-------
sha256 of: the cache format version, the OpenCV version (it decodes the masks),
the resolution, and

* metadata: the bytes of ``image_ids.txt``, ``class_labels.txt``,
  ``image_sizes.txt`` and ``localization.txt`` (absent files marked as such)
  and the resolved mask root;
* manifest: the manifest's content hash (:meth:`~wsolbench.manifest.Manifest.content_hash`),
  the split, and the resolved folder its mask paths are relative to.

The entry also records the size and modification time (ns) of every mask and
ignore file it was decoded from; a file that changed, vanished or moved makes
the entry stale (it is rebuilt), so a replaced mask is never served from the
cache. Any change to the metadata or manifest changes the key.

Where and how
-------------
``<cache dir>/groundtruth/<key>.gt``; the cache dir is ``$WSOLBENCH_CACHE_DIR``,
else ``$XDG_CACHE_HOME/wsolbench``, else ``~/.cache/wsolbench``
(:func:`default_cache_dir`; ``WSOLBENCH_CACHE_DIR=off`` turns caching off). A
file is one JSON header line (format, key, resolution, labels, ids, mask files
and their stats, the arrays' dtypes, shapes and offsets, and a CRC-32 of the
payload) followed by the raw arrays. It is written atomically
(:func:`wsolbench._io.atomic_write`: temporary file, fsync, rename), so a
reader sees a whole file or none. A file that cannot be read, parses wrongly,
has another key or resolution, or fails its CRC is not trusted: the ground
truth is read from the source again and the file replaced. A cache that
cannot be written only costs the next run the decoding (a warning says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolbench._io import atomic_write
from wsolbench.data.sources.wsolevaluation import CLASS_LABELS, IMAGE_IDS, IMAGE_SIZES, LOCALIZATION
from wsolbench.errors import ConfigError, DataError, OutputError, WsolbenchError
from wsolbench.progress import NullProgress, Progress
from wsolbench.scoremaps.groundtruth import GroundTruth
from wsolbench.structs import MASK_FOREGROUND, MASK_IGNORE

#: Bump when what an entry holds, or how the ground truth is read, changes.
CACHE_VERSION = 1
CACHE_ENV = "WSOLBENCH_CACHE_DIR"
_MAGIC = b"wsolbench-groundtruth\n"
_OFF = ("off", "none", "0", "false", "no")


def default_cache_dir() -> Path | None:
    """``$WSOLBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/wsolbench``, else ``~/.cache/wsolbench``; None when off."""
    env = os.environ.get(CACHE_ENV)
    if env is not None and env.strip():
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and xdg.strip() else Path.home() / ".cache"
    return base / "wsolbench"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- the arrays


class GroundTruthArrays(GroundTruth):
    """A split's ground truth at one resolution, in arrays: what the cache stores and serves.

    Attributes (besides :class:`GroundTruth`'s):
        resolution: the side ``R`` the boxes and masks are at.
        box_flat / box_offsets: int64 ``(N, 4)`` boxes of every image, image
            ``i``'s being ``box_flat[box_offsets[i]:box_offsets[i + 1]]`` (None without boxes).
        fg_bits / ignore_bits: uint8 ``(n, ceil(R * R / 8))`` packed bit planes
            of foreground and ignore pixels (None without masks).
        mask_files / mask_stats: every mask and ignore file read, and its
            ``(size, mtime_ns)`` when it was.
    """

    def __init__(self, *, source: dict[str, Any], image_ids: Sequence[str], labels: Sequence[Sequence[int]],
                 has_labels: bool, num_classes: int, resolution: int,
                 box_flat: np.ndarray | None = None, box_offsets: np.ndarray | None = None,
                 fg_bits: np.ndarray | None = None, ignore_bits: np.ndarray | None = None,
                 mask_files: Sequence[str] = (), mask_stats: np.ndarray | None = None) -> None:
        self.source = dict(source)
        self.image_ids = tuple(image_ids)
        self._index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self._labels = tuple(tuple(int(c) for c in ls) for ls in labels)
        self.has_labels = bool(has_labels)
        self._num_classes = int(num_classes)
        self.resolution = int(resolution)
        self.box_flat, self.box_offsets = box_flat, box_offsets
        self.fg_bits, self.ignore_bits = fg_bits, ignore_bits
        self.has_boxes = box_flat is not None
        self.has_masks = fg_bits is not None
        self.mask_files = tuple(mask_files)
        self.mask_stats = np.zeros((0, 2), np.int64) if mask_stats is None else mask_stats

    # ------------------------------------------------------------ GroundTruth

    def _at(self, resolution: int) -> None:
        if int(resolution) != self.resolution:
            raise ValueError(f"ground truth held at resolution {self.resolution}, asked at {resolution}")

    def labels(self, image_id: str) -> tuple[int, ...]:
        return self._labels[self._index[image_id]]

    def boxes(self, image_id: str, resolution: int) -> np.ndarray:
        self._at(resolution)
        if self.box_flat is None or self.box_offsets is None:
            raise DataError(f"{self.describe()} has no boxes")
        i = self._index[image_id]
        return self.box_flat[self.box_offsets[i]:self.box_offsets[i + 1]].copy()

    def boxes_batch(self, image_ids: Sequence[str], resolution: int) -> list[np.ndarray]:
        return [self.boxes(i, resolution) for i in image_ids]

    def mask(self, image_id: str, resolution: int) -> np.ndarray:
        return self.masks_batch([image_id], resolution)[0]

    def masks_batch(self, image_ids: Sequence[str], resolution: int) -> np.ndarray:
        """``(B, R, R)`` uint8 0 / 1 / 255, unpacked from the bit planes."""
        self._at(resolution)
        if self.fg_bits is None or self.ignore_bits is None:
            raise DataError(f"{self.describe()} has no masks")
        rows = np.fromiter((self._index[i] for i in image_ids), dtype=np.int64, count=len(image_ids))
        pixels = self.resolution * self.resolution
        fg = np.unpackbits(self.fg_bits[rows], axis=1, count=pixels)
        ignore = np.unpackbits(self.ignore_bits[rows], axis=1, count=pixels)
        # foreground and ignore are disjoint: 1 + 0 or 0 + 255
        out = fg * np.uint8(MASK_FOREGROUND)
        out += ignore * np.uint8(MASK_IGNORE)
        return out.reshape(len(rows), self.resolution, self.resolution)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def class_labels(self, image_id: str) -> tuple[int, ...]:
        raise NotImplementedError("multi-class evaluation reads class-index masks from the source, not the cache")

    def class_mask(self, image_id: str, resolution: int) -> np.ndarray:
        raise NotImplementedError("multi-class evaluation reads class-index masks from the source, not the cache")

    # ------------------------------------------------------------ building

    @classmethod
    def build(cls, gt: GroundTruth, resolution: int, *, workers: int = 1,
              progress: Progress | None = None) -> GroundTruthArrays | None:
        """Read every image's boxes and mask from ``gt`` at ``resolution`` (masks decoded in ``workers`` threads).

        None when a mask holds values other than 0, 1 and 255 (nothing to
        pack; the caller evaluates from ``gt`` itself).
        """
        if isinstance(gt, GroundTruthArrays):
            gt._at(resolution)
            return gt
        progress = progress or NullProgress()
        ids = list(gt.image_ids)
        box_flat = box_offsets = fg_bits = ignore_bits = None
        if gt.has_boxes:
            boxes = [np.asarray(b, dtype=np.int64).reshape(-1, 4) for b in gt.boxes_batch(ids, resolution)]
            box_offsets = np.zeros(len(ids) + 1, dtype=np.int64)
            box_offsets[1:] = np.cumsum([len(b) for b in boxes])
            box_flat = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int64)
        files: list[str] = []
        stats: list[tuple[int, int]] = []
        if gt.has_masks:
            n_bytes = (resolution * resolution + 7) // 8
            fg_bits = np.empty((len(ids), n_bytes), dtype=np.uint8)
            ignore_bits = np.empty((len(ids), n_bytes), dtype=np.uint8)
            odd = []

            def decode(i: int) -> None:
                mask = gt.mask(ids[i], resolution).reshape(-1)
                fg, ignore = mask == MASK_FOREGROUND, mask == MASK_IGNORE
                if not (fg | ignore | (mask == 0)).all():
                    odd.append(i)
                fg_bits[i] = np.packbits(fg)
                ignore_bits[i] = np.packbits(ignore)

            for image_id in ids:
                for path in gt.mask_files(image_id):
                    files.append(str(path))
            stats = [_stat(Path(f)) for f in files]  # before decoding: a file changed meanwhile is caught next time
            with progress.phase("ground-truth masks", len(ids)) as advance:
                _run(decode, len(ids), workers, advance)
            if odd:
                return None
        labels = [gt.labels(i) for i in ids] if gt.has_labels else [() for _ in ids]
        return cls(source=gt.source, image_ids=ids, labels=labels, has_labels=gt.has_labels,
                   num_classes=gt.num_classes, resolution=resolution, box_flat=box_flat, box_offsets=box_offsets,
                   fg_bits=fg_bits, ignore_bits=ignore_bits, mask_files=files,
                   mask_stats=np.array(stats, dtype=np.int64).reshape(-1, 2))

    def files_unchanged(self) -> bool:
        """Whether every mask file still has the size and modification time it had when read."""
        return all(_stat(Path(f)) == tuple(s) for f, s in zip(self.mask_files, self.mask_stats.tolist(), strict=True))


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (int(st.st_size), int(st.st_mtime_ns))


def _run(fn: Callable[[int], None], n: int, workers: int, advance: Callable[[int], None]) -> None:
    """``fn(i)`` for ``i < n`` in ``workers`` threads (OpenCV decodes without the GIL), in order of completion."""
    if workers <= 1 or n < 2:
        for i in range(n):
            fn(i)
            advance(1)
        return
    step = 16
    with ThreadPoolExecutor(min(workers, n), thread_name_prefix="wsolbench-gt") as pool:

        def chunk(lo: int) -> int:
            hi = min(n, lo + step)
            for i in range(lo, hi):
                fn(i)
            return hi - lo

        for future in [pool.submit(chunk, lo) for lo in range(0, n, step)]:
            advance(future.result())


# --------------------------------------------------------------------------- keys


def _digest(parts: Sequence[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:32]


def _common(resolution: int) -> list[tuple[str, bytes]]:
    return [("format", str(CACHE_VERSION).encode()), ("opencv", cv2.__version__.encode()),
            ("resolution", str(int(resolution)).encode())]


def metadata_key(split_dir: str | Path, mask_root: str | Path | None, resolution: int) -> str:
    """The key of a metadata split folder's ground truth (module docstring)."""
    directory = Path(split_dir)
    parts = _common(resolution) + [("kind", b"metadata")]
    for name in (IMAGE_IDS, CLASS_LABELS, IMAGE_SIZES, LOCALIZATION):
        try:
            parts.append((name, (directory / name).read_bytes()))
        except FileNotFoundError:
            parts.append((name, b"\0absent"))
        except OSError:
            parts.append((name, b"\0unreadable"))
    root = "" if mask_root is None else str(Path(mask_root).resolve())
    parts.append(("mask_root", root.encode()))
    return _digest(parts)


def manifest_key(manifest: Any, split: str, resolution: int) -> str:
    """The key of a manifest split's ground truth (module docstring)."""
    base = manifest.mask_root or manifest.root
    parts = _common(resolution) + [("kind", b"manifest"), ("content", manifest.content_hash().encode()),
                                   ("split", split.encode()), ("mask_base", str(Path(base).resolve()).encode())]
    return _digest(parts)


# --------------------------------------------------------------------------- the store


_ARRAYS = ("box_flat", "box_offsets", "fg_bits", "ignore_bits", "mask_stats")


@dataclass(frozen=True)
class GroundTruthCache:
    """Entries under ``directory / "groundtruth"``, one file per key."""

    directory: Path

    @classmethod
    def default(cls) -> GroundTruthCache | None:
        """The cache at :func:`default_cache_dir`, or None when caching is off."""
        where = default_cache_dir()
        return None if where is None else cls(where)

    def path(self, key: str) -> Path:
        return self.directory / "groundtruth" / f"{key}.gt"

    def load(self, key: str, resolution: int) -> GroundTruthArrays | None:
        """The entry of ``key`` when it exists, is whole and is not stale; else None."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            arrays = _decode(data, key, resolution)
        except (ValueError, KeyError, TypeError, IndexError):  # corrupt or foreign: rebuilt by the caller
            return None
        if not arrays.files_unchanged():
            return None
        return arrays

    def save(self, key: str, arrays: GroundTruthArrays) -> Path:
        """Write the entry of ``key`` atomically; OutputError when it cannot be written."""
        blob = _encode(arrays, key)
        return atomic_write(self.path(key), lambda tmp: tmp.write_bytes(blob))


def _encode(arrays: GroundTruthArrays, key: str) -> bytes:
    payload = []
    table = {}
    offset = 0
    for name in _ARRAYS:
        value = getattr(arrays, name)
        if value is None:
            continue
        value = np.ascontiguousarray(value)
        raw = value.tobytes()
        table[name] = {"dtype": value.dtype.str, "shape": list(value.shape), "offset": offset, "nbytes": len(raw)}
        payload.append(raw)
        offset += len(raw)
    body = b"".join(payload)
    header = {
        "format": CACHE_VERSION, "key": key, "resolution": arrays.resolution, "source": arrays.source,
        "image_ids": list(arrays.image_ids), "labels": [list(ls) for ls in arrays._labels],
        "has_labels": arrays.has_labels, "num_classes": arrays.num_classes,
        "mask_files": list(arrays.mask_files), "arrays": table, "crc32": zlib.crc32(body),
    }
    line = json.dumps(header, separators=(",", ":")).encode() + b"\n"
    return _MAGIC + line + body


def _decode(data: bytes, key: str, resolution: int) -> GroundTruthArrays:
    if not data.startswith(_MAGIC):
        raise ValueError("not a ground-truth cache file")
    end = data.index(b"\n", len(_MAGIC))
    header = json.loads(data[len(_MAGIC):end])
    if header["format"] != CACHE_VERSION or header["key"] != key or header["resolution"] != resolution:
        raise ValueError("another key, format or resolution")
    body = memoryview(data)[end + 1:]
    if zlib.crc32(body) != header["crc32"]:
        raise ValueError("checksum mismatch")
    values: dict[str, np.ndarray] = {}
    for name, spec in header["arrays"].items():
        if name not in _ARRAYS:
            raise ValueError(f"unknown array {name}")
        dtype = np.dtype(spec["dtype"])
        shape = tuple(int(v) for v in spec["shape"])
        count = int(np.prod(shape)) if shape else 1
        if count * dtype.itemsize != spec["nbytes"] or spec["offset"] + spec["nbytes"] > len(body):
            raise ValueError(f"array {name} does not fit")
        values[name] = np.frombuffer(body, dtype=dtype, count=count, offset=spec["offset"]).reshape(shape)
    ids = [str(i) for i in header["image_ids"]]
    n = len(ids)
    labels = header["labels"]
    files = [str(f) for f in header["mask_files"]]
    if len(labels) != n:
        raise ValueError("labels do not match the images")
    boxes = values.get("box_flat"), values.get("box_offsets")
    if (boxes[0] is None) != (boxes[1] is None):
        raise ValueError("half the boxes")
    if boxes[1] is not None and (boxes[1].shape != (n + 1,) or boxes[1][-1] != len(boxes[0])
                                 or boxes[0].ndim != 2 or boxes[0].shape[1] != 4
                                 or (np.diff(boxes[1]) < 1).any()):
        raise ValueError("box offsets do not match")
    bits = values.get("fg_bits"), values.get("ignore_bits")
    if (bits[0] is None) != (bits[1] is None):
        raise ValueError("half the masks")
    n_bytes = (resolution * resolution + 7) // 8
    if bits[0] is not None and (bits[0].shape != (n, n_bytes) or bits[1].shape != (n, n_bytes)):
        raise ValueError("mask planes do not match")
    stats = values.get("mask_stats", np.zeros((0, 2), np.int64))
    if stats.shape != (len(files), 2):
        raise ValueError("mask file stats do not match")
    return GroundTruthArrays(source=header["source"], image_ids=ids, labels=labels, has_labels=header["has_labels"],
                             num_classes=header["num_classes"], resolution=resolution, box_flat=boxes[0],
                             box_offsets=boxes[1], fg_bits=bits[0], ignore_bits=bits[1], mask_files=files,
                             mask_stats=stats)


# --------------------------------------------------------------------------- opening a split


@dataclass(frozen=True)
class CacheSlot:
    """Where the arrays of a ground truth read from its source go once built."""

    cache: GroundTruthCache
    key: str

    def save(self, arrays: GroundTruthArrays, progress: Progress | None = None) -> None:
        try:
            self.cache.save(self.key, arrays)
        except OutputError as exc:
            (progress or NullProgress()).log(f"warning: ground-truth cache not written ({exc}); "
                                             "the next evaluation decodes the masks again")


def resolve_cache(cache_dir: str | Path | None, use_cache: bool = True) -> GroundTruthCache | None:
    """The cache to use: ``cache_dir``, else the default one; None when ``use_cache`` is False or caching is off."""
    if not use_cache:
        return None
    if cache_dir is not None:
        if Path(cache_dir).exists() and not Path(cache_dir).is_dir():
            raise ConfigError(f"--cache-dir {cache_dir} is not a folder")
        return GroundTruthCache(Path(cache_dir))
    return GroundTruthCache.default()


def _described(arrays: GroundTruthArrays | None, source: dict[str, Any]) -> GroundTruthArrays | None:
    # The key is the content, not the path: a hit names the source as given now.
    if arrays is not None:
        arrays.source = dict(source)
    return arrays


def open_metadata(split_dir: str | Path, mask_root: str | Path | None, resolution: int,
                  cache: GroundTruthCache | None) -> tuple[GroundTruthArrays | None, CacheSlot | None]:
    """The cached arrays of a metadata split (None on a miss) and the slot to save them in."""
    if cache is None:
        return None, None
    key = metadata_key(split_dir, mask_root, resolution)
    return _described(cache.load(key, resolution), {"metadata": str(Path(split_dir))}), CacheSlot(cache, key)


def open_manifest(manifest: Any, split: str, resolution: int,
                  cache: GroundTruthCache | None) -> tuple[GroundTruthArrays | None, CacheSlot | None]:
    """The cached arrays of a manifest split (None on a miss) and the slot to save them in."""
    if cache is None:
        return None, None
    try:
        key = manifest_key(manifest, split, resolution)
    except (OSError, WsolbenchError):  # a manifest not on disk (built in memory): nothing to key it by
        return None, None
    source = {"manifest": str(manifest.directory), "split": split}
    return _described(cache.load(key, resolution), source), CacheSlot(cache, key)


def manifest_split_arrays(manifest: Any, split: str, resolution: int, *, cache: GroundTruthCache | None,
                          workers: int = 1, progress: Progress | None = None) -> GroundTruthArrays | None:
    """A manifest split's ground truth at ``resolution``, from the cache or read (and then cached).

    For training evaluation, which evaluates the same split every epoch. None
    without a cache, when the split cannot be read as a whole (images without
    boxes beside images with, a mask that does not decode: the caller's own
    reading reports those), or when the masks cannot be packed.
    """
    from wsolbench.scoremaps.groundtruth import ManifestGroundTruth

    if cache is None:
        return None
    hit, slot = open_manifest(manifest, split, resolution, cache)
    if hit is not None:
        return hit
    try:
        arrays = GroundTruthArrays.build(ManifestGroundTruth(manifest, split), resolution, workers=workers,
                                         progress=progress)
    except DataError:  # e.g. some images without boxes, or a bad mask: the data loader's path reports it
        return None
    if arrays is not None and slot is not None:
        slot.save(arrays, progress)
    return arrays
