"""Score-map files: where each map lives, scanning a folder, reading and checking one map, predictions.

Score maps
----------
One ``.npy`` file per image, named ``<scoremaps>/<image_id>.npy`` where the
image id keeps its folders and extension (``test/001/x.jpg`` ->
``test/001/x.jpg.npy``, as the community's evaluation code names them). Each
map is a 2-D float32 or float64 array of shape ``(resolution, resolution)``
(224 by default), finite, in ``[0, 1]``; anything else raises
:class:`~wsolbench.errors.DataError` naming the image and the file. The
drivers (:mod:`wsolbench.scoremaps.evaluate`) read maps in batches, never all
at once (:func:`iter_scoremap_batches`: plain ``np.save`` files straight into
the batch, one batch ahead of the engines).

For multi-class masks (``multiclass=True``) the maps are per class:
``<scoremaps>/<class>/<image_id>.npy`` with ``<class>`` the 0-based class index
(the label of ``class_labels.txt`` or of the manifest), e.g. ``14/2007_000129.jpg.npy``.

Predictions
-----------
``id,predicted_class`` lines (:func:`read_predictions`), for Top-1 Loc.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from wsolbench.errors import DataError

SUFFIX = ".npy"


def scoremap_root(scoremaps: str | Path) -> Path:
    """``scoremaps`` as a Path; DataError when the folder does not exist."""
    root = Path(scoremaps)
    if not root.is_dir():
        raise DataError(f"score map folder {root} does not exist")
    return root


def scoremap_path(root: str | Path, image_id: str, class_index: int | None = None) -> Path:
    """``root/<image_id>.npy``, or ``root/<class>/<image_id>.npy`` for a per-class map."""
    base = Path(root) if class_index is None else Path(root) / str(class_index)
    return base / (image_id + SUFFIX)


def scan_scoremaps(root: str | Path) -> set[str]:
    """Image ids of every ``*.npy`` under ``root`` (POSIX relative path without ``.npy``).

    Like ``os.walk``: folders are entered, symbolic links to folders are not,
    any other entry counts as a file.
    """
    found: set[str] = set()
    cut = len(SUFFIX)

    def walk(folder: str, prefix: str) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    walk(entry.path, prefix + name + "/")
            elif name.endswith(SUFFIX) and len(name) > cut:
                found.add(prefix + name[:-cut])

    walk(os.fspath(root), "")
    return found


def load_scoremap(path: str | Path, image_id: str, resolution: int) -> np.ndarray:
    """Read and check one map: 2-D ``(R, R)`` float32/float64, finite, in ``[0, 1]``; returns float64."""
    where = f"score map of image {image_id!r} ({path})"
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{where} does not exist") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{where} cannot be read as a .npy array: {exc}") from None
    if not isinstance(array, np.ndarray):
        if hasattr(array, "close"):
            array.close()
        raise DataError(f"{where} is not a single .npy array")
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):  # either byte order
        raise DataError(f"{where} has dtype {array.dtype}; expected float32 or float64")
    if array.shape != (resolution, resolution):
        raise DataError(f"{where} has shape {array.shape}; expected ({resolution}, {resolution}) "
                        "(see --resolution)")
    if not np.isfinite(array).all():
        raise DataError(f"{where} has NaN or inf values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise DataError(f"{where} has values outside [0, 1] (min {low:.6g}, max {high:.6g}); "
                        "normalise each map to [0, 1] (min-max) first")
    return array.astype(np.float64)


# What np.save writes for a 2-D little-endian float array (format 1.0 to 3.0):
# anything else goes through np.load (load_scoremap).
_HEADER = re.compile(rb"\{'descr': '<f([48])', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n?")
_PLAIN = sys.byteorder == "little"


def _open_plain(path: Path, resolution: int) -> tuple[Any, np.dtype] | None:
    """An open ``.npy`` file positioned at its data and its dtype, when it is a plain ``(R, R)`` float map."""
    if not _PLAIN:
        return None
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError:
        return None
    try:
        head = handle.read(12)
        if len(head) < 10 or head[:6] != b"\x93NUMPY" or head[6] not in (1, 2, 3):
            raise ValueError
        if head[6] == 1:
            length = int.from_bytes(head[8:10], "little")
            handle.seek(10)
        else:
            length = int.from_bytes(head[8:12], "little")
        header = handle.read(length)
        match = _HEADER.fullmatch(header)
        if match is None or (int(match[2]), int(match[3])) != (resolution, resolution):
            raise ValueError
        return handle, np.dtype(np.float32 if match[1] == b"4" else np.float64)
    except (OSError, ValueError):
        handle.close()
        return None


def peek_dtype(path: Path, resolution: int) -> type:
    """The dtype of a plain ``.npy`` map (float32 or float64); float32 for anything else."""
    opened = _open_plain(Path(path), resolution)
    if opened is None:
        return np.float32
    opened[0].close()
    return opened[1].type


def read_scoremap_batch(paths: Sequence[str | Path], image_ids: Sequence[str], resolution: int) -> np.ndarray:
    """``(B, R, R)`` maps of ``paths``: float32, or float64 when any map is float64 (widening is exact).

    Plain little-endian ``(R, R)`` float ``.npy`` files are read straight into
    the batch (no per-file array, no float64 copy); any other file goes through
    :func:`load_scoremap`, which names the problem. Values are not checked here:
    the metrics' accumulators check the range in their own pass over the pixels
    (:func:`check_scoremap_files` names the file when they flag one).
    """
    opened: list[tuple[Any, np.dtype] | None] = []
    try:
        for path in paths:
            opened.append(_open_plain(Path(path), resolution))
        slow = {i: load_scoremap(paths[i], image_ids[i], resolution) for i, o in enumerate(opened) if o is None}
        wide = bool(slow) or any(o is not None and o[1] == np.float64 for o in opened)
        out = np.empty((len(paths), resolution, resolution), dtype=np.float64 if wide else np.float32)
        for i, item in enumerate(opened):
            if item is None:
                out[i] = slow[i]
                continue
            handle, dtype = item
            target = out[i] if dtype == out.dtype else np.empty((resolution, resolution), dtype)
            if handle.readinto(memoryview(target).cast("B")) != target.nbytes:
                out[i] = load_scoremap(paths[i], image_ids[i], resolution)  # truncated: raises, naming it
                continue
            if target is not out[i]:
                out[i] = target
    finally:
        for item in opened:
            if item is not None:
                item[0].close()
    return out


def check_scoremap_files(paths: Sequence[str | Path], image_ids: Sequence[str], resolution: int) -> None:
    """:func:`load_scoremap` each file: raises the DataError of the first bad one, naming image and file."""
    for path, image_id in zip(paths, image_ids, strict=True):
        load_scoremap(path, image_id, resolution)


def iter_scoremap_batches(paths: Sequence[str | Path], image_ids: Sequence[str], resolution: int,
                          batch_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(lo, hi, maps)`` for consecutive batches of the files, the next batch read while this one is used.

    One reading thread runs ahead by one batch (file reads release the GIL),
    so at most two batches are in memory.
    """
    spans = [(lo, min(lo + batch_size, len(paths))) for lo in range(0, len(paths), batch_size)]
    if not spans:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="wsolbench-read") as pool:

        def read(span: tuple[int, int]) -> np.ndarray:
            return read_scoremap_batch(paths[span[0]:span[1]], image_ids[span[0]:span[1]], resolution)

        pending = pool.submit(read, spans[0])
        for k, (lo, hi) in enumerate(spans):
            maps = pending.result()
            if k + 1 < len(spans):
                pending = pool.submit(read, spans[k + 1])
            yield lo, hi, maps


