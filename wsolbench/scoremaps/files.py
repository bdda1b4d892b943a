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
at once.

For multi-class masks (``multiclass=True``) the maps are per class:
``<scoremaps>/<class>/<image_id>.npy`` with ``<class>`` the 0-based class index
(the label of ``class_labels.txt`` or of the manifest), e.g. ``14/2007_000129.jpg.npy``.

Predictions
-----------
``id,predicted_class`` lines (:func:`read_predictions`), for Top-1 Loc.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    """Image ids of every ``*.npy`` under ``root`` (POSIX relative path without ``.npy``)."""
    root = Path(root)
    found: set[str] = set()
    for folder, _, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        for name in files:
            if name.endswith(SUFFIX) and len(name) > len(SUFFIX):
                found.add((rel / name[: -len(SUFFIX)]).as_posix())
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
