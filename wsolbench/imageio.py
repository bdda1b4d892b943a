"""Decoding image and mask files into numpy arrays, and the evaluation masks of a manifest sample.

Images come out as ``(H, W, 3)`` uint8 RGB; masks as ``(H, W)`` uint8 with
:data:`~wsolbench.structs.MASK_BACKGROUND` 0, :data:`~wsolbench.structs.MASK_FOREGROUND`
1 and :data:`~wsolbench.structs.MASK_IGNORE` 255 (binary evaluation masks) or
class indices (``c + 1`` = class ``c``, 0 background, 255 void). How a manifest
mask file encodes them is its ``mask_kind`` (:data:`MASK_KINDS`).

Torch-free on purpose (numpy, OpenCV, Pillow and the standard library only),
like :mod:`wsolbench.manifest`, which re-exports every name here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from wsolbench.errors import DataError
from wsolbench.structs import MASK_BACKGROUND, MASK_IGNORE

if TYPE_CHECKING:  # manifest imports this module; the types are only for annotations
    from collections.abc import Callable

    from wsolbench.manifest import Manifest, Sample

#: How a mask file encodes foreground, background and ignore (``Sample.mask_kind``):
#: ``binary`` any non-zero pixel is foreground (the default); ``soft`` a 0-255 greyscale
#: probability map, foreground where >= :data:`SOFT_MASK_THRESHOLD` (CUB segmentations);
#: ``trimap`` 1 foreground, 2 background, 3 ignore (Oxford-IIIT Pet); ``class_index``
#: 0 background, ``c + 1`` class ``c``, 255 void = ignore (PASCAL VOC, palette indices kept).
MASK_KINDS = ("binary", "soft", "trimap", "class_index")
#: Foreground cut-off of ``soft`` masks (0-255 greyscale): the 0.5 probability level.
SOFT_MASK_THRESHOLD = 128
#: Trimap values (Oxford-IIIT Pet): 1 foreground, 2 background, 3 boundary (ignored).
TRIMAP_FOREGROUND, TRIMAP_BACKGROUND, TRIMAP_IGNORE = 1, 2, 3


# --------------------------------------------------------------------------- files


def read_file_bytes(path: str | Path, what: str) -> np.ndarray:
    """The bytes of ``path`` as uint8; DataError names ``what`` and the path when it is missing or unreadable."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"{what} {path} cannot be read: {exc.strerror}") from None
    return data


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into ``(H, W, 3)`` uint8 RGB, whatever its mode.

    OpenCV first (grey, RGBA and CMYK JPEGs come out as 3-channel colour); a file
    OpenCV cannot decode (e.g. a GIF saved as ``.jpg``) is tried with Pillow and
    converted to RGB. The EXIF orientation tag is not applied: pixels stay as
    stored, the frame the annotations and the reference loaders (PIL) use, so the
    decoded size is the manifest's ``size``. DataError names the path when
    neither decodes it.
    """
    data = read_file_bytes(path, "image")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is not None:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if data.size:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data.tobytes())) as pil:
                return np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()
        except Exception:  # Pillow raises many types for a corrupt file; the path is what matters
            pass
    raise DataError(f"image {path} cannot be decoded")


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a mask (or ignore map) into ``(H, W)`` uint8 with 1 where non-zero, else 0.

    Read unchanged (any bit depth). A colour mask counts a pixel when any colour
    channel is non-zero; an alpha channel is not looked at (wsolevaluation reads
    masks as greyscale, which drops it too). Palette PNGs are not index-preserved
    by OpenCV: use :func:`read_index_mask` for those.
    """
    data = read_file_bytes(path, "mask")
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if mask is None:
        raise DataError(f"mask {path} cannot be decoded")
    if mask.ndim == 3:
        mask = mask[:, :, :3].any(axis=2) if mask.shape[2] >= 3 else mask[:, :, 0] != 0
    else:
        mask = mask != 0
    return mask.astype(np.uint8)