def read_predictions(path: str | Path) -> dict[str, int]:
    """``{image_id: predicted class}`` from ``id,predicted_class`` lines (blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"predictions file {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"predictions file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"predictions file {path}: not UTF-8 text") from None
    out: dict[str, int] = {}
    first: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        parts = line.rsplit(",", 1)
        if len(parts) != 2 or not parts[0].strip():
            raise DataError(f"{where}: expected id,predicted_class")
        image_id, value = parts[0].strip(), parts[1].strip()
        try:
            number = float(value)
            if not number.is_integer() or number < 0:
                raise ValueError(value)
        except ValueError:
            raise DataError(f"{where}: predicted class {value!r} is not a non-negative integer") from None
        if image_id in out:
            raise DataError(f"{where}: duplicate prediction for image {image_id!r} (first at line {first[image_id]})")
        out[image_id] = int(number)
        first[image_id] = lineno
    return out


def scan_class_scoremaps(root: Path) -> dict[int, set[str]]:
    """``{class: image ids}`` of ``root/<class>/**/*.npy``; other entries of ``root`` are errors."""
    found: dict[int, set[str]] = {}
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        if not entry.name.isdigit():
            raise DataError(f"multi-class score maps live in {root}/<class>/, with <class> the 0-based class "
                            f"index; {entry} is not a class index")
        found[int(entry.name)] = scan_scoremaps(entry)
    return found