def read_index_mask(path: str | Path) -> np.ndarray:
    """``(H, W)`` uint8 pixel values of an index image (class-index mask, trimap), palette indices kept.

    Palette (``P``), greyscale (``L``), 1-bit and integer images with values in
    [0, 255] are accepted; colour images are refused (their pixel values are not
    indices). Pillow reads them, since OpenCV expands palettes to colour.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            array = np.array(image)
    except FileNotFoundError:
        raise DataError(f"mask {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"mask {path} cannot be decoded: {exc}") from None
    if mode not in ("P", "L", "1") and not mode.startswith("I"):
        raise DataError(f"index mask {path} has mode {mode}; expected a palette or single-channel image "
                        "whose pixel values are indices")
    if array.ndim != 2:
        raise DataError(f"index mask {path} has shape {array.shape}; expected a single channel")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataError(f"index mask {path} has values outside [0, 255]")
    return array.astype(np.uint8)


def read_soft_mask(path: str | Path) -> np.ndarray:
    """``(H, W)`` uint8 0/1: a 0-255 greyscale map (Pillow ``convert("L")``) at >= :data:`SOFT_MASK_THRESHOLD`."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))
    except FileNotFoundError:
        raise DataError(f"mask {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"mask {path} cannot be decoded: {exc}") from None
    return (grey >= SOFT_MASK_THRESHOLD).astype(np.uint8)


def decode_mask(path: str | Path, kind: str, label: int) -> np.ndarray:
    """One mask file as ``(H, W)`` uint8 at its own size: 0 background, 1 foreground, 255 ignore.

    ``kind`` is one of :data:`MASK_KINDS`; ``label`` picks the foreground class of
    a ``class_index`` mask (value ``label + 1``; other classes are background).
    """
    if kind == "binary":
        return read_mask(path)
    if kind == "soft":
        return read_soft_mask(path)
    if kind == "trimap":
        values = read_index_mask(path)
        out = (values == TRIMAP_FOREGROUND).astype(np.uint8)
        out[values == TRIMAP_IGNORE] = MASK_IGNORE
        return out
    if kind == "class_index":
        values = read_index_mask(path)
        out = (values == label + 1).astype(np.uint8)
        out[values == MASK_IGNORE] = MASK_IGNORE
        return out
    raise DataError(f"mask {path}: unknown mask kind {kind!r} (known: {', '.join(MASK_KINDS)})")


# --------------------------------------------------------------------------- evaluation masks


def merge_ignore(mask: np.ndarray, ignore_path: str | Path | None,
                 read: Callable[[Path], np.ndarray] = read_mask) -> np.ndarray:
    """Mark ignored the background pixels of ``mask`` where the ignore map ``ignore_path`` is non-zero.

    ``mask`` is ``(H, W)`` uint8 at its final size (binary 0/1/255 or class
    indices) and is changed in place and returned. The ignore map is read with
    ``read`` (default :func:`read_mask`: any non-zero channel) and
    nearest-resized (``cv2.INTER_NEAREST``) to ``(H, W)``; only background (0)
    pixels become :data:`~wsolbench.structs.MASK_IGNORE`, so foreground and
    classes win over ignore. ``ignore_path`` None leaves ``mask`` as it is.
    """
    if ignore_path is None:
        return mask
    height, width = mask.shape
    ignore = cv2.resize(read(Path(ignore_path)).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    mask[(ignore != 0) & (mask == MASK_BACKGROUND)] = MASK_IGNORE
    return mask


def _resize_nearest(decoded: np.ndarray, resolution: int | None) -> np.ndarray:
    """``decoded`` nearest-resized to ``(resolution, resolution)``; a copy at its own size for None."""
    height, width = decoded.shape
    size = (width, height) if resolution is None else (int(resolution), int(resolution))
    return cv2.resize(decoded, size, interpolation=cv2.INTER_NEAREST)


def _sample_mask_path(manifest: Manifest, sample: Sample) -> Path:
    path = manifest.mask_path(sample)
    if path is None:
        raise DataError(f"image {sample.image_id} has no mask in manifest {manifest.directory}")
    return path


def load_eval_mask(manifest: Manifest, sample: Sample, resolution: int | None) -> np.ndarray:
    """The ground-truth map of ``sample`` at ``(resolution, resolution)``, uint8.

    0 = background, 1 = foreground, 255 = ignore, as in wsolevaluation. The mask
    is read by its kind (:func:`decode_mask`); an ignore file marks its non-zero
    pixels that are not foreground (:func:`merge_ignore`). Every map is resized
    with nearest neighbour (``cv2.INTER_NEAREST``). ``resolution`` None keeps
    the mask's own size.
    """
    decoded = decode_mask(_sample_mask_path(manifest, sample), sample.mask_kind, sample.label)
    return merge_ignore(_resize_nearest(decoded, resolution), manifest.ignore_path(sample))


def load_eval_class_mask(manifest: Manifest, sample: Sample, resolution: int | None) -> np.ndarray:
    """The class-index ground truth of ``sample`` at ``(resolution, resolution)``, ``(R, R)`` uint8.

    ``c + 1`` = class ``c``, 0 background, 255 void (PASCAL VOC). The mask file
    is read as an index image whatever its ``mask_kind`` (:func:`read_index_mask`,
    palette indices kept), nearest-resized (``cv2.INTER_NEAREST``); an ignore
    file marks its non-zero background pixels void (:func:`merge_ignore`, as
    :func:`load_eval_mask`). ``resolution`` None keeps the mask's own size.
    """
    decoded = read_index_mask(_sample_mask_path(manifest, sample))
    return merge_ignore(_resize_nearest(decoded, resolution), manifest.ignore_path(sample))
